"""``python -m wsrec``: the same as the ``wsrec`` command."""

from wsrec.cli.commands import main

main()
