#!/usr/bin/env python3
"""Benchmark runner for Intel Scalable Vector Search (PyPI ``scalable-vs``), run standalone.

It runs in its own virtualenv (``~/.venv-svs``, with ``scalable-vs==0.0.5`` and ``numpy<2``),
where glint is not installed, so it imports only numpy, svs and the standard library::

    ~/.venv-svs/bin/python bench/peers/svs_runner.py \\
        --dataset ~/.cache/glint-data/dense-minilm-100k --queries id --k 10 \\
        [--nq N] [--repeats 3] [--threads-all 2] \\
        [--configs vamana-f32,vamana-lvq8,vamana-lvq4x8,vamana-lvq4x4,leanvec] [--degree 64] \\
        [--work DIR]

For each config it builds a Vamana graph (``graph_max_degree=--degree``, alpha 0.95 for inner
product and 1.2 for l2, construction window 200, candidate pool 3 x window), saves it to the
work folder, then sweeps ``search_window_size`` over 10..256 (stopping once recall@10 >= 0.999).
Every point is one JSON line on stdout in the ``glint-bench/1`` row schema, plus ``svs_version``
and ``notes``; a config that fails prints ``{"system": "svs", "config": ..., "error": ...}``.
Progress goes to stderr.

Measurement protocol (the same as glint's own harness): one untimed batch search with 1 thread
gives the ids for recall and warms caches; then ``--repeats`` timed batch runs with 1 thread and
with ``--threads-all`` threads (median QPS); then single-query latency (one query at a time,
1 thread) over the first min(nq, 1000) queries.

CPU backend: svs 0.0.5 picks its compiled backend (sapphirerapids, icelake, cascadelake) with
archspec, which finds none for AMD CPUs (it sees them as generic ``x86_64_v4``) and raises. When
that happens this runner sets ``SVS_OVERRIDE_BACKEND`` to the newest backend whose instruction
set the CPU has (checked against /proc/cpuinfo) and imports again. ``SVS_OVERRIDE_BACKEND`` set
by the caller is respected.

Setup (outside the repository; 0.0.5 ships a cp311 manylinux_2_28 wheel and needs numpy<2)::

    python3 -m venv ~/.venv-svs
    ~/.venv-svs/bin/pip install scalable-vs==0.0.5 "numpy<2"

What svs 0.0.5 can build (its Python wheel compiles a fixed set of specializations):
float32; LVQ-8; LVQ-4x8 (svs picks the Turbo<16,8> packing); LVQ-4; LeanVec with
(primary, secondary) in (lvq8, lvq8), (lvq8, float16), (float16, float16), (float32, float32).
LVQ-4x4, LVQ-8x8 and LeanVec with an LVQ-4 primary fail with "Could not find a suitable
method!": no compiled specialization, on any CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

SCHEMA = "glint-bench/1"
RECALL_K = 10
RELATIVE_TIE_TOLERANCE = 1e-6
LATENCY_QUERIES = 1000
WINDOWS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256)
STOP_RECALL = 0.999
CONFIG_NAMES = (
    "vamana-f32",
    "vamana-lvq8",
    "vamana-lvq4x8",
    "vamana-lvq4x4",
    "vamana-lvq4",
    "leanvec",
)
DEFAULT_CONFIGS = "vamana-f32,vamana-lvq8,vamana-lvq4x8,vamana-lvq4x4,leanvec"

# The x86 features each svs 0.0.5 backend was compiled for (gcc -march=<name>), as named in
# /proc/cpuinfo. Features that no compiler emits for this code (rdseed, sgx, ...) are left out.
_BACKEND_FEATURES = {
    "sapphirerapids": (
        "avx512f avx512dq avx512cd avx512bw avx512vl avx512ifma avx512vbmi avx512_vbmi2 "
        "avx512_vnni avx512_bitalg avx512_vpopcntdq avx512_bf16 avx512_fp16 amx_tile amx_int8 "
        "amx_bf16 gfni vaes vpclmulqdq avx_vnni"
    ),
    "icelake": (
        "avx512f avx512dq avx512cd avx512bw avx512vl avx512ifma avx512vbmi avx512_vbmi2 "
        "avx512_vnni avx512_bitalg avx512_vpopcntdq gfni vaes vpclmulqdq"
    ),
    "cascadelake": "avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni",
}


def log(message: str) -> None:
    print(f"[svs_runner] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- svs import


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _import_svs():
    """Import svs; when its archspec-based selection finds no backend, pick one ourselves."""
    try:
        import svs

        return svs, "auto"
    except RuntimeError as exc:
        if "suitable backend" not in str(exc) or os.environ.get("SVS_OVERRIDE_BACKEND"):
            raise
        first_error = str(exc).strip().splitlines()[0]
    for name in [m for m in list(sys.modules) if m == "svs" or m.startswith("svs.")]:
        del sys.modules[name]
    flags = _cpu_flags()
    usable = [b for b, feats in _BACKEND_FEATURES.items() if set(feats.split()) <= flags]
    if not usable:
        raise RuntimeError(f"svs found no backend ({first_error}) and the CPU lacks AVX-512")
    backend = usable[0]  # the manifest order: newest first
    os.environ["SVS_OVERRIDE_BACKEND"] = backend
    os.environ.setdefault("SVS_QUIET", "1")  # silence the "newer CPU than yours" warning
    import svs

    return svs, "override (archspec found no backend for this CPU)"


svs, _BACKEND_HOW = _import_svs()


def _backend() -> str:
    """The backend svs loaded (0.0.x builds one per CPU family; 0.5 has one and no such call)."""
    current = getattr(svs, "current_backend", None)
    return str(current()) if current is not None else "single build"


def svs_version() -> str:
    try:
        return version("scalable-vs")
    except PackageNotFoundError:
        return str(svs.library_version()).lstrip("v")


# ----------------------------------------------------------------------------- machine


def machine_line() -> str:
    model = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    ram_text = f"{ram / 2**30:.1f} GiB RAM" if ram else "unknown RAM"
    return f"{model}, {cores} cores, {ram_text}"


def vm_rss() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- dataset


def detect_metric(meta: dict, name: str) -> str:
    for value in (meta.get("metric"), (meta.get("config") or {}).get("metric")):
        if isinstance(value, str) and value.strip():
            word = value.strip().split()[0].lower()
            if word in ("ip", "l2", "cos"):
                return word
            if value.lower().startswith("inner product"):
                return "ip"
    return "l2" if name.startswith("synthetic") else "ip"


def load_dataset(root: Path, which: str, nq: int | None):
    """(base, queries, gt[:, :10], metric, query file name)."""
    if not (root / "base.npy").exists():
        raise SystemExit(f"{root}: no base.npy")
    meta = json.loads((root / "meta.json").read_text()) if (root / "meta.json").exists() else {}
    q_path, gt_path = root / f"queries-{which}.npy", root / f"gt-{which}.npy"
    if not (q_path.exists() and gt_path.exists()):
        # Synthetic datasets hold one query set (queries.npy, gt.npy), which serves as "id".
        if which == "id" and (root / "queries.npy").exists() and (root / "gt.npy").exists():
            q_path, gt_path = root / "queries.npy", root / "gt.npy"
        else:
            raise SystemExit(f"{root}: no query set {which!r} ({q_path.name}, {gt_path.name})")
    base = np.ascontiguousarray(np.load(root / "base.npy"), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(q_path), dtype=np.float32)
    gt = np.load(gt_path)
    if nq is not None:
        queries, gt = queries[:nq], gt[:nq]
    if gt.ndim != 2 or gt.shape[0] != queries.shape[0] or gt.shape[1] < RECALL_K:
        raise SystemExit(f"{gt_path}: ground truth {gt.shape} does not fit queries {queries.shape}")
    if queries.shape[1] != base.shape[1]:
        raise SystemExit(f"{q_path}: dim {queries.shape[1]} != base dim {base.shape[1]}")
    gt = np.ascontiguousarray(gt[:, :RECALL_K], dtype=np.int64)
    return base, queries, gt, detect_metric(meta, root.name), q_path.name


def write_fvecs(array: np.ndarray, path: Path) -> None:
    """TEXMEX .fvecs: each row is int32 dim followed by dim float32 values."""
    n, dim = array.shape
    out = np.empty((n, dim + 1), dtype=np.float32)
    out[:, 0] = np.array([dim], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = array
    out.tofile(path)


# ----------------------------------------------------------------------------- recall


def _exact_scores(base, queries, rows, metric):
    """Larger-is-better float64 scores of base rows ``rows`` [nq, m] for each query."""
    vecs = base[np.maximum(rows, 0).ravel()].astype(np.float64).reshape(*rows.shape, -1)
    q = queries.astype(np.float64)
    if metric == "l2":
        return -((vecs - q[:, None, :]) ** 2).sum(axis=2)
    if metric == "cos":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=2, keepdims=True), 1e-300)
    return np.einsum("qmd,qd->qm", vecs, q)


def recall_at_10(ids, gt, base, queries, metric) -> float:
    """Mean fraction of gt[:, :10] found among the first 10 ids. Tie-tolerant like glint's
    harness: a returned id whose exact score equals the 10th exact score (within 1e-6
    relative) also counts; duplicates count once, negative ids never."""
    ids = np.asarray(ids, dtype=np.int64)[:, :RECALL_K]
    tenth = _exact_scores(base, queries, gt[:, RECALL_K - 1 :], metric)[:, 0]
    scores = _exact_scores(base, queries, ids, metric)
    threshold = tenth - RELATIVE_TIE_TOLERANCE * np.maximum(np.abs(tenth), 1e-30)
    ok = (ids >= 0) & ((scores >= threshold[:, None]) | (ids[:, :, None] == gt[:, None, :]).any(2))
    found = sum(
        min(RECALL_K, len(set(row[mask].tolist()))) for row, mask in zip(ids, ok, strict=True)
    )
    return found / (ids.shape[0] * RECALL_K)


# ----------------------------------------------------------------------------- configs


def leanvec_kind(name: str):
    return getattr(svs.LeanVecKind, name)


def make_loader(config: str, fvecs: Path, dim: int, args):
    """(svs data loader, storage label for the config string, storage note)."""
    raw = svs.VectorDataLoader(str(fvecs), svs.DataType.float32, dims=dim)
    if config == "vamana-f32":
        return raw, "float32", "float32 vectors"
    lvq_bits = {
        "vamana-lvq8": (8, 0),
        "vamana-lvq4x8": (4, 8),
        "vamana-lvq4x4": (4, 4),
        "vamana-lvq4": (4, 0),
    }
    if config in lvq_bits:
        primary, residual = lvq_bits[config]
        loader = svs.LVQLoader(raw, primary=primary, residual=residual, padding=args.lvq_padding)
        label = f"lvq{primary}" + (f"x{residual}" if residual else "")
        return loader, label, f"LVQ {primary}+{residual} bits, padding {args.lvq_padding}"
    if config == "leanvec":
        ldims = args.leanvec_dims or (160 if dim >= 320 else max(8, dim // 2))
        loader = svs.LeanVecLoader(
            raw,
            ldims,
            primary_kind=leanvec_kind(args.leanvec_primary),
            secondary_kind=leanvec_kind(args.leanvec_secondary),
        )
        label = (
            f"leanvec,leanvec_dims={ldims},primary={args.leanvec_primary},"
            f"secondary={args.leanvec_secondary}"
        )
        note = (
            f"LeanVec {dim}->{ldims} dims (default in-distribution PCA matrices, no query "
            f"training), primary {args.leanvec_primary}, secondary {args.leanvec_secondary}, "
            "alignment 32"
        )
        return loader, label, note
    raise ValueError(f"unknown config {config!r}")


def _storage_detail(index) -> str:
    """The LVQ packing strategy svs chose (from the backend type string), if any."""
    try:
        text = index.experimental_backend_string
    except Exception:
        return ""
    if "Turbo<" in text:
        start = text.find("Turbo<")
        return "lvq strategy " + text[start : text.find(">", start) + 1]
    if "lvq::Sequential" in text:
        return "lvq strategy Sequential"
    return ""


STORAGE_LABELS = {
    "vamana-f32": "float32",
    "vamana-lvq8": "lvq8",
    "vamana-lvq4x8": "lvq4x8",
    "vamana-lvq4x4": "lvq4x4",
    "vamana-lvq4": "lvq4",
    "leanvec": "leanvec",
}


# ----------------------------------------------------------------------------- measuring


def timed_batch(index, queries, k, threads, repeats) -> float:
    index.num_threads = threads
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        index.search(queries, k)
        rates.append(queries.shape[0] / max(time.perf_counter() - started, 1e-9))
    return float(statistics.median(rates))


def latencies_ms(index, queries, k) -> np.ndarray:
    index.num_threads = 1
    count = min(queries.shape[0], LATENCY_QUERIES)
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        one = queries[i : i + 1]
        started = time.perf_counter_ns()
        index.search(one, k)
        out[i] = (time.perf_counter_ns() - started) / 1e6
    return out


def run_config(config, args, ctx) -> None:
    base, queries, gt, metric = ctx["base"], ctx["queries"], ctx["gt"], ctx["metric"]
    dim = base.shape[1]
    distance = {
        "ip": svs.DistanceType.MIP,
        "l2": svs.DistanceType.L2,
        "cos": svs.DistanceType.Cosine,
    }[metric]
    alpha = args.alpha if args.alpha is not None else (1.2 if metric == "l2" else 0.95)
    pool = args.pool or 3 * args.build_window
    params = svs.VamanaBuildParameters(
        alpha=alpha,
        graph_max_degree=args.degree,
        window_size=args.build_window,
        max_candidate_pool_size=pool,
    )
    loader, label, storage_note = make_loader(config, ctx["fvecs"], dim, args)
    config_name = f"vamana:R={args.degree},storage={label}"
    log(
        f"{config_name}: building (alpha={alpha}, window={args.build_window}, pool={pool}, "
        f"threads={args.build_threads}) on {base.shape[0]}x{dim}"
    )

    gc.collect()
    rss_before = vm_rss()
    started = time.perf_counter()
    index = svs.Vamana.build(params, loader, distance, num_threads=args.build_threads)
    build_seconds = time.perf_counter() - started
    rss_after = vm_rss()
    rss = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    log(f"{config_name}: built in {build_seconds:.2f}s")

    out = ctx["work"] / config.replace("/", "_")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index.save(str(out / "config"), str(out / "graph"), str(out / "data"))
    disk_bytes = tree_bytes(out)
    # svs 0.0.5 exposes no in-memory size; the saved graph and data files hold the same
    # arrays as memory (graph: n x (R+1) uint32; data: the encoded vectors and constants).
    memory_bytes = tree_bytes(out / "graph") + tree_bytes(out / "data")

    detail = _storage_detail(index)
    notes = "; ".join(
        x
        for x in (
            f"build: graph_max_degree={args.degree}, alpha={alpha}, window_size="
            f"{args.build_window}, max_candidate_pool_size={pool}, prune_to={args.degree}, "
            f"build_threads={args.build_threads}",
            f"storage: {storage_note}" + (f", {detail}" if detail else ""),
            f"distance={distance.name}, metric={metric}, queries file {ctx['qfile']}",
            "build_seconds includes reading base.fvecs from the work dir and compressing",
            "search buffer capacity = search_window_size",
            "memory_bytes = saved graph+data files, disk_bytes = whole saved index, "
            "rss_bytes = VmRSS delta around the build",
            "recall tie-tolerant (10th exact score, 1e-6 rel)",
            f"svs backend {_backend()} ({_BACKEND_HOW}), svs lib {svs.library_version()}",
        )
        if x
    )

    for window in WINDOWS:
        if window < args.k:
            continue
        index.search_window_size = window
        index.num_threads = 1
        ids, _ = index.search(queries, args.k)  # untimed: recall and warm-up
        recall = recall_at_10(ids, gt, base, queries, metric)
        qps_1t = timed_batch(index, queries, args.k, 1, args.repeats)
        qps_all = timed_batch(index, queries, args.k, args.threads_all, args.repeats)
        lat = latencies_ms(index, queries, args.k)
        row = {
            "schema": SCHEMA,
            "dataset": ctx["dataset"],
            "queries": args.queries,
            "nq": int(queries.shape[0]),
            "system": "svs",
            "config": config_name,
            "knob": "search_window_size",
            "knob_value": int(window),
            "recall_at_10": round(float(recall), 6),
            "qps_1t": round(qps_1t, 2),
            "qps_all": round(qps_all, 2),
            "threads_all": int(args.threads_all),
            "p50_ms": round(float(np.percentile(lat, 50)), 4),
            "p99_ms": round(float(np.percentile(lat, 99)), 4),
            "build_seconds": round(build_seconds, 3),
            "memory_bytes": int(memory_bytes),
            "disk_bytes": int(disk_bytes),
            "rss_bytes": int(rss) if rss is not None else None,
            "machine": ctx["machine"],
            "svs_version": ctx["svs_version"],
            "notes": notes,
        }
        print(json.dumps(row), flush=True)
        log(
            f"{config_name} sws={window}: recall={recall:.4f} qps_1t={qps_1t:.0f} "
            f"qps_all={qps_all:.0f} p50={row['p50_ms']}ms"
        )
        if recall >= STOP_RECALL:
            break
    del index, loader
    gc.collect()


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset folder (base.npy, queries, gt)")
    p.add_argument("--queries", choices=("id", "ood"), default="id")
    p.add_argument("--k", type=int, default=10, help="neighbours returned (>= 10)")
    p.add_argument("--nq", type=int, default=None, help="use the first NQ queries")
    p.add_argument("--repeats", type=int, default=3, help="timed batch runs (median)")
    p.add_argument("--threads-all", type=int, default=None, help="default: cores available")
    p.add_argument("--build-threads", type=int, default=None, help="default: --threads-all")
    p.add_argument(
        "--configs", default=DEFAULT_CONFIGS, help=f"comma list of: {','.join(CONFIG_NAMES)}"
    )
    p.add_argument("--degree", type=int, default=64, help="graph_max_degree (R; SVS documents 64)")
    p.add_argument("--build-window", type=int, default=200, help="construction window_size")
    p.add_argument(
        "--pool",
        type=int,
        default=None,
        help="max_candidate_pool_size (default 3 x build window, as newer svs)",
    )
    p.add_argument("--alpha", type=float, default=None, help="default 0.95 ip / 1.2 l2")
    p.add_argument("--metric", choices=("ip", "l2", "cos"), default=None, help="override meta.json")
    p.add_argument("--lvq-padding", type=int, default=0, help="LVQ padding bytes (svs default 0)")
    p.add_argument(
        "--leanvec-dims", type=int, default=None, help="default 160 for dim >= 320, else dim/2"
    )
    kinds = ("float32", "float16", "lvq8", "lvq4")
    p.add_argument("--leanvec-primary", choices=kinds, default="lvq8")
    p.add_argument("--leanvec-secondary", choices=kinds, default="lvq8")
    p.add_argument(
        "--work",
        default=None,
        help="where indexes are saved (default: a temp dir, deleted at the end)",
    )
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.threads_all = args.threads_all or cores or 1
    args.build_threads = args.build_threads or args.threads_all
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.config_list if c not in CONFIG_NAMES]
    if unknown:
        p.error(f"unknown config(s) {unknown}; choose from {CONFIG_NAMES}")
    if args.k < RECALL_K:
        p.error("--k must be >= 10 (recall@10)")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def describe_error(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    if "Could not find a suitable method" in text:
        text += (
            f" [svs {svs_version()} has no compiled Vamana specialization for this storage "
            "kind and distance; not a CPU feature problem]"
        )
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
    root = Path(args.dataset).expanduser().resolve()
    base, queries, gt, metric, qfile = load_dataset(root, args.queries, args.nq)
    metric = args.metric or metric
    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix="svs-bench-")) if temp else Path(args.work).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    fvecs = work / "base.fvecs"
    write_fvecs(base, fvecs)
    ctx = {
        "base": base,
        "queries": queries,
        "gt": gt,
        "metric": metric,
        "qfile": qfile,
        "fvecs": fvecs,
        "work": work,
        "dataset": root.name,
        "machine": machine_line(),
        "svs_version": svs_version(),
    }
    log(
        f"svs {ctx['svs_version']} backend {_backend()} ({_BACKEND_HOW}); "
        f"dataset {root.name} base {base.shape} queries {args.queries} nq {queries.shape[0]} "
        f"metric {metric}; work {work}"
    )
    failures = 0
    try:
        for config in args.config_list:
            try:
                run_config(config, args, ctx)
            except Exception as exc:
                failures += 1
                log(f"{config}: FAILED\n{traceback.format_exc()}")
                print(
                    json.dumps(
                        {
                            "schema": SCHEMA,
                            "dataset": ctx["dataset"],
                            "queries": args.queries,
                            "system": "svs",
                            "config": f"vamana:R={args.degree},storage={STORAGE_LABELS[config]}",
                            "error": describe_error(exc),
                            "machine": ctx["machine"],
                            "svs_version": ctx["svs_version"],
                        }
                    ),
                    flush=True,
                )
                gc.collect()
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
    log(f"done; {failures} config(s) failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
