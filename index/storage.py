"""The on-disk format: an index is a directory with a manifest and memory-mappable arrays.

Layout::

    DIR/
      manifest.json      format name + version, glint version, kind, spec, config, metric,
                         dim, count, created time, build info, whether the index has user ids
                         and payloads, every file's sha256/bytes (arrays also record dtype and
                         shape), and the manifest's own checksum
      *.npy              arrays, loaded with ``mmap_mode="r"``
      payloads.sqlite    optional payload store

**The manifest cannot lie.** :class:`IndexReader` (and :func:`read_manifest`) refuse, with one
line naming the field or file, a manifest that is

- edited: a version 3 manifest carries ``manifest_sha256``, the sha256 of the canonical JSON
  of every other field (:func:`manifest_checksum`); whoever edits a manifest and recomputes it
  vouches for the edit, and the checks below still apply;
- ill-formed: every field is checked for its type and range (versions 1 and 2, which have no
  checksum, get the same checks);
- incomplete or padded: the directory holds the manifest and the files it lists, nothing
  else (an unlisted file is refused, not ignored), and every listed file has its recorded size
  (and sha256, when verifying). What a kind needs for its config is declared by the kind and
  checked with :meth:`IndexReader.require`: the manifest lists exactly those files.

Writes are atomic (:mod:`glint.index.atomicdir`): :class:`IndexWriter` fills a locked
temporary sibling ``.DIR.tmp-*``, fsyncs every file and the directory, then moves it into
place; replacing an index swaps the two directories in one step where the system can. Each
writer first sweeps what dead builds of ``DIR`` left behind (:func:`sweep_stale_temps`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .atomicdir import (
    fault_point,
    fsync_path,
    install,
    lock_dir,
    restore_interrupted,
    sweep_stale_temps,
    temp_path,
)
from .errors import FormatError, InputError, NotFoundError, one_line
from .metrics import METRICS

__all__ = [
    "CHECKSUM_FIELD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "IndexReader",
    "IndexWriter",
    "glint_version",
    "manifest_checksum",
    "manifest_document",
    "read_manifest",
    "sweep_stale_temps",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "glint-index"
FORMAT_VERSION = 3
#: Versions this glint reads: 1 kept a flat index's float16 vectors as float16 in vectors.npy
#: (version 2 keeps them, as every kind, through the vector store in vectors_f16.npy); 3 adds
#: the manifest's checksum and records whether the index has user ids and payloads.
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
CHECKSUM_FIELD = "manifest_sha256"
_FIELDS = (
    "format",
    "format_version",
    "glint_version",
    "kind",
    "spec",
    "config",
    "metric",
    "dim",
    "count",
    "created",
    "files",
)
# version 3 has exactly these; older versions may lack the last five and hold others
_FIELDS_V3 = (*_FIELDS, "multivector", "build", "has_ids", "has_payloads", CHECKSUM_FIELD)
# fields a version 3 manifest may have (checked by their owners: payload_index.py)
_OPTIONAL_V3 = ("payload_index",)
_ENTRY_FIELDS = ("bytes", "sha256")
_ARRAY_FIELDS = (*_ENTRY_FIELDS, "dtype", "shape")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_MANIFEST_BYTES = 16 << 20  # a manifest lists a few files: anything this big is not one
_CHUNK = 1 << 20


def glint_version() -> str:
    """The installed glint version (``0.0.0`` when running from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("glint-vector")
    except PackageNotFoundError:
        return "0.0.0"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_checksum(doc: Mapping[str, Any]) -> str:
    """The ``manifest_sha256`` of manifest ``doc``: the sha256 of the canonical JSON (sorted
    keys, no spaces, ASCII) of every other field, so that layout changes nothing and any
    change of meaning does."""
    body = {key: value for key, value in doc.items() if key != CHECKSUM_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _plain_name(name: str) -> bool:
    """A file name that stays inside the index directory and is not hidden or the manifest."""
    return (
        bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and name != MANIFEST
        and len(name.encode("utf-8", "surrogatepass")) <= 255
    )


def check_out_parent(out: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an ``out`` whose missing parent folders could not be made:
    the nearest existing one must be a folder this process may write."""
    folder = Path(out).absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: not writable")


def _make_parents(folder: Path) -> None:
    """Create ``folder`` and its missing parents (as ``mkdir -p``), each made durable in its
    own parent, so that ``--out indexes/docs`` works in a fresh checkout."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    for path in reversed(missing):
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{path}: cannot create the directory: {exc.strerror or one_line(exc)}"
            ) from None
        fsync_path(path.parent)


class IndexWriter:
    """Writes an index directory atomically.

    Use as a context manager; files go into a locked temporary sibling directory and
    :meth:`commit` moves it to ``out``. Leaving the block without committing (or with an
    exception) removes the temporary directory; a process that dies leaves it for the next
    writer of ``out`` (or :func:`sweep_stale_temps`) to remove.
    """

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.out = Path(out).absolute()
        self.overwrite = overwrite
        _make_parents(self.out.parent)
        # also puts back an index that a replacement dying between its two renames moved aside
        sweep_stale_temps(self.out.parent, self.out.name)
        self._check_out()
        self.tmp = temp_path(self.out, "tmp")
        self._arrays: dict[str, dict[str, Any]] = {}
        self._committed = False
        self._prefix = ""
        self._lock: int | None = None

    def _check_out(self) -> None:
        """Refuse an existing ``out``, unless overwriting an index directory (never anything
        else: what is replaced is deleted)."""
        out = self.out
        if not os.path.lexists(out):
            return
        if not self.overwrite:
            raise InputError(f"{out}: already exists; choose another path or overwrite it")
        if out.is_symlink() or not out.is_dir():
            raise InputError(f"{out}: not a directory; overwrite replaces an index directory only")
        if not (out / MANIFEST).is_file() and any(out.iterdir()):
            raise InputError(
                f"{out}: not a glint index (no {MANIFEST}); overwrite replaces an index "
                "directory only"
            )

    def sub(self, prefix: str) -> IndexWriter:
        """A view that writes into the same directory with every file name behind ``prefix``
        (how an index stores the index it wraps)."""
        view = copy.copy(self)  # shares the directory and the record of arrays
        view._prefix = self._prefix + prefix
        return view

    def __enter__(self) -> IndexWriter:
        self.tmp.mkdir()
        fault_point("tmp-created")
        # held until the writer is done: a sweep that can take it knows the builder died
        self._lock = lock_dir(self.tmp)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def path(self, name: str) -> Path:
        """Path of a (non-array) file to write into the index directory."""
        full = self._prefix + name
        if not _plain_name(full):
            raise ValueError(f"invalid index file name {full!r}")
        return self.tmp / full

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Save ``array`` as ``name`` (an ``.npy`` file) in the index directory."""
        np.save(self.path(name), np.ascontiguousarray(array), allow_pickle=False)
        self._arrays[self._prefix + name] = {"dtype": array.dtype.str, "shape": list(array.shape)}

    def commit(self, manifest: Mapping[str, Any]) -> Path:
        """Checksum every file, write the manifest with its own checksum, fsync and move the
        directory into place."""
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(self.tmp.iterdir()):
            fsync_path(path)
            entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            entry.update(self._arrays.get(path.name, {}))
            files[path.name] = entry
        fault_point("files-written")
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "glint_version": glint_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **manifest,
            "files": files,
        }
        doc[CHECKSUM_FIELD] = manifest_checksum(doc)
        manifest_path = self.tmp / MANIFEST
        with open(manifest_path, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        fsync_path(self.tmp)
        fault_point("manifest-written")
        self._check_out()  # again: out may have appeared while the index was built
        if not install(self.tmp, self.out, replace=self.overwrite):
            raise InputError(f"{self.out}: already exists; choose another path or overwrite it")
        self._committed = True
        log.info("wrote index %s (%d files)", self.out, len(files))
        return self.out


def manifest_document(root: Path) -> dict[str, Any]:
    """The JSON object of ``root/manifest.json`` if it is a glint manifest (of any version,
    unchecked otherwise): NotFoundError for no directory, FormatError for anything else."""
    if not root.exists():
        raise NotFoundError(f"{root}: no such index directory")
    if not root.is_dir():
        raise FormatError(f"{root}: not a directory (an index is a directory with {MANIFEST})")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():  # (a FIFO there would block the read below)
        raise FormatError(f"{root}: not a glint index (no {MANIFEST})")
    if manifest_path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise FormatError(f"{manifest_path}: damaged manifest (over {_MAX_MANIFEST_BYTES} bytes)")
    try:
        doc = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{manifest_path}: damaged manifest ({one_line(exc)})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{manifest_path}: not a glint index manifest")
    return doc


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``DIR/manifest.json`` and check it (its checksum and every field; the files
    themselves are :class:`IndexReader`'s)."""
    root = Path(path)
    if not os.path.lexists(root):
        restore_interrupted(root.absolute())  # if a replacement died halfway, the old index
    doc = manifest_document(root)
    manifest_path = root / MANIFEST
    version = doc.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{manifest_path}: format version {_show(version)} is not supported (this glint "
            f"reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    _ManifestCheck(manifest_path, doc).run()
    return doc


def _whole(value: Any, least: int) -> bool:
    """An integer (JSON's true and false are not) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _show(value: Any) -> str:
    """A value of a manifest as its JSON, on one line and short."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


class _ManifestCheck:
    """Every field of a parsed manifest, checked for its type and range (what needs the kind
    registry, ``kind`` and ``config``, is checked by ``load_index``)."""

    def __init__(self, where: Path, doc: dict[str, Any]) -> None:
        self.where = where
        self.doc = doc
        self.version = int(doc["format_version"])

    def fail(self, problem: str) -> NoReturn:
        raise FormatError(f"{self.where}: damaged manifest, {problem}")

    def expect(self, field: str, value: Any, ok: bool, expected: str) -> None:
        if not ok:
            self.fail(f"{field} is {_show(value)}, expected {expected}")

    def run(self) -> None:
        doc = self.doc
        if self.version >= 3:
            self.checksum()
        elif CHECKSUM_FIELD in doc:  # a checksummed manifest relabelled to skip the check
            self.fail(f"format_version is {self.version} but it has a {CHECKSUM_FIELD} (v3)")
        fields = _FIELDS_V3 if self.version >= 3 else _FIELDS
        missing = [field for field in fields if field not in doc]
        if missing:
            self.fail(f"missing {', '.join(missing)}")
        unknown = sorted(set(doc) - {*_FIELDS_V3, *_OPTIONAL_V3}) if self.version >= 3 else []
        if unknown:
            self.fail(f"unknown field {unknown[0]!r}")
        for field in ("glint_version", "kind", "spec", "created"):
            self.expect(field, doc[field], isinstance(doc[field], str), "a string")
        try:
            datetime.fromisoformat(doc["created"])
        except ValueError:
            self.expect("created", doc["created"], False, "an ISO 8601 time")
        for field in ("config", "build", "files"):
            if field in doc:
                self.expect(field, doc[field], isinstance(doc[field], dict), "a mapping")
        metric = doc["metric"]
        self.expect("metric", metric, metric in METRICS, f"one of {', '.join(METRICS)}")
        for field in ("dim", "count"):
            self.expect(field, doc[field], _whole(doc[field], 1), "a positive integer")
        for field in ("multivector", "has_ids", "has_payloads"):
            if field in doc:
                self.expect(field, doc[field], isinstance(doc[field], bool), "true or false")
        for name, entry in doc["files"].items():
            self.file_entry(name, entry)

    def checksum(self) -> None:
        recorded = self.doc.get(CHECKSUM_FIELD)
        if recorded is None:
            self.fail(f"missing {CHECKSUM_FIELD} (a version {self.version} manifest has one)")
        ok = isinstance(recorded, str) and _SHA256.fullmatch(recorded) is not None
        self.expect(CHECKSUM_FIELD, recorded, ok, "64 hex digits")
        if recorded != manifest_checksum(self.doc):
            self.fail(f"its content does not match its {CHECKSUM_FIELD} (edited or corrupted)")

    def file_entry(self, name: str, entry: Any) -> None:
        if not _plain_name(name):
            self.fail(f"file name {_show(name)} is not a plain file name")
        field = f"files[{name!r}]"
        self.expect(field, entry, isinstance(entry, dict), "a mapping")
        array = name.endswith(".npy")
        if self.version >= 3:
            allowed = _ARRAY_FIELDS if array else _ENTRY_FIELDS
            unknown = sorted(set(entry) - set(allowed))
            if unknown:
                self.fail(f"{field} has unknown field {unknown[0]!r}")
        for key in _ARRAY_FIELDS if array else _ENTRY_FIELDS:
            if key not in entry:
                self.fail(f"{field} is missing {key}")
        self.expect(f"{field}.bytes", entry["bytes"], _whole(entry["bytes"], 0), "a byte count")
        digest = entry["sha256"]
        ok = isinstance(digest, str) and _SHA256.fullmatch(digest) is not None
        self.expect(f"{field}.sha256", digest, ok, "64 hex digits")
        if array:
            dtype, shape = entry["dtype"], entry["shape"]
            self.expect(f"{field}.dtype", dtype, isinstance(dtype, str), "a dtype")
            ok = isinstance(shape, list) and all(_whole(n, 0) for n in shape)
            self.expect(f"{field}.shape", shape, ok, "a list of sizes")


class IndexReader:
    """Opens an index directory, verifying the manifest against the files on disk."""

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.root = Path(path).absolute()
        self.manifest = read_manifest(self.root)
        self.files: dict[str, dict[str, Any]] = self.manifest["files"]
        self._prefix = ""
        self._check_listing()
        for name, entry in sorted(self.files.items()):
            self._check_file(name, entry, verify)

    def _check_listing(self) -> None:
        """The directory holds the manifest and the files it lists: nothing unlisted is
        trusted (a file the manifest forgot would change what loads)."""
        with os.scandir(self.root) as entries:
            present = {entry.name for entry in entries if entry.name != MANIFEST}
        for name in sorted(present - set(self.files)):
            raise FormatError(
                f"{self.root}: damaged index, unlisted file {name} (an index directory holds "
                f"its {MANIFEST} and the files it lists, nothing else)"
            )
        for name in sorted(set(self.files) - present):
            raise FormatError(f"{self.root}: damaged index, {name} is missing")

    def _check_file(self, name: str, entry: Mapping[str, Any], verify: bool) -> None:
        path = self.root / name
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise FormatError(f"{path}: damaged index, not a regular file")
        if status.st_size != entry["bytes"]:
            raise FormatError(
                f"{path}: damaged index, file is {status.st_size} bytes but the manifest "
                f"records {entry['bytes']} (truncated or replaced)"
            )
        if verify and sha256_file(path) != entry["sha256"]:
            raise FormatError(f"{path}: damaged index, sha256 checksum does not match the manifest")

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def format_version(self) -> int:
        return int(self.manifest["format_version"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def count(self) -> int:
        return int(self.manifest["count"])

    def flag(self, field: str, legacy_file: str) -> bool:
        """The index-wide flag ``field`` (``has_ids``, ``has_payloads``) of a version 3
        manifest; older ones recorded none, so there it is whether they list ``legacy_file``
        (an unlisted copy on disk is refused all the same)."""
        if self.format_version >= 3:
            return bool(self.manifest[field])
        return legacy_file in self.manifest["files"]

    def require(self, needed: Collection[str], what: str) -> None:
        """The last part of the integrity rule: the manifest lists exactly the files
        ``needed`` by ``what`` (a kind, for its config, as the kind declares them): none
        missing, none extra."""
        listed = set(self.manifest["files"])
        for name in sorted(set(needed) - listed):
            raise FormatError(
                f"{self.manifest_path}: damaged manifest, it does not list {name}, which "
                f"{what} needs"
            )
        for name in sorted(listed - set(needed)):
            raise FormatError(
                f"{self.manifest_path}: damaged manifest, it lists {name}, which {what} "
                "does not use"
            )

    def sub(self, prefix: str) -> IndexReader:
        """A view of the files behind ``prefix``, named without it (how an index reads the
        index it wraps)."""
        view = copy.copy(self)
        view._prefix = self._prefix + prefix
        view.files = {
            name[len(prefix) :]: entry
            for name, entry in self.files.items()
            if name.startswith(prefix)
        }
        return view

    @property
    def disk_bytes(self) -> int:
        """Bytes of the files this reader sees (and of the manifest, for the whole index)."""
        own = sum(int(e["bytes"]) for e in self.files.values())
        return own if self._prefix else own + (self.root / MANIFEST).stat().st_size

    def has(self, name: str) -> bool:
        return name in self.files

    def path(self, name: str) -> Path:
        if name not in self.files:
            raise FormatError(
                f"{self.root}: damaged index, {self._prefix + name} is not in the manifest"
            )
        return self.root / (self._prefix + name)

    def load_array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """Load an array, memory-mapped by default, checking dtype and shape."""
        path = self.path(name)
        entry = self.files[name]  # its path checked that the manifest lists it
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FormatError(f"{path}: damaged array ({exc})") from None
        if array.dtype.str != entry.get("dtype") or list(array.shape) != entry.get("shape"):
            raise FormatError(
                f"{path}: damaged index, array is {array.dtype.str}{list(array.shape)} but the "
                f"manifest records {entry.get('dtype')}{entry.get('shape')}"
            )
        out: np.ndarray = array
        return out
