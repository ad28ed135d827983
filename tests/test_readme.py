"""The README's commands work: its main command (after the install step) and examples."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(marker):
    m = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)```", README, flags=re.S)
    assert m, marker
    return m.group(1).strip()


def test_main_command_runs_after_install():
    command = block_after("main-command")
    install, _, run = command.partition("pip install . && ")
    assert run, "the main command installs wsrec, then runs it"
    if not shutil.which("wsrec"):
        pytest.skip("the wsrec console script is not on PATH (package not installed)")
    out = subprocess.run(run, shell=True, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "alpaca" in out.stdout and "FAKEPACA" in out.stdout


def test_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "extract test-command" in ci
    assert "pip install -e '.[test]'" in block_after("test-command")
