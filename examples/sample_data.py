"""Sample input for the README's "From a file of vectors" steps.

    python examples/sample_data.py data/

writes data/vectors.npy (20,000 x 128 float32), data/ids.npy (int64), data/payloads.jsonl (one
JSON object per vector) and data/queries.npy (100 held-out queries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def make_vectors(n: int = 20_000, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Clustered vectors with a low intrinsic dimension, like real embeddings."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((16, dim)).astype(np.float32)
    centers = 3.0 * rng.standard_normal((64, 16)).astype(np.float32)
    latent = centers[rng.integers(0, 64, n)] + rng.standard_normal((n, 16)).astype(np.float32)
    return latent @ basis + 0.1 * rng.standard_normal((n, dim)).astype(np.float32)


def main(folder: Path, n: int = 20_000, queries: int = 100) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    x = make_vectors(n + queries)
    np.save(folder / "vectors.npy", x[:n])
    np.save(folder / "queries.npy", x[n:])
    np.save(folder / "ids.npy", 1_000_000 + np.arange(n, dtype=np.int64))
    langs = ("en", "de", "fr")
    with open(folder / "payloads.jsonl", "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"title": f"document {i}", "lang": langs[i % 3]}) + "\n" for i in range(n)
        )
    print(f"wrote {n} vectors, ids and payloads and {queries} queries to {folder}/")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/sample_data.py FOLDER")
    main(Path(sys.argv[1]))
