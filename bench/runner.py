"""``glint-bench run``: build and sweep every config, peers included, into one results file.

Each config is built once (``build`` phase; glint builds and peer builds are cached under
``--cache`` keyed by dataset, config, metric and library version), then swept in a fresh
process (``search`` phase, :mod:`glint.bench.worker`) that streams its rows back. SVS runs in
its own virtualenv through ``bench/peers/svs_runner.py`` and its rows are merged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from .data import dataset_fingerprint, load_dataset
from .machine import cpu_count, machine_line, versions
from .schema import SCHEMA, Results, Row, check_row
from .systems import ConfigSpec, parse_config
from .worker import BUILD_INFO, SearchJob, build_phase, search_phase

__all__ = ["SUITES", "RunOptions", "run", "write_results"]

log = logging.getLogger(__name__)

HNSW_STORAGES = ("f32", "f16", "lvq8", "lvq4", "lvq4x4", "lvq4x8")
SUITES: dict[str, tuple[str, ...]] = {
    "hnsw": tuple(f"hnsw:m=32,ef_construction=200,storage={s}" for s in HNSW_STORAGES),
    "flat": ("flat", "flat:storage=f16"),
}
DEFAULT_PEERS = ("faiss-flat", "faiss-hnsw", "faiss-hnsw-sq8", "hnswlib", "svs")
SVS_RUNNER = Path(__file__).resolve().parent / "peers" / "svs_runner.py"
_COMMON_FIELDS = ("schema", "dataset", "queries", "nq", "machine", "threads_all")

Progress = Callable[[Row], None]


@dataclass
class RunOptions:
    """What ``glint-bench run`` was asked to do."""

    dataset: Path
    queries: str = "id"
    configs: list[str] = field(default_factory=list)
    svs: bool = False
    k: int = 10
    nq: int | None = None
    repeats: int = 3
    threads_all: int = field(default_factory=cpu_count)
    knob_values: tuple[int, ...] | None = None
    knob_sweeps: dict[str, tuple[int, ...]] = field(default_factory=dict)
    cache: Path | None = None
    rebuild: bool = False
    isolate: bool = True
    svs_python: str | None = None
    svs_args: str = ""
    metric: str | None = None
    out: Path | None = None
    command: str = ""


def _glint_source_hash() -> str:
    """A hash of the glint index code: a cached glint build is stale once that code changes."""
    import glint.index

    digest = hashlib.sha256()
    root = Path(glint.index.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _cache_key(options: RunOptions, config: ConfigSpec, metric: str) -> str:
    lib = versions()
    code = {"glint": _glint_source_hash(), "faiss": lib["faiss"], "hnswlib": lib["hnswlib"]}
    material = json.dumps(
        [
            dataset_fingerprint(options.dataset),
            config.system,
            config.build,
            config.build_params,
            metric,
            code[config.system],
        ]
    )
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{config.build}")[:60]
    digest = hashlib.sha256(material.encode()).hexdigest()[:12]
    return f"{Path(options.dataset).name}-{slug}-{metric}-{digest}"


def _run_worker(phase: str, job: SearchJob, on_line: Callable[[str], None]) -> None:
    """Run one worker phase in a fresh interpreter; stdout lines go to ``on_line``."""
    cmd = [sys.executable, "-m", "glint.bench.worker", phase, *job.argv()]
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    env = {**os.environ, "GLINT_BENCH_LOG_LEVEL": str(level)}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                on_line(line.strip())
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"worker {phase} exited with status {code} (its stderr is above)")


def _ensure_built(
    options: RunOptions, config: ConfigSpec, job: SearchJob, scratch: Path, metric: str
) -> Path:
    """The directory holding ``config``'s build, building it if it is not cached."""
    root = options.cache if options.cache is not None else scratch
    entry = Path(root) / _cache_key(options, config, metric)
    if (entry / BUILD_INFO).exists() and not options.rebuild:
        log.info("%s: using the cached build in %s", config.name, entry)
        return entry
    tmp = entry.with_name(entry.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_job = replace(job, dir=tmp)
    log.info("%s: building (%d threads)", config.name, job.threads_all)
    started = time.perf_counter()
    try:
        if options.isolate:
            _run_worker("build", build_job, lambda line: None)
        else:
            build_phase(build_job)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%s: built in %.1fs", config.name, time.perf_counter() - started)
    shutil.rmtree(entry, ignore_errors=True)
    tmp.rename(entry)
    return entry


def _sweep_config(
    options: RunOptions, text: str, scratch: Path, metric: str, machine: str, emit: Progress
) -> None:
    knob_values = options.knob_values
    knob = parse_config(text).knob
    if knob is not None and knob in options.knob_sweeps:
        knob_values = options.knob_sweeps[knob]
    config = parse_config(text, knob_values)
    job = SearchJob(
        dataset=options.dataset,
        queries=options.queries,
        config=text,
        dir=scratch,
        k=options.k,
        nq=options.nq,
        repeats=options.repeats,
        threads_all=options.threads_all,
        knob_values=knob_values,
        metric=options.metric,
        machine=machine,
    )
    job.dir = _ensure_built(options, config, job, scratch, metric)
    if options.isolate:

        def on_line(line: str) -> None:
            try:
                row = check_row(json.loads(line))
            except ValueError as exc:
                log.warning("%s: ignored worker output %r (%s)", config.name, line[:200], exc)
                return
            emit(row)

        _run_worker("search", job, on_line)
    else:
        for row in search_phase(job):
            emit(row)


def _svs_rows(
    options: RunOptions, nq: int, machine: str, emit: Progress
) -> tuple[list[str], str | None]:
    """Run the SVS runner in its own interpreter and merge its rows; returns notes (why it did
    not run, configs that failed) and the SVS version it reported."""
    python = options.svs_python or os.environ.get("GLINT_SVS_PYTHON")
    if not python:
        return [
            "svs: not run (no --svs-python and no GLINT_SVS_PYTHON; it needs its own venv)"
        ], None
    if not Path(python).exists():
        return [f"svs: not run ({python} does not exist)"], None
    if not SVS_RUNNER.exists():
        return [f"svs: not run ({SVS_RUNNER} does not exist)"], None
    cmd = [python, str(SVS_RUNNER), "--dataset", str(options.dataset)]
    cmd += ["--queries", options.queries, "--k", str(options.k), "--nq", str(nq)]
    cmd += ["--repeats", str(options.repeats), "--threads-all", str(options.threads_all)]
    if options.metric:
        cmd += ["--metric", options.metric]
    cmd += shlex.split(options.svs_args)
    log.info("running SVS: %s", shlex.join(cmd))
    defaults: dict[str, object] = {"schema": SCHEMA, "queries": options.queries, "nq": nq}
    defaults.update(machine=machine, threads_all=options.threads_all)
    notes: list[str] = []
    svs_version: str | None = None
    count = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip().startswith("{"):
                continue
            try:
                row = json.loads(line)
                svs_version = row.get("svs_version") or svs_version
                if "error" in row:
                    notes.append(f"svs {row.get('config')}: failed ({row['error']})")
                    continue
                for key, value in defaults.items():
                    row.setdefault(key, value)
                emit(check_row(row))
                count += 1
            except ValueError as exc:
                log.warning("svs: skipped a malformed row: %s", exc)
        code = proc.wait()
    if code != 0:
        notes.append(f"svs: runner exited with status {code} after {count} rows")
    elif not count:
        notes.append("svs: runner produced no rows")
    return notes, svs_version


def write_results(results: Results, path: Path) -> None:
    """Write the results file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def run(options: RunOptions, progress: Progress | None = None) -> Results:
    """Run every config (glint specs and peers) and SVS; the results file (if ``options.out``)
    is rewritten after each config, so an interrupted run keeps what it measured."""
    options = replace(options, dataset=Path(options.dataset).expanduser())
    if options.cache is not None:
        options.cache = Path(options.cache).expanduser()
    if options.k < 10:
        raise ValueError(f"k must be >= 10 to measure recall@10, got {options.k}")
    dataset = load_dataset(options.dataset, options.queries, nq=options.nq, metric=options.metric)
    machine = machine_line()
    results: Results = {
        "schema": SCHEMA,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "command": options.command,
        "versions": versions(),
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.path),
            "n": int(dataset.base.shape[0]),
            "dim": dataset.dim,
            "metric": dataset.metric,
            "queries": options.queries,
            "nq": dataset.nq,
            "k": options.k,
        },
        "notes": [],
        "rows": [],
    }
    nq, metric = dataset.nq, dataset.metric
    del dataset

    def emit(row: Row) -> None:
        results["rows"].append(row)
        if progress is not None:
            progress(row)

    with tempfile.TemporaryDirectory(prefix="glint-bench-") as scratch:
        for text in _dedupe(options.configs):
            try:
                _sweep_config(options, text, Path(scratch), metric, machine, emit)
            except Exception as exc:
                log.error("config %s failed: %s", text, exc)
                results["notes"].append(f"{text}: failed ({exc})")
            if options.out is not None:
                write_results(results, options.out)
    if options.svs:
        notes, svs_version = _svs_rows(options, nq, machine, emit)
        for note in notes:
            log.warning("%s", note)
        results["notes"] += notes
        if svs_version:
            results["versions"]["svs"] = svs_version
    if options.out is not None:
        write_results(results, options.out)
    return results


def _dedupe(items: Iterable[str]) -> list[str]:
    """Drop repeated configs (``faiss-hnsw`` and ``faiss-hnsw:m=32`` are the same config)."""
    seen: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            key = parse_config(item).name
        except Exception:  # reported when the config runs
            key = item
        seen.setdefault(key, item)
    return list(seen.values())
