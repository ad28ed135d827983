"""Simulator options are checked: each simulator knows its error codes, rates are finite."""

import math

import pytest
from click.testing import CliRunner

from wsrec.cli.commands import cli
from wsrec.sim import SIMULATORS, SimOptions, get_simulator
from wsrec.venues import UsageError

pytestmark = pytest.mark.timeout(60)

VALID = {"alpaca": ["400", "402", "406", "412", "500"], "flow": ["400", "404", "429", "500"],
         "vega": ["3", "7", "16"], "dfuse": ["auth_invalid_token_error", "invalid_request"],
         "hyperliquid": ["no such coin", "Invalid subscription"]}
INVALID = {"alpaca": ["zzz", "999", "", "402x"], "flow": ["401", "abc"],
           "vega": ["0", "17", "InvalidArgument"], "dfuse": ["bad", "400"],
           "hyperliquid": ["", "   "]}


@pytest.mark.parametrize("venue", sorted(SIMULATORS))
def test_each_simulator_knows_its_error_codes(venue):
    sim = SIMULATORS[venue]
    for code in VALID[venue] + ["http:401", "http:503"]:
        assert sim.error_problem(code) is None, code
        get_simulator(venue, SimOptions(error=code))
    for code in INVALID[venue] + ["http:200", "http:999", "http:x"]:
        problem = sim.error_problem(code)
        assert problem, code
        with pytest.raises(UsageError, match="simulator"):
            get_simulator(venue, SimOptions(error=code))
    if sim.errors:   # the message lists what is valid
        assert all(c in sim.error_problem("zzz") for c in sim.errors)


@pytest.mark.parametrize("rate", [math.inf, math.nan, -1.0])
def test_simulator_rates_are_finite(rate):
    with pytest.raises(UsageError, match="rate must be a finite number"):
        get_simulator("flow", SimOptions(rate=rate))


@pytest.mark.parametrize("args,message", [
    (["alpaca", "--error", "zzz"], "no error code 'zzz'; valid: 400, 401"),
    (["vega", "--error", "99"], "valid: 1, 2, 3"),
    (["dfuse", "--error", "bad"], "auth_invalid_token_error"),
    (["flow", "--error", "http:999"], "http:STATUS"),
    (["hyperliquid", "--error", ""], "give the error text"),
    (["flow", "--rate", "inf"], "'inf' is not a finite number"),
    (["flow", "--rate", "nan"], "'nan' is not a finite number"),
    (["flow", "--rate", "0"], "0.001<=x<=1000000.0"),
    (["flow", "--rate", "2e6"], "0.001<=x<=1000000.0"),
])
def test_sim_command_refuses_bad_options_with_exit_2(args, message):
    result = CliRunner().invoke(cli, ["sim", *args, "--port", "0"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
