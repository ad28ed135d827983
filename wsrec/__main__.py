"""``python -m wsrec``: the same as the ``wsrec`` command."""

from .cli import main

main()
