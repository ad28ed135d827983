"""``wsrec --help``, ``wsrec CMD --help``, ``wsrec venues`` and shell completion load
neither pyarrow nor the engines (issue #14, fast start): each runs in a fresh interpreter,
which then lists the modules it imported. Which modules, not how long (bench/startup.py
measures the time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Not loaded: pyarrow (0.2-0.7 s), zstandard, websockets, asyncio, tqdm, and the engines:
# store, record, replay, sim and service modules. Allowed: the light modules the options
# are built from (wsrec.store.layout, wsrec.record.units and .formats, wsrec.replay._pacing
# and .formats), and for `wsrec venues` wsrec.venues itself (without its pyarrow part,
# wsrec.venues.normalize).
FORBIDDEN_PREFIXES = ("pyarrow", "zstandard", "websockets", "asyncio", "tqdm",
                      "wsrec.store.", "wsrec.record.", "wsrec.replay.", "wsrec.sim",
                      "wsrec.service", "wsrec.venues.normalize")
ALLOWED = {"wsrec.store.layout", "wsrec.record.units", "wsrec.record.formats",
           "wsrec.replay._pacing", "wsrec.replay.formats"}

_PROBE = """
import json, sys
sys.argv = ["wsrec"] + json.loads(sys.argv[1])
from wsrec.cli import main
try:
    main()
except SystemExit:
    pass
sys.__stderr__.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def _modules(args: list[str], env: dict | None = None) -> tuple[set[str], str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("_WSREC_COMPLETE")}
    environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env or {})
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args)], env=environ,
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    line = [x for x in run.stderr.splitlines() if x.startswith("MODULES ")]
    assert line, run.stderr
    return set(json.loads(line[-1][len("MODULES "):])), run.stdout


def _heavy(modules: set[str], allow: set[str] = frozenset()) -> list[str]:
    return sorted(m for m in modules if m.startswith(FORBIDDEN_PREFIXES)
                  and m not in ALLOWED | allow)


@pytest.mark.parametrize("args", [["--help"], ["record", "--help"], ["replay", "--help"],
                                  ["convert", "--help"], ["import", "--help"],
                                  ["sim", "--help"], ["ls", "--help"], ["plot", "--help"],
                                  ["venues"]],
                         ids=" ".join)
def test_help_and_venues_load_no_engine(args):
    modules, out = _modules(args)
    assert out.strip()   # it did print its help, or the venues
    assert _heavy(modules) == []
    if args != ["venues"]:
        assert "wsrec.venues" not in modules


def test_completion_loads_no_engine():
    modules, out = _modules([], env={"_WSREC_COMPLETE": "bash_complete",
                                     "COMP_WORDS": "wsrec re", "COMP_CWORD": "1"})
    assert "plain,record" in out and "plain,replay" in out
    assert _heavy(modules) == []


@pytest.mark.parametrize("words, expect", [
    ("wsrec replay --data {root} --speed 2 --start +1s 2026", "plain,20261122T000000Z-ab12"),
    ("wsrec info --data {root} ", "plain,last"),
    ("wsrec replay --data {root} hyperliquid -c l2", "plain,l2Book"),
    ("wsrec replay --data {root} last -s BTC,", "plain,BTC,ETH"),
    ("wsrec record hyperliquid --data {root} -s ", "plain,BTC"),
    ("wsrec ls --data {root} --since 2026-11-20 ", "plain,hyperliquid"),
    ("wsrec replay --data {root} last --normalize tr", "plain,trades"),
    ("wsrec sim h", "plain,hyperliquid"),
], ids=["session-after-parsed-options", "info", "replay-channels", "replay-symbol-list",
        "record-symbols", "ls-venue", "normalize", "sim"])
def test_value_completion_loads_no_engine(tmp_path, words, expect):
    """Sessions, channels and symbols complete from folder names (and session.json),
    with --data and other parsed options on the line (their parsers don't load)."""
    folder = tmp_path / "venue=hyperliquid" / "date=2026-11-22" / "20261122T000000Z-ab12"
    folder.mkdir(parents=True)
    (folder / "session.json").write_text('{"args": {"symbols": ["BTC", "ETH"]}}')
    words = words.format(root=tmp_path)
    cword = len(words.split(" ")) - 1
    modules, out = _modules([], env={"_WSREC_COMPLETE": "bash_complete",
                                     "COMP_WORDS": words, "COMP_CWORD": str(cword)})
    assert expect in out.splitlines(), out
    assert _heavy(modules) == []


def test_venue_argument_still_checked(tmp_path):
    """The venue choice is loaded lazily, but still offered and checked."""
    from click.testing import CliRunner

    from wsrec.cli import cli
    result = CliRunner().invoke(cli, ["venues", "nosuchvenue"])
    assert result.exit_code == 2
    assert "'nosuchvenue' is not one of" in result.output and "hyperliquid" in result.output
    result = CliRunner().invoke(cli, ["sim", "nosuchvenue"])
    assert result.exit_code == 2 and "alpaca" in result.output


def test_env_data_matches_the_store():
    from wsrec.cli import commands
    from wsrec.store.location import ENV_DATA
    assert commands.ENV_DATA == ENV_DATA


def test_lazy_public_names():
    """``import wsrec`` loads no pyarrow; its public names still resolve, and list."""
    code = ("import sys, wsrec; assert not any(m.startswith('pyarrow') for m in sys.modules);"
            "assert 'SessionWriter' in dir(wsrec);"
            "from wsrec import SessionWriter, open_session, Session, Frame, Filters;"
            "assert SessionWriter.__module__ == 'wsrec.store.writer'; print('ok')")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.stdout.strip() == "ok", run.stderr
    import wsrec
    with pytest.raises(AttributeError):
        wsrec.no_such_name  # noqa: B018


# Commands that read sessions load what reading takes: pyarrow and pyarrow.parquet (and
# pyarrow._compute, whose functions the raw lines are made with, called by name), not
# pyarrow.compute (its ~300 Python wrappers: 30-45 ms), pyarrow.dataset, the servers
# (websockets, asyncio), tqdm (no terminal), the venues (text is replayed as it is), nor
# the engines that write: record, sim, service, repair, the writer, follow.
READ_FORBIDDEN = ("pyarrow.compute", "pyarrow.dataset", "websockets", "asyncio", "tqdm",
                  "wsrec.venues",
                  "wsrec.record.recorder", "wsrec.record.importer", "wsrec.sim",
                  "wsrec.service", "wsrec.store.repair", "wsrec.store.upgrade",
                  "wsrec.store.writer", "wsrec.store.follow", "wsrec.replay.serve",
                  "wsrec.replay.relay", "wsrec.replay.convert")
SAMPLES = ["--data", str(ROOT / "samples")]


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Those of ``modules`` that are one of ``names`` or inside one of them."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.parametrize("args", [
    ["replay", *SAMPLES, "alpaca", "--speed", "max"],
    ["replay", *SAMPLES, "alpaca", "--speed", "max", "--start", "+1s", "--direction", "all"],
    ["ls", *SAMPLES],
], ids=["replay --speed max", "replay --start", "ls"])
def test_reading_loads_no_compute_module_nor_engine(args):
    modules, out = _modules(args)
    assert out.strip()   # it did replay, or list
    assert "pyarrow.parquet" in modules
    assert _loaded(modules, READ_FORBIDDEN) == []


def test_info_loads_no_engine():
    """``info`` counts with pyarrow.compute's kernels (its timeline groups rows with
    Arrow's ``group_by``, which loads pyarrow.acero and pyarrow.dataset) and reads exchange
    times with the venue's code, but loads nothing else."""
    modules, out = _modules(["info", *SAMPLES, "alpaca"])
    assert "alpaca" in out
    allowed = ("pyarrow.compute", "pyarrow.dataset", "wsrec.venues")
    assert _loaded(modules, tuple(m for m in READ_FORBIDDEN if m not in allowed)) == []
