"""man/ is generated from the click definitions and must not drift from them."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wsrec.cli.commands import cli
from wsrec.cli.manpages import RELATED, _split_help, pages

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "man"
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "ENVIRONMENT",
            "EXIT STATUS", "FILES", "SEE ALSO"]
COMMANDS = [[]] + [[name] for name in sorted(cli.commands)]   # wsrec itself, then each


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
        missing = [s for s in SECTIONS if s not in headings]
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


def _commands_of(line: str) -> list[list[str]]:
    """The words of each 'wsrec ...' command of a shell line (pipes and && split it)."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands, words = [], []
    for token in lex:
        if token in ("|", "&&", "||", ";"):
            commands.append(words)
            words = []
        else:
            words.append(token)
    return [c for c in [*commands, words] if c[:1] == ["wsrec"]]


def _assert_whole_command(line: str) -> None:
    """The line is one command as a user would type it: it starts with 'wsrec ' and every
    wsrec command in it parses, no argument missing or left over."""
    assert line.startswith("wsrec "), f"not a whole command: {line!r}"
    for words in _commands_of(line):
        name, *args = words[1:]
        assert name in cli.commands, line
        root = click.Context(cli, info_name="wsrec")
        try:
            cli.commands[name].make_context(name, args, parent=root)
        except click.ClickException as exc:
            raise AssertionError(f"{line!r} does not parse: {exc.format_message()}") from None


def _help_examples(command: list[str], width: int) -> list[str]:
    """The lines of the Example block of 'wsrec COMMAND --help' as shown at width."""
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    assert "\b" not in result.output
    lines = result.output.splitlines()
    start = [line.strip() for line in lines].index("Example:") + 1
    while not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end]


def _page_examples(text: str) -> list[str]:
    block = text.split(".SH EXAMPLES\n.nf\n", 1)[1].split("\n.fi\n", 1)[0]
    return [line.removeprefix("\\&").replace("\\-", "-").replace("\\\\", "\\")
            for line in block.splitlines()]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(["wsrec", *c]))
def test_help_keeps_each_example_on_its_own_line(command):
    narrow = [line.strip() for line in _help_examples(command, width=40)]
    assert len(narrow) >= 2
    for line in narrow:
        _assert_whole_command(line)
    wide = _help_examples(command, width=80)
    assert [line.strip() for line in wide] == narrow
    too_wide = [line for line in wide if len(line) > 80]
    assert not too_wide, "an example wider than the 80-column help"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(["wsrec", *c]))
def test_man_page_shows_the_same_examples_one_a_line(command):
    text = pages()["-".join(["wsrec", *command]) + ".1"]
    examples = _page_examples(text)
    assert examples == [line.strip() for line in _help_examples(command, width=40)]
    for line in examples:
        _assert_whole_command(line)


def test_the_no_rewrap_marker_never_shows():
    for name, text in pages().items():
        assert "\b" not in text and "\\b" not in text, name


def test_a_kept_paragraph_keeps_its_lines_in_the_man_page():
    text = pages()["wsrec-sim.1"]
    block = text.split("The paths each venue serves:\n.PP\n.nf\n", 1)[1].split("\n.fi\n")[0]
    rows = block.splitlines()
    assert rows[0].startswith("alpaca ") and "/v2/test (default)" in rows[0]
    assert "hyperliquid  /ws" in rows and any(r.startswith("vega ") for r in rows)
    help_text = CliRunner().invoke(cli, ["sim", "--help"], terminal_width=200).output
    assert all("  " + row in help_text for row in rows)   # the lines --help shows


def test_a_docstring_splits_into_description_and_examples():
    doc = """Do a thing.

    Runs until stopped; the lines below keep their breaks:

    \b
      one    first
             more of the first
      two    second

    Example:

    \b
        wsrec ls --json | jq '.[].id'
        wsrec info last

    A note after the examples.
    \f
    Not shown by --help.
    """
    description, examples = _split_help(doc)
    assert description == [
        (False, "Do a thing."),
        (False, "Runs until stopped; the lines below keep their breaks:"),
        (True, "one    first\n       more of the first\ntwo    second"),
        (False, "A note after the examples.")]
    assert examples == ["wsrec ls --json | jq '.[].id'", "wsrec info last"]


def _see_also(text: str) -> list[str]:
    line = text.split(".SH SEE ALSO\n", 1)[1].splitlines()[0]
    return re.findall(r"\\fB\\%(.+?)\\fR\(1\)", line.replace("\\-", "-"))


def test_see_also_links_the_pages_both_ways():
    every = pages()
    assert _see_also(every["wsrec.1"]) == [f"wsrec-{c}" for c in sorted(cli.commands)]
    assert sorted(RELATED) == sorted(cli.commands), "give each command its RELATED pages"
    for name in cli.commands:
        named = _see_also(every[f"wsrec-{name}.1"])
        assert named[0] == "wsrec" and len(named) >= 2, name
        assert all(f"{page}.1" in every for page in named), (name, named)
        assert f"wsrec-{name}" not in named


@pytest.mark.skipif(not shutil.which("man"), reason="man is not installed")
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(["wsrec", *c]))
def test_man_shows_each_example_on_its_own_line(command):
    page = MAN / ("-".join(["wsrec", *command]) + ".1")
    out = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, timeout=60,
                         env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin",
                              "MAN_KEEP_FORMATTING": "0"})
    assert out.returncode == 0 and "warning" not in out.stderr.lower(), out.stderr
    shown = {line.strip() for line in
             re.sub(".\x08", "", out.stdout).replace("\u2010", "-").splitlines()}
    for example in _page_examples(page.read_text()):
        assert example in shown, example


def test_installing_puts_every_page_where_man_finds_it(tmp_path):
    """setuptools' install_data, the step that fills a wheel's .data/data/ from
    pyproject's [tool.setuptools.data-files], copies man/*.1 to PREFIX/share/man/man1,
    which man searches for a PREFIX/bin on PATH (an activated virtual environment)."""
    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    script = ("import sys\n"
              "from setuptools.config.pyprojecttoml import apply_configuration\n"
              "from setuptools.dist import Distribution\n"
              "dist = apply_configuration(Distribution(), 'pyproject.toml')\n"
              "cmd = dist.get_command_obj('install_data')\n"
              "cmd.install_dir = sys.argv[1]\n"
              "cmd.ensure_finalized()\n"
              "cmd.run()\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(prefix)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    installed = prefix / "share" / "man" / "man1"
    assert sorted(p.name for p in installed.iterdir()) == sorted(p.name for p in MAN.glob("*.1"))
    for page in MAN.glob("*.1"):
        assert (installed / page.name).read_bytes() == page.read_bytes()
    if shutil.which("man"):
        env = {"PATH": f"{prefix / 'bin'}{os.pathsep}/usr/bin:/bin"}
        found = subprocess.run(["man", "-w", "wsrec", "wsrec-replay"], capture_output=True,
                               text=True, timeout=60, env=env)
        assert found.stdout.split() == [str(installed / "wsrec.1"),
                                        str(installed / "wsrec-replay.1")], found.stderr
