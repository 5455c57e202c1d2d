"""HTTPS: `glint serve --ssl-certfile/--ssl-keyfile` against a throwaway certificate authority
(trustme), with the clients verifying it; and the one-line refusals of a bad certificate set-up."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from glint.client import AsyncClient, Client, RequestTimeout, TransportError
from glint.index import build_index
from glint.service.tls import ServerTLS, server_tls

from testkit import GLINT, free_port, glint_error, poll, stop_process

DIM = 8
READ = "read-key-0123456789"
PASSPHRASE = b"correct horse battery staple"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate, for the clients
    cert: Path  # the server's chain, for 127.0.0.1 and localhost
    key: Path
    encrypted_key: Path  # the same key, under PASSPHRASE
    stranger_key: Path  # the key of another certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = Pki(
        *(folder / name for name in ("ca.pem", "cert.pem", "key.pem", "enc.pem", "other.pem"))
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(paths.cert), append=i > 0)
    leaf.private_key_pem.write_to_path(str(paths.key))
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    paths.encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    ca.issue_cert("elsewhere.example").private_key_pem.write_to_path(str(paths.stranger_key))
    return paths


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory, data) -> tuple[Path, np.ndarray]:
    base = data(300, DIM, seed=11)
    path = tmp_path_factory.mktemp("tls") / "docs"
    build_index(base, "flat", "l2").save(path)
    return path, base


@pytest.fixture(scope="module")
def https_server(
    pki: Pki, docs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``glint serve`` over HTTPS with a read key, bound to 0.0.0.0 (keys make that allowed);
    yields its https URL on 127.0.0.1 once /readyz answers over a verified connection."""
    path, _ = docs
    port = free_port()
    log = tmp_path_factory.mktemp("tls-log") / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLINT_")}
    env["GLINT_API_KEYS"] = f"read {READ}"
    argv = [GLINT, "serve", f"docs={path}", "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)]
    with open(log, "w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, text=True, env=env)
    url = f"https://127.0.0.1:{port}"
    try:
        with Client(url, verify=str(pki.ca), retries=0, timeout=1.0) as probe:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
                try:
                    return probe.ready()
                except TransportError:
                    return False

            poll(ready, timeout=60, interval=0.05, what=f"{url}/readyz over TLS")
        yield url, log
    finally:
        stop_process(proc)


def test_client_verifying_the_private_ca_searches(https_server, pki: Pki, docs) -> None:
    url, log = https_server
    _, base = docs
    index = build_index(base, "flat", "l2")
    queries = base[[3, 150, 299]] + 0.01
    ids, scores = index.search(queries, k=5)
    with Client(url, api_key=READ, verify=str(pki.ca)) as client:
        for query, want_ids, want_scores in zip(queries, ids, scores, strict=True):
            hits = client.search("docs", query, k=5)
            assert [hit.id for hit in hits] == want_ids.tolist()
            np.testing.assert_allclose([hit.score for hit in hits], want_scores, rtol=1e-5)
        batch = client.search_batch("docs", queries, k=5)
        np.testing.assert_array_equal(batch.ids, ids)
    with Client(url.replace("127.0.0.1", "localhost"), api_key=READ, verify=pki.ca) as client:
        assert client.collections()[0].name == "docs"  # the other name on the certificate
    assert f"Uvicorn running on https://0.0.0.0:{url.rsplit(':', 1)[1]}" in log.read_text()


def test_async_client_with_an_ssl_context_searches(https_server, pki: Pki, docs) -> None:
    url, _ = https_server
    _, base = docs

    async def main() -> list[int]:
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with AsyncClient(url, api_key=READ, verify=context) as client:
            return [hit.id for hit in await client.search("docs", base[42], k=3)]

    assert asyncio.run(main())[0] == 42


def test_default_trust_store_refuses_the_private_ca(
    https_server, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = https_server
    caplog.set_level(logging.INFO, logger="glint.client")
    with Client(url, api_key=READ) as client, pytest.raises(TransportError) as info:
        client.collections()
    assert not isinstance(info.value, RequestTimeout)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    # a refused certificate stays refused: not retried like a connection error
    assert not [r for r in caplog.records if "retry" in r.getMessage()]


def test_plain_http_to_the_tls_port_gets_no_answer(https_server) -> None:
    url, _ = https_server
    plain = url.replace("https://", "http://")
    with Client(plain, api_key=READ, retries=0) as client, pytest.raises(TransportError):
        client.collections()


def test_a_ca_bundle_that_is_not_one_is_a_value_error(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        Client("https://127.0.0.1:1", verify=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        AsyncClient("https://127.0.0.1:1", verify=str(pki.key))
    with pytest.raises(ValueError, match="verify must be"):
        Client("https://127.0.0.1:1", verify=1)  # type: ignore[arg-type]


# -- refusals at start, before anything is loaded or bound --------------------------------------


def test_one_file_without_the_other_is_one_line(pki: Pki, docs) -> None:
    path, _ = docs
    assert glint_error("serve", path, "--ssl-certfile", pki.cert) == (
        "glint: error: --ssl-certfile needs --ssl-keyfile FILE (or GLINT_SSL_KEYFILE) too: "
        "HTTPS takes a certificate and its private key"
    )


def test_a_missing_certificate_file_is_named(pki: Pki, docs, tmp_path: Path) -> None:
    path, _ = docs
    missing = tmp_path / "nope.pem"
    message = glint_error("serve", path, "--ssl-certfile", missing, "--ssl-keyfile", pki.key)
    assert (
        message
        == f"glint: error: --ssl-certfile {missing}: cannot read it (No such file or directory)"
    )


def test_bad_pairs_are_named(pki: Pki) -> None:
    with pytest.raises(ValueError, match=r"^GLINT_SSL_KEYFILE needs --ssl-certfile FILE"):
        server_tls(None, pki.key, cert_name="GLINT_SSL_CERTFILE", key_name="GLINT_SSL_KEYFILE")
    with pytest.raises(
        ValueError, match=f"^--ssl-certfile {re.escape(str(pki.key))} has no PEM certificate"
    ):
        server_tls(pki.key, pki.key)
    with pytest.raises(
        ValueError, match=f"^--ssl-keyfile {re.escape(str(pki.cert))} is not a PEM private key$"
    ):
        server_tls(pki.cert, pki.cert)
    with pytest.raises(
        ValueError, match=f"is not the private key of --ssl-certfile {re.escape(str(pki.cert))}$"
    ):
        server_tls(pki.cert, pki.stranger_key)


def test_an_encrypted_key_needs_its_passphrase_and_never_prompts(pki: Pki) -> None:
    with pytest.raises(ValueError, match="is encrypted: give its passphrase in GLINT_SSL_KEY"):
        server_tls(pki.cert, pki.encrypted_key)
    with pytest.raises(ValueError, match="GLINT_SSL_KEYFILE_PASSWORD does not decrypt it"):
        server_tls(pki.cert, pki.encrypted_key, "wrong")
    tls = server_tls(pki.cert, pki.encrypted_key, PASSPHRASE.decode())
    assert tls == ServerTLS(str(pki.cert), str(pki.encrypted_key), PASSPHRASE.decode())
    assert server_tls(None, None) == ServerTLS(None, None, None)  # plain HTTP
