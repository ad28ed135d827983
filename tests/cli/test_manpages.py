"""man/ is generated from the click definitions and must not drift from them."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wsrec.cli.commands import cli
from wsrec.cli.manpages import pages

MAN = Path(__file__).resolve().parents[2] / "man"
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "ENVIRONMENT",
            "EXIT STATUS", "FILES"]


def test_committed_pages_match_the_cli():
    expected = pages()
    assert sorted(p.name for p in MAN.glob("*.1")) == sorted(expected)
    for name, text in expected.items():
        assert (MAN / name).read_text() == text, \
            f"man/{name} is out of date: run 'python -m wsrec.cli.manpages man'"
    assert set(expected) == {"wsrec.1"} | {f"wsrec-{c}.1" for c in cli.commands}


def test_every_page_has_every_section():
    for name, text in pages().items():
        headings = [line[4:].strip('"') for line in text.splitlines() if line.startswith(".SH")]
        missing = [s for s in SECTIONS if s not in headings and not (
            name == "wsrec.1" and s == "EXAMPLES")]
        assert not missing, (name, missing)
        for var in ("WSREC_DATA", "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "DFUSE_API_TOKEN"):
            assert var in text


@pytest.mark.skipif(not shutil.which("man"), reason="man is not installed")
def test_man_renders_cleanly():
    out = subprocess.run(["man", "-l", str(MAN / "wsrec-replay.1")], capture_output=True,
                         text=True, timeout=60, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin",
                                                     "MAN_KEEP_FORMATTING": "0"})
    assert out.returncode == 0 and "warning" not in out.stderr.lower()
    text = re.sub(".\x08", "", out.stdout).replace("\u2010", "-")  # overstrike bold
    assert "--speed" in text and "EXIT STATUS" in text
