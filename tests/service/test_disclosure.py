"""What the server tells whom (issue 15, item 8): the open probes name failed collections but
not why (the reasons show the server's paths), the API docs are behind the read key unless
configured otherwise, and admin loads are no oracle for which paths exist."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from glint.index import build_index

DIM = 8
READ = "read-key-0123456789"
ADMIN = "admin-key-9876543210"
KEYS = f"read {READ}, admin {ADMIN}"
AS_READER = {"authorization": f"Bearer {READ}"}
AS_ADMIN = {"authorization": f"Bearer {ADMIN}"}
NO_INDEX = (
    "no glint index can be loaded from this path (it is missing, unreadable, or holds no "
    "glint manifest)"
)


def _damage(src: Path, dst: Path) -> Path:
    """A copy of the index at ``src`` whose largest array has one byte flipped (same size)."""
    shutil.copytree(src, dst)
    victim = max((p for p in dst.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[-5] ^= 0xFF
    victim.write_bytes(bytes(raw))
    return dst


@pytest.fixture
def indices(tmp_path: Path, data) -> dict[str, Path]:
    good = tmp_path / "good"
    build_index(data(200, DIM), "flat", "l2").save(good)
    return {"good": good, "damaged": _damage(good, tmp_path / "damaged")}


@pytest.fixture
def degraded(indices: dict[str, Path], serve) -> str:
    """A server with keys whose start-up load of ``broken`` failed (a checksum)."""
    dirs = [f"docs={indices['good']}", f"broken={indices['damaged']}"]
    return str(serve(index_dirs=dirs, api_keys=KEYS))


@pytest.mark.parametrize("headers", [{}, AS_READER, {"authorization": "Bearer wrong-key-123"}])
def test_probes_name_failed_collections_without_reasons(
    degraded: str, indices: dict[str, Path], headers: dict[str, str]
) -> None:
    for probe, status in (("/readyz", "degraded"), ("/healthz", "ok")):
        response = httpx.get(degraded + probe, headers=headers)
        assert response.status_code == 200  # a wrong key is no error: probes answer everyone
        assert response.json() == {
            "status": status,
            "collections": 1,
            "loading": [],
            "failed": {"broken": "failed"},
        }
        assert str(indices["good"].parent) not in response.text


def test_admins_read_the_reasons(degraded: str, indices: dict[str, Path]) -> None:
    body = httpx.get(f"{degraded}/readyz", headers=AS_ADMIN).json()
    assert body["status"] == "degraded" and list(body["failed"]) == ["broken"]
    reason = body["failed"]["broken"]
    assert reason.startswith(str(indices["damaged"]))  # as the operator gave it
    assert "checksum does not match" in reason and "was not loaded" in reason


def test_a_failed_collection_answers_without_its_reason(
    degraded: str, indices: dict[str, Path]
) -> None:
    url = f"{degraded}/v1/collections/broken/search"
    response = httpx.post(url, json={"vector": [1.0] * DIM}, headers=AS_READER)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["field"] == "name"
    assert "failed to load at start-up" in error["message"]
    assert str(indices["good"].parent) not in response.text


@pytest.mark.parametrize(
    ("mode", "keys", "anonymous", "reader"),
    [
        ("read", KEYS, 401, 200),
        ("open", KEYS, 200, 200),
        ("off", KEYS, 404, 404),
        ("read", None, 200, 200),  # no keys configured: every route is open, these too
    ],
)
def test_docs_routes_follow_the_setting(
    indices: dict[str, Path], serve, mode: str, keys: str | None, anonymous: int, reader: int
) -> None:
    url = serve(index_dirs=[str(indices["good"])], api_keys=keys, docs=mode)
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        for headers, expected in (({}, anonymous), (AS_READER, reader), (AS_ADMIN, reader)):
            response = httpx.get(url + path, headers=headers)
            assert response.status_code == expected, (path, headers, response.text[:200])
            if expected != 200:
                assert response.headers["content-type"] == "application/json"
                assert set(response.json()) == {"error"}
            head = httpx.head(url + path, headers=headers)
            assert head.status_code == expected and head.content == b""
    if reader == 200:
        schema = httpx.get(f"{url}/openapi.json", headers=AS_READER).json()
        assert "/v1/collections/{name}/search" in schema["paths"]
        assert not {"/docs", "/redoc", "/openapi.json"} & set(schema["paths"])
        page = httpx.get(f"{url}/docs", headers=AS_READER)
        assert "text/html" in page.headers["content-type"] and "/openapi.json" in page.text


def _not_indices(root: Path) -> dict[str, Path]:
    """Paths that hold no glint index, in every way a path can fail to."""
    (root / "a-file").write_text("secret\n")
    (root / "empty-dir").mkdir()
    (root / "foreign").mkdir()
    (root / "foreign" / "manifest.json").write_text(json.dumps({"format": "other-tool"}))
    (root / "garbled").mkdir()
    (root / "garbled" / "manifest.json").write_bytes(b"\x00\xff not json")
    paths = {name: root / name for name in ("missing", "a-file", "empty-dir", "foreign", "garbled")}
    paths["under-a-file"] = root / "a-file" / "sub"
    if os.geteuid() != 0:  # root reads what mode 000 forbids
        (root / "locked").mkdir()
        shutil.copy(root / "foreign" / "manifest.json", root / "locked" / "manifest.json")
        (root / "locked").chmod(0)
        paths["locked"] = root / "locked"
    return paths


def test_admin_loads_are_no_oracle_for_paths(
    indices: dict[str, Path], tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing, a file, no manifest, a foreign or garbled manifest, unreadable: one answer,
    naming the path as it was sent (relative ones stay relative: no working directory)."""
    url = serve(index_dirs=[f"docs={indices['good']}"], api_keys=KEYS)
    root = tmp_path / "probe"
    root.mkdir()
    monkeypatch.chdir(tmp_path)  # the server's working directory too (it runs in this process)
    try:
        answers = set()
        for path in _not_indices(root).values():
            for sent in (str(path), os.path.relpath(path, tmp_path)):
                response = httpx.post(
                    f"{url}/v1/collections/fresh/load", json={"path": sent}, headers=AS_ADMIN
                )
                assert response.status_code == 422, response.text
                error = response.json()["error"]
                assert (error["code"], error["field"]) == ("invalid_index", "path")
                assert error["message"] == (
                    f"{sent}: {NO_INDEX}; collection 'fresh' was not loaded"
                )
                if not os.path.isabs(sent):
                    assert str(tmp_path) not in response.text
                answers.add(response.text.replace(sent, "PATH"))
        assert len(answers) == 1
        reload = httpx.post(
            f"{url}/v1/collections/docs/reload", json={"path": "probe/missing"}, headers=AS_ADMIN
        )
        assert reload.status_code == 422
        assert reload.json()["error"]["message"] == (
            f"probe/missing: {NO_INDEX}; collection 'docs' still serves its current index"
        )
    finally:
        if (root / "locked").exists():
            (root / "locked").chmod(0o755)


def test_a_damaged_index_is_described_relative_to_the_path_sent(
    indices: dict[str, Path], tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = serve(index_dirs=[f"docs={indices['good']}"], api_keys=KEYS)
    monkeypatch.chdir(tmp_path)
    response = httpx.post(
        f"{url}/v1/collections/docs/reload", json={"path": "damaged"}, headers=AS_ADMIN
    )
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("damaged/") and "checksum does not match" in message
    assert message.endswith("; collection 'docs' still serves its current index")
    assert str(tmp_path) not in response.text


def test_collection_info_shows_server_paths_to_admins_only(
    indices: dict[str, Path], tmp_path: Path, data, serve
) -> None:
    """Read keys see where an index lives only by its directory's name (and its build input
    by its file name); admins see the full paths."""
    built = tmp_path / "deep" / "place" / "docs"
    built.parent.mkdir(parents=True)
    build_index(data(50, DIM), "flat", "l2", source=str(tmp_path / "inputs" / "vectors.npy")).save(
        built
    )
    server = str(serve(index_dirs=[f"docs={built}"], api_keys=KEYS))
    as_reader = httpx.get(f"{server}/v1/collections/docs", headers=AS_READER).json()
    assert as_reader["path"] == "docs"
    assert as_reader["build"]["source"] == "vectors.npy"
    listed = httpx.get(f"{server}/v1/collections", headers=AS_READER).json()["collections"]
    assert [c["path"] for c in listed] == ["docs"]
    as_admin = httpx.get(f"{server}/v1/collections/docs", headers=AS_ADMIN).json()
    assert as_admin["path"] == str(built)
    assert as_admin["build"]["source"] == str(tmp_path / "inputs" / "vectors.npy")
