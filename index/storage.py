"""The on-disk format: an index is a directory with a manifest and memory-mappable arrays.

Layout::

    DIR/
      manifest.json      format name + version, glint version, kind, spec, config, metric,
                         dim, count, created time, build info, and every file's sha256/bytes
                         (arrays also record dtype and shape)
      *.npy              arrays, loaded with ``mmap_mode="r"``
      payloads.sqlite    optional payload store

Writes are atomic: :class:`IndexWriter` fills a temporary sibling directory, fsyncs every file
and the directory, then renames it into place. A build that dies leaves at most a temporary
``.DIR.tmp-*`` directory, never a half index at ``DIR``. :class:`IndexReader` refuses a
directory whose manifest is missing, foreign, of another format version, or whose files do not
match their recorded sizes, shapes or checksums.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, InputError, NotFoundError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "IndexReader",
    "IndexWriter",
    "glint_version",
    "read_manifest",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "glint-index"
FORMAT_VERSION = 2
#: Versions this glint reads: 1 kept a flat index's float16 vectors as float16 in vectors.npy
#: (version 2 keeps them, as every kind, through the vector store in vectors_f16.npy).
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
_REQUIRED = (
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
_CHUNK = 1 << 20


def glint_version() -> str:
    """The installed glint version (``0.0.0`` when running from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("glint")
    except PackageNotFoundError:
        return "0.0.0"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexWriter:
    """Writes an index directory atomically.

    Use as a context manager; files go into a temporary sibling directory and
    :meth:`commit` renames it to ``out``. Leaving the block without committing (or with an
    exception) removes the temporary directory.
    """

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.out = Path(out).absolute()
        self.overwrite = overwrite
        if self.out.exists() and not overwrite:
            raise InputError(f"{self.out}: already exists; choose another path or overwrite it")
        if not self.out.parent.is_dir():
            raise NotFoundError(f"{self.out.parent}: parent directory does not exist")
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:12]}"
        self._arrays: dict[str, dict[str, Any]] = {}
        self._committed = False
        self._prefix = ""

    def sub(self, prefix: str) -> IndexWriter:
        """A view that writes into the same directory with every file name behind ``prefix``
        (how an index stores the index it wraps)."""
        view = copy.copy(self)  # shares the directory and the record of arrays
        view._prefix = self._prefix + prefix
        return view

    def __enter__(self) -> IndexWriter:
        self.tmp.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Path of a (non-array) file to write into the index directory."""
        full = self._prefix + name
        if "/" in full or full in (MANIFEST, "") or full.startswith("."):
            raise ValueError(f"invalid index file name {full!r}")
        return self.tmp / full

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Save ``array`` as ``name`` (an ``.npy`` file) in the index directory."""
        np.save(self.path(name), np.ascontiguousarray(array), allow_pickle=False)
        self._arrays[self._prefix + name] = {"dtype": array.dtype.str, "shape": list(array.shape)}

    def commit(self, manifest: Mapping[str, Any]) -> Path:
        """Checksum every file, write the manifest, fsync and rename into place."""
        files: dict[str, dict[str, Any]] = {}
        for path in sorted(self.tmp.iterdir()):
            _fsync_path(path)
            entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
            entry.update(self._arrays.get(path.name, {}))
            files[path.name] = entry
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "glint_version": glint_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **manifest,
            "files": files,
        }
        manifest_path = self.tmp / MANIFEST
        with open(manifest_path, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_path(self.tmp)
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        _fsync_path(self.out.parent)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        log.info("wrote index %s (%d files)", self.out, len(files))
        return self.out


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and sanity-check ``DIR/manifest.json`` (no checksums; see :class:`IndexReader`)."""
    root = Path(path)
    if not root.exists():
        raise NotFoundError(f"{root}: no such index directory")
    if not root.is_dir():
        raise FormatError(f"{root}: not a directory (an index is a directory with {MANIFEST})")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FormatError(f"{root}: not a glint index (no {MANIFEST})")
    try:
        doc = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{manifest_path}: damaged manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{manifest_path}: not a glint index manifest")
    version = doc.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{manifest_path}: format version {version!r} is not supported (this glint reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        raise FormatError(f"{manifest_path}: damaged manifest, missing {', '.join(missing)}")
    if not isinstance(doc["files"], dict):
        raise FormatError(f"{manifest_path}: damaged manifest, 'files' is not a mapping")
    return doc


class IndexReader:
    """Opens an index directory, verifying the manifest against the files on disk."""

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.root = Path(path).absolute()
        self.manifest = read_manifest(self.root)
        self.files: dict[str, dict[str, Any]] = self.manifest["files"]
        self._prefix = ""
        present = {p.name for p in self.root.iterdir() if p.name != MANIFEST}
        for name in sorted(set(self.files) - present):
            raise FormatError(f"{self.root}: damaged index, {name} is missing")
        for name, entry in sorted(self.files.items()):
            self._check_file(name, entry, verify)

    def _check_file(self, name: str, entry: Mapping[str, Any], verify: bool) -> None:
        path = self.root / name
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise FormatError(
                f"{path}: damaged index, file is {size} bytes but the manifest records "
                f"{entry.get('bytes')} (truncated or replaced)"
            )
        if verify and sha256_file(path) != entry.get("sha256"):
            raise FormatError(f"{path}: damaged index, sha256 checksum does not match the manifest")

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
