"""The formats ``wsrec convert`` writes (``convert``), in a module light enough for the CLI's
options."""

FORMATS = ("jsonl", "jsonl.zst", "csv", "parquet", "arrow")
