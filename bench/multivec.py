"""``glint-bench multivec``: multi-vector retrieval on a ``multivec`` dataset, in one run.

What it measures (shared/BENCHMARKS.md):

- **exact**: brute-force Chamfer/MaxSim over every document's float32 tokens
  (:func:`glint.index.exact_maxsim`: BLAS products, segment maxima), the reference for QPS;
- **FDE quality at equal candidates**: glint's encoder and the ``muvera-fde`` package (the
  reference implementation's bindings) with the same parameters, each over several seeds;
  every document FDE is searched exactly (faiss ``IndexFlatIP``) and the best ``c`` are
  re-ranked by exact Chamfer on float32 tokens, so only the encodings differ;
- **muvera-fde end to end**: its query encoding, exact FDE search and exact re-ranking;
- **glint ``muvera`` configurations**: built with :func:`glint.index.build_index`, swept over
  ``candidates`` (with ``ef_search`` following it for an HNSW inner index): recall@10 against
  the dataset's exact top-10, QPS with 1 thread and all cores, bytes per document, and the
  recall of brute-force Chamfer over the tokens the index stores (decoded, pooled or not):
  the most its exact re-ranking can give;
- **how near the misses are**: when the 10 returned are not the exact 10, their true Chamfer
  scores (on float32 tokens) as a share of the exact top 10's, and the share of them within
  the exact top 20. Pooled tokens re-order documents whose scores are close; these say how
  close (the dataset has no relevance labels to measure retrieval quality directly).

Everything runs in this process with BLAS limited to one thread per search thread. Results go
to a JSON file; :func:`markdown` turns one into the section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from glint.index import TokenSets, build_index, exact_maxsim
from glint.index.fde import FDEEncoder, FDEParams
from glint.index.kernels.maxsim import gather_tokens
from glint.index.multivec import as_token_sets, rerank_chamfer
from glint.index.threads import faiss_threads, limit_blas_threads
from glint.index.vecstore import VectorStore

from .machine import machine_line
from .oppoints import qps_at

__all__ = ["MultivecOptions", "markdown", "run_multivec"]

Log = Callable[[str], None]


@dataclass
class MultivecOptions:
    dataset: Path
    specs: list[str]
    out: Path
    nq: int | None = None
    nq_exact: int = 200
    candidates: tuple[int, ...] = (50, 100, 200, 300, 500, 800, 1000, 1500)
    ef_factor: float = 1.0
    repeats: int = 3
    threads_all: int = 2
    k_sim: int = 4
    dim_proj: int = 16
    r_reps: int = 10
    seeds: tuple[int, ...] = (1, 2, 3)
    peer: bool = True
    memory_candidates: int = 500
    command: str = ""
    notes: list[str] = field(default_factory=list)


def load_dataset(path: Path, nq: int | None) -> tuple[TokenSets, TokenSets, np.ndarray, dict]:
    meta = json.loads((path / "meta.json").read_text())
    docs = TokenSets(np.load(path / "doc_tokens.npy"), np.load(path / "doc_offsets.npy"))
    queries = TokenSets(np.load(path / "query_tokens.npy"), np.load(path / "query_offsets.npy"))
    gt = np.load(path / "gt.npy")
    if nq is not None and nq < queries.count:
        queries, gt = queries.slice(0, nq), gt[:nq]
    return docs, queries, gt, meta


def recall_at_10(ids: np.ndarray, gt: np.ndarray) -> float:
    """Share of the exact top 10 (the first 10 columns of ``gt``) among the first 10 ``ids``."""
    pairs = zip(ids, gt, strict=True)
    return float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in pairs]))


NEAR_TOP = 20


@dataclass
class Truth:
    """What returned documents are judged against: the exact top ids per query, the float32
    tokens, and the summed exact Chamfer score of each query's exact top 10."""

    gt: np.ndarray
    tokens: VectorStore
    offsets: np.ndarray
    top10_score: np.ndarray

    @classmethod
    def of(cls, docs: TokenSets, queries: TokenSets, gt: np.ndarray, tokens: VectorStore) -> Truth:
        top = np.ascontiguousarray(gt[:, :10], dtype=np.int64)
        _, scores = rerank_chamfer(tokens, docs.offsets, queries, top, 10, threads=1)
        return cls(gt, tokens, docs.offsets, scores.sum(axis=1, dtype=np.float64))

    def quality(self, queries: TokenSets, ids: np.ndarray) -> dict[str, float]:
        """``score_share``: the true Chamfer scores of the 10 returned, summed over the queries,
        as a share of the exact top 10's (1.0 when they are the exact 10 or tie with them);
        ``within_top20``: the share of the returned that are in the exact top 20 (when ``gt``
        has 20 columns). A missing (-1) or repeated id counts as nothing."""
        n = queries.count
        found = _distinct(ids[:, :10])
        _, scores = rerank_chamfer(self.tokens, self.offsets, queries, found, 10, threads=1)
        got = np.where(np.isfinite(scores), scores, 0.0).sum(dtype=np.float64)
        out = {"score_share": float(got / self.top10_score[:n].sum())}
        if self.gt.shape[1] >= NEAR_TOP:
            near = self.gt[:n, :NEAR_TOP]
            hits = sum(int(np.isin(found[i][found[i] >= 0], near[i]).sum()) for i in range(n))
            out["within_top20"] = hits / (10 * n)
        return out

    def score_shift(self, queries: TokenSets, stored: TokenSets) -> dict[str, float]:
        """How Chamfer over ``stored`` tokens (pooled, quantised) moves the scores of each
        query's exact top 20: ``drop``, the median relative fall of a score over every
        query's top 20; ``drop_spread``, the widest difference of those falls within one
        query, and ``gap_10_20``, how far the exact 20th score is below the 10th (relative),
        each the median over the queries. Empty without 20 columns of ``gt``; queries with
        fewer than 20 exact results are left out."""
        if self.gt.shape[1] < NEAR_TOP:
            return {}
        top = np.ascontiguousarray(self.gt[: queries.count, :NEAR_TOP], dtype=np.int64)
        whole = np.flatnonzero((top >= 0).all(axis=1))
        if whole.size == 0:
            return {}
        if whole.size < queries.count:
            queries, top = as_token_sets([queries[i] for i in whole]), top[whole]
        store = VectorStore.encode(stored.tokens, "f32")
        rows, true = rerank_chamfer(self.tokens, self.offsets, queries, top, NEAR_TOP)
        srows, approx = rerank_chamfer(store, stored.offsets, queries, top, NEAR_TOP)
        true = np.take_along_axis(true, np.argsort(rows, axis=1), axis=1)
        approx = np.take_along_axis(approx, np.argsort(srows, axis=1), axis=1)
        drop = (true - approx) / true
        best = -np.sort(-true, axis=1)
        return {
            "drop": float(np.median(drop)),
            "drop_spread": float(np.median(drop.max(axis=1) - drop.min(axis=1))),
            "gap_10_20": float(np.median((best[:, 9] - best[:, NEAR_TOP - 1]) / best[:, 9])),
        }


def _distinct(ids: np.ndarray) -> np.ndarray:
    """``ids`` (int64, contiguous) with every repeat of an id in its row set to -1."""
    out = np.array(ids, dtype=np.int64)
    order = np.argsort(out, axis=1, kind="stable")
    ranked = np.take_along_axis(out, order, axis=1)
    repeat = np.zeros_like(out, dtype=bool)
    repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    np.put_along_axis(out, order, np.where(repeat, -1, ranked), axis=1)
    return out


def _median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


# -- the muvera-fde peer ---------------------------------------------------------------------
class MuveraFdePeer:
    """The ``muvera-fde`` package's encoders with glint's parameters (AMS ±1 projection)."""

    def __init__(self, dim: int, k_sim: int, dim_proj: int, r_reps: int, seed: int) -> None:
        import muvera_fde as mf

        common = {
            "dimension": dim,
            "num_repetitions": r_reps,
            "num_simhash_projections": k_sim,
            "projection_dimension": dim_proj,
            "projection_type": mf.ProjectionType.AMS_SKETCH,
            "seed": seed,
        }
        cfg = mf.FixedDimensionalEncodingConfig
        self.query = mf.FixedDimensionalEncoder(
            cfg(**common, encoding_type=mf.EncodingType.DEFAULT_SUM)
        )
        self.doc = mf.FixedDimensionalEncoder(
            cfg(**common, encoding_type=mf.EncodingType.AVERAGE, fill_empty_partitions=True)
        )

    def encode_documents(self, sets: TokenSets) -> np.ndarray:
        return np.stack([self.doc.encode_document(sets[i]) for i in range(sets.count)])

    def encode_queries(self, sets: TokenSets) -> np.ndarray:
        return np.stack([self.query.encode_query(sets[i]) for i in range(sets.count)])


def _flat_candidates(doc_fde: np.ndarray, query_fde: np.ndarray, c: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(doc_fde.shape[1])
    index.add(np.ascontiguousarray(doc_fde, np.float32))
    with faiss_threads(1):
        _, cand = index.search(np.ascontiguousarray(query_fde, np.float32), c)
    return cand


# -- the run ----------------------------------------------------------------------------------
def run_multivec(opts: MultivecOptions, log: Log = print) -> dict[str, Any]:
    limit_blas_threads(1)
    docs, queries, gt, meta = load_dataset(opts.dataset, opts.nq)
    dim = docs.dim
    log(f"{docs.count} documents ({int(docs.offsets[-1])} tokens), {queries.count} queries")
    results: dict[str, Any] = {
        "dataset": opts.dataset.name,
        "documents": docs.count,
        "doc_tokens": int(docs.offsets[-1]),
        "queries": queries.count,
        "dim": dim,
        "machine": machine_line(),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "command": opts.command,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "source": meta.get("source"),
    }
    results["exact"] = _exact(docs, queries, gt, opts, log)
    f32_tokens = VectorStore.encode(docs.tokens, "f32")
    truth = Truth.of(docs, queries, gt, f32_tokens)
    results["fde_compare"] = _fde_compare(docs, queries, gt, f32_tokens, opts, log)
    if opts.peer and results["fde_compare"].get("peer_available"):
        results["peer"] = _peer_end_to_end(docs, queries, truth, opts, log)
    results["glint"] = [_glint_config(spec, docs, queries, truth, opts, log) for spec in opts.specs]
    results["notes"] = opts.notes
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=1) + "\n")
    return results


def _exact(
    docs: TokenSets, queries: TokenSets, gt: np.ndarray, opts: MultivecOptions, log: Log
) -> dict[str, Any]:
    part = queries.slice(0, min(opts.nq_exact, queries.count))
    out: dict[str, Any] = {"queries": part.count}
    for threads, key in ((1, "qps_1t"), (opts.threads_all, "qps_all")):
        seconds, (rows, _) = _median_seconds(
            lambda t=threads: exact_maxsim(docs, part, 10, threads=t), 1
        )
        out[key] = part.count / seconds
        out["recall_at_10"] = recall_at_10(rows, gt[: part.count])
    out["bytes_per_document"] = docs.tokens.nbytes / docs.count
    log(f"[exact] recall={out['recall_at_10']:.4f} qps1={out['qps_1t']:.1f}")
    return out


def _fde_compare(
    docs: TokenSets,
    queries: TokenSets,
    gt: np.ndarray,
    tokens: VectorStore,
    opts: MultivecOptions,
    log: Log,
) -> dict[str, Any]:
    """Recall@10 after exact re-ranking of the exact FDE top-c, glint vs muvera-fde."""
    top = max(opts.candidates)
    out: dict[str, Any] = {"candidates": list(opts.candidates), "seeds": list(opts.seeds)}
    try:
        import muvera_fde  # noqa: F401

        out["peer_available"] = True
    except ImportError:
        out["peer_available"] = False
        opts.notes.append("muvera-fde is not installed: the FDE comparison has glint only")
    systems = ["glint", "muvera-fde"] if out["peer_available"] else ["glint"]
    for system in systems:
        per_seed, rates = [], []
        for seed in opts.seeds:
            if system == "glint":
                enc = FDEEncoder(
                    FDEParams(docs.dim, opts.k_sim, opts.dim_proj, opts.r_reps, seed=seed)
                )
                started = time.perf_counter()
                doc_fde = enc.encode_documents(docs.tokens, docs.offsets, threads=1)
                rates.append(docs.count / (time.perf_counter() - started))
                query_fde = enc.encode_queries(queries.tokens, queries.offsets)
            else:
                peer = MuveraFdePeer(docs.dim, opts.k_sim, opts.dim_proj, opts.r_reps, seed)
                started = time.perf_counter()
                doc_fde = peer.encode_documents(docs)
                rates.append(docs.count / (time.perf_counter() - started))
                query_fde = peer.encode_queries(queries)
            cand = _flat_candidates(doc_fde, query_fde, top)
            recalls = []
            for c in opts.candidates:
                rows, _ = rerank_chamfer(
                    tokens, docs.offsets, queries, np.ascontiguousarray(cand[:, :c]), 10,
                    threads=opts.threads_all,
                )  # fmt: skip
                recalls.append(recall_at_10(rows, gt))
            per_seed.append(recalls)
            log(f"[fde {system} seed={seed}] " + " ".join(f"{r:.4f}" for r in recalls))
        arr = np.array(per_seed)
        out[system] = {
            "fde_dim": int(doc_fde.shape[1]),
            "recall_mean": arr.mean(axis=0).tolist(),
            "recall_min": arr.min(axis=0).tolist(),
            "recall_max": arr.max(axis=0).tolist(),
            "documents_per_second": statistics.median(rates),
        }
    return out


def _peer_end_to_end(
    docs: TokenSets,
    queries: TokenSets,
    truth: Truth,
    opts: MultivecOptions,
    log: Log,
) -> dict[str, Any]:
    """muvera-fde's query encoding + exact FDE search (faiss flat) + exact Chamfer re-rank."""
    import faiss

    seed = opts.seeds[0]
    peer = MuveraFdePeer(docs.dim, opts.k_sim, opts.dim_proj, opts.r_reps, seed)
    doc_fde = peer.encode_documents(docs)
    flat = faiss.IndexFlatIP(doc_fde.shape[1])
    flat.add(doc_fde)
    points = []
    for c in opts.candidates:

        def search(c: int = c) -> tuple[np.ndarray, np.ndarray]:
            q = peer.encode_queries(queries)
            with faiss_threads(1):
                _, cand = flat.search(q, c)
            return rerank_chamfer(truth.tokens, docs.offsets, queries, cand, 10, threads=1)

        seconds, (rows, _) = _median_seconds(search, opts.repeats)
        point = {"candidates": c, "recall_at_10": recall_at_10(rows, truth.gt)}
        point.update(truth.quality(queries, rows))
        point["qps_1t"] = queries.count / seconds
        points.append(point)
        log(f"[muvera-fde] c={c} recall={point['recall_at_10']:.4f} qps1={point['qps_1t']:.1f}")
    return {
        "config": f"muvera-fde:k_sim={opts.k_sim},dim_proj={opts.dim_proj},r_reps={opts.r_reps}"
        f",seed={seed} + faiss IndexFlatIP + exact re-rank (f32 tokens)",
        "bytes_per_document": (doc_fde.nbytes + docs.tokens.nbytes) / docs.count,
        "points": points,
    }


def _glint_config(
    spec: str,
    docs: TokenSets,
    queries: TokenSets,
    truth: Truth,
    opts: MultivecOptions,
    log: Log,
) -> dict[str, Any]:
    gt = truth.gt
    started = time.perf_counter()
    index = build_index(docs, spec, "ip", threads=opts.threads_all)
    build_seconds = time.perf_counter() - started
    index.warm()
    inner = index.inner.kind  # type: ignore[attr-defined]
    stats = index.stats()["muvera"]
    log(f"[glint] built {index.spec} in {build_seconds:.1f}s")
    part = queries.slice(0, min(opts.nq_exact, queries.count))
    stored = _stored_tokens(index)
    rows, _ = exact_maxsim(stored, part, 10, threads=opts.threads_all)
    stored_exact = {
        "queries": part.count,
        "recall_at_10": recall_at_10(rows, gt[: part.count]),
        **truth.quality(part, rows),
        "score_shift": truth.score_shift(part, stored),
    }
    del stored
    log(
        f"[glint] exact Chamfer over the stored tokens: recall={stored_exact['recall_at_10']:.4f}"
        f" score share={stored_exact['score_share']:.4f}"
    )
    points = []
    for c in opts.candidates:
        params: dict[str, Any] = {"candidates": c}
        if inner == "hnsw":
            params["ef_search"] = max(c, round(opts.ef_factor * c))
        seconds, found = _median_seconds(
            lambda p=params: index.search(queries, 10, threads=1, **p), opts.repeats
        )
        all_seconds, _ = _median_seconds(
            lambda p=params: index.search(queries, 10, threads=opts.threads_all, **p), 1
        )
        latencies = []
        for i in range(min(100, queries.count)):
            t0 = time.perf_counter()
            index.search(queries[i], 10, threads=1, **params)
            latencies.append((time.perf_counter() - t0) * 1000)
        point = {
            "params": params,
            "recall_at_10": recall_at_10(found.ids, gt),
            **truth.quality(queries, found.ids),
            "qps_1t": queries.count / seconds,
            "qps_all": queries.count / all_seconds,
            "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
        }
        points.append(point)
        log(
            f"[glint] {params} recall={point['recall_at_10']:.4f} "
            f"score share={point['score_share']:.4f} qps1={point['qps_1t']:.1f} "
            f"p50={point['p50_ms']:.2f}ms"
        )
    return {
        "spec": index.spec,
        "build_seconds": build_seconds,
        "documents_per_second": index.build_info.get("documents_per_second"),
        "memory": stats,
        "stored_exact": stored_exact,
        "points": points,
    }


def _stored_tokens(index: Any) -> TokenSets:
    """Every token a ``muvera`` index stores, decoded to float32 (pooled tokens if pooled)."""
    store, offsets = index.tokens, np.asarray(index.token_offsets)
    count = offsets.shape[0] - 1
    out = np.empty((int(offsets[-1]), index.dim), np.float32)
    kind, fdata, hdata, codes, lut = store.kernel_args()
    starts, ends = np.empty(count, np.int64), np.empty(count, np.int64)
    gather_tokens(np.arange(count, dtype=np.int64), offsets, kind, fdata, hdata, codes, lut,
                  out, starts, ends)  # fmt: skip
    if store.mean is not None:
        out += store.mean
    return TokenSets(out, offsets)


# -- the report -------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _operating_point(points: Sequence[dict[str, Any]], target: float) -> float | None:
    return qps_at([(p["recall_at_10"], p["qps_1t"]) for p in points], target)


def markdown(results: dict[str, Any]) -> str:
    """The benchmarks.md section of one results file."""
    ex = results["exact"]
    brute = ex["qps_1t"]
    lines = [
        f"### {results['dataset']}: {results['documents']:,} documents "
        f"({results['doc_tokens']:,} tokens of {results['dim']} dims), "
        f"{results['queries']:,} queries",
        "",
        f"Measured {results['date']} on {results['machine']}.",
        "",
        f"Command: `{results['command']}`",
        "",
        "Exact brute-force Chamfer/MaxSim (float32 tokens, BLAS), the reference:",
        "",
        "| queries | recall@10 | QPS (1 thread) | QPS (all cores) | bytes/document |",
        "|---|---|---|---|---|",
        f"| {ex['queries']} | {ex['recall_at_10']:.4f} | {_fmt(ex['qps_1t'], 1)} | "
        f"{_fmt(ex['qps_all'], 1)} | {_fmt(ex['bytes_per_document'], 1)} |",
        "",
    ]
    fc = results["fde_compare"]
    systems = [s for s in ("glint", "muvera-fde") if s in fc]
    opts = results["options"]
    lines += [
        f"FDE quality at equal candidates (k_sim={opts['k_sim']}, dim_proj={opts['dim_proj']}, "
        f"r_reps={opts['r_reps']}; exact FDE search, exact re-rank on float32 tokens; mean "
        f"over seeds {', '.join(map(str, fc['seeds']))}, with min–max):",
        "",
        "| candidates | " + " | ".join(f"{s} recall@10" for s in systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for i, c in enumerate(fc["candidates"]):
        cells = [
            f"{fc[s]['recall_mean'][i]:.4f} ({fc[s]['recall_min'][i]:.4f}–"
            f"{fc[s]['recall_max'][i]:.4f})"
            for s in systems
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Document encoding, 1 thread: "
        + "; ".join(
            f"{s} {_fmt(fc[s]['documents_per_second'])} documents/s ({fc[s]['fde_dim']} dims)"
            for s in systems
        )
        + ".",
        "",
        "End to end (1 thread unless noted; QPS at recall@10 interpolated on the curve):",
        "",
        "| system | config | QPS@0.90 | × brute force @0.90 | QPS@0.95 | max recall | "
        "bytes/document | build s |",
        "|---|---|---|---|---|---|---|---|",
        f"| exact | brute-force MaxSim | — | 1.00× (at recall {ex['recall_at_10']:.4f}) | — | "
        f"{ex['recall_at_10']:.4f} | {_fmt(ex['bytes_per_document'], 1)} | — |",
    ]
    rows = []
    if "peer" in results:
        rows.append(("muvera-fde", results["peer"]["config"], results["peer"]["points"],
                     results["peer"]["bytes_per_document"], None))  # fmt: skip
    for g in results["glint"]:
        rows.append(("glint", f"`{g['spec']}`", g["points"], g["memory"]["bytes_per_document"],
                     g["build_seconds"]))  # fmt: skip
    for system, config, points, bpd, build in rows:
        q90 = _operating_point(points, 0.90)
        q95 = _operating_point(points, 0.95)
        ratio = f"{q90 / brute:.1f}×" if q90 else "—"
        best = max(p["recall_at_10"] for p in points)
        lines.append(
            f"| {system} | {config} | {_fmt(q90)} | {ratio} | {_fmt(q95)} | {best:.4f} | "
            f"{_fmt(bpd, 1)} | {_fmt(build, 1)} |"
        )
    lines += [
        "",
        "Memory per document and recall at a fixed candidate count "
        f"(candidates={opts['memory_candidates']}):",
        "",
        "| config | stored tokens/doc | token bytes/doc | FDE index bytes/doc | total bytes/doc | "
        "recall@10 | score share | within exact top 20 | QPS (1 thread) | "
        "exact over stored tokens: recall@10, score share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in results["glint"]:
        m = g["memory"]
        at = [p for p in g["points"] if p["params"]["candidates"] == opts["memory_candidates"]]
        point = at[0] if at else {}
        se = g.get("stored_exact")
        ceiling = (
            f"{se['recall_at_10']:.4f}, {_share(se.get('score_share'))} ({se['queries']} queries)"
            if se
            else "—"
        )
        lines.append(
            f"| `{g['spec']}` | {m['tokens_per_document']} | "
            f"{_fmt(m['token_bytes_per_document'], 1)} | {_fmt(m['fde_bytes_per_document'], 1)}"
            f" | {_fmt(m['bytes_per_document'], 1)} | {_share(point.get('recall_at_10'))} | "
            f"{_share(point.get('score_share'))} | {_share(point.get('within_top20'))} | "
            f"{_fmt(point.get('qps_1t'))} | {ceiling} |"
        )
    lines += [
        "",
        "Score share: the true Chamfer scores (float32 tokens) of the 10 documents returned, "
        "summed over the queries, as a share of the exact top 10's; within exact top 20: the "
        "share of the returned documents that rank in the exact top 20. Both show how near the "
        "misses are; the dataset has no relevance labels.",
    ]
    shifts = [(g["spec"], g.get("stored_exact", {}).get("score_shift")) for g in results["glint"]]
    shifts = [(spec, sh) for spec, sh in shifts if sh]
    if shifts:
        lines += [
            "",
            "What the stored tokens do to the scores of each query's exact top 20 (the score "
            "drop is the median over every query's top 20; the spread and the gap are medians "
            "over the queries, the gap being the exact 20th score's distance below the 10th):",
            "",
            "| config | score drop | spread of the drops within a query | gap 10th to 20th |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{spec}` | {sh['drop']:.2%} | {sh['drop_spread']:.2%} | {sh['gap_10_20']:.2%} |"
            for spec, sh in shifts
        ]
    lines += ["", "Every point of every curve:", ""]
    lines += [
        "| system | config | params | recall@10 | score share | QPS 1t | QPS all | p50 ms | "
        "p99 ms |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for g in results["glint"]:
        for p in g["points"]:
            lines.append(
                f"| glint | `{g['spec']}` | {json.dumps(p['params'])} | {p['recall_at_10']:.4f}"
                f" | {_share(p.get('score_share'))} | {_fmt(p['qps_1t'])} | "
                f"{_fmt(p['qps_all'])} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} |"
            )
    if "peer" in results:
        for p in results["peer"]["points"]:
            lines.append(
                f'| muvera-fde | flat | {{"candidates": {p["candidates"]}}} | '
                f"{p['recall_at_10']:.4f} | {_share(p.get('score_share'))} | "
                f"{_fmt(p['qps_1t'])} | — | — | — |"
            )
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    ex = results["exact"]
    ax.scatter([ex["recall_at_10"]], [ex["qps_1t"]], marker="*", s=160, c="k", label="exact")
    if "peer" in results:
        pts = results["peer"]["points"]
        ax.plot([p["recall_at_10"] for p in pts], [p["qps_1t"] for p in pts], "s--",
                label="muvera-fde + flat")  # fmt: skip
    for g in results["glint"]:
        pts = g["points"]
        ax.plot([p["recall_at_10"] for p in pts], [p["qps_1t"] for p in pts], "o-",
                label=g["spec"].replace("muvera:", "")[:70])  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 (vs exact Chamfer)")
    ax.set_ylabel("queries per second, 1 thread (log)")
    ax.set_title(f"{results['dataset']}: multi-vector retrieval")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
