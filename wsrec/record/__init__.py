"""Getting frames into sessions: the recorder (venue streams over one connection loop)
and importers (jsonl, lines, HAR)."""

from wsrec._lazy import lazy_names

__all__ = ["Recorder", "RecordOptions", "RecordResult", "record"]


# loaded on first use: importing a light module of this package (units, for
# the CLI's options) doesn't load the recorder
__getattr__, __dir__ = lazy_names(__name__, dict.fromkeys(__all__, "wsrec.record.recorder"))
