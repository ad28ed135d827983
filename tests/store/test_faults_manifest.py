"""Damaged manifests and damaged parts: nothing lost, nothing leaked, no traceback.

Two classes of faults, each run through the command line:

* every manifest field corrupted in turn (wrong type, out of range, missing, garbage
  time, part names that point outside the session, a huge file, no file, an unreadable
  folder): ``ls`` gives exactly one warning and lists the other sessions unchanged;
  ``info``, ``replay``, ``convert`` and ``verify`` of the session exit 1 with a one-line
  error naming the file and the field; ``last`` skips it with a warning;
* byte flips at a few hundred deterministic offsets of a small part (pages and footer):
  readers refuse with a one-line error naming the part, or with ``--read-damaged`` skip
  the row groups that fail, one warning line each; no output line ever differs from the
  original, and no row is missing without a warning.

The part flips run in a child process (a crash there would be exit 139 or 134, not a lost
test run) that drives the CLI in-process; a sample of both classes also runs as separate
``python -m wsrec`` processes.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import wsrec
from wsrec.cli.commands import cli
from wsrec.store.layout import session_rel
from wsrec.store.manifest import MAX_MANIFEST_BYTES
from wsrec.timefmt import format_ns

from conftest import write_session
from manifest_cases import BROKEN, DELETE, with_field

T0 = 1_795_000_000_000_000_000
GOOD_IDS = {"alpaca": "20260101T000000Z-aaaa", "hyperliquid": "20260102T000000Z-hhhh"}
VICTIM = "20260103T000000Z-vvvv"        # the newest: 'last' must step over it
REPO = Path(__file__).resolve().parents[2]


def _victim(data: Path) -> Path:
    """A session with two parts, two connections and a gap: every manifest list has
    entries, so every field path of BROKEN exists."""
    with wsrec.SessionWriter("victim", data=data, session_id=VICTIM, started_ns=T0,
                             part_bytes=1_500) as w:
        ts = T0
        for conn in (0, 1):
            w.event("open", conn=conn, stream="main", url="wss://example.test/ws",
                    ts_ns=ts, mono_ns=ts - T0)
            for i in range(60):
                ts += 1_000_000
                w.append(b'{"conn":%d,"i":%d,"pad":"%s"}' % (conn, i, b"x" * (i % 7)),
                         kind="text", conn=conn, stream="main", channels=("trades",),
                         symbols=("S%d" % (i % 3),), ts_ns=ts, mono_ns=ts - T0)
                if i % 20 == 19:
                    w.flush()
            ts += 1_000_000
            w.event("close", conn=conn, stream="main", code=1006, reason="gone", ts_ns=ts,
                    mono_ns=ts - T0)
            ts += 500_000_000
    manifest = wsrec.open_session(w.folder).manifest
    assert len(manifest["parts"]) >= 2 and len(manifest["connections"]) == 2
    assert len(manifest["gaps"]) == 1
    return w.folder


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data root with two sound sessions and the victim, and what 'ls' says of it."""
    data = tmp_path_factory.mktemp("pristine") / "data"
    for venue, sid in GOOD_IDS.items():
        write_session(data, n=40, venue=venue, session_id=sid)
    _victim(data)
    listed = CliRunner().invoke(cli, ["ls", "--json", "--data", str(data)])
    assert listed.exit_code == 0 and listed.stderr == ""
    rows = {r["id"]: _no_path(r) for r in json.loads(listed.stdout)}
    assert set(rows) == {*GOOD_IDS.values(), VICTIM}
    return data, rows


def _no_path(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "path"}


def _copy(pristine, tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    shutil.copytree(pristine[0], data)
    return data, data / session_rel("victim", VICTIM)


def _run(data: Path, *args):
    return CliRunner().invoke(cli, [*map(str, args), "--data", str(data)])


def _one_line_error(result, *needles) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _check_ls(pristine, data: Path, state: str, *needles) -> None:
    """'ls' and 'ls --json': exit 0, one warning naming the problem, the sound sessions
    exactly as before, the victim as one row in ``state``."""
    good = {sid: row for sid, row in pristine[1].items() if sid != VICTIM}
    for args in (["ls", "--json"], ["ls"]):
        result = _run(data, *args)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.exit_code == 0, result.output
        warnings = result.stderr.strip().splitlines()
        assert len(warnings) == 1 and warnings[0].startswith("warning: "), result.stderr
        for needle in needles:
            assert needle in warnings[0], (needle, warnings[0])
        if args[-1] == "--json":
            rows = {r["id"]: _no_path(r) for r in json.loads(result.stdout)}
            assert {sid: rows[sid] for sid in good} == good
            victim = rows[VICTIM]
            assert victim["state"] == state and victim["frames"] is None
            assert victim["problem"] in warnings[0]
        else:
            lines = result.stdout.splitlines()
            assert len(lines) == 4
            assert any(VICTIM in line and line.endswith(state) for line in lines)
            assert all(any(sid in line for line in lines) for sid in good)


def _check_commands(data: Path, *needles) -> None:
    for args in (["info", VICTIM], ["replay", VICTIM, "--speed", "max"],
                 ["convert", VICTIM, "--format", "jsonl"], ["verify", VICTIM]):
        _one_line_error(_run(data, *args), *needles)
    # 'last' and the venue name step over it, with one warning
    result = _run(data, "info", "last", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == GOOD_IDS["hyperliquid"]
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: skipped victim/"), warnings
    result = _run(data, "info", "victim")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: skipped victim/"), lines
    assert lines[1].startswith("Error: venue 'victim' has no readable session"), lines


# -- class (a): the manifest ----------------------------------------------------------------

@pytest.mark.parametrize("path,value,field", BROKEN,
                         ids=[f"{p}={'DELETE' if v is DELETE else repr(v)[:30]}"
                              for p, v, _ in BROKEN])
def test_each_manifest_field_corrupted(pristine, tmp_path, path, value, field):
    data, folder = _copy(pristine, tmp_path)
    manifest = json.loads((folder / "session.json").read_text())
    if path.startswith("settings.") and path.count(".") == 1 and value is DELETE:
        pytest.skip("nothing to break")
    (folder / "session.json").write_text(json.dumps(with_field(path, value, manifest)))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _check_ls(pristine, data, "unreadable", "session.json", field)
    _check_commands(data, "session.json", field)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # read-only


def _whole_file(name):
    """Damage to session.json as a whole: (name, how to apply it, state, message)."""
    def text(content):
        return lambda f: (f / "session.json").write_bytes(content)

    def huge(f):
        with open(f / "session.json", "wb") as out:   # sparse: no disk used
            out.truncate(MAX_MANIFEST_BYTES + 10)

    def directory(f):
        (f / "session.json").unlink()
        (f / "session.json").mkdir()

    return {
        "not json": (text(b"{oops"), "unreadable", "not valid JSON"),
        "empty": (text(b""), "unreadable", "not valid JSON"),
        "not an object": (text(b"[1, 2]"), "unreadable", "not a JSON object"),
        "invalid utf-8": (text(b'{"venue": "\xff"}'), "unreadable", "not valid JSON"),
        "deeply nested": (text(b"[" * 200_000 + b"]" * 200_000), "unreadable",
                          "not valid JSON"),
        "huge integer": (text(b'{"rows": ' + b"7" * 10_000 + b"}"), "unreadable",
                         "not valid JSON"),
        "NaN rows": (None, "unreadable", "rows"),
        "huge": (huge, "unreadable", "over the 64 MiB limit"),
        "a directory": (directory, "unreadable", "not a regular file"),
        "deleted": (lambda f: (f / "session.json").unlink(), "no manifest",
                    "missing manifest, but the folder holds"),
        "newer format": (None, "unreadable", "upgrade wsrec"),
    }[name]


WHOLE = ["not json", "empty", "not an object", "invalid utf-8", "deeply nested",
         "huge integer", "NaN rows", "huge", "a directory", "deleted", "newer format"]


@pytest.mark.parametrize("name", WHOLE)
def test_whole_manifest_damaged(pristine, tmp_path, name):
    data, folder = _copy(pristine, tmp_path)
    apply, state, needle = _whole_file(name)
    if name == "NaN rows":
        text = (folder / "session.json").read_text()
        text = re.sub(r'"rows": \d+', '"rows": NaN', text, count=1)
        (folder / "session.json").write_text(text)
    elif name == "newer format":
        text = (folder / "session.json").read_text()
        (folder / "session.json").write_text(text.replace('"format_version": 2',
                                                          '"format_version": 3'))
    else:
        apply(folder)
    _check_ls(pristine, data, state, "session.json", needle)
    _check_commands(data, "session.json", needle)


def test_a_part_name_outside_the_session_is_never_opened(pristine, tmp_path):
    """The old failure: a part of another root replayed with exit 0."""
    data, folder = _copy(pristine, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(folder, other / "victim" / VICTIM)
    manifest = json.loads((folder / "session.json").read_text())
    for name in (str(other / "victim" / VICTIM / "part-000000.parquet"),
                 f"../../../../other/victim/{VICTIM}/part-000000.parquet"):
        manifest["parts"][0]["file"] = name
        (folder / "session.json").write_text(json.dumps(manifest))
        for args in (["replay", VICTIM, "--speed", "max"], ["verify", VICTIM],
                     ["convert", VICTIM, "--format", "csv"]):
            result = _run(data, *args)
            _one_line_error(result, "parts[0].file")
            assert result.stdout == ""


def _unprivileged() -> list[str] | None:
    """A command prefix that runs a process without the power to bypass file modes."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    return prefix if probe.returncode == 0 else None


def _cli(*args, data: Path, prefix=(), timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "WSREC_DATA": str(data), "PYTHONPATH": str(REPO)}
    return subprocess.run([*prefix, sys.executable, "-m", "wsrec", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _proc_error(proc, *needles) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("what", ["folder", "manifest", "venue"])
def test_permission_denied(pristine, tmp_path, what):
    """A session folder or manifest of mode 000, a venue folder of mode 000: one warning,
    the rest listed (run without the root's power to read anything)."""
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("running as root without unshare: file modes can't be tested")
    data, folder = _copy(pristine, tmp_path)
    target = {"folder": folder, "manifest": folder / "session.json",
              "venue": folder.parent}[what]
    target.chmod(0)
    try:
        proc = _cli("ls", "--json", data=data, prefix=prefix)
        assert proc.returncode == 0, proc.stderr
        warnings = proc.stderr.strip().splitlines()
        assert len(warnings) == 1 and "ermission denied" in warnings[0], warnings
        rows = {r["id"]: _no_path(r) for r in json.loads(proc.stdout)}
        for sid in GOOD_IDS.values():
            assert rows[sid] == pristine[1][sid]
        if what == "venue":
            assert VICTIM not in rows
        else:
            assert rows[VICTIM]["state"] == "unreadable"
            proc = _cli("info", VICTIM, data=data, prefix=prefix)
            _proc_error(proc, "ermission denied")
            proc = _cli("info", "last", "--json", data=data, prefix=prefix)
            assert proc.returncode == 0 and "skipped victim/" in proc.stderr, proc.stderr
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)


#: a sample of the manifest faults, through real processes (a crash would be a signal)
SUBPROCESS_CASES = [("started", "garbage"), ("parts.0", 5), ("parts.0.rows", "many"),
                    ("parts.0.file", "/etc/passwd"), ("parts.1.file", "../x/part-000000.parquet"),
                    ("connections.0.conn", "0"), ("gaps", "x"), ("parts.0.sha256", "abc")]


def test_manifest_faults_in_processes(pristine, tmp_path):
    jobs = []
    for n, (path, value) in enumerate(SUBPROCESS_CASES + [("deleted", None), ("huge", None)]):
        data, folder = _copy(pristine, tmp_path / str(n))
        if path in ("deleted", "huge"):
            _whole_file(path)[0](folder)
            needle = "session.json"
        else:
            manifest = json.loads((folder / "session.json").read_text())
            (folder / "session.json").write_text(json.dumps(with_field(path, value, manifest)))
            needle = path.split(".")[0]
        reader = [["info", VICTIM], ["replay", VICTIM, "--speed", "max"],
                  ["convert", VICTIM, "--format", "jsonl"], ["verify", VICTIM]][n % 4]
        jobs += [(data, command, needle) for command in (["ls"], reader)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: (job, _cli(*job[1], data=job[0])), jobs))
    for (_, command, needle), proc in results:
        if command == ["ls"]:
            assert proc.returncode == 0, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("warning: ") and needle in lines[0]
            assert all(sid in proc.stdout for sid in GOOD_IDS.values())
        else:
            _proc_error(proc, "session.json", needle)
    assert len(results) == 20


# -- class (b): the parts -------------------------------------------------------------------

FLIP_ID = "20260104T000000Z-ffff"

#: the child process: for each flip, the CLI (in-process, as 'python -m wsrec' runs it) on
#: the damaged part; one JSON line per command with the output mapped to the lines of the
#: pristine output (-1: a line the pristine output does not have)
CHILD = r"""
import json, sys
from click.testing import CliRunner
from wsrec.cli.commands import cli

data, part, commands, flips = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
pristine_bytes = open(part, "rb").read()

def run(args):
    r = CliRunner().invoke(cli, args + ["--data", data])
    return r.exit_code, r.stdout, r.stderr, r.exception

pristine, texts = [], []
for args in commands:
    code, out, err, exc = run(args)
    assert code == 0 and err == "", (args, err)
    lines = out.splitlines()
    pristine.append({line: i for i, line in enumerate(lines)} if len(set(lines)) == len(lines)
                    else None)   # None: compare the whole output ('info --json')
    texts.append(out)
print(json.dumps({"pristine": [len(t.splitlines()) for t in texts]}), flush=True)
try:
    for flip in flips:
        offset, mask = map(int, flip.split(":"))
        damaged = bytearray(pristine_bytes)
        damaged[offset] ^= mask
        open(part, "wb").write(bytes(damaged))
        for n, args in enumerate(commands):
            code, out, err, exc = run(args)
            print(json.dumps({
                "offset": offset, "mask": mask, "command": n, "exit": code,
                "exception": None if exc is None or isinstance(exc, SystemExit) else repr(exc),
                "lines": None if pristine[n] is None else
                         [pristine[n].get(line, -1) for line in out.splitlines()],
                "same": out == texts[n],
                "stderr": err.strip().splitlines()}), flush=True)
finally:
    open(part, "wb").write(pristine_bytes)
"""


@pytest.fixture(scope="module")
def flip_root(tmp_path_factory):
    """One session whose one part has three row groups of 100 rows (all rows and events:
    replay --direction all shows each as one line)."""
    data = tmp_path_factory.mktemp("flips") / "data"
    folder, _ = write_session(data, n=298, venue="flip", session_id=FLIP_ID,
                              row_group_rows=100)
    part = folder / "part-000000.parquet"
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(part).metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 300
    ts = [f.ts for f in wsrec.open_session(folder).frames(direction="all")]
    middle = format_ns(ts[150])   # in the second row group
    return data, folder, part, middle


def _flips(size: int, footer: int) -> list[tuple[int, int]]:
    """Deterministic offsets over the whole file (about 290): 120 spread over the pages,
    every fourth byte of the footer's first 320 and 80 spread over the rest of it, the
    footer length and the magic bytes; the mask varies with the offset (one bit, or all
    eight)."""
    offsets = {int(i * footer / 120) for i in range(120)}
    offsets |= set(range(footer, min(size - 8, footer + 320), 4))
    rest = size - 8 - (footer + 320)
    if rest > 0:
        offsets |= {footer + 320 + int(i * rest / 80) for i in range(80)}
    offsets |= set(range(size - 8, size)) | {0, 1, 2, 3}
    return [(o, 0xFF if o % 5 == 0 else 1 << (o * 3 % 8)) for o in sorted(offsets)]


def _footer_start(part: Path) -> int:
    data = part.read_bytes()
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def _flip_commands(ts_mid: str) -> list[list[str]]:
    return [
        ["replay", FLIP_ID, "--speed", "max", "--format", "envelope", "--direction", "all"],
        ["replay", FLIP_ID, "--speed", "max", "--format", "envelope", "--direction", "all",
         "--read-damaged"],
        ["convert", FLIP_ID, "--format", "jsonl", "--direction", "all", "--start", ts_mid],
        ["convert", FLIP_ID, "--format", "jsonl", "--direction", "all", "--start", ts_mid,
         "--read-damaged"],
        ["info", FLIP_ID, "--json"],
    ]


_SKIPPED = re.compile(r"^warning: .*part-000000\.parquet: skipped (?:row group \d+|the whole "
                      r"part) \(([\d,]+) rows")


def _check_flip(case: dict, pristine_lines: int, part: Path, skipping: bool,
                rows_in_range: dict | None) -> str:
    """One command's result on one flipped part; returns its outcome."""
    where = f"offset {case['offset']} mask {case['mask']:#x} command {case['command']}"
    assert case["exception"] is None, (where, case["exception"])
    lines, errors = case["lines"], case["stderr"]
    if lines is None:                   # a report: the whole of it, or a one-line error
        if case["exit"] == 0:
            assert case["same"] and errors == [], (where, errors)
            return "identical"
        lines = []
    assert -1 not in lines, (where, "an output line that was never recorded")
    assert lines == sorted(lines) and len(set(lines)) == len(lines), where
    if case["exit"] == 1:
        assert not skipping, (where, errors)
        assert len(errors) == 1 and errors[0].startswith("Error: "), (where, errors)
        assert str(part) in errors[0] and "--read-damaged" in errors[0], (where, errors)
        assert lines == list(range(len(lines))), where     # what came before the damage
        return "refused"
    assert case["exit"] == 0, (where, case["exit"], errors)
    if lines == list(range(pristine_lines)):
        return "identical"
    assert skipping, (where, "rows missing without --read-damaged")
    skipped = [m for m in map(_SKIPPED.match, errors) if m]
    empty = ("warning: nothing replayed: ", "warning: no row written: ")
    assert skipped and all(_SKIPPED.match(e) or e.startswith(empty) for e in errors), \
        (where, errors)
    if rows_in_range is None:           # no filter: every skipped row is a missing line
        assert pristine_lines - len(lines) == sum(int(m.group(1).replace(",", ""))
                                                  for m in skipped), (where, errors)
    return "skipped"


def test_part_byte_flips(flip_root, tmp_path):
    data, folder, part, middle = flip_root
    size, footer = part.stat().st_size, _footer_start(part)
    flips = _flips(size, footer)
    assert len(flips) >= 280
    assert sum(o < footer for o, _ in flips) >= 120 and sum(o >= footer for o, _ in flips) >= 160
    commands = _flip_commands(middle)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(part),
                           json.dumps(commands), *(f"{o}:{m}" for o, m in flips)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])  # no 134, no 139
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    pristine = results[0]["pristine"]
    assert pristine[0] == pristine[1] == 300 and 0 < pristine[2] < 300
    cases = results[1:]
    assert len(cases) == len(flips) * len(commands)
    outcomes: dict = {}
    for case in cases:
        n = case["command"]
        skipping = "--read-damaged" in commands[n]
        outcome = _check_flip(case, pristine[n], part, skipping,
                              None if n in (0, 1, 4) else {})
        outcomes.setdefault(n, {}).setdefault(outcome, 0)
        outcomes[n][outcome] += 1
    # most flips are caught (the rest hit bytes no reader uses: statistics, metadata)
    assert outcomes[0].get("refused", 0) >= len(flips) // 2
    assert outcomes[1].get("skipped", 0) >= len(flips) // 3
    assert "refused" not in outcomes[1] and "refused" not in outcomes[3]
    assert list(wsrec.open_session(folder).frames(direction="all"))  # restored
    print(f"\n{len(flips)} flips x {len(commands)} commands: {outcomes}")


def test_part_byte_flips_in_processes(flip_root, tmp_path):
    """A sample of the flips through 'python -m wsrec' itself."""
    data, folder, part, _ = flip_root
    work = tmp_path / "data"
    shutil.copytree(data, work)
    copy_part = work / session_rel("flip", FLIP_ID) / part.name
    size, footer = part.stat().st_size, _footer_start(part)
    pristine = _cli("replay", FLIP_ID, "--speed", "max", "--format", "envelope",
                    "--direction", "all", data=work)
    assert pristine.returncode == 0
    reference = {line: i for i, line in enumerate(pristine.stdout.splitlines())}
    offsets = [footer // 3, footer // 2, footer + 10, footer + 90, size - 200, size - 7]
    original = part.read_bytes()
    for offset in offsets:
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        copy_part.write_bytes(bytes(damaged))
        for flag in ([], ["--read-damaged"]):
            proc = _cli("replay", FLIP_ID, "--speed", "max", "--format", "envelope",
                        "--direction", "all", *flag, data=work)
            assert proc.returncode in (0, 1), (offset, proc.returncode, proc.stderr)
            assert "Traceback" not in proc.stderr
            lines = [reference.get(line, -1) for line in proc.stdout.splitlines()]
            case = {"offset": offset, "mask": 0xFF, "command": len(flag), "exit":
                    proc.returncode, "exception": None, "lines": lines,
                    "stderr": proc.stderr.strip().splitlines()}
            _check_flip(case, len(reference), copy_part, bool(flag), None)
