from stages.filter import aspect_ratio, caption_length, clip_score, decode, image_size, top_fraction  # noqa: F401
