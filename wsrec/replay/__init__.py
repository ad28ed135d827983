"""Getting frames out of sessions: paced replay to a file (``stdout``), replay servers
(``serve``), conversion to other formats (``convert``), and the same servers fed by a
recording as it is made (``relay``)."""

from wsrec._lazy import lazy_names

__all__ = ["ReplayOptions", "parse_speed", "replay_to_stream", "frame_lines", "FRAME_COLUMNS",
           "count_frames", "scheduled_frames", "why_empty", "use_lean_memory_pool"]


# loaded on first use: importing a light module of this package (_pacing, for
# the CLI's options) doesn't load pyarrow
__getattr__, __dir__ = lazy_names(__name__, dict.fromkeys(__all__, "wsrec.replay.stdout"))
