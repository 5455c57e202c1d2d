"""An LVQ-compressed HNSW index through the CLI, the server and the client: same answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glint.client import Client, InvalidRequestError
from glint.index import load_index

from testkit import exact_scores, recall, recall_floor, run_glint

SPEC = "hnsw:m=16,ef_construction=100,storage=lvq4x8"


@pytest.mark.slow
def test_hnsw_in_process_and_rest_agree(tmp_path: Path, data, glint_serve) -> None:
    base, queries = data(4000, 48, seed=21), data(60, 48, seed=22)
    np.save(tmp_path / "base.npy", base)
    out = tmp_path / "docs"
    run_glint(
        "build",
        str(tmp_path / "base.npy"),
        "--index",
        SPEC,
        "--metric",
        "l2",
        "--out",
        str(out),
    )
    params = {"ef_search": 80, "rerank": 40}
    local = load_index(out).search(queries, k=10, **params)
    found = recall(local.ids, exact_scores(queries, base, "l2"))
    assert found >= recall_floor("e2e-hnsw", SPEC, "l2", **params)

    np.save(tmp_path / "q.npy", queries)
    run_glint(
        "search",
        str(out),
        "--queries",
        str(tmp_path / "q.npy"),
        "--k",
        "10",
        "--param",
        "ef_search=80",
        "--param",
        "rerank=40",
        "--out",
        str(tmp_path / "r.npz"),
    )
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"], local.ids)

    url = glint_serve(str(out))
    with Client(url) as client:
        info = client.info("docs")
        assert info.spec == SPEC
        assert (info.count, info.dim, info.metric) == (4000, 48, "l2")
        batch = client.search_batch("docs", queries, k=10, params=params)
        np.testing.assert_array_equal(batch.ids, local.ids)
        np.testing.assert_allclose(batch.scores, local.scores, rtol=1e-6)
        hits = client.search("docs", queries[5], k=10, params=params)
        assert [h.id for h in hits] == local.ids[5].tolist()
        with pytest.raises(InvalidRequestError, match="ef_search"):
            client.search("docs", queries[0], k=10, params={"ef_search": 0})
        with pytest.raises(InvalidRequestError, match="unknown key 'nprobe'"):
            client.search("docs", queries[0], k=10, params={"nprobe": 4})
