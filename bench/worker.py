"""One config in one process: ``build`` writes an index directory, ``search`` sweeps it.

``python -m glint.bench.worker search --dataset DIR --queries id --config SPEC --dir DIR ...``
prints one JSON row (schema ``glint-bench/1``) per knob value on stdout, as each is measured.
The harness (:mod:`glint.bench.runner`) runs both phases in fresh subprocesses so that the
resident-memory figure of the search phase is not polluted by the build or by other configs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glint.index.threads import limit_blas_threads

from .data import load_dataset, recall_at_10
from .machine import ResidentProbe
from .measure import measure_point
from .schema import SCHEMA, Row
from .systems import ConfigSpec, build_into, import_system, load_searcher, parse_config

__all__ = ["BUILD_INFO", "SearchJob", "build_phase", "main", "search_phase"]

log = logging.getLogger("glint.bench.worker")

BUILD_INFO = "build.json"
STOP_RECALL = 0.999
STOP_QPS_FRACTION = 1 / 50


@dataclass
class SearchJob:
    """Everything a search phase needs; mirrored by the worker's command-line options."""

    dataset: Path
    queries: str
    config: str
    dir: Path
    k: int = 10
    nq: int | None = None
    repeats: int = 3
    threads_all: int = 1
    knob_values: tuple[int, ...] | None = None
    metric: str | None = None
    machine: str = ""

    def argv(self) -> list[str]:
        out = ["--dataset", str(self.dataset), "--queries", self.queries]
        out += ["--config", self.config, "--dir", str(self.dir), "--k", str(self.k)]
        out += ["--repeats", str(self.repeats), "--threads-all", str(self.threads_all)]
        out += ["--machine", self.machine]
        if self.nq is not None:
            out += ["--nq", str(self.nq)]
        if self.knob_values is not None:
            out += ["--knob-values", ",".join(map(str, self.knob_values))]
        if self.metric is not None:
            out += ["--metric", self.metric]
        return out


def build_phase(job: SearchJob) -> dict[str, Any]:
    """Build the job's config into ``job.dir`` and write its build info (``build.json``) last,
    so that a directory with ``build.json`` is a complete cache entry."""
    config = parse_config(job.config, job.knob_values)
    dataset = load_dataset(job.dataset, job.queries, nq=1, metric=job.metric)
    log.info("building %s over %s %s", config.name, dataset.name, dataset.base.shape)
    info = build_into(config, dataset.base, dataset.metric, job.dir, job.threads_all)
    (job.dir / BUILD_INFO).write_text(json.dumps(info, indent=1) + "\n")
    return info


def search_phase(job: SearchJob) -> Iterator[Row]:
    """Load the built index and measure each knob value; yields one row per point.

    The sweep stops early once recall@10 >= 0.999 or the 1-thread QPS falls below 1/50 of
    the first point's.
    """
    config: ConfigSpec = parse_config(job.config, job.knob_values)
    dataset = load_dataset(job.dataset, job.queries, nq=job.nq, metric=job.metric)
    info = json.loads((job.dir / BUILD_INFO).read_text())
    import_system(config)
    probe = ResidentProbe(job.dir)
    probe.start()
    searcher = load_searcher(config, job.dir, dataset.metric, dataset.dim, info)
    probe.loaded()
    first_qps: float | None = None
    for value in config.sweep():
        point = measure_point(
            searcher,
            dataset.queries,
            job.k,
            value,
            repeats=job.repeats,
            threads_all=job.threads_all,
        )
        resident = probe.bytes()
        recall = recall_at_10(point.ids, dataset.gt, dataset.base, dataset.queries, dataset.metric)
        yield {
            "schema": SCHEMA,
            "dataset": dataset.name,
            "queries": job.queries,
            "nq": dataset.nq,
            "system": config.system,  # type: ignore[typeddict-item]
            "config": config.name,
            "knob": config.knob,
            "knob_value": value,
            "recall_at_10": round(recall, 6),
            "qps_1t": round(point.qps_1t, 2),
            "qps_all": round(point.qps_all, 2),
            "threads_all": job.threads_all,
            "p50_ms": round(point.p50_ms, 4),
            "p99_ms": round(point.p99_ms, 4),
            "build_seconds": round(float(info["build_seconds"]), 3),
            "memory_bytes": int(searcher.memory_bytes),
            "disk_bytes": None if searcher.disk_bytes is None else int(searcher.disk_bytes),
            "rss_bytes": resident,
            "machine": job.machine,
        }
        first_qps = point.qps_1t if first_qps is None else first_qps
        if recall >= STOP_RECALL or point.qps_1t < first_qps * STOP_QPS_FRACTION:
            break


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m glint.bench.worker", description=__doc__)
    p.add_argument("phase", choices=["build", "search"])
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--queries", default="id")
    p.add_argument("--config", required=True, help="a glint spec or a peer config")
    p.add_argument("--dir", type=Path, required=True, help="the index directory")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--nq", type=int)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads-all", type=int, default=os.cpu_count() or 1)
    p.add_argument("--knob-values", type=lambda s: tuple(int(v) for v in s.split(",") if v))
    p.add_argument("--metric", choices=["ip", "l2", "cos"])
    p.add_argument("--machine", default="")
    return p


def main(argv: list[str] | None = None, emit: Callable[[str], None] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    phase = args.pop("phase")
    level = os.environ.get("GLINT_BENCH_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    job = SearchJob(**args)
    if parse_config(job.config).system == "glint":
        # glint parallelises over query chunks itself, as the CLI and server run it
        limit_blas_threads(1)
    write = emit or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))
    if phase == "build":
        write(json.dumps(build_phase(job)))
    else:
        for row in search_phase(job):
            write(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
