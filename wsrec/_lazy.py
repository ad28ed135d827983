"""Public names loaded on first use (PEP 562), so that importing a package, or a light
module inside it, doesn't load what its names come from (pyarrow, the recorder)::

    __getattr__, __dir__ = lazy_names(__name__, {"Session": "wsrec.store.session"})
"""

from __future__ import annotations

import importlib
import sys


def lazy_names(package: str, names: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for the module ``package``: each of ``names``
    (name -> the module that defines it) is imported on first use, then kept."""
    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
