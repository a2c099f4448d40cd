"""`filter.caption_length`: drop empty, too short and too long captions.

Defaults follow DataComp's baseline (more than 2 words and more than 5 characters); the upper bound
stops pathological alt-texts (whole pages, 1 MB blobs) from reaching a tokenizer.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from pipeline.registry import register
from pipeline.schema import set_column
from pipeline.stage import Column, Params, Stage, StageKind
from stages.filter.columns import reject_where


class CaptionLengthParams(Params):
    min_words: int = Field(3, ge=0, description="fewest whitespace-separated words (DataComp: more than 2)")
    min_chars: int = Field(6, ge=0, description="fewest characters after stripping (DataComp: more than 5)")
    max_chars: int = Field(4096, ge=1, description="most characters after stripping")


@register
class CaptionLengthFilter(Stage):
    name = "filter.caption_length"
    kind = StageKind.FILTER
    Params = CaptionLengthParams
    requires = (Column("caption", pa.string()),)
    produces = (Column("caption_chars", pa.int32()), Column("caption_words", pa.int32()))

    def process(self, table: pa.Table) -> pa.Table:
        p = self.params
        stripped = pc.utf8_trim_whitespace(table["caption"])
        chars = pc.utf8_length(stripped)
        words = pc.list_value_length(pc.utf8_split_whitespace(stripped))
        table = set_column(table, "caption_chars", chars, pa.int32())
        table = set_column(table, "caption_words", words, pa.int32())
        table = reject_where(table, pc.fill_null(pc.equal(chars, 0), True), "empty_caption")
        describe = pc.binary_join_element_wise(
            pc.cast(words, pa.string()), "words,", pc.cast(chars, pa.string()), "chars", " "
        )
        too_short = pc.or_(pc.less(words, p.min_words), pc.less(chars, p.min_chars))
        table = reject_where(table, too_short, "caption_too_short", describe, pc.cast(chars, pa.float64()))
        return reject_where(
            table, pc.greater(chars, p.max_chars), "caption_too_long", describe, pc.cast(chars, pa.float64())
        )
