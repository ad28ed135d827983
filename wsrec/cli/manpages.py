"""man pages generated from the click definitions, so they never disagree with --help.

    python -m wsrec.cli.manpages man/      # writes man/wsrec.1 and man/wsrec-COMMAND.1

A test renders them again and fails when the committed pages drift.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path

import click

from wsrec._version import __version__
from wsrec.cli.commands import cli

__all__ = ["RELATED", "pages", "write"]

ENVIRONMENT = [
    ("WSREC_DATA", "The data root when --data is not given (default ./wsrec-data)."),
    ("APCA_API_KEY_ID", "Alpaca API key id (record alpaca)."),
    ("APCA_API_SECRET_KEY", "Alpaca API secret key (record alpaca)."),
    ("DFUSE_API_TOKEN", "dfuse JWT (record dfuse)."),
    ("WSREC_LOG_FORMAT", "text or json: how messages are written to stderr when "
                         "--log-format is not given (default text)."),
]
EXIT = [("0", "Success (a recording stopped by Ctrl-C, SIGTERM, --duration or --max-frames "
              "included; a closed output pipe too)."),
        ("1", "Runtime failure: a one-line message on stderr names the cause."),
        ("2", "Usage error: a bad option, argument or value.")]
FILES = [("DATA/VENUE/SESSION/session.json", "The session manifest."),
         ("DATA/VENUE/SESSION/part-NNNNNN.parquet", "Complete parts (zstd Parquet)."),
         ("DATA/VENUE/SESSION/part-NNNNNN.journal", "The open part's journal while recording "
                                                    "or after a crash."),
         ("DATA/VENUE/SESSION/session.lock", "Held by the recorder while it records.")]
# The pages each command's SEE ALSO names after wsrec(1): the commands used with it.
RELATED = {
    "config": ["record"],
    "convert": ["replay", "import"],
    "import": ["convert", "info"],
    "info": ["ls", "plot", "verify", "replay"],
    "ls": ["info", "prune", "migrate"],
    "migrate": ["ls", "repair"],
    "plot": ["info", "replay"],
    "prune": ["ls", "info"],
    "record": ["config", "replay", "sim", "venues", "info"],
    "repair": ["verify", "migrate"],
    "replay": ["record", "convert", "info"],
    "sim": ["record", "replay"],
    "venues": ["record", "sim"],
    "verify": ["info", "repair"],
}


def _see_also(name: str) -> list[str]:
    """wsrec(1) names every command's page; a command's page names wsrec(1) and its
    related commands' pages."""
    if name == "wsrec":
        return [f"wsrec-{sub}" for sub in sorted(cli.commands)]
    return ["wsrec"] + [f"wsrec-{sub}" for sub in RELATED.get(name.removeprefix("wsrec-"), [])]


def _esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def _split_help(help_text: str) -> tuple[list[tuple[bool, str]], list[str]]:
    """(description, example lines) from a command's docstring, as click shows it.

    The description is a list of paragraphs, each (kept, text): kept paragraphs are the
    ones marked with click's no-rewrap marker (a line holding only '\\b'), their lines as
    written; the others are one run of text. The examples are the kept block after the
    'Example:' paragraph, one command a line.
    """
    text = inspect.cleandoc(click.unstyle(help_text or "")).partition("\f")[0]
    description: list[tuple[bool, str]] = []
    examples: list[str] = []
    after_example = False
    for para in re.split(r"\n[ \t]*\n", text):
        if not para.strip():
            continue
        first, _, rest = para.partition("\n")
        kept = first.strip() == "\b"
        if para.strip() == "Example:":
            after_example = True
        elif after_example:
            examples = [line.strip() for line in (rest if kept else para).splitlines()
                        if line.strip()]
            after_example = False
        elif kept:
            description.append((True, textwrap.dedent(rest).rstrip()))
        else:
            description.append((False, " ".join(line.strip() for line in para.splitlines())))
    return description, examples


def _page(name: str, command: click.Command, ctx: click.Context) -> str:
    description, examples = _split_help(command.help)
    summary = description[0][1].rstrip(".")
    usage = " ".join(command.collect_usage_pieces(ctx))
    out = [f'.TH "{name.upper()}" "1" "" "wsrec {__version__}" "wsrec manual"',
           ".SH NAME", f"{_esc(name)} \\- {_esc(summary)}",
           ".SH SYNOPSIS", f".B {_esc(name.replace('-', ' '))}", _esc(usage),
           ".SH DESCRIPTION"]
    for kept, para in description:
        out += [".PP", ".nf", _esc(para), ".fi"] if kept else [".PP", _esc(para)]
    options = [p for p in command.get_params(ctx)
               if isinstance(p, click.Option) and p.get_help_record(ctx)]
    if options or isinstance(command, click.Group):
        out.append(".SH OPTIONS")
    for param in options:
        names, help_text = param.get_help_record(ctx)
        out += [".TP", f".B {_esc(names)}", _esc(help_text)]
    if isinstance(command, click.Group):
        out.append(".SH COMMANDS")
        for sub_name, sub in sorted(command.commands.items()):
            out += [".TP", f".B {sub_name}",
                    _esc(sub.get_short_help_str(limit=200))
                    + f" See \\fB\\%wsrec\\-{sub_name}\\fR(1)."]
    if examples:
        out += [".SH EXAMPLES", ".nf"] + [_esc(e) for e in examples] + [".fi"]
    out.append(".SH ENVIRONMENT")
    for key, text in ENVIRONMENT:
        out += [".TP", f".B {key}", _esc(text)]
    out.append(".SH EXIT STATUS")
    for key, text in EXIT:
        out += [".TP", f".B {key}", _esc(text)]
    out.append(".SH FILES")
    for key, text in FILES:
        out += [".TP", f".I {_esc(key)}", _esc(text)]
    out += [".SH SEE ALSO",   # \% keeps a page name from being hyphenated at a line end
            ", ".join(f"\\fB\\%{_esc(page)}\\fR(1)" for page in _see_also(name))]
    return "\n".join(out) + "\n"


def pages() -> dict[str, str]:
    """file name -> page text, for wsrec and each of its commands."""
    root = click.Context(cli, info_name="wsrec", **cli.context_settings)
    out = {"wsrec.1": _page("wsrec", cli, root)}
    for sub_name, sub in sorted(cli.commands.items()):
        ctx = click.Context(sub, info_name=sub_name, parent=root)
        out[f"wsrec-{sub_name}.1"] = _page(f"wsrec-{sub_name}", sub, ctx)
    return out


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "man")):
        print(p)
