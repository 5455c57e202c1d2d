"""The main job, end to end: vectors on disk -> `glint build` -> `glint serve` -> client query.

Run with ``./dev demo``. Everything stays on 127.0.0.1 and in ./.demo/.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sample_data import make_vectors  # examples/ is this script's folder, on sys.path

from glint.client import Client, TransportError

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
GLINT = str(Path(sys.executable).with_name("glint"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    WORK.mkdir(exist_ok=True)
    vectors = make_vectors()
    np.save(WORK / "vectors.npy", vectors)
    with open(WORK / "payloads.jsonl", "w") as out:
        for i in range(len(vectors)):
            out.write(json.dumps({"title": f"document {i}", "cluster_hint": i % 64}) + "\n")
    print(f"wrote {len(vectors)} x {vectors.shape[1]} vectors to {WORK / 'vectors.npy'}")

    subprocess.run(
        [
            GLINT,
            "build",
            str(WORK / "vectors.npy"),
            "--index",
            "flat",
            "--metric",
            "cos",
            "--payloads",
            str(WORK / "payloads.jsonl"),
            "--out",
            str(WORK / "docs"),
            "--overwrite",
        ],
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [GLINT, "serve", str(WORK / "docs"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Client(f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.ready():
                        break
                except TransportError:  # not listening yet
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"server did not start:\n{server.stderr.read() if server.stderr else ''}")
                    return 1
                time.sleep(0.1)
            info = client.info("docs")
            print(
                f"serving {info.name}: {info.spec}, {info.count} x {info.dim}, metric {info.metric}"
            )
            query = vectors[42] + 0.05 * np.random.default_rng(1).standard_normal(vectors.shape[1])
            hits = client.search("docs", query.astype(np.float32), k=5, include=["payload"])
            print("top 5 hits for a query near document 42:")
            for hit in hits:
                print(f"  id={hit.id:<6} score={hit.score:.4f}  payload={hit.payload}")
            batch = client.search_batch("docs", vectors[:100], k=10)
            print(
                f"batch of 100 queries (binary transport): self-match rate "
                f"{float(np.mean(batch.ids[:, 0] == np.arange(100))):.2f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
