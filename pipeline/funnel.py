"""The funnel: rows in, kept and rejected per stage and per reason, derived from the committed files.

Counting from what was committed (not from counters in workers) means retries can never double-count and
the numbers always match what a query over the output finds.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class StageFunnel:
    stage: str
    rows_in: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "rows_in": self.rows_in,
            "kept": self.kept,
            "rejected": self.rejected,
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])),
            "seconds": self.seconds,
        }


def build_funnel(
    records: list[dict],
    source_of_shard: dict[str, str],
    source_labels: list[str],
    step_labels: list[str],
    seconds: dict[str, float],
) -> list[StageFunnel]:
    """Per stage, in manifest order; rows_in of a step is what the previous steps let through."""
    rows_per_source: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        if record["kind"] in ("data", "rejects") and record["shard"]:
            rows_per_source[source_of_shard[record["shard"]]] += record["rows"]
        if record["kind"] == "rejects" and record["reject_counts"]:
            for key, n in json.loads(record["reject_counts"]).items():
                stage, reason = key.split("\t", 1)
                reasons[stage][reason] += n

    funnel: list[StageFunnel] = []
    flowing = 0
    for label in source_labels:
        rejected = sum(reasons[label].values())
        rows_in = rows_per_source[label]
        funnel.append(
            StageFunnel(
                label, rows_in, rows_in - rejected, rejected, dict(reasons[label]), seconds.get(label)
            )
        )
        flowing += rows_in - rejected
    for label in step_labels:
        rejected = sum(reasons[label].values())
        funnel.append(
            StageFunnel(
                label, flowing, flowing - rejected, rejected, dict(reasons[label]), seconds.get(label)
            )
        )
        flowing -= rejected
    return funnel
