"""Getting frames into sessions: the recorder (venue streams over one connection loop)
and importers (jsonl, lines, HAR)."""

from wsrec.record.recorder import RecordOptions, Recorder, RecordResult, record

__all__ = ["Recorder", "RecordOptions", "RecordResult", "record"]
