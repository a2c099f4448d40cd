from stages.dedup import exact_image  # noqa: F401
