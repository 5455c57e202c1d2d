"""A manifest cannot lie (issue 15, item 4): for every kind, an edited, ill-formed or
incomplete manifest, or a file the manifest does not list, is refused with one line, and
nothing loads. Editing any value of a version 3 manifest breaks its checksum; an edit whose
checksum is recomputed (someone vouching for it) is still refused when the value is invalid,
and the file rule holds for the older versions, which have no checksum."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glint.index import FormatError, build_index, load_index
from glint.index.registry import config_from_dict
from glint.index.storage import CHECKSUM_FIELD, manifest_checksum

from testkit import clustered, glint_error, token_sets

DIM = 16
N = 400
USER_IDS = np.arange(N, dtype=np.int64) * 7 + 1000
SPECS = {
    "flat": ("flat", "l2"),
    "hnsw": ("hnsw:m=8,ef_construction=40,storage=lvq4x8", "ip"),
    "ivfpq": ("ivfpq:nlist=4,m=4,rerank=lvq8", "l2"),
    "muvera": (
        "muvera:k_sim=2,dim_proj=8,r_reps=2,final_dim=32,inner=(hnsw:m=8,storage=lvq4x4)",
        "ip",
    ),
}
KINDS = sorted(SPECS)
V3_ONLY = ("has_ids", "has_payloads", CHECKSUM_FIELD)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small saved index per kind (flat with user ids and payloads)."""
    root = tmp_path_factory.mktemp("built")
    out = {}
    for kind, (spec, metric) in SPECS.items():
        if kind == "muvera":
            tokens, offsets = token_sets(60, DIM)
            index = build_index({"tokens": tokens, "offsets": offsets}, spec, metric)
        elif kind == "flat":
            payloads = [{"n": i} for i in range(N)]
            index = build_index(clustered(N, DIM), spec, metric, ids=USER_IDS, payloads=payloads)
        else:
            index = build_index(clustered(N, DIM), spec, metric)
        out[kind] = index.save(root / kind)
    return out


@pytest.fixture(params=KINDS)
def saved(request: pytest.FixtureRequest, built: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh copy of one kind's index, to damage."""
    return Path(shutil.copytree(built[request.param], tmp_path / request.param))


def _read(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    return doc


def _write(path: Path, doc: dict[str, Any], *, sign: bool) -> None:
    """Write a manifest; ``sign`` recomputes its checksum, as one who vouches for the edit."""
    if sign:
        doc[CHECKSUM_FIELD] = manifest_checksum(doc)
    (path / "manifest.json").write_text(json.dumps(doc, indent=1))


def _as_version_2(doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest as glint wrote it before version 3: no checksum, no id/payload flags."""
    old = {key: value for key, value in doc.items() if key not in V3_ONLY}
    old["format_version"] = 2
    return old


def refused(path: Path) -> str:
    """The one-line FormatError that loading ``path`` must raise."""
    with pytest.raises(FormatError) as info:
        load_index(path)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every scalar in a JSON document (an empty container counts as one)."""
    if isinstance(value, dict | list) and value:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            yield from _leaves(child, (*path, key))
    else:
        yield path


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return [0] if value in ({}, []) else 0


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _edit(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *parents, last = path
    target = out
    for key in parents:
        target = target[key]
    target[last] = value
    return out


# -- the checksum ----------------------------------------------------------------------------


def test_an_intact_index_loads_and_answers_with_user_ids(built: dict[str, Path]) -> None:
    index = load_index(built["flat"])
    found = index.search(clustered(N, DIM)[:5], k=1)
    np.testing.assert_array_equal(found.ids[:, 0], USER_IDS[:5])
    assert index.payloads([USER_IDS[3]]) == {int(USER_IDS[3]): {"n": 3}}


def test_editing_any_value_breaks_the_checksum(saved: Path) -> None:
    doc = _read(saved)
    fixed = ("format", "format_version", CHECKSUM_FIELD)  # each has its own test
    paths = [p for p in _leaves(doc) if p[0] not in fixed]
    assert len(paths) > 20
    for path in paths:
        _write(saved, _edit(doc, path, _changed(_get(doc, path))), sign=False)
        message = refused(saved)
        assert f"does not match its {CHECKSUM_FIELD}" in message, (path, message)
    for field in doc:  # a field removed, or one added
        if field not in ("format", "format_version", CHECKSUM_FIELD):
            _write(saved, {k: v for k, v in doc.items() if k != field}, sign=False)
            assert f"does not match its {CHECKSUM_FIELD}" in refused(saved)
    _write(saved, {**doc, "note": "hello"}, sign=False)
    assert f"does not match its {CHECKSUM_FIELD}" in refused(saved)


def test_the_checksum_itself_and_the_version_are_checked(saved: Path) -> None:
    doc = _read(saved)
    for bad in ("0" * 64, "xyz", None, 5):
        _write(saved, {**doc, CHECKSUM_FIELD: bad}, sign=False)
        assert CHECKSUM_FIELD in refused(saved)
    without = {k: v for k, v in doc.items() if k != CHECKSUM_FIELD}
    _write(saved, without, sign=False)
    assert f"missing {CHECKSUM_FIELD}" in refused(saved)
    # relabelled as an older version to skip the checksum: it still carries one
    for version in (1, 2):
        _write(saved, {**doc, "format_version": version}, sign=False)
        assert f"format_version is {version} but it has a {CHECKSUM_FIELD}" in refused(saved)
    for version in (4, "3", True, None):
        _write(saved, {**doc, "format_version": version}, sign=False)
        assert "format version" in refused(saved)


def test_layout_alone_is_not_an_edit(saved: Path) -> None:
    """The checksum covers the meaning (canonical JSON), not the spacing or key order."""
    doc = _read(saved)
    (saved / "manifest.json").write_text(json.dumps(dict(reversed(list(doc.items())))))
    load_index(saved).close()


# -- re-signed edits: every field is still checked ----------------------------------------------


def _invalid_values(doc: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(field, value, what the message must say) for values no index can have."""
    other_kind = "ivfpq" if doc["kind"] == "flat" else "flat"
    return [
        ("kind", 7, "kind is 7, expected a string"),
        ("kind", "lsh", "kind 'lsh' is not an index kind"),
        ("kind", other_kind, "config:"),
        ("spec", 7, "spec is 7"),
        ("spec", "flat:storage=", "spec"),
        ("spec", "nope:x=1", "spec 'nope:x=1'"),
        ("spec", f"{other_kind}", "does not match the config"),
        ("config", None, "config is null, expected a mapping"),
        ("config", [], "config is [], expected a mapping"),
        ("config", "flat", 'config is "flat"'),
        ("config", {"bogus": 1}, "config: unknown key 'bogus'"),
        ("metric", "dot", 'metric is "dot", expected one of ip, cos, l2'),
        ("metric", None, "metric is null"),
        ("dim", 0, "dim is 0, expected a positive integer"),
        ("dim", -3, "dim is -3"),
        ("dim", "16", 'dim is "16"'),
        ("dim", True, "dim is true"),
        ("dim", 16.0, "dim is 16.0"),
        ("count", 0, "count is 0"),
        ("count", None, "count is null"),
        ("count", [1], "count is [1]"),
        ("created", 5, "created is 5"),
        ("created", "yesterday", 'created is "yesterday", expected an ISO 8601 time'),
        ("glint_version", None, "glint_version is null"),
        ("files", None, "files is null, expected a mapping"),
        ("files", [], "files is []"),
        ("build", None, "build is null"),
        ("build", [], "build is []"),
        ("multivector", "no", 'multivector is "no"'),
        ("multivector", not doc["multivector"], "multivector is"),
        ("has_ids", 1, "has_ids is 1, expected true or false"),
        ("has_payloads", None, "has_payloads is null"),
        ("format", "other-index", "not a glint index manifest"),
        ("note", "hello", "unknown field 'note'"),
    ]


def test_resigned_invalid_values_are_refused_naming_the_field(saved: Path) -> None:
    doc = _read(saved)
    for field, value, expected in _invalid_values(doc):
        _write(saved, {**doc, field: value}, sign=True)
        message = refused(saved)
        assert expected in message, (field, value, message)
    for field in doc:
        if field not in ("format", "format_version", CHECKSUM_FIELD):
            _write(saved, {k: v for k, v in doc.items() if k != field}, sign=True)
            assert f"missing {field}" in refused(saved)


def test_resigned_values_that_contradict_the_files_are_refused(saved: Path) -> None:
    """Well-typed values the arrays, the faiss index or the file list contradict."""
    doc = _read(saved)
    edits: list[dict[str, Any]] = [
        {"dim": doc["dim"] + 1},
        {"dim": doc["dim"] * 2},
        {"count": doc["count"] + 1},
        {"count": doc["count"] - 1},
        {"has_ids": not doc["has_ids"]},
        {"has_payloads": not doc["has_payloads"]},
    ]
    if doc["kind"] == "flat":  # l2 keeps squared norms, ip none; f16 keeps other vectors
        edits += [{"metric": "ip"}, {"config": {"storage": "f16"}, "spec": "flat:storage=f16"}]
    if doc["kind"] == "ivfpq":  # faiss records its metric and codes
        config = doc["config"]
        edits += [
            {"metric": "ip"},
            {"config": {**config, "m": 8}},
            {"config": {**config, "nbits": 8}},
        ]
    if doc["kind"] == "muvera":
        edits += [{"metric": "l2"}, {"config": {**doc["config"], "final_dim": 0}}]
    for edit in edits:
        changed = {**doc, **edit}
        if "config" in edit and "spec" not in edit:
            changed["spec"] = _spec_of(doc["kind"], edit["config"])
        _write(saved, changed, sign=True)
        refused(saved)


def _spec_of(kind: str, config: dict[str, Any]) -> str:
    return config_from_dict(kind, config).spec()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("bytes", -1, ".bytes is -1, expected a byte count"),
        ("bytes", "12", '.bytes is "12"'),
        ("sha256", "abc", '.sha256 is "abc", expected 64 hex digits'),
        ("sha256", None, ".sha256 is null"),
        ("dtype", 5, ".dtype is 5"),
        ("shape", "3", '.shape is "3", expected a list of sizes'),
        ("shape", [-1], ".shape is [-1]"),
        ("extra", 1, "has unknown field 'extra'"),
    ],
)
def test_resigned_bad_file_entries_are_refused(
    built: dict[str, Path], tmp_path: Path, key: str, value: Any, expected: str
) -> None:
    saved = Path(shutil.copytree(built["hnsw"], tmp_path / "ix"))
    doc = _read(saved)
    doc["files"]["graph_layer0.npy"][key] = value
    _write(saved, doc, sign=True)
    assert expected in refused(saved)
    doc = _read(built["hnsw"])
    doc["files"]["graph_entry.npy"] = None
    _write(saved, doc, sign=True)
    assert "files['graph_entry.npy'] is null, expected a mapping" in refused(saved)


@pytest.mark.parametrize("name", ["../escape.npy", ".hidden.npy", "a/b.npy", "manifest.json", ""])
def test_file_names_must_be_plain(built: dict[str, Path], tmp_path: Path, name: str) -> None:
    saved = Path(shutil.copytree(built["flat"], tmp_path / "ix"))
    doc = _read(saved)
    doc["files"][name] = doc["files"].pop("vectors.npy")
    _write(saved, doc, sign=True)
    assert "is not a plain file name" in refused(saved)


# -- the files: listed exactly, nothing unlisted ----------------------------------------------


def test_every_file_entry_is_needed(saved: Path) -> None:
    """Remove one entry at a time (the file left on disk): refused, naming the file; with
    the file gone too, the kind still needs it."""
    doc = _read(saved)
    names = sorted(doc["files"])
    for name in names:
        entries = {k: v for k, v in doc["files"].items() if k != name}
        _write(saved, {**doc, "files": entries}, sign=False)
        assert f"does not match its {CHECKSUM_FIELD}" in refused(saved)
        _write(saved, {**doc, "files": entries}, sign=True)
        assert f"unlisted file {name} " in refused(saved)
    for name in names:
        moved = saved.parent / f"aside-{name}"
        (saved / name).rename(moved)
        entries = {k: v for k, v in doc["files"].items() if k != name}
        _write(saved, {**doc, "files": entries}, sign=True)
        assert f"it does not list {name}, which this {saved.name} index" in refused(saved)
        moved.rename(saved / name)
    _write(saved, doc, sign=False)
    load_index(saved).close()


def test_older_versions_get_the_file_rule(saved: Path) -> None:
    """Versions 1 and 2 have no checksum and no id flag: removing the ids.npy entry of such a
    manifest (the file left on disk) once loaded with row numbers for ids. Now every entry
    removed is refused, naming the file."""
    old = _as_version_2(_read(saved))
    _write(saved, old, sign=False)
    load_index(saved).close()  # a genuine version 2 manifest loads
    for name in sorted(old["files"]):
        entries = {k: v for k, v in old["files"].items() if k != name}
        _write(saved, {**old, "files": entries}, sign=False)
        assert f"unlisted file {name} " in refused(saved)


def test_flat_v2_ids_entry_removed_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    """The finding itself: without ids.npy in its manifest, a flat index answered with row
    numbers instead of the user's ids."""
    saved = Path(shutil.copytree(built["flat"], tmp_path / "ix"))
    old = _as_version_2(_read(saved))
    _write(saved, old, sign=False)
    assert load_index(saved).search(clustered(N, DIM)[:1], k=1).ids[0, 0] == USER_IDS[0]
    del old["files"]["ids.npy"]
    _write(saved, old, sign=False)
    assert "unlisted file ids.npy" in refused(saved)


@pytest.mark.parametrize("extra", ["extra.npy", ".DS_Store", "notes.txt", "sub/"])
def test_unlisted_files_are_refused(saved: Path, extra: str) -> None:
    if extra.endswith("/"):
        (saved / extra).mkdir()
    else:
        (saved / extra).write_bytes(b"\x93NUMPY")
    assert f"unlisted file {extra.rstrip('/')} " in refused(saved)


# -- the command line: one line, no traceback --------------------------------------------------

DAMAGE: dict[str, Callable[[Path], None]] = {}


def _damage(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    DAMAGE[fn.__name__] = fn
    return fn


@_damage
def edited_metric(path: Path) -> None:
    _write(path, {**_read(path), "metric": "cos"}, sign=False)


@_damage
def null_config(path: Path) -> None:
    _write(path, {**_read(path), "config": None}, sign=True)


@_damage
def entry_removed(path: Path) -> None:
    doc = _read(path)
    name = max(doc["files"], key=lambda n: (n.startswith("inner."), n))
    del doc["files"][name]
    _write(path, doc, sign=True)


@_damage
def entry_and_file_removed(path: Path) -> None:
    doc = _read(path)
    name = max(doc["files"], key=lambda n: (n.startswith("inner."), n))
    del doc["files"][name]
    (path / name).unlink()
    _write(path, doc, sign=True)


@_damage
def unlisted_file(path: Path) -> None:
    (path / "stray.npy").write_bytes(b"")


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_glint_info_says_one_line(saved: Path, damage: str) -> None:
    DAMAGE[damage](saved)
    line = glint_error("info", saved)
    assert line.startswith("glint: error: ") and str(saved) in line
    assert line == "glint: error: " + refused(saved)
