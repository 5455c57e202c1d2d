"""An IVF-PQ index through the CLI, the server and the client: same answers, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glint.client import Client, InvalidRequestError
from glint.index import load_index

from testkit import exact_scores, glint_error, recall, recall_floor, run_glint

SPEC = "ivfpq:nlist=32,m=24,nbits=4,opq=false,rerank=lvq8"


@pytest.mark.slow
def test_ivfpq_cli_rest_and_in_process_agree(tmp_path: Path, data, glint_serve) -> None:
    points = data(6040, 48, seed=31)
    base, queries = points[:6000], points[6000:]
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "q.npy", queries)
    out = tmp_path / "pq"
    run_glint("build", tmp_path / "base.npy", "--index", SPEC, "--metric", "l2", "--out", out)
    info = json.loads(run_glint("info", out).stdout)
    assert info["spec"] == SPEC and info["ivfpq"]["code_bytes_per_vector"] == 12

    params = {"nprobe": 8, "rerank_k": 80}
    local = load_index(out).search(queries, k=10, **params)
    found = recall(local.ids, exact_scores(queries, base, "l2"))
    assert found >= recall_floor("e2e-ivfpq", SPEC, "l2", **params)

    searched = run_glint(
        "search", out, "--queries", tmp_path / "q.npy", "--k", "10",
        "--param", "nprobe=8", "--param", "rerank_k=80", "--out", tmp_path / "r.npz",
    )  # fmt: skip
    assert json.loads(searched.stdout)["queries"] == 40
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"], local.ids)

    url = glint_serve(str(out))
    with Client(url) as client:
        assert client.info("pq").spec == SPEC
        batch = client.search_batch("pq", queries, k=10, params=params)
        np.testing.assert_array_equal(batch.ids, local.ids)
        np.testing.assert_allclose(batch.scores, local.scores, rtol=1e-6)
        hits = client.search("pq", queries[3], k=10, params=params)
        assert [h.id for h in hits] == local.ids[3].tolist()
        with pytest.raises(InvalidRequestError, match="nprobe=33 is larger than nlist=32"):
            client.search("pq", queries[0], k=10, params={"nprobe": 33})
        with pytest.raises(InvalidRequestError, match="unknown key 'ef_search'"):
            client.search("pq", queries[0], k=10, params={"ef_search": 10})
        assert client.health().status == "ok"  # the server is still up


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ivfpq:m=10", "m=10 does not divide the dimension 48 (each sub-quantizer codes"),
        ("ivfpq:nlist=5000,m=24", "nlist=5000 is larger than the training sample (300 vectors)"),
        ("ivfpq:nbits=6", "invalid value '6' for key 'nbits'"),
    ],
)
def test_invalid_ivfpq_builds_fail_in_one_line(
    tmp_path: Path, data, spec: str, message: str
) -> None:
    np.save(tmp_path / "base.npy", data(300, 48, seed=32))
    out = tmp_path / "bad"
    line = glint_error("build", tmp_path / "base.npy", "--index", spec, "--out", out)
    assert message in line, line
    if "does not divide" in message:
        assert line.endswith("use one of 6, 8, 12, 16")
    assert not out.exists()
