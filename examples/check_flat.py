"""Acceptance check for exact search at scale: CLI, in-process numpy and REST agree.

    python examples/check_flat.py BASE.npy QUERIES.npy [--metric ip] [--work DIR]

Builds BASE with `glint build --index flat`, runs `glint search`, compares the ids with a
numpy brute-force search (recall@10 and exact equality), then serves the index with
`glint serve` and runs the same queries through the client (JSON and binary batch).
Prints one JSON line of findings.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from glint.client import Client, TransportError

GLINT = str(Path(sys.executable).with_name("glint"))


def brute_force(queries: np.ndarray, base: np.ndarray, k: int, metric: str) -> np.ndarray:
    if metric == "cos":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ base.T
    if metric == "l2":
        scores = 2 * scores - (base * base).sum(1)[None, :]
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)])
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("queries")
    parser.add_argument("--metric", default="ip")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="glint-check-"))
    base = np.load(args.base).astype(np.float32)
    queries = np.load(args.queries).astype(np.float32)
    truth = brute_force(queries, base, args.k, args.metric)

    out = work / "flat"
    started = time.perf_counter()
    subprocess.run(
        [
            GLINT,
            "build",
            args.base,
            "--index",
            "flat",
            "--metric",
            args.metric,
            "--out",
            str(out),
            "--overwrite",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    build_s = time.perf_counter() - started
    line = subprocess.run(
        [
            GLINT,
            "search",
            str(out),
            "--queries",
            args.queries,
            "--k",
            str(args.k),
            "--out",
            str(work / "r.npz"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cli = json.loads(line)
    cli_ids = np.load(work / "r.npz")["ids"]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [GLINT, "serve", str(out), "--port", str(port)],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        with Client(f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if client.ready():
                        break
                except TransportError:  # not listening yet
                    time.sleep(0.1)
            binary = client.search_batch("flat", queries, k=args.k)
            as_json = client.search_batch("flat", queries, k=args.k, binary=False)
            single = [[h.id for h in client.search("flat", q, k=args.k)] for q in queries[:50]]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "n": int(base.shape[0]),
                "dim": int(base.shape[1]),
                "queries": int(queries.shape[0]),
                "metric": args.metric,
                "build_seconds": round(build_s, 2),
                "cli": cli,
                "recall_at_k_cli": recall(cli_ids, truth),
                "cli_ids_identical_to_numpy": bool(np.array_equal(cli_ids, truth)),
                "rows_differing_cli_vs_numpy": int((cli_ids != truth).any(axis=1).sum()),
                "rest_binary_identical_to_cli": bool(np.array_equal(binary.ids, cli_ids)),
                "rest_json_identical_to_cli": bool(np.array_equal(as_json.ids, cli_ids)),
                "rest_single_identical_to_cli": single == cli_ids[:50].tolist(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
