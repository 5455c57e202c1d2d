from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glint.index import FormatError, InputError, NotFoundError, build_index, load_index
from glint.index.storage import CHECKSUM_FIELD, FORMAT_VERSION, IndexWriter, manifest_checksum

from testkit import GLINT


@pytest.fixture
def saved(tmp_path: Path, data) -> Path:
    index = build_index(data(300, 16), "flat", "l2", payloads=[{"n": i} for i in range(300)])
    return index.save(tmp_path / "ix")


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_signed(path: Path, manifest: dict) -> None:
    """Write an edited manifest with its checksum recomputed, as one who vouches for it."""
    manifest[CHECKSUM_FIELD] = manifest_checksum(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_manifest_records_everything(saved: Path) -> None:
    manifest = _manifest(saved)
    assert manifest["format"] == "glint-index" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["kind"] == "flat" and manifest["spec"] == "flat:storage=f32"
    assert manifest["metric"] == "l2" and (manifest["dim"], manifest["count"]) == (16, 300)
    assert set(manifest["files"]) == {"vectors.npy", "sq_norms.npy", "payloads.sqlite"}
    assert manifest["files"]["vectors.npy"]["shape"] == [300, 16]
    assert len(manifest["files"]["vectors.npy"]["sha256"]) == 64
    assert "created" in manifest and "glint_version" in manifest and "seconds" in manifest["build"]


def test_round_trip_is_identical_and_memory_mapped(saved: Path, data) -> None:
    loaded = load_index(saved)
    assert isinstance(loaded.store.fdata, np.memmap)  # type: ignore[attr-defined]
    queries = data(20, 16, seed=5)
    again = load_index(saved).search(queries, k=5)
    first = loaded.search(queries, k=5)
    np.testing.assert_array_equal(first.ids, again.ids)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert loaded.disk_bytes > 300 * 16 * 4


def test_edited_manifest_is_refused(saved: Path) -> None:
    manifest = _manifest(saved)
    manifest["files"]["vectors.npy"]["shape"] = [301, 16]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="does not match its manifest_sha256"):
        load_index(saved)
    _write_signed(saved, manifest)  # vouched for, and still not what the file holds
    with pytest.raises(
        FormatError, match=r"vectors.npy: damaged index, array is .* manifest records"
    ):
        load_index(saved)


def test_garbled_manifest_is_refused(saved: Path) -> None:
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="damaged manifest"):
        load_index(saved)


def test_manifest_missing_keys_is_refused(saved: Path) -> None:
    manifest = _manifest(saved)
    del manifest["dim"]
    _write_signed(saved, manifest)
    with pytest.raises(FormatError, match="missing dim"):
        load_index(saved)


def test_truncated_array_is_refused(saved: Path) -> None:
    path = saved / "vectors.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FormatError, match=r"vectors.npy: damaged index, file is \d+ bytes"):
        load_index(saved)


def test_wrong_checksum_is_refused(saved: Path) -> None:
    path = saved / "vectors.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="sha256 checksum does not match"):
        load_index(saved)


def test_missing_file_is_refused(saved: Path) -> None:
    (saved / "sq_norms.npy").unlink()
    with pytest.raises(FormatError, match=r"sq_norms\.npy is missing"):
        load_index(saved)


def test_foreign_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such index directory"):
        load_index(tmp_path / "absent")
    (tmp_path / "other").mkdir()
    with pytest.raises(FormatError, match="not a glint index"):
        load_index(tmp_path / "other")
    (tmp_path / "other" / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FormatError, match="not a glint index manifest"):
        load_index(tmp_path / "other")


def test_future_format_version_is_refused(saved: Path) -> None:
    manifest = _manifest(saved)
    manifest["format_version"] = FORMAT_VERSION + 1
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        load_index(saved)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def build_dies() -> None:
        with IndexWriter(tmp_path / "ix") as writer:
            writer.save_array("a.npy", np.zeros(10))
            raise RuntimeError("build died")

    with pytest.raises(RuntimeError, match="build died"):
        build_dies()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(saved: Path, data) -> None:
    before = _manifest(saved)
    index = build_index(data(50, 16), "flat", "ip")
    with pytest.raises(InputError, match="already exists"):
        index.save(saved)
    assert _manifest(saved) == before  # untouched
    index.save(saved, overwrite=True)
    assert _manifest(saved)["count"] == 50
    assert [p.name for p in saved.parent.iterdir()] == ["ix"]  # no temporaries left


def test_resave_of_loaded_index_keeps_payloads(saved: Path, tmp_path: Path) -> None:
    copy = load_index(saved).save(tmp_path / "copy")
    assert load_index(copy).payloads([0, 299]) == {0: {"n": 0}, 299: {"n": 299}}


def test_save_creates_missing_parents(tmp_path: Path, data) -> None:
    index = build_index(data(50, 8), "flat", "l2")
    out = tmp_path / "indexes" / "team" / "docs"
    index.save(out)
    assert load_index(out).count == 50
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="file: not a directory"):
        index.save(tmp_path / "file" / "docs")


def test_build_refuses_an_impossible_out_before_reading(tmp_path: Path) -> None:
    """`glint build --out FILE/docs` fails at once, before the input is even read (here it
    does not exist, so a later check would name it instead)."""
    from glint.index.storage import check_out_parent

    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="file: not a directory"):
        check_out_parent(tmp_path / "file" / "deeper" / "docs")
    check_out_parent(tmp_path / "new" / "deeper" / "docs")  # creatable: fine
    assert not (tmp_path / "new").exists()  # and nothing made by the check
    proc = subprocess.run(
        [
            GLINT,
            "build",
            str(tmp_path / "missing.npy"),
            "--metric",
            "l2",
            "--out",
            str(tmp_path / "file" / "docs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"glint: error: {tmp_path / 'file'}: not a directory\n"
