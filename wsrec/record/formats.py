"""The formats ``wsrec import`` reads (``importer``), in a module light enough for the CLI's
options."""

IMPORT_FORMATS = ("jsonl", "lines", "har")
