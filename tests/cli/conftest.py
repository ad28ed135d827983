import pytest
from click.testing import CliRunner

from wsrec.cli.commands import cli


@pytest.fixture
def run(data):
    """``run(*args, env=None)``: the wsrec command in-process, with ``data`` as its data
    root (``WSREC_DATA``); a click Result."""
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(cli, [str(a) for a in args], env={"WSREC_DATA": str(data),
                                                              **(env or {})})
    return invoke
