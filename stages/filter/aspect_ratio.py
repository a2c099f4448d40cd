"""`filter.aspect_ratio`: drop extreme aspect ratios (width / height outside a range).

Defaults 1/3 to 3 follow DataComp's "aspect ratio at most 3" and Data-Juicer's 0.333-3; banners and
long strips crop badly to a square model input.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from pipeline.registry import register
from pipeline.schema import set_column
from pipeline.stage import Column, Params, Stage, StageKind
from stages.filter.columns import reject_where


class AspectRatioParams(Params):
    min_aspect_ratio: float = Field(1 / 3, gt=0, description="lowest width/height kept")
    max_aspect_ratio: float = Field(3.0, gt=0, description="highest width/height kept")

    @model_validator(mode="after")
    def _ordered(self) -> AspectRatioParams:
        if self.min_aspect_ratio > self.max_aspect_ratio:
            raise ValueError("min_aspect_ratio must not exceed max_aspect_ratio")
        return self


@register
class AspectRatioFilter(Stage):
    name = "filter.aspect_ratio"
    kind = StageKind.FILTER
    Params = AspectRatioParams
    requires = (Column("width", pa.int32()), Column("height", pa.int32()))
    produces = (Column("aspect_ratio", pa.float32()),)

    def process(self, table: pa.Table) -> pa.Table:
        ratio = pc.divide(pc.cast(table["width"], pa.float64()), pc.cast(table["height"], pa.float64()))
        table = set_column(table, "aspect_ratio", ratio, pa.float32())
        outside = pc.or_(
            pc.less(ratio, self.params.min_aspect_ratio), pc.greater(ratio, self.params.max_aspect_ratio)
        )
        detail = pc.binary_join_element_wise(
            pc.cast(pc.round(ratio, 3), pa.string()),
            f"outside [{self.params.min_aspect_ratio:.3f}, {self.params.max_aspect_ratio:.3f}]",
            " ",
        )
        return reject_where(table, outside, "aspect_ratio_out_of_range", detail, ratio)
