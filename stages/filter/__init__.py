from stages.filter import aspect_ratio, caption_length, decode, image_size  # noqa: F401
