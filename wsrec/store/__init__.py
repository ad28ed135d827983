"""Sessions on disk: the row schema, journals and Parquet parts, the manifest, writing,
reading, verifying and repairing them. Knows nothing of networks or replay."""
