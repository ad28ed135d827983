"""Getting frames out of sessions: paced replay to a file (``stdout``), replay servers
(``serve``), conversion to other formats (``convert``), and the same servers fed by a
recording as it is made (``relay``)."""

from wsrec.replay.stdout import (FRAME_COLUMNS, ReplayOptions, count_frames, frame_lines,
                                 parse_speed, replay_to_stream, scheduled_frames,
                                 use_lean_memory_pool, why_empty)

__all__ = ["ReplayOptions", "parse_speed", "replay_to_stream", "frame_lines", "FRAME_COLUMNS",
           "count_frames", "scheduled_frames", "why_empty", "use_lean_memory_pool"]
