"""Getting frames into sessions: the recorder (venue streams over one connection loop)
and importers (jsonl, lines, HAR)."""

__all__ = ["Recorder", "RecordOptions", "RecordResult", "record"]


def __getattr__(name: str):
    # loaded on first use (PEP 562): importing a light module of this package
    # (units, for the CLI's options) doesn't load the recorder
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module("wsrec.record.recorder"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
