"""Reading sessions from an S3 bucket (moto on 127.0.0.1): every read command gives the
same output as on the local copy; damage, a missing bucket, wrong credentials and a
server that is down give one line each."""

import json

import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner

from wsrec.cli.commands import cli
from wsrec.errors import RootNotFound, StorageUnavailable
from wsrec.store.location import RootPath, open_root
from wsrec.store.roots import resolve, session_folders
from wsrec.store.session import Session
from wsrec.store.verify import verify

from conftest import write_session
from s3 import KEY, SECRET, s3, s3_auth  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def local(tmp_path):
    """A local root with two venues, one session with several parts and row groups."""
    data = tmp_path / "data"
    write_session(data, n=3_000, venue="alpaca", session_id="20260101T000000Z-aaaa",
                  flush_every=250, part_bytes=20_000, row_group_rows=500)
    write_session(data, n=200, venue="flow", seed=3, session_id="20260102T000000Z-bbbb")
    return data


@pytest.fixture
def bucket(s3, local):  # noqa: F811
    s3.bucket("bkt")
    s3.upload(local, "bkt/root")
    return "s3://bkt/root"


def _same(a, b, local, url):
    assert a.exit_code == b.exit_code, (a.output, b.output)
    assert a.stdout.replace(str(local), url) == b.stdout


@pytest.mark.parametrize("command", [
    ["ls"], ["ls", "alpaca"], ["ls", "--json"], ["info", "last"], ["info", "alpaca", "--json"],
    ["info", "20260102"], ["verify", "last"], ["verify", "alpaca", "--json"],
    ["replay", "alpaca", "--speed", "max", "--format", "envelope"],
    ["replay", "flow/2026", "--speed", "max"],
    ["replay", "alpaca", "20260102", "--speed", "max", "--start", "+1s", "--end", "+3s"],
])
def test_read_commands_match_the_local_copy(local, bucket, command):
    here, there = run(*command, "--data", local), run(*command, "--data", bucket)
    assert here.exit_code == 0, here.output
    _same(here, there, local, bucket)


def test_paced_replay_and_convert(local, bucket, tmp_path):
    args = ["replay", "flow", "--speed", "1000", "--format", "envelope"]
    _same(run(*args, "--data", local), run(*args, "--data", bucket), local, bucket)
    for fmt in ("parquet", "jsonl"):
        a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        assert run("convert", "alpaca", "--format", fmt, "-o", a, "--data", local) \
            .exit_code == 0
        result = run("convert", "alpaca", "--format", fmt, "-o", b, "--data", bucket)
        assert result.exit_code == 0, result.output
        if fmt == "jsonl":
            assert a.read_bytes() == b.read_bytes()
        else:
            import pyarrow.parquet as pq
            assert pq.read_table(a).equals(pq.read_table(b))


def test_local_fixture_has_parts_and_row_groups(local):
    session = Session(resolve("alpaca", local))
    assert len(session.parts) >= 3
    import pyarrow.parquet as pq
    assert pq.ParquetFile(session.parts[0]).num_row_groups >= 1


def test_endpoint_option_and_library(local, bucket, monkeypatch, s3):  # noqa: F811
    endpoint = s3.url
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    result = run("ls", "--data", bucket, "--s3-endpoint", endpoint)
    assert result.exit_code == 0 and "20260101T000000Z-aaaa" in result.stdout
    root = open_root(bucket, endpoint=endpoint)
    folders = session_folders(root)
    assert [f.name for f in folders] == ["20260101T000000Z-aaaa", "20260102T000000Z-bbbb"]
    assert all(isinstance(f, RootPath) for f in folders)
    assert resolve("alpaca", root) == folders[0] and resolve("flow", root) == folders[1]
    assert resolve("20260102", root) == folders[1] and resolve("last", root) == folders[1]
    session = Session(folders[0])
    here = Session(resolve("alpaca", local))
    assert session.table().equals(here.table())
    assert session.state == "complete" and session.disk_bytes() == here.disk_bytes()
    assert verify(session) == []


def test_a_flipped_byte_is_caught(local, bucket, s3):  # noqa: F811
    folder = resolve("alpaca", local)
    part = folder / "part-000001.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF
    rel = str(folder.relative_to(local))
    with s3.filesystem().open_output_stream(f"bkt/root/{rel}/part-000001.parquet") as out:
        out.write(bytes(data))
    result = run("verify", "alpaca", "--data", bucket)
    assert result.exit_code == 1
    assert f"{bucket}/{rel}/part-000001.parquet: checksum mismatch" in result.stdout
    result = run("replay", "alpaca", "--speed", "max", "--data", bucket)
    assert result.exit_code == 1 and "part-000001.parquet" in result.output
    assert "damaged" in result.output and "Traceback" not in result.output
    assert run("replay", "alpaca", "--speed", "max", "--read-damaged",
               "--data", bucket).exit_code == 0


def test_a_missing_part_and_an_unlisted_one(local, bucket, s3):  # noqa: F811
    fs = s3.filesystem()
    rel = str(resolve("alpaca", local).relative_to(local))
    fs.move(f"bkt/root/{rel}/part-000000.parquet", f"bkt/root/{rel}/part-000099.parquet")
    result = run("verify", "alpaca", "--data", bucket)
    assert result.exit_code == 1
    assert "part-000000.parquet: listed in the manifest but missing" in result.stdout
    assert "part-000099.parquet: part not listed in the manifest" in result.stdout


def test_a_missing_bucket_is_one_line(s3):  # noqa: F811
    for command in (["ls"], ["info", "last"], ["verify", "x"], ["replay", "last"]):
        result = run(*command, "--data", "s3://nobucket/x")
        assert result.exit_code == 1, result.output
        assert result.output == ("Error: s3://nobucket/x: bucket 'nobucket' does not exist; "
                                 "create it or fix --data\n")
    with pytest.raises(RootNotFound):
        session_folders("s3://nobucket/x")


def test_an_empty_prefix_has_no_sessions(s3):  # noqa: F811
    s3.bucket("bkt")
    result = run("ls", "--data", "s3://bkt/none")
    assert result.exit_code == 0 and "no sessions for s3://bkt/none" in result.output
    result = run("info", "last", "--data", "s3://bkt/none")
    assert result.exit_code == 1 and "no sessions under s3://bkt/none" in result.output


def test_wrong_credentials_are_one_line_without_the_key(local, bucket, s3_auth,  # noqa: F811
                                                        monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGKEY0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrongsecret/wrongsecret")
    for command in (["ls"], ["info", "last"], ["verify", "alpaca"]):
        result = run(*command, "--data", bucket)
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
        assert "access denied (" in result.output
        assert "check the AWS credentials" in result.output
        assert "AKIAWRONGKEY0000" not in result.output and "wrongsecret" not in result.output


def test_a_server_that_is_down_is_one_line(local, bucket, s3):  # noqa: F811
    s3.stop()
    result = run("ls", "--data", bucket)
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert f"storage unavailable at {s3.url}" in result.output
    assert "NetworkConnection" in result.output and "Request ID" not in result.output
    with pytest.raises(StorageUnavailable):
        open_root(bucket).check()
    s3.restart()  # state kept: the bucket reads again
    assert run("ls", "--data", bucket).exit_code == 0


@pytest.mark.parametrize("command", [   # record and import write to a bucket through a
    ["repair", "last"], ["migrate"],      # spool: tests/test_faults_s3.py
])
def test_write_commands_refuse_a_bucket(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.jsonl").write_text("{}\n")
    for result in (run(*command, "--data", "s3://bkt/x"),
                   run(*command, env={"WSREC_DATA": "s3://bkt/x"})):
        assert result.exit_code == 2, result.output
        assert f"{command[0]} writes to a local data root; s3:// and gs:// roots are " \
               f"read-only in this version" in result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]  # no 's3:' folder


def test_repair_option_refuses_a_bucket(local, bucket):
    result = run("info", "alpaca", "--repair", "--data", bucket)
    assert result.exit_code == 2 and "read-only in this version" in result.output


def test_json_paths_are_urls(local, bucket):
    rows = json.loads(run("ls", "--json", "--data", bucket).stdout)
    assert rows[0]["path"] == f"{bucket}/venue=alpaca/date=2026-01-01/20260101T000000Z-aaaa" \
        or rows[0]["path"].startswith(bucket)
    assert all(isinstance(f, pafs.FileInfo) for f in open_root(bucket).list())
