"""Operating points: QPS at a target recall@10, read off each config's recall-vs-QPS curve.

A curve is first reduced to its upper envelope (the Pareto frontier: no kept point has another
point with both higher recall and higher QPS), which makes recall increase as QPS decreases.
QPS at a target recall is then linearly interpolated between the two envelope points around
it; below the lowest measured recall it is the envelope's fastest point (no extrapolation), and
above the highest it is ``None`` (never reached).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .schema import Row

__all__ = [
    "REFERENCE_CONFIG",
    "TARGETS",
    "Summary",
    "nearest_at_or_above",
    "qps_at",
    "recall_at_qps",
    "summarize",
    "upper_envelope",
]

TARGETS = (0.90, 0.95, 0.99)
REFERENCE_CONFIG = "faiss-hnsw:"  # faiss IndexHNSWFlat; the ratios are against it


def upper_envelope(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, qps) Pareto frontier, sorted by increasing recall (and decreasing QPS)."""
    kept: list[tuple[float, float]] = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not kept or qps > kept[-1][1]:
            kept.append((recall, qps))
    return kept[::-1]


def qps_at(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """QPS at recall ``target`` on the envelope of ``points``; ``None`` if never reached."""
    env = upper_envelope(points)
    if not env or env[-1][0] < target:
        return None
    for i, (recall, qps) in enumerate(env):
        if recall >= target:
            if i == 0:
                return qps
            r0, q0 = env[i - 1]
            return q0 + (target - r0) * (qps - q0) / (recall - r0)
    return None  # unreachable: the last point reaches the target


def recall_at_qps(points: Sequence[tuple[float, float]], qps: float) -> float | None:
    """Recall at ``qps`` on the envelope of ``points`` (interpolated between the envelope
    points around it); ``None`` if no point is that fast."""
    env = upper_envelope(points)
    if not env or env[0][1] < qps:
        return None
    for i in range(len(env) - 1, -1, -1):
        recall, fast = env[i]
        if fast >= qps:
            if i == len(env) - 1:
                return recall
            r1, q1 = env[i + 1]
            return recall + (fast - qps) * (r1 - recall) / (fast - q1)
    return None  # unreachable: the first point is fast enough


def nearest_at_or_above(rows: Sequence[Row], target: float) -> Row | None:
    """The measured point with the lowest recall >= ``target`` (the fastest among equals)."""
    above = [r for r in rows if r["recall_at_10"] >= target]
    if not above:
        return None
    return min(above, key=lambda r: (r["recall_at_10"], -r["qps_1t"]))


@dataclass
class Summary:
    """One config's operating points and costs."""

    system: str
    config: str
    rows: list[Row]
    qps_1t: dict[float, float | None] = field(default_factory=dict)
    qps_all: dict[float, float | None] = field(default_factory=dict)
    ratio_1t: dict[float, float | None] = field(default_factory=dict)
    max_recall: float = 0.0
    build_seconds: float = 0.0
    memory_bytes: int = 0
    disk_bytes: int | None = None
    rss_bytes: int | None = None

    @property
    def is_reference(self) -> bool:
        return self.system == "faiss" and self.config.startswith(REFERENCE_CONFIG)


def _summary(rows: list[Row]) -> Summary:
    first = rows[0]
    rss = [r["rss_bytes"] for r in rows if r.get("rss_bytes") is not None]
    s = Summary(
        system=first["system"],
        config=first["config"],
        rows=rows,
        max_recall=max(r["recall_at_10"] for r in rows),
        build_seconds=first["build_seconds"],
        memory_bytes=first["memory_bytes"],
        disk_bytes=first.get("disk_bytes"),
        rss_bytes=max(rss) if rss else None,  # type: ignore[type-var]
    )
    one = [(r["recall_at_10"], r["qps_1t"]) for r in rows]
    every = [(r["recall_at_10"], r["qps_all"]) for r in rows]
    for target in TARGETS:
        s.qps_1t[target] = qps_at(one, target)
        s.qps_all[target] = qps_at(every, target)
    return s


def summarize(rows: Sequence[Row]) -> list[Summary]:
    """One :class:`Summary` per (system, config), in order of first appearance, with the QPS
    ratio to faiss IndexHNSWFlat at each target recall (``None`` if either never reaches it)."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["system"], row["config"]), []).append(row)
    summaries = [_summary(g) for g in groups.values()]
    reference = next((s for s in summaries if s.is_reference), None)
    for s in summaries:
        for target in TARGETS:
            mine = s.qps_1t[target]
            ref = reference.qps_1t[target] if reference is not None else None
            s.ratio_1t[target] = mine / ref if mine is not None and ref else None
    return summaries
