from stages.dedup import exact_caption, exact_image, minhash_caption, phash_image  # noqa: F401
