"""API keys against a real server: the full route x key matrix, and keys never reach a log."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import numpy as np
import pytest

from glint.client import AuthenticationError, Client, PermissionDeniedError
from glint.index import build_index
from glint.service.auth import KeyRing, parse_keys

from testkit import poll

DIM = 8
READ = "read-key-0123456789"
ADMIN = "admin-key-9876543210"


@pytest.fixture
def secured(tmp_path: Path, data, serve) -> tuple[str, Path]:
    build_index(data(200, DIM), "flat", "l2").save(tmp_path / "docs")
    build_index(data(200, DIM, seed=5), "flat", "l2").save(tmp_path / "other")
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the team's keys\nread {READ}\nadmin {ADMIN}  # ops\n")
    url = serve(index_dirs=[str(tmp_path / "docs")], api_keys_file=keys)
    return url, tmp_path


def _routes(root: Path) -> list[tuple[str, str, dict | None, str]]:
    """(method, path, json body, role needed) for every authenticated route."""
    query = {"vector": [0.0] * DIM, "k": 3}
    return [
        ("GET", "/v1/collections", None, "read"),
        ("GET", "/v1/collections/docs", None, "read"),
        ("POST", "/v1/collections/docs/search", query, "read"),
        ("POST", "/v1/collections/docs/search/batch", {"vectors": [[0.0] * DIM]}, "read"),
        ("POST", "/v1/collections/new/load", {"path": str(root / "other")}, "admin"),
        ("POST", "/v1/collections/docs/reload", {"path": str(root / "other")}, "admin"),
        ("DELETE", "/v1/collections/new", None, "admin"),
    ]


@pytest.mark.parametrize(
    ("header", "role"),
    [
        (None, None),
        (f"Bearer wrong-{READ}", None),
        (f"Basic {READ}", None),  # the right key under the wrong scheme
        ("Bearer", None),
        (f"Bearer {READ}", "read"),
        (f"bearer {ADMIN}", "admin"),  # the scheme is case-insensitive
    ],
)
def test_auth_matrix(secured, header: str | None, role: str | None) -> None:
    url, root = secured
    headers = {"authorization": header} if header else {}
    for method, path, body, needed in _routes(root):
        response = httpx.request(method, url + path, json=body, headers=headers)
        if role is None:
            expected, code = 401, "unauthorized"
        elif needed == "admin" and role == "read":
            expected, code = 403, "forbidden"
        else:
            expected, code = (204 if method == "DELETE" else 200), None
        assert response.status_code == expected, (method, path, header, response.text)
        if code is not None:
            assert response.json()["error"]["code"] == code
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    # probes and metrics need no key: orchestrators and scrapers call them
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(url + path).status_code == 200


def test_client_raises_typed_auth_errors(secured) -> None:
    url, root = secured
    with Client(url) as anonymous, pytest.raises(AuthenticationError) as info:
        anonymous.collections()
    assert info.value.code == "unauthorized" and "missing API key" in info.value.message
    with Client(url, api_key=READ) as reader:
        assert [c.name for c in reader.collections()] == ["docs"]
        with pytest.raises(PermissionDeniedError) as denied:
            reader.reload("docs", root / "other")
        assert "admin key" in denied.value.message
    with Client(url, api_key=ADMIN) as admin:
        assert admin.reload("docs", root / "other").path == str(root / "other")


def test_keys_never_reach_the_logs(secured, caplog: pytest.LogCaptureFixture) -> None:
    url, _ = secured
    caplog.set_level(logging.DEBUG)
    keys = (READ, ADMIN, "not-a-key-at-all")
    for i, key in enumerate(keys):
        httpx.post(
            f"{url}/v1/collections/docs/search",
            json={"vector": [0.0] * DIM},
            headers={"authorization": f"Bearer {key}", "x-request-id": f"auth-{i}"},
        )
    httpx.get(
        f"{url}/v1/collections",
        headers={"authorization": f"Bearer {READ}", "x-request-id": "auth-3"},
    )
    wanted = {f"auth-{i}" for i in range(4)}
    poll(  # records are written after the answers
        lambda: wanted <= {getattr(r, "request_id", None) for r in caplog.records},
        what="access records of auth-0 to auth-3",
    )
    statuses = sorted(r.status for r in caplog.records if getattr(r, "request_id", "") in wanted)
    assert statuses == [200, 200, 200, 401]  # one record per request...
    for record in caplog.records:  # ...and no key in any record, message or field
        text = record.getMessage() + repr(record.__dict__)
        for key in keys:
            assert key not in text


def test_key_file_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "keys.txt"
    bad.write_text(f"read {READ}\nwriter {ADMIN}\n")
    with pytest.raises(ValueError, match=r"keys\.txt: entry 2 is not 'ROLE KEY'"):
        KeyRing.from_sources(bad, None)
    with pytest.raises(ValueError, match="at least 8 characters"):
        parse_keys("admin short", source="GLINT_API_KEYS")
    with pytest.raises(ValueError, match="cannot read API keys"):
        KeyRing.from_sources(tmp_path / "missing.txt", None)
    ring = KeyRing.from_sources(None, f"read {READ}, admin {ADMIN}")
    assert (ring.role_of(READ), ring.role_of(ADMIN), ring.role_of(READ[:-1])) == (
        "read",
        "admin",
        None,
    )


def test_constant_time_comparison_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stored key is compared with ``hmac.compare_digest``, whichever matches."""
    import glint.service.auth as auth

    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    ring = KeyRing({READ: "read", ADMIN: "admin", "third-key-000": "read"})
    assert ring.role_of(READ) == "read"
    assert len(calls) == 3  # no early exit on the first match
    assert np.all([b == READ.encode() for _, b in calls])
