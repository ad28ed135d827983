"""Getting frames out of sessions: paced replay to a file (``stdout``), replay servers
(``serve``), conversion to other formats (``convert``), and the same servers fed by a
recording as it is made (``relay``)."""

__all__ = ["ReplayOptions", "parse_speed", "replay_to_stream", "frame_lines", "FRAME_COLUMNS",
           "count_frames", "scheduled_frames", "why_empty", "use_lean_memory_pool"]


def __getattr__(name: str):
    # loaded on first use (PEP 562): importing a light module of this package
    # (_pacing, for the CLI's options) doesn't load pyarrow
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module("wsrec.replay.stdout"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
