"""``glint-bench report``: results files -> a markdown section and a PNG per (dataset, queries).

Each section sits between ``<!-- bench:DATASET:QUERIES:start -->`` and
``<!-- bench:DATASET:QUERIES:end -->`` in the markdown file; a report replaces only its own
sections, so several runs fill one file and the hand-written prose around them is kept.
Every figure is computed from the results JSON.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .oppoints import TARGETS, Summary, nearest_at_or_above, qps_at, recall_at_qps, summarize
from .schema import SCHEMA, Results, Row, check_row

__all__ = [
    "Group",
    "load_results",
    "png_path",
    "render_section",
    "report",
    "update_markdown",
    "write_png",
]

log = logging.getLogger(__name__)

DASH = "—"
HEADLINE = 0.95
FIXED_QPS = (5_000, 10_000, 20_000)  # 1-thread QPS at which the storage table reads recall
_STORAGE_NAMES = {
    "f32": "float32",
    "f16": "float16",
    "lvq8": "LVQ-8",
    "lvq4": "LVQ-4",
    "lvq4x4": "LVQ-4x4",
    "lvq4x8": "LVQ-4x8",
}
_FAISS_REFINE = {"sq8": "lvq8", "flat": "f32", "none": "none"}  # faiss refine -> glint rerank


@dataclass
class Group:
    """All rows of one (dataset, queries) pair, and the runs they came from."""

    dataset: str
    queries: str
    runs: list[Results] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.dataset}:{self.queries}"


def load_results(paths: Sequence[str | Path]) -> list[Group]:
    """Read results files and group their rows by (dataset, queries), in order of appearance."""
    groups: dict[tuple[str, str], Group] = {}
    for path in paths:
        results = json.loads(Path(path).read_text())
        if results.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a {SCHEMA} results file")
        for row in results["rows"]:
            check_row(row)
            group = groups.setdefault(
                (row["dataset"], row["queries"]), Group(row["dataset"], row["queries"])
            )
            if not any(run is results for run in group.runs):
                group.runs.append(results)
            group.rows.append(row)
        if not results["rows"]:
            log.warning("%s holds no rows", path)
    return list(groups.values())


# -- formatting ------------------------------------------------------------------------------
def _qps(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}×"


def _ms(row: Row | None, key: str) -> str:
    return DASH if row is None else f"{row[key]:.3f}"  # type: ignore[literal-required]


def _mib(value: int | None) -> str:
    return DASH if value is None else f"{value / 2**20:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _dataset_info(group: Group) -> dict[str, Any]:
    for run in group.runs:
        info = run.get("dataset") or {}
        if info.get("name") == group.dataset and info.get("queries") == group.queries:
            return dict(info)
    return {}


def _table(group: Group, summaries: list[Summary], n_base: int | None) -> list[str]:
    threads = max((r["threads_all"] for r in group.rows), default=0)
    head = [
        "system",
        "config",
        "QPS@0.90",
        "QPS@0.95",
        "QPS@0.99",
        "vs faiss HNSWFlat @0.95",
        f"QPS@0.95 ({threads} threads)",
        "p50 ms @0.95",
        "p99 ms @0.95",
        "memory MiB",
        "bytes/vector",
        "RSS MiB",
        "build s",
        "max recall",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        at = nearest_at_or_above(s.rows, HEADLINE)
        per_vec = DASH if not n_base else f"{s.memory_bytes / n_base:,.1f}"
        cells = [
            s.system,
            f"`{_cell(s.config)}`",
            *(_qps(s.qps_1t[t]) for t in TARGETS),
            _ratio(s.ratio_1t[HEADLINE]),
            _qps(s.qps_all[HEADLINE]),
            _ms(at, "p50_ms"),
            _ms(at, "p99_ms"),
            _mib(s.memory_bytes),
            per_vec,
            _mib(s.rss_bytes),
            f"{s.build_seconds:.1f}",
            f"{s.max_recall:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _spec_parts(config: str) -> tuple[str, dict[str, str]]:
    spec = config.split(";", 1)[0]
    kind, _, rest = spec.partition(":")
    pairs = (item.split("=", 1) for item in rest.split(",") if "=" in item)
    return kind, {key: value for key, value in pairs}


def storage_label(system: str, config: str) -> str | None:
    """A reader's name for a glint config's storage (``None`` for peers)."""
    if system != "glint":
        return None
    kind, kv = _spec_parts(config)
    if kind == "hnsw":
        return f"HNSW, {_STORAGE_NAMES.get(kv.get('storage', ''), kv.get('storage'))}"
    if kind == "flat":
        return f"exact, {_STORAGE_NAMES.get(kv.get('storage', 'f32'), kv.get('storage'))}"
    if kind == "ivfpq":
        opq = ", OPQ" if kv.get("opq") == "true" else ""
        rerank = kv.get("rerank", "lvq8")
        tail = "no re-rank" if rerank == "none" else f"re-rank {_STORAGE_NAMES[rerank]}"
        return f"IVF-PQ {kv.get('nbits')}-bit (m={kv.get('m')}{opq}), {tail}"
    return kind


def _storage_table(summaries: list[Summary], n_base: int | None) -> list[str]:
    """Bytes per vector against recall@10 at fixed 1-thread QPS, glint configs only."""
    if not n_base:
        return []
    mine = [(storage_label(s.system, s.config), s) for s in summaries if s.system == "glint"]
    if not mine:
        return []
    head = ["storage", "bytes/vector", *(f"recall@10 at {q:,} QPS" for q in FIXED_QPS)]
    head += ["max recall", "config"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in sorted(mine, key=lambda pair: pair[1].memory_bytes):
        points = [(r["recall_at_10"], r["qps_1t"]) for r in s.rows]
        recalls = [recall_at_qps(points, q) for q in FIXED_QPS]
        cells = [
            str(label),
            f"{s.memory_bytes / n_base:,.1f}",
            *(DASH if r is None else f"{r:.4f}" for r in recalls),
            f"{s.max_recall:.4f}",
            f"`{_cell(s.config)}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _faiss_twin(summary: Summary, summaries: list[Summary]) -> Summary | None:
    """The faiss-ivfpq peer built with the same nlist/m/nbits and the matching re-rank."""
    kind, kv = _spec_parts(summary.config)
    if summary.system != "glint" or kind != "ivfpq" or kv.get("opq") == "true":
        return None
    want_k = summary.config.partition(";")[2]
    for other in summaries:
        o_kind, o_kv = _spec_parts(other.config)
        if other.system != "faiss" or o_kind != "faiss-ivfpq":
            continue
        same = all(o_kv.get(key) == kv.get(key) for key in ("nlist", "m", "nbits"))
        refine = _FAISS_REFINE.get(o_kv.get("refine", ""))
        if same and refine == kv.get("rerank") and other.config.partition(";")[2] == want_k:
            return other
    return None


def _wrapper_table(summaries: list[Summary]) -> list[str]:
    """glint ivfpq against the same configuration built directly with faiss."""
    pairs = [(s, t) for s in summaries if (t := _faiss_twin(s, summaries)) is not None]
    if not pairs:
        return []
    head = ["glint config", "faiss config", "recall", "glint QPS", "faiss QPS", "glint / faiss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for mine, twin in pairs:
        both = [(r["recall_at_10"], r["qps_1t"]) for r in mine.rows]
        theirs = [(r["recall_at_10"], r["qps_1t"]) for r in twin.rows]
        reachable = [t for t in TARGETS if qps_at(both, t) and qps_at(theirs, t)]
        target = HEADLINE if HEADLINE in reachable else (reachable[-1] if reachable else None)
        if target is None:  # no target reached by both: compare 0.01 below the lower
            # max recall, where both curves are measured (at the very top of a curve one
            # point decides, and the two builds' k-means differ in the last digits)
            target = round(min(mine.max_recall, twin.max_recall) - 0.01, 4)
        a, b = qps_at(both, target), qps_at(theirs, target)
        ratio = _ratio(a / b) if a and b else DASH
        cells = [f"`{_cell(mine.config)}`", f"`{_cell(twin.config)}`", f"{target:.4g}"]
        cells += [_qps(a), _qps(b), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_section(group: Group, png_link: str | None, section: str | None = None) -> str:
    """The markdown between a section's markers."""
    info = _dataset_info(group)
    summaries = summarize(group.rows)
    nq = sorted({r["nq"] for r in group.rows})
    title = f"### `{group.dataset}`, `{group.queries}` queries"
    lines = [f"{title}: {section}" if section else title, ""]
    for run in group.runs:
        v = run.get("versions") or {}
        lines.append(f"- Machine: {run['machine']}")
        lines.append(f"- Date: {run['date']}")
        lines.append("- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
        lines.append(f"- Command: `{run['command']}`")
    if info:
        lines.append(
            f"- Data: {info.get('n', 0):,} × {info.get('dim')} vectors, metric "
            f"{info.get('metric')}, {', '.join(f'{n:,}' for n in nq)} queries, "
            f"k={info.get('k', 10)}"
        )
    lines += [
        "",
        "QPS with 1 thread at recall@10 = 0.90 / 0.95 / 0.99, linearly interpolated along each "
        "config's recall–QPS upper envelope (— = not reached); the ratio is to faiss "
        "`IndexHNSWFlat` at the same recall. All-core QPS is interpolated the same way; the "
        "latencies are those of the measured point nearest to recall 0.95 from above. "
        "Memory is each library's own accounting; RSS is the resident growth of a fresh "
        "process after loading and searching (best-effort).",
        "",
        *_table(group, summaries, info.get("n")),
    ]
    wrapper = _wrapper_table(summaries)
    if wrapper:
        lines += [
            "",
            "glint `ivfpq` against the same configuration built directly with faiss (same "
            "index_factory string; faiss re-ranks with `IndexRefine` over SQ8 where glint uses "
            "LVQ-8, or over the float vectors where glint uses f32), QPS with 1 thread at the "
            "recall shown:",
            "",
            *wrapper,
        ]
    storage = _storage_table(summaries, info.get("n"))
    if storage:
        lines += [
            "",
            "Memory against recall, for every glint storage: bytes per vector (everything the "
            "index holds, ids and graph or lists included) and recall@10 at a fixed 1-thread "
            "QPS, read off each config's recall–QPS envelope (— = never that fast; where every "
            "measured point is faster, the slowest point's recall):",
            "",
            *storage,
        ]
    notes = [note for run in group.runs for note in run.get("notes") or []]
    for summary in summaries:  # per-config notes a peer's runner attached to its rows
        row_notes = dict.fromkeys(str(r["notes"]) for r in summary.rows if r.get("notes"))
        notes += [f"{summary.system} `{summary.config}`: {note}" for note in row_notes]
    if notes:
        lines += ["", "Notes:", *(f"- {_cell(note)}" for note in notes)]
    if png_link:
        lines += ["", f"![recall@10 vs QPS, {group.dataset} {group.queries}]({png_link})"]
    return "\n".join(lines)


def update_markdown(path: Path, key: str, body: str) -> None:
    """Replace (or append) the section ``key`` of the markdown file ``path``."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    i, j = text.find(start), text.find(end)
    if 0 <= i < j:
        text = text[:i] + block + text[j + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_png(group: Group, path: Path) -> None:
    """Recall@10 (x) against 1-thread QPS (y, log scale), one line per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = summarize(group.rows)
    fig, ax = plt.subplots(figsize=(13, 6.5), dpi=110)
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours; more configs than the 10 default
    markers = {"glint": "o", "faiss": "s", "hnswlib": "^", "svs": "D"}
    for i, s in enumerate(summaries):
        pts = sorted(s.rows, key=lambda r: (r["knob_value"] or 0, r["recall_at_10"]))
        single = len(pts) == 1
        ax.plot(
            [r["recall_at_10"] for r in pts],
            [r["qps_1t"] for r in pts],
            linestyle="none" if single else ("-" if s.system == "glint" else "--"),
            marker="*" if single else markers.get(s.system, "o"),
            markersize=9 if single else 3,
            color=colours[i % len(colours)],
            label=f"{s.system}: {s.config}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("QPS, 1 thread (log scale)")
    machines = "; ".join(sorted({run["machine"] for run in group.runs}))
    ax.set_title(f"{group.dataset}, {group.queries} queries: recall@10 vs QPS\n{machines}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def png_path(template: str, group: Group) -> Path:
    """``template`` with ``{dataset}``/``{queries}`` filled in. So that every (dataset, queries)
    gets its own file, ``-{queries}`` is appended before the suffix when the template lacks it,
    and ``-{dataset}`` when it names neither the placeholder nor the dataset itself:
    ``docs/bench.png`` and ``docs/bench-{dataset}.png`` both give ``docs/bench-DATASET-id.png``.
    """
    extra = ""
    if "{dataset}" not in template and group.dataset not in template:
        extra += "-{dataset}"
    if "{queries}" not in template:
        extra += "-{queries}"
    if extra:
        stem, dot, suffix = template.rpartition(".")
        template = f"{stem}{extra}.{suffix}" if dot else template + extra
    return Path(template.format(dataset=group.dataset, queries=group.queries))


def report(
    paths: Sequence[str | Path], md: Path | None, png: str | None, section: str | None = None
) -> list[Path]:
    """Write a PNG (if ``png``, a path that may hold ``{dataset}``/``{queries}``) and a markdown
    section (if ``md``) per (dataset, queries) group; returns the files written. ``section``
    names a comparison of its own (its sections sit beside the main table of the same dataset
    and queries instead of replacing it)."""
    groups = load_results(paths)
    written: list[Path] = []
    for group in groups:
        link = None
        if png:
            plot = png_path(png, group)
            write_png(group, plot)
            written.append(plot)
            base = md.parent if md is not None else Path.cwd()
            link = Path(os.path.relpath(plot.resolve(), base.resolve())).as_posix()
        if md is not None:
            key = f"{section}:{group.key}" if section else group.key
            update_markdown(md, key, render_section(group, link, section))
    if md is not None:
        written.append(md)
    return written
