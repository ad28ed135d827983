"""record --min-free: a recording stops cleanly, failed, before the disk fills."""

import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import record_from_sim
from s3 import s3  # noqa: F401
from wsrec.cli import cli
from wsrec.errors import DiskFull, UsageError
from wsrec.record import recorder as recorder_module
from wsrec.record.recorder import Recorder, RecordOptions, check_options
from wsrec.sim import SimOptions
from wsrec.store.verify import verify
from wsrec.venues import Request, get_venue

pytestmark = pytest.mark.timeout(90)

MIN_FREE = 1 << 30


class Disk:
    """A disk of which wsrec's writes take the space: free is ``MIN_FREE`` plus
    ``room`` less what lies under ``data``. Every path asked is kept."""

    def __init__(self, data: Path, room: int):
        self.data, self.room, self.asked = data, room, []

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.data.rglob("*") if p.is_file()) \
            if self.data.exists() else 0

    def __call__(self, path):
        self.asked.append(Path(path))
        free = MIN_FREE + self.room - self.used()
        return types.SimpleNamespace(free=free, total=100 << 30, used=0)


def assert_stopped_cleanly(result, s, data):
    assert result.status == "failed" and result.stopped_by == "error"
    assert result.error.startswith("stopped: ") and result.error.endswith(
        f"free on {data}, below --min-free 1.0 GiB; free space or lower --min-free")
    assert s.manifest["status"] == "failed" and s.manifest["error"] == result.error
    assert s.journals == [] and s.temp_files == [] and verify(s) == []   # all sealed
    assert sum(f.dir == "in" for f in s.frames(direction="all")) == result.frames_in > 0
    assert [f.kind for f in s.frames(direction="event")][-1] == "close"


def test_the_timer_stops_the_recording_below_the_floor(data, monkeypatch):
    monkeypatch.setattr(recorder_module, "DISK_POLL", 0.05)
    disk = Disk(data, room=20_000)
    result, _, s = record_from_sim("hyperliquid", data, symbols=["BTC"],
                                   sim=SimOptions(rate=500),
                                   options=RecordOptions(duration=60, min_free=MIN_FREE,
                                                         flush_interval=0.05),
                                   recorder=dict(disk_usage=disk))
    assert_stopped_cleanly(result, s, data)
    assert result.seconds < 30 and data in disk.asked


def test_each_sealed_part_is_a_check(data, monkeypatch):
    monkeypatch.setattr(recorder_module, "DISK_POLL", 3600.0)   # the timer looks once
    disk = Disk(data, room=20_000)
    result, _, s = record_from_sim("hyperliquid", data, symbols=["BTC"],
                                   sim=SimOptions(rate=500),
                                   options=RecordOptions(duration=60, min_free=MIN_FREE,
                                                         flush_interval=0.05,
                                                         writer_settings={"part_bytes": 2048}),
                                   recorder=dict(disk_usage=disk))
    assert_stopped_cleanly(result, s, data)
    assert len(disk.asked) > 2 and len(s.parts) > 1 and result.seconds < 30


def test_a_roomy_disk_records_to_the_end(data):
    disk = Disk(data, room=1 << 30)
    result, _, s = record_from_sim("hyperliquid", data, symbols=["BTC"],
                                   options=RecordOptions(duration=0.5, min_free=MIN_FREE),
                                   recorder=dict(disk_usage=disk))
    assert result.status == "complete" and s.status == "complete" and disk.asked


def recorder(data, **options):
    return Recorder(get_venue("hyperliquid"), Request(symbols=["BTC"], url="ws://127.0.0.1:9/ws"),
                    data=data, options=RecordOptions(**options),
                    disk_usage=lambda path: types.SimpleNamespace(free=100 << 20,
                                                                  total=100 << 30))


def test_below_the_floor_nothing_starts(data):
    with pytest.raises(DiskFull) as info:
        recorder(data, min_free=MIN_FREE)
    assert str(info.value) == (f"cannot start: 100.0 MiB free on {data}, below --min-free "
                               f"1.0 GiB; free space or lower --min-free")
    assert not data.exists()                                   # no session was created
    rec = recorder(data, min_free=0)                           # 0 (or None): no floor
    rec.writer.close()


def test_with_a_bucket_the_floor_is_the_spools(s3, tmp_path):  # noqa: F811
    s3.bucket("bkt")
    spool = tmp_path / "spool"
    with pytest.raises(DiskFull) as info:
        recorder("s3://bkt/x", min_free=MIN_FREE, spool=str(spool), spool_min_free=0)
    assert f"free on {spool}" in str(info.value)
    assert not list(spool.rglob("session.json"))


@pytest.mark.parametrize("value", [-1, 1.5, "5GB"])
def test_min_free_is_a_number_of_bytes(value):
    with pytest.raises(UsageError, match="min_free"):
        check_options(RecordOptions(min_free=value))


def test_record_min_free_command(data):
    runner = CliRunner()
    r = runner.invoke(cli, ["record", "hyperliquid", "-s", "BTC", "--sim", "--duration", "5s",
                            "--min-free", "1000000TB", "--data", str(data)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    [line] = r.stderr.splitlines()
    assert line.startswith("Error: cannot start: ") and line.endswith(
        f"free on {data}, below --min-free 909494.7 TiB; free space or lower --min-free")
    assert not (data.exists() and any(data.rglob("session.json")))
    r = runner.invoke(cli, ["record", "hyperliquid", "-s", "BTC", "--sim", "--min-free", "5XB",
                            "--data", str(data)])
    assert r.exit_code == 2 and "Invalid value for --min-free" in r.stderr
