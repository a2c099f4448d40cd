"""`filter.decode`: every image is fully decoded once; bad ones become rejects with `error:<code>`.

Produces the true width and height (after EXIF rotation) that the size and aspect filters use, and
replaces the stored bytes of images that needed normalising to RGB.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from pipeline.registry import register
from pipeline.schema import MEDIA, REJECT_DETAIL, REJECT_REASON, first_image, media_list, set_column
from pipeline.stage import Column, Params, Stage, StageKind
from stages.image_decode import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS, DecodeError, decode_image


class DecodeParams(Params):
    formats: list[str] = Field(list(DEFAULT_FORMATS), description="Pillow format names allowed")
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="width*height above this is a decompression bomb"
    )


@register
class DecodeFilter(Stage):
    name = "filter.decode"
    kind = StageKind.FILTER
    Params = DecodeParams
    requires = (Column("images", pa.list_(MEDIA)),)
    produces = (
        Column("width", pa.int32()),
        Column("height", pa.int32()),
        Column("image_format", pa.string()),
        Column("image_mode", pa.string()),
    )

    def process(self, table: pa.Table) -> pa.Table:
        formats = tuple(self.params.formats)
        n = table.num_rows
        reasons = table[REJECT_REASON].to_pylist() if REJECT_REASON in table.column_names else [None] * n
        details = table[REJECT_DETAIL].to_pylist() if REJECT_DETAIL in table.column_names else [None] * n
        data = first_image(table["images"])
        width, height, fmt, mode = [None] * n, [None] * n, [None] * n, [None] * n
        normalised = False
        for i, blob in enumerate(data):
            try:
                decoded = decode_image(blob, formats, self.params.max_pixels)
            except DecodeError as exc:
                reasons[i], details[i] = f"error:{exc.code}", exc.detail[:500]
                continue
            if decoded.normalized_bytes is not None:
                data[i], normalised = decoded.normalized_bytes, True
            width[i], height[i], fmt[i], mode[i] = decoded.width, decoded.height, decoded.format, decoded.mode
        if normalised:  # rebuilding the column copies every image: only when one changed
            paths = first_image(table["images"], "path")
            table = set_column(table, "images", media_list(data, paths))
        table = set_column(table, "width", pa.array(width, pa.int32()))
        table = set_column(table, "height", pa.array(height, pa.int32()))
        table = set_column(table, "image_format", pa.array(fmt, pa.string()))
        table = set_column(table, "image_mode", pa.array(mode, pa.string()))
        table = set_column(table, REJECT_REASON, pa.array(reasons, pa.string()))
        return set_column(table, REJECT_DETAIL, pa.array(details, pa.string()))
