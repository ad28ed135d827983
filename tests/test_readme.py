"""The README's commands work: its main command (after the install step) and examples."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(marker):
    m = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)```", README, flags=re.S)
    assert m, marker
    return m.group(1).strip()


def test_main_command_runs_after_install(tmp_path):
    command = block_after("main-command")
    install, _, run = command.partition("pip install . && ")
    assert run, "the main command installs wsrec, then runs it"
    bindir = Path(sys.executable).parent  # the environment the tests run in
    if not (bindir / "wsrec").exists():
        pytest.skip(f"no wsrec console script in {bindir} (package not installed)")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "WSREC_DATA": str(tmp_path / "data")}
    run = run.replace("--duration 10s", "--duration 2s")  # the same job, shorter
    out = subprocess.run(run, shell=True, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "alpaca/" in out.stdout and "FAKEPACA" in out.stdout and "complete" in out.stdout


def test_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "extract test-command" in ci
    assert "pip install -e '.[test]'" in block_after("test-command")
