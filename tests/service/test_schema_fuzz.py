"""Schema-driven fuzzing: schemathesis generates requests from a real server's OpenAPI schema.

Every response must be below 500 and conform to the schema (a documented status code and
content type, a JSON body matching the declared model). Two real servers run for the module:
one serves single-vector ``docs`` (flat, with payloads) and ``ann`` (hnsw) and multi-vector
``mv`` (muvera) collections to the read routes, the other takes the admin routes (load,
reload, unload), so unloading never takes a collection away from the search cases.

The schema is loaded from each server's ``/openapi.json``; each operation gets a Hypothesis
test over ``operation.as_strategy()`` in positive and negative generation modes, derandomized
and bounded, so a run is reproducible. (``schemathesis.pytest.from_fixture`` would do the
same, but its pytest integration reads ``Function._nodeid``, which pytest 9.2 removed.)
Generated query vectors rarely have the collections' dimension, so the search routes are
fuzzed once more with vectors fitted to it, with search parameters the index kinds know and
with filters on the payload field ``docs`` indexes (and some it cannot apply), and the binary
batch bodies (``.npy``, ``.npz``) get strategies of their own.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from glint.index import build_index, load_index  # noqa: E402

from testkit import clustered, serving, token_sets  # noqa: E402

DIM = 16
MV_SPEC = "muvera:k_sim=2,dim_proj=8,r_reps=4,tokens=f32,inner=(hnsw:m=8)"
# Per operation and mode; raise GLINT_FUZZ_EXAMPLES for a deeper (slower) run.
MAX_EXAMPLES = int(os.environ.get("GLINT_FUZZ_EXAMPLES", "30"))

READ_OPERATIONS = [
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /v1/collections",
    "GET /v1/collections/{name}",
    "POST /v1/collections/{name}/search",
    "POST /v1/collections/{name}/search/batch",
]
ADMIN_OPERATIONS = [
    "POST /v1/collections/{name}/load",
    "POST /v1/collections/{name}/reload",
    "DELETE /v1/collections/{name}",
]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# Negative cases need something to break: a body or a constrained query parameter (a string
# path parameter alone has no invalid values that can be sent).
NEGATIVE = {
    "POST /v1/collections/{name}/search",
    "POST /v1/collections/{name}/search/batch",
    "POST /v1/collections/{name}/load",
    "POST /v1/collections/{name}/reload",
}

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# Binary bodies: random bytes, broken .npy files, arrays of every dtype and shape, and
# well-formed float32 [n, DIM] batches (some non-finite) that reach the search itself.
_DTYPES = st.sampled_from(
    ["<f4", ">f4", "<f2", "<f8", "|i1", "<i8", "|u1", "|b1", "<c8", "<U3", "<M8[s]"]
)
_ANY_ARRAY = hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
_FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
_FIT_ARRAY = st.integers(0, 4).flatmap(lambda n: hnp.arrays(np.float32, (n, DIM), elements=_FLOATS))


def _save(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _savez(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@st.composite
def _npy_bodies(draw: st.DrawFn) -> bytes:
    array = draw(st.one_of(_FIT_ARRAY, _FIT_ARRAY, _ANY_ARRAY))
    body = _save(array)
    how = draw(st.sampled_from(["whole", "whole", "cut", "garbage", "header"]))
    if how == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if how == "garbage":
        return draw(st.binary(max_size=64))
    if how == "header":
        return b"\x93NUMPY" + draw(st.binary(max_size=128))
    return body


@st.composite
def _token_sets(draw: st.DrawFn) -> dict[str, Any]:
    """``tokens`` and ``offsets``, well-formed or not."""
    count = draw(st.integers(0, 4))
    lengths = draw(st.lists(st.integers(0, 4), min_size=count, max_size=count))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    dim = draw(st.sampled_from([DIM, DIM, DIM, 1, DIM + 1]))
    tokens = draw(hnp.arrays(np.float32, (int(offsets[-1]), dim), elements=_FLOATS))
    arrays: dict[str, Any] = {"tokens": tokens, "offsets": offsets}
    for key in draw(st.lists(st.sampled_from(["tokens", "offsets"]), max_size=2, unique=True)):
        arrays[key] = draw(st.one_of(_ANY_ARRAY, st.just(arrays[key][::-1])))
    if draw(st.booleans()):
        arrays.pop(draw(st.sampled_from(["tokens", "offsets"])))
    return arrays


@st.composite
def _npz_bodies(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["sets", "sets", "sets", "cut", "garbage", "npy"]))
    if how == "npy":
        return draw(_npy_bodies())
    if how == "garbage":
        return draw(st.binary(max_size=64))
    body = _savez(**draw(_token_sets()))
    return body[: draw(st.integers(0, len(body)))] if how == "cut" else body


def _build_indices(root: Path) -> dict[str, Path]:
    docs = root / "docs"
    build_index(
        clustered(200, DIM, seed=3),
        "flat",
        "l2",
        ids=np.arange(200) + 1000,
        payloads=[{"n": i} for i in range(200)],
        payload_index={"n": "integer"},
    ).save(docs)
    ann = root / "ann"
    build_index(clustered(200, DIM, seed=5), "hnsw:m=8", "cos").save(ann)
    mv = root / "mv"
    build_index(token_sets(60, DIM, seed=4, mean_tokens=4), MV_SPEC, "ip").save(mv)
    return {"docs": docs, "ann": ann, "mv": mv}


def _config(index_dirs: dict[str, Path]) -> Any:
    """Path ``name`` mostly names a real collection, an admin ``path`` mostly a real index."""
    return schemathesis.Config.from_dict(
        {
            "dictionaries": {
                "collections": {"values": sorted(index_dirs)},
                "index_dirs": {"values": [str(p) for p in index_dirs.values()]},
            },
            "parameters": {
                "path.name": {"dictionary": "collections", "probability": 0.8},
                "body.path": {"dictionary": "index_dirs", "probability": 0.6},
            },
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            # A schema-valid request can still be refused for what no schema states: a vector
            # of another dimension than the collection's, k over max_k, a search parameter
            # the collection's index kind has no use for. Conformance of those 4xx answers
            # (documented status, error envelope) is still checked.
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )


def _serve_schema(index_dirs: dict[str, Path]) -> Iterator[Any]:
    from glint.service.app import create_app
    from glint.service.settings import Settings

    settings_ = Settings(
        index_dirs=[f"{name}={path}" for name, path in index_dirs.items()],
        max_k=50,
        max_batch=100,
        max_body_bytes=65536,
        search_workers=2,
        batch_threads=1,
    )
    with serving(create_app(settings_)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", config=_config(index_dirs))


@pytest.fixture(scope="module", autouse=True)
def binary_media_types() -> Iterator[None]:
    from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES

    from glint.client.models import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE

    schemathesis.openapi.media_type(NPY_MEDIA_TYPE, _npy_bodies())
    schemathesis.openapi.media_type(NPZ_MEDIA_TYPE, _npz_bodies())
    yield
    for media in (NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE):
        MEDIA_TYPE_STRATEGIES.pop(media, None)


def _warm(index_dirs: dict[str, Path]) -> None:
    """Compile the kernels of plain and filtered searches in this process, where the servers'
    threads find them: compiled by a server's first requests, they can take longer than the
    request timeout on a loaded machine, and a 503 is no answer a fuzzed request may get."""
    for path in index_dirs.values():
        index = load_index(path)
        index.warm()
        if index.multivector:
            tokens, offsets = token_sets(2, DIM, seed=6, mean_tokens=4)
            q = [tokens[offsets[0] : offsets[1]], tokens[offsets[1] : offsets[2]]]
        else:
            q = clustered(2, DIM, seed=6)
        for flt in (None, {"must": [{"has_id": list(range(990, 1210))}]}):
            index.search(q, 10, filter=flt)
            index.search(q[0], 10, filter=flt)
        index.close()


@pytest.fixture(scope="module")
def indices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    index_dirs = _build_indices(tmp_path_factory.mktemp("fuzz-indices"))
    _warm(index_dirs)
    return index_dirs


@pytest.fixture(scope="module")
def read_schema(indices: dict[str, Path]) -> Iterator[Any]:
    yield from _serve_schema(indices)


@pytest.fixture(scope="module")
def admin_schema(indices: dict[str, Path]) -> Iterator[Any]:
    yield from _serve_schema(indices)


def _operation(schema: Any, label: str) -> Any:
    method, path = label.split(" ", 1)
    return schema[path][method]


def _fit(value: Any, depth: int) -> Any:
    """Pad or cut the innermost float lists of ``value`` to ``DIM`` (``depth`` levels down)."""
    if not isinstance(value, list):
        return value
    if depth == 0:
        return (value * DIM)[:DIM] if value else [0.5] * DIM
    return [_fit(item, depth - 1) for item in value]


# Search parameters of the served kinds (flat: none; hnsw: ef_search; muvera: candidates and
# its inner index's), unknown ones, and the names ``index.search`` itself takes.
_PARAM_KEYS = ["ef_search", "candidates", "nprobe", "rerank_k", "k", "threads", "queries", ""]
_PARAM_VALUES = st.one_of(
    st.integers(-2, 70_000),
    st.sampled_from([0, 1, 2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)
_PARAMS = st.dictionaries(st.sampled_from(_PARAM_KEYS), _PARAM_VALUES, max_size=2)

# Filters on ``docs``'s payload index ``n`` (integer), which reach the search, and a few it
# cannot apply (a field without an index, a string for an integer, a range on nothing).
_N = st.integers(-5, 205)
_CONDITIONS = st.one_of(
    st.builds(lambda v: {"key": "n", "match": {"value": v}}, _N),
    st.builds(lambda vs: {"key": "n", "match": {"any": vs}}, st.lists(_N, min_size=1, max_size=3)),
    st.builds(lambda vs: {"key": "n", "match": {"except": vs}}, st.lists(_N, min_size=1)),
    st.builds(lambda lo, hi: {"key": "n", "range": {"gte": lo, "lt": hi}}, _N, _N),
    st.builds(lambda ids: {"has_id": ids}, st.lists(st.integers(990, 1210), min_size=1)),
    st.just({"is_empty": {"key": "n"}}),
    st.sampled_from(
        [
            {"key": "m", "match": {"value": 1}},
            {"key": "n", "match": {"value": "1"}},
            {"key": "n", "range": {"gt": 1.5}},
        ]
    ),
)
_FILTERS = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            clause: st.lists(_CONDITIONS, min_size=1, max_size=3)
            for clause in ("must", "should", "must_not")
        },
    ),
)


def _fit_dimension(drawn: tuple[Any, dict[str, Any], dict[str, Any] | None]) -> Any:
    """Give generated query vectors the collections' dimension and use search parameters of
    the served index kinds and filters on ``docs``'s payload index, so that ``k``, ``params``,
    ``filter`` and ``include`` reach the search itself instead of a dimension check, an
    unknown key or a field without an index."""
    case, params, flt = drawn
    if isinstance(case.body, dict):
        for key, depth in (("vector", 0), ("vectors", 1), ("token_sets", 2)):
            if key in case.body:
                case.body[key] = _fit(case.body[key], depth)
        case.body["params"] = params
        case.body["filter"] = flt
    return case


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    *,
    fit: bool = False,
    media_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, media_type=media_type)
    if fit:
        strategy = st.tuples(strategy, _PARAMS, _FILTERS).map(_fit_dimension)

    @FUZZ_SETTINGS
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers)

    run()


def test_every_operation_is_fuzzed(read_schema: Any) -> None:
    labels = {
        result.ok().label for result in read_schema.get_all_operations() if result.ok() is not None
    }
    assert labels == set(READ_OPERATIONS) | set(ADMIN_OPERATIONS)


def _cases(labels: list[str]) -> list[tuple[str, GenerationMode]]:
    return [
        (label, mode)
        for label in labels
        for mode in MODES
        if mode.value == "positive" or label in NEGATIVE
    ]


@pytest.mark.parametrize(("label", "mode"), _cases(READ_OPERATIONS))
def test_read_routes(read_schema: Any, label: str, mode: GenerationMode) -> None:
    _fuzz(_operation(read_schema, label), mode)


@pytest.mark.parametrize("label", [op for op in READ_OPERATIONS if "search" in op])
def test_search_routes_with_fitting_vectors(read_schema: Any, label: str) -> None:
    _fuzz(_operation(read_schema, label), GenerationMode.POSITIVE, fit=True)


@pytest.mark.parametrize("accept", ["application/json", "application/x-npz"])
@pytest.mark.parametrize("media_type", ["application/x-npy", "application/x-npz"])
def test_binary_batch_bodies(read_schema: Any, media_type: str, accept: str) -> None:
    """Random bytes, broken and odd arrays and archives, and good batches: 4xx or results."""
    operation = _operation(read_schema, "POST /v1/collections/{name}/search/batch")
    _fuzz(operation, GenerationMode.POSITIVE, media_type=media_type, headers={"Accept": accept})


@pytest.mark.parametrize(("label", "mode"), _cases(ADMIN_OPERATIONS))
def test_admin_routes(admin_schema: Any, label: str, mode: GenerationMode) -> None:
    _fuzz(_operation(admin_schema, label), mode)


def test_fuzzing_reaches_real_collections(read_schema: Any) -> None:
    """The ``name`` dictionary makes most generated requests hit a loaded collection."""
    strategy = _operation(read_schema, "GET /v1/collections/{name}").as_strategy()
    names: list[str] = []

    @FUZZ_SETTINGS
    @given(case=strategy, _=st.just(None))
    def run(case: Any, _: None) -> None:
        names.append(case.path_parameters["name"])

    run()
    assert sum(n in ("docs", "ann", "mv") for n in names) >= len(names) // 2
