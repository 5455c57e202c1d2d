"""A Locust user for glint, for those who drive load with Locust rather than ``glint loadtest``::

    GLINT_COLLECTION=docs locust -f loadtest/locustfile.py --host http://127.0.0.1:8000

Settings come from the environment: ``GLINT_COLLECTION`` (default ``docs``),
``GLINT_API_KEY`` (sent as a bearer key), ``GLINT_K`` (default 10), ``GLINT_MODE`` (``single``:
one JSON query per request, the default; ``batch``: binary ``.npy`` batches answered as
``.npz``), ``GLINT_BATCH`` (queries per batch, default 32) and ``GLINT_FILTER`` (a filter's
JSON, sent with every search). Each user reads the collection's dimension on start and sends
random unit vectors, back to back.

Locust is not a dependency of glint and nothing in glint imports this file; it needs only
locust and numpy. Multi-vector collections are not covered here (use ``glint loadtest``).
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import numpy as np

# locust is no dependency of glint: without it the three type ignores here are needed, with it none
from locust import HttpUser, constant, task

from glint.wire import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE, encode_npy

COLLECTION = os.environ.get("GLINT_COLLECTION", "docs")
API_KEY = os.environ.get("GLINT_API_KEY", "")
K = int(os.environ.get("GLINT_K", "10"))
MODE = os.environ.get("GLINT_MODE", "single")
BATCH = int(os.environ.get("GLINT_BATCH", "32"))
FILTER = json.loads(os.environ["GLINT_FILTER"]) if os.environ.get("GLINT_FILTER") else None
if MODE not in ("single", "batch"):
    raise ValueError(f"GLINT_MODE must be 'single' or 'batch', got {MODE!r}")

BASE = f"/v1/collections/{quote(COLLECTION, safe='')}"


class GlintUser(HttpUser):  # type: ignore[misc, unused-ignore]  # HttpUser: Any without locust
    wait_time = constant(0)  # a closed loop: the next request as soon as one is answered

    def on_start(self) -> None:
        if API_KEY:
            self.client.headers["Authorization"] = f"Bearer {API_KEY}"
        response = self.client.get(BASE, name="/v1/collections/[name]")
        response.raise_for_status()
        info = response.json()
        if info.get("multivector"):
            raise RuntimeError(f"{COLLECTION!r} is multi-vector: use `glint loadtest` instead")
        self.dim = int(info["dim"])
        self.rng = np.random.default_rng()

    def _unit(self, n: int) -> np.ndarray:
        rows = self.rng.standard_normal((n, self.dim)).astype(np.float32)
        unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return unit

    @task  # type: ignore[untyped-decorator, unused-ignore]  # task: Any without locust
    def search(self) -> None:
        if MODE == "single":
            body = {"vector": self._unit(1)[0].tolist(), "k": K, "filter": FILTER}
            self.client.post(f"{BASE}/search", json=body, name="search")
            return
        query = {"k": K} if FILTER is None else {"k": K, "filter": json.dumps(FILTER)}
        self.client.post(
            f"{BASE}/search/batch",
            params=query,
            data=encode_npy(self._unit(BATCH)),
            headers={"Content-Type": NPY_MEDIA_TYPE, "Accept": NPZ_MEDIA_TYPE},
            name=f"search/batch x{BATCH} (binary)",
        )
