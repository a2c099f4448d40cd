"""`filter.image_size`: drop images whose shorter side is too small (or longer side too large).

Default min side 200 is DataComp's baseline; small demo data sets it lower in the manifest.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.registry import register
from pipeline.stage import Column, Params, Stage, StageKind
from stages.filter.columns import reject_where


class ImageSizeParams(Params):
    min_side: int = Field(200, ge=1, description="shorter side must be at least this (DataComp: 200)")
    max_side: int | None = Field(None, ge=1, description="longer side must be at most this; None: no limit")


@register
class ImageSizeFilter(Stage):
    name = "filter.image_size"
    kind = StageKind.FILTER
    Params = ImageSizeParams
    requires = (Column("width", pa.int32()), Column("height", pa.int32()))

    def process(self, table: pa.Table) -> pa.Table:
        short = pc.min_element_wise(table["width"], table["height"])
        long = pc.max_element_wise(table["width"], table["height"])
        sizes = pc.binary_join_element_wise(
            pc.cast(table["width"], pa.string()), pc.cast(table["height"], pa.string()), "x"
        )
        table = reject_where(
            table,
            pc.less(short, self.params.min_side),
            "image_too_small",
            pc.binary_join_element_wise(sizes, f"shorter side < {self.params.min_side}", " "),
            pc.cast(short, pa.float64()),
        )
        if self.params.max_side is not None:
            table = reject_where(
                table,
                pc.greater(long, self.params.max_side),
                "image_too_large",
                pc.binary_join_element_wise(sizes, f"longer side > {self.params.max_side}", " "),
                pc.cast(long, pa.float64()),
            )
        return table
