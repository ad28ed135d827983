"""docs/systemd/wsrec.service: a unit systemd accepts, whose command line wsrec accepts."""

import configparser
import re
import shlex
from pathlib import Path

import pytest

from wsrec.cli.commands import cli

UNIT = Path(__file__).resolve().parent.parent / "docs" / "systemd" / "wsrec.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str   # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def exec_start() -> list[str]:
    return shlex.split(unit()["Service"]["ExecStart"])


def test_the_unit_restarts_stops_and_reloads_as_documented():
    u = unit()
    assert set(u.sections()) == {"Unit", "Service", "Install"}
    service = u["Service"]
    assert service["Type"] == "simple"             # no sd_notify: wsrec doesn't speak it
    assert service["Restart"] == "on-failure" and float(service["RestartSec"]) > 0
    assert service["RestartPreventExitStatus"] == "2"   # a usage error stays down
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) >= 60
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["User"] not in ("", "root") and "DynamicUser" not in service
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("ProtectHome", "yes"), ("PrivateTmp", "yes")):
        assert service[key] == want, key
    assert u["Unit"]["After"] == "network-online.target"
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_only_the_data_root_is_writable_and_no_secret_is_in_the_unit():
    argv = exec_start()
    data = argv[argv.index("--data") + 1]
    assert unit()["Service"]["ReadWritePaths"] == data
    assert unit()["Service"]["StateDirectory"] == Path(data).name
    text = UNIT.read_text()
    # credentials come from an environment file, never from the unit or its command line
    assert unit()["Service"]["EnvironmentFile"].startswith("-/etc/")
    assert not re.search(r"(?im)^\s*Environment=.*(KEY|SECRET|TOKEN)", text)
    assert not any(re.search("key|secret|token", a, re.I) for a in argv)


def test_exec_start_is_a_command_line_wsrec_accepts():
    argv = exec_start()
    assert argv[0].endswith("/wsrec")
    i = argv.index("record")
    group = cli.make_context("wsrec", argv[1:i] + ["record"])
    assert group.params["log_format"] == "json"
    record = cli.commands["record"]
    names = {o for p in record.params for o in getattr(p, "opts", ())}
    given = [a for a in argv[i + 1:] if a.startswith("--")]
    assert "--config" in given and "--data" in given
    if "--config" not in names:   # record --config is the config part of issue 13
        assert set(given) - {"--config"} <= names
        pytest.skip("'wsrec record --config' is not in this build")
    ctx = record.make_context("record", argv[i + 1:], parent=group)   # parsed and checked
    assert str(ctx.params["config"]) == "/etc/wsrec/wsrec.toml"
