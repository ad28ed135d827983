"""The ``wsrec`` command: each command is one call into the library."""

from wsrec.cli.commands import cli, main

__all__ = ["cli", "main"]
