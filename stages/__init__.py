"""Curation stages, one module per stage; importing this package registers them all."""

from stages import dedup, filter, ingest  # noqa: F401
