"""Vectors on disk -> `glint build` -> `glint serve` -> client: every path gives the same ids."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from glint.client import AsyncClient, Client, TransportError
from glint.index import load_index

from testkit import free_port, run_glint


def _build(tmp_path: Path, base: np.ndarray, metric: str) -> Path:
    np.save(tmp_path / "base.npy", base)
    (tmp_path / "payloads.jsonl").write_text(
        "".join(json.dumps({"title": f"doc {i}"}) + "\n" for i in range(len(base)))
    )
    out = tmp_path / "docs"
    run_glint(
        "build",
        str(tmp_path / "base.npy"),
        "--index",
        "flat",
        "--metric",
        metric,
        "--payloads",
        str(tmp_path / "payloads.jsonl"),
        "--out",
        str(out),
    )
    return out


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.slow
def test_cli_inprocess_rest_agree(tmp_path: Path, data, exact, glint_serve, metric: str) -> None:
    base, queries = data(5000, 64, seed=11), data(100, 64, seed=12)
    out = _build(tmp_path, base, metric)
    truth = exact(queries, base, 10, metric)

    np.save(tmp_path / "q.npy", queries)
    run_glint(
        "search",
        str(out),
        "--queries",
        str(tmp_path / "q.npy"),
        "--k",
        "10",
        "--out",
        str(tmp_path / "r.npz"),
    )
    cli_ids = np.load(tmp_path / "r.npz")["ids"]
    np.testing.assert_array_equal(cli_ids, truth)  # recall@10 = 1.0, same order
    in_process = load_index(out).search(queries, k=10)
    np.testing.assert_array_equal(in_process.ids, truth)

    url = glint_serve(str(out))
    with Client(url) as client:
        assert [c.name for c in client.collections()] == ["docs"]
        info = client.info("docs")
        assert (info.count, info.dim, info.metric) == (5000, 64, metric)
        binary = client.search_batch("docs", queries, k=10)
        as_json = client.search_batch("docs", queries, k=10, binary=False)
        np.testing.assert_array_equal(binary.ids, truth)
        np.testing.assert_array_equal(as_json.ids, truth)
        np.testing.assert_allclose(binary.scores, in_process.scores, rtol=1e-5, atol=1e-5)
        for row in (0, 57, 99):
            hits = client.search("docs", queries[row], k=10, include=["payload"])
            assert [h.id for h in hits] == truth[row].tolist()
            assert hits[0].payload == {"title": f"doc {truth[row][0]}"}

    async def async_search() -> list[int]:
        async with AsyncClient(url) as client:
            hits = await client.search("docs", queries[3], k=10)
            return [h.id for h in hits]

    assert asyncio.run(async_search()) == truth[3].tolist()


def test_stopped_server_gives_typed_error_quickly() -> None:
    port = free_port()  # nothing listens here
    with (
        Client(f"http://127.0.0.1:{port}", timeout=2.0, retries=0) as client,
        pytest.raises(TransportError),
    ):
        client.search("docs", np.zeros(4, np.float32), k=1)
