"""Arrow's compute functions without paying for ``pyarrow.compute`` up front.

Importing ``pyarrow.compute`` builds a Python wrapper (signature, docstring) for each of
its ~300 functions: 30-45 ms of a short replay's start-up. The modules that read sessions
take ``pc`` from here instead, which imports ``pyarrow.compute`` the first time one of its
names is used; the path that replays raw lines at full speed uses ``call``, which runs
a function by name (``pyarrow._compute``, what the wrappers call) and never imports it.

    from wsrec.store._compute import call, pc
    pc.equal(kinds, "text")                     # imports pyarrow.compute (once)
    call("equal", kinds, pa.scalar("text"))     # the same, without it
"""

from __future__ import annotations

import importlib

__all__ = ["pc", "call"]

try:  # the function registry behind pyarrow.compute, loaded with it in ~5 ms
    from pyarrow._compute import call_function
except ImportError:  # pragma: no cover - a pyarrow that moved it: the public module
    from pyarrow.compute import call_function


def call(name: str, *args):
    """Arrow compute function ``name`` over ``args`` (arrays and ``pa.scalar`` values, no
    options), as ``getattr(pyarrow.compute, name)(*args)``."""
    return call_function(name, list(args))


class _LazyCompute:
    """``pyarrow.compute``, imported on the first use of one of its names; each name is
    then kept on this object, so a later use costs an attribute lookup."""

    def __getattr__(self, name: str):
        value = getattr(importlib.import_module("pyarrow.compute"), name)
        setattr(self, name, value)
        return value


pc = _LazyCompute()
