"""A multi-vector (muvera) index through the CLI, the server and the client."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from glint.client import Client, InvalidRequestError
from glint.index import TokenSets, load_index

from testkit import chamfer_scores, glint_error, recall, recall_floor, run_glint

SPEC = "muvera:k_sim=3,dim_proj=8,r_reps=8,tokens=lvq8,inner=(hnsw:m=16,storage=lvq8)"


@pytest.mark.slow
def test_muvera_cli_rest_and_in_process_agree(
    tmp_path: Path, multivec, multivec_queries, glint_serve
) -> None:
    docs = multivec(800, 32, seed=41)
    queries = multivec_queries(docs, 12, seed=42)
    np.savez(tmp_path / "docs.npz", tokens=docs[0], offsets=docs[1])
    np.savez(tmp_path / "q.npz", tokens=queries[0], offsets=queries[1])
    out = tmp_path / "mv"
    run_glint("build", tmp_path / "docs.npz", "--index", SPEC, "--metric", "ip", "--out", out)
    info = json.loads(run_glint("info", out).stdout)
    assert info["multivector"] and info["count"] == 800 and info["dim"] == 32
    assert info["muvera"]["fde_dim"] == 8 * 8 * 8

    # A directory of tokens.npy + offsets.npy builds the same index.
    (tmp_path / "dir").mkdir()
    np.save(tmp_path / "dir" / "tokens.npy", docs[0])
    np.save(tmp_path / "dir" / "offsets.npy", docs[1])
    run_glint("build", tmp_path / "dir", "--index", SPEC, "--out", tmp_path / "mv2")

    params = {"candidates": 120, "ef_search": 120}
    local = load_index(out).search(queries, k=10, **params)
    again = load_index(tmp_path / "mv2").search(queries, k=10, **params)
    np.testing.assert_array_equal(again.ids, local.ids)
    found = recall(local.ids, chamfer_scores(docs, queries))
    assert found >= recall_floor("e2e-muvera", SPEC, "ip", **params)

    searched = run_glint(
        "search", out, "--queries", tmp_path / "q.npz", "--k", "10",
        "--param", "candidates=120", "--param", "ef_search=120", "--out", tmp_path / "r.npz",
    )  # fmt: skip
    line = json.loads(searched.stdout)
    assert line["queries"] == 12 and line["k"] == 10 and line["qps"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"], local.ids)

    sets = TokenSets(*queries)
    url = glint_serve(str(out))
    with Client(url) as client:
        info = client.info("mv")
        assert info.multivector and info.kind == "muvera"
        hits = client.search("mv", sets[3], k=10, params=params)
        assert [h.id for h in hits] == local.ids[3].tolist()
        np.testing.assert_allclose([h.score for h in hits], local.scores[3], rtol=1e-5)
        for binary in (True, False):
            batch = client.search_batch("mv", sets, k=10, params=params, binary=binary)
            np.testing.assert_array_equal(batch.ids, local.ids)
            np.testing.assert_allclose(batch.scores, local.scores, rtol=1e-5)
        listed = client.search_batch("mv", [sets[i] for i in range(4)], k=10, params=params)
        np.testing.assert_array_equal(listed.ids, local.ids[:4])

        with pytest.raises(InvalidRequestError, match="multi-vector; send a token matrix"):
            client.search("mv", sets[0][0], k=10)
        with pytest.raises(InvalidRequestError, match="multi-vector; send one token matrix"):
            client.search_batch("mv", sets[0], k=10)
        with pytest.raises(InvalidRequestError, match="token dimension 16 does not match 32") as e:
            client.search("mv", np.ones((3, 16), np.float32), k=10)
        assert (e.value.code, e.value.field) == ("dimension_mismatch", "vectors")
        short = [np.ones((3, 16), np.float32)] * 2
        with pytest.raises(InvalidRequestError, match="token dimension 16 does not match 32") as e:
            client.search_batch("mv", short, k=10, binary=False)
        assert (e.value.code, e.value.field) == ("dimension_mismatch", "token_sets")
        with pytest.raises(InvalidRequestError, match="unknown key 'nprobe'"):
            client.search("mv", sets[0], k=10, params={"nprobe": 2})
        # Raw bodies the client would refuse to send: a broken npz, bad offsets.
        bad = httpx.post(
            f"{url}/v1/collections/mv/search/batch",
            content=b"PK\x03\x04 not a zip",
            headers={"content-type": "application/x-npz"},
        )
        assert bad.status_code == 400 and "not a valid .npz" in bad.json()["error"]["message"]
        body = io.BytesIO()
        np.savez(body, tokens=queries[0], offsets=np.array([0, 5, 3, len(queries[0])]))
        bad = httpx.post(
            f"{url}/v1/collections/mv/search/batch",
            content=body.getvalue(),
            headers={"content-type": "application/x-npz"},
        )
        assert bad.status_code == 422 and "not monotone" in bad.json()["error"]["message"]
        assert client.health().status == "ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", "hnsw"], "token sets (multi-vector documents) need --index muvera"),
        (["--index", "muvera", "--metric", "l2"], "use metric ip or cos"),
        (["--index", "muvera:inner=(hnsw:x=1)"], "unknown key 'x' for index kind 'hnsw'"),
    ],
)
def test_invalid_muvera_builds_fail_in_one_line(
    tmp_path: Path, multivec, args: list[str], message: str
) -> None:
    docs = multivec(50, 16, seed=43)
    np.savez(tmp_path / "docs.npz", tokens=docs[0], offsets=docs[1])
    out = tmp_path / "bad"
    line = glint_error("build", tmp_path / "docs.npz", *args, "--out", out)
    assert message in line, line
    assert not out.exists()


def test_bad_offsets_file_fails_in_one_line(tmp_path: Path, multivec) -> None:
    tokens, offsets = multivec(20, 16, seed=44)
    np.savez(tmp_path / "docs.npz", tokens=tokens, offsets=offsets[:-1])
    line = glint_error("build", "docs.npz", "--index", "muvera", "--out", "x", cwd=tmp_path)
    assert line.endswith(
        f"offsets end at {int(offsets[-2])} but there are {int(offsets[-1])} tokens "
        "(the last offset must equal the number of token rows)"
    )
