#!/usr/bin/env bash
# The Docker deployment, tested for real: build the image, run docker/compose.yaml (the indexer
# builds a mounted .npy with ids and payloads, the server serves it with API keys), wait for
# the HEALTHCHECK to turn healthy, and query the published port on 127.0.0.1 with the typed
# client from the host. Prints the image size, the time to healthy and the hits.
#
#   docker/smoke.sh [--start-engine]
#     --start-engine  start dockerd when none answers (needs root; for CI)
#   GLINT_PYTHON      a Python with glint's client installed (default .venv/bin/python)
#   GLINT_BASE        the image to build on (default: python:3.11-slim if present, else a
#                     local Debian base made by docker/base-image.sh)
#
# Exit status: 0 passed, 1 failed, 3 skipped (no Docker engine here; the reason is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${GLINT_PYTHON:-.venv/bin/python}"
IMAGE="glint:smoke-$$"
PROJECT="glint-smoke-$$"
say() { echo "docker smoke: $*"; }
skip() { say "SKIPPED: $*"; exit 3; }

# ---- an engine, or a clear reason why not
engine_started=""
work=""
cleanup() {
    if [ -n "$work" ]; then
        compose -p "$PROJECT" -f docker/compose.yaml down -v --remove-orphans >/dev/null 2>&1 || true
        docker image rm -f "$IMAGE" >/dev/null 2>&1 || true
        docker image prune -f --filter label=glint.stage=install >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
    if [ -n "$engine_started" ]; then kill "$engine_started" 2>/dev/null || true; fi
}
trap cleanup EXIT
"$PY" -c "import numpy, glint.client" 2>/dev/null \
    || { say "FAILED: $PY cannot import numpy and glint.client (set GLINT_PYTHON)"; exit 1; }
if ! docker info >/dev/null 2>&1; then
    if [ "${1:-}" != "--start-engine" ]; then
        skip "no Docker engine answers (run with --start-engine as root to start dockerd)"
    fi
    command -v dockerd >/dev/null || skip "dockerd is not installed (apt-get install docker.io)"
    [ "$(id -u)" = 0 ] || skip "dockerd needs root to start"
    dockerd >/tmp/glint-smoke-dockerd.log 2>&1 &
    engine_started=$!
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 \
        || skip "dockerd did not start: $(tail -1 /tmp/glint-smoke-dockerd.log)"
fi
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
    || skip "no compose tool (apt-get install docker-compose)"
compose() {
    if command -v docker-compose >/dev/null; then docker-compose "$@"; else docker compose "$@"; fi
}

work="$(mktemp -d /tmp/glint-smoke.XXXXXX)"

# ---- the image
base="${GLINT_BASE:-}"
if [ -z "$base" ]; then
    if docker image inspect python:3.11-slim >/dev/null 2>&1 \
        || docker pull -q python:3.11-slim >/dev/null 2>&1; then
        base=python:3.11-slim
    else
        command -v debootstrap >/dev/null || skip "no base image: python:3.11-slim cannot be \
pulled and debootstrap is not installed (apt-get install debootstrap)"
        docker/base-image.sh glint-base:bookworm \
            || skip "no base image: python:3.11-slim cannot be pulled and debootstrap failed \
(no Debian mirror?)"
        base=glint-base:bookworm
    fi
fi
say "building $IMAGE on $base"
started=$(date +%s)
docker build -q --network host --build-arg "BASE=$base" -f docker/Dockerfile -t "$IMAGE" . \
    >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
say "built in $(( $(date +%s) - started )) s; image size $(docker image inspect -f '{{.Size}}' \
"$IMAGE" | numfmt --to=iec --format=%.1f) (base $(docker image inspect -f '{{.Size}}' "$base" \
| numfmt --to=iec --format=%.1f))"
# What the runtime image must not carry: the benchmark harness, compilers.
docker run --rm --entrypoint /bin/sh "$IMAGE" -c '
    python -c "import glint.index, glint.service, glint.client, h5py" || exit 1
    python -c "import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({\"vector\": [[1.0, 2.0]]}), \"/tmp/t.parquet\")
assert pq.ParquetFile(\"/tmp/t.parquet\").metadata.num_rows == 1" || exit 1
    if python -c "import glint.bench" 2>/dev/null; then echo "glint.bench is in the image"; exit 1; fi
    for tool in gcc cc g++ clang; do
        if command -v $tool >/dev/null; then echo "$tool is in the image"; exit 1; fi
    done' || { say "FAILED: the image carries what it should not, or lacks glint"; exit 1; }

# ---- safe defaults: a server on 0.0.0.0 without keys refuses to start, in one line
if out=$(docker run --rm "$IMAGE" serve /indexes/docs --host 0.0.0.0 2>&1); then
    say "FAILED: serve --host 0.0.0.0 without keys started"; exit 1
fi
case "$out" in
    *"without API keys would serve anyone"*) ;;
    *) say "FAILED: not the refusal for want of keys: $out"; exit 1 ;;
esac
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { say "FAILED: not one line: $out"; exit 1; }
say "no keys on 0.0.0.0: refused ($out)"

# ---- input: vectors, ids and payloads, readable by the image's non-root user
"$PY" - "$work/input" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
out = Path(sys.argv[1]); out.mkdir()
rng = np.random.default_rng(7)
x = (rng.standard_normal((2000, 16)) @ rng.standard_normal((16, 48))).astype(np.float32)
np.save(out / "vectors.npy", x)
np.save(out / "ids.npy", 100_000 + 7 * np.arange(2000, dtype=np.int64))
with open(out / "payloads.jsonl", "w") as f:
    f.writelines(json.dumps({"title": f"doc {i}"}) + "\n" for i in range(2000))
EOF
chmod -R a+rX "$work"

# ---- compose: validate, then run it
port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export GLINT_INPUT="$work/input" GLINT_IMAGE="$IMAGE" GLINT_HOST_PORT="$port" \
    GLINT_API_KEYS="read smoke-read-key-1, admin smoke-admin-key-1" GLINT_METRIC=cos \
    GLINT_INDEX_SPEC="hnsw:m=16,storage=lvq4x8"
compose -f docker/compose.yaml config -q || { say "FAILED: compose.yaml does not validate"; exit 1; }
say "compose.yaml validates"
started=$(date +%s)
compose -p "$PROJECT" -f docker/compose.yaml up -d --no-build >"$work/up.log" 2>&1 \
    || { cat "$work/up.log"; compose -p "$PROJECT" -f docker/compose.yaml logs; exit 1; }
server="$(compose -p "$PROJECT" -f docker/compose.yaml ps -q server)"
status=starting
for _ in $(seq 180); do
    status="$(docker inspect -f '{{.State.Health.Status}}' "$server")"
    [ "$status" = healthy ] && break
    [ "$(docker inspect -f '{{.State.Running}}' "$server")" = true ] || break
    sleep 1
done
if [ "$status" != healthy ]; then
    say "FAILED: server is $status after $(( $(date +%s) - started )) s"
    compose -p "$PROJECT" -f docker/compose.yaml logs --tail 40
    exit 1
fi
say "indexer done and server healthy $(( $(date +%s) - started )) s after compose up"

# ---- the typed client, on the host, through the published port
"$PY" - "$port" "$work/input" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from glint.client import AuthenticationError, Client
port, folder = sys.argv[1], Path(sys.argv[2])
x, ids = np.load(folder / "vectors.npy"), np.load(folder / "ids.npy")
unit = x / np.linalg.norm(x, axis=1, keepdims=True)
exact = np.argsort(-(unit[:200] @ unit.T), axis=1)[:, :10]
url = f"http://127.0.0.1:{port}"
with Client(url, api_key="smoke-read-key-1") as client:
    info = client.info("docs")
    assert (info.count, info.dim, info.metric) == (2000, 48, "cos"), info
    hits = client.search("docs", x[3], k=3, include=["payload"])
    print("docker smoke: hits for row 3:", [(h.id, round(h.score, 4), h.payload) for h in hits])
    assert hits[0].id == ids[3] and hits[0].payload == {"title": "doc 3"}, hits[0]
    found = client.search_batch("docs", x[:200], k=10).ids
    recall = np.mean([len(set(f) & set(ids[e])) / 10 for f, e in zip(found, exact)])
    print(f"docker smoke: recall@10 of 200 queries against exact search: {recall:.3f}")
    assert recall >= 0.9, recall
with Client(url, retries=0) as anonymous:
    try:
        anonymous.collections()
    except AuthenticationError:
        pass
    else:
        raise AssertionError("a request without a key was answered")
EOF
say "PASSED"
