from stages.ingest import jsonl, parquet, webdataset  # noqa: F401
