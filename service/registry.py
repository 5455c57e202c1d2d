"""Loaded collections: a name -> index map whose entries are swapped atomically."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from glint.client.models import CollectionInfo
from glint.index import Index, load_index
from glint.index.errors import GlintError, one_line
from glint.index.storage import manifest_document

from .errors import ServiceError

__all__ = ["Collection", "Registry", "parse_index_arg"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collection:
    name: str
    index: Index[Any]
    path: Path
    loaded_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def info(self, *, detailed: bool = True) -> CollectionInfo:
        """What the collection is. Without ``detailed`` (callers below admin, when keys are
        on), server paths are cut to their last part: the directory's and the build input's
        names, not where they live."""
        manifest = self.index.manifest or {}
        stats = self.index.stats()
        build = dict(stats["build"])
        if not detailed and isinstance(build.get("source"), str):
            build["source"] = Path(build["source"]).name
        return CollectionInfo(
            name=self.name,
            kind=stats["kind"],
            spec=stats["spec"],
            metric=stats["metric"],
            dim=stats["dim"],
            count=stats["count"],
            multivector=stats["multivector"],
            memory_bytes=stats["memory_bytes"],
            disk_bytes=stats["disk_bytes"],
            has_payloads=stats["has_payloads"],
            path=str(self.path) if detailed else self.path.name,
            format_version=int(manifest.get("format_version", 0)),
            glint_version=str(manifest.get("glint_version", "")),
            created=str(manifest.get("created", "")),
            build=build,
        )


def parse_index_arg(arg: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (the collection is then named after the directory)."""
    name, sep, path = arg.partition("=")
    if not sep:
        path, name = arg, Path(arg.rstrip("/")).name
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"{arg}: collection name {name!r} must be letters, digits, '-', '_', '.'")
    return name, Path(path)


def _probe(index: Index[Any]) -> None:
    """One small search, so that an index that loads but cannot answer never goes live."""
    rng = np.random.default_rng(0)
    if index.multivector:
        index.search([rng.standard_normal((2, index.dim), dtype=np.float32)], 1, threads=1)
    else:
        index.search(rng.standard_normal((1, index.dim), dtype=np.float32), 1, threads=1)


def _open(path: Path, *, verify: bool) -> Index[Any]:
    """Load (checksums verified), test-search and warm an index; close it if any step fails."""
    index = load_index(path, verify=verify)
    try:
        _probe(index)
        index.warm()
    except BaseException:
        index.close()
        raise
    return index


_NO_INDEX = (
    "no glint index can be loaded from this path (it is missing, unreadable, or holds no "
    "glint manifest)"
)


def _holds_manifest(path: Path) -> bool:
    """Whether ``path`` holds a readable glint manifest (of any version, damaged or not)."""
    try:
        manifest_document(Path(path))
    except (GlintError, OSError):
        return False
    return True


def _as_given(reason: str, path: Path) -> str:
    """``reason`` with the index directory named as it was given, not as an absolute path."""
    given = str(path)
    spellings = {str(Path(path).absolute())}
    with contextlib.suppress(OSError, RuntimeError):  # a symlink loop
        spellings.add(str(Path(path).resolve()))
    for absolute in sorted(spellings - {given}, key=len, reverse=True):
        reason = reason.replace(absolute, given)
    return reason if reason.startswith(given) else f"{given}: {reason}"


def _expected(exc: BaseException) -> bool:
    """A load failure that says what is wrong with the directory (not a bug of glint's)."""
    return isinstance(exc, (GlintError, ValueError, OSError))


def _load_failure(exc: BaseException, path: Path, keeps: str) -> ServiceError:
    """The answer for a load or swap of ``path`` that failed; ``keeps`` says what goes on
    serving. Always 422 ``invalid_index``, and about the path only as it was given:

    - no glint manifest to read there (the path is missing, is no directory, is unreadable,
      or holds something else): one message for all of these, so that the answer reveals
      nothing about files that are not glint indices (it is no oracle for what exists);
    - a glint index that cannot be used (damaged, truncated, of an unsupported version): the
      reason, its file names relative to the path given;
    - anything else (a bug): no detail; the server log has it.
    """
    if isinstance(exc, ServiceError):
        return exc
    if not _holds_manifest(path):
        reason = f"{path}: {_NO_INDEX}"
    elif _expected(exc):
        reason = _as_given(one_line(exc), path)
    else:
        reason = (
            f"{path}: the index could not be loaded (unexpected {type(exc).__name__}; the "
            "server log has the details)"
        )
    return ServiceError("invalid_index", f"{reason}; {keeps}", "path", status=422)


class Registry:
    """Thread-safe name -> :class:`Collection` map.

    Readers take a reference to a collection and keep using it; replacing an entry never
    disturbs a search already running on the old index (the old one is released when the last
    of them ends). Loads, swaps and unloads of one name are serialised: a second one while the
    first runs is refused with 409. ``pending`` names (start-up loads not yet done) and
    ``failed`` ones answer 503 rather than 404. A failed start-up load takes down nothing but
    its own collection: the others serve.
    """

    def __init__(self, *, verify: bool = True) -> None:
        self._collections: dict[str, Collection] = {}
        self._busy: dict[str, str] = {}
        self._pending: set[str] = set()
        self._failed: dict[str, str] = {}
        self._lock = threading.Lock()
        self.verify = verify

    def names(self) -> list[str]:
        return sorted(self._collections)

    def all(self) -> list[Collection]:
        with self._lock:
            return [self._collections[n] for n in sorted(self._collections)]

    def busy(self) -> list[str]:
        """Names being loaded, swapped or unloaded now (start-up loads included)."""
        with self._lock:
            return sorted(set(self._busy) | self._pending)

    def failed(self) -> dict[str, str]:
        """Collections whose start-up load failed, with the reason (paths as given at start;
        for those allowed to see it: see ``routes/health.py``)."""
        with self._lock:
            return dict(self._failed)

    def starting(self) -> bool:
        """Whether start-up loads are still running."""
        with self._lock:
            return bool(self._pending)

    def get(self, name: str) -> Collection:
        collection = self._collections.get(name)
        if collection is not None:
            return collection
        with self._lock:
            collection = self._collections.get(name)  # it may have just been installed
            pending, failure = name in self._pending, self._failed.get(name)
        if collection is not None:
            return collection
        if pending:
            raise ServiceError("unavailable", f"collection {name!r} is still loading", "name")
        if failure is not None:  # the reason is for admins (/readyz) and the log, not here
            raise ServiceError(
                "unavailable",
                f"collection {name!r} failed to load at start-up; /readyz (with an admin key) "
                "or the server log says why",
                "name",
            )
        known = ", ".join(self.names()) or "none"
        raise ServiceError(
            "not_found", f"collection {name!r} does not exist (loaded: {known})", "name"
        )

    @contextmanager
    def _claim(self, name: str, action: str, *, startup: bool = False) -> Iterator[None]:
        with self._lock:
            if name in self._pending and not startup:
                raise ServiceError(
                    "conflict", f"collection {name!r} is still loading at start-up", "name"
                )
            if name in self._busy:
                raise ServiceError(
                    "conflict", f"collection {name!r} is busy ({self._busy[name]})", "name"
                )
            self._busy[name] = action
        try:
            yield
        finally:
            with self._lock:
                del self._busy[name]

    def expect(self, names: list[str]) -> None:
        """Mark start-up loads as pending until :meth:`load_at_start` ends for each."""
        with self._lock:
            self._pending.update(names)

    def load_at_start(self, name: str, path: Path) -> bool:
        """A start-up load: on failure the reason is kept (``/readyz`` shows it to admins)
        and logged in full (by :meth:`_load_index`), and the other collections serve on."""
        try:
            self.load(name, path, startup=True)
            return True
        except ServiceError as exc:
            with self._lock:
                self._failed[name] = exc.message
            return False
        finally:
            with self._lock:
                self._pending.discard(name)

    def load(
        self, name: str, path: Path, *, new: bool = False, startup: bool = False
    ) -> Collection:
        """Load ``path`` and install it as ``name``; with ``new``, ``name`` must not exist."""
        with self._claim(name, f"loading {path}", startup=startup):
            if new and name in self._collections:
                raise ServiceError("conflict", f"collection {name!r} exists; use reload", "name")
            keeps = f"collection {name!r} was not loaded"
            index = self._load_index(name, path, keeps, startup=startup)
            collection = Collection(name=name, index=index, path=Path(path).absolute())
            with self._lock:
                self._collections[name] = collection
                self._failed.pop(name, None)
        log.info("collection %s: loaded %s (%s, %d vectors)", name, path, index.spec, index.count)
        return collection

    def replace(self, name: str, path: Path) -> Collection:
        """The alias swap: load ``path``, verify it (checksums, same dimension and query kind,
        a test search), warm it, then switch ``name`` to it in one step. On any failure the
        old index goes on serving and the error says why."""
        with self._claim(name, f"swapping to {path}"):
            old = self.get(name)
            # not its path: an answer names no path but the one its caller sent
            keeps = f"collection {name!r} still serves its current index"
            index = self._load_index(name, path, keeps)
            mismatch = None
            if index.dim != old.index.dim:
                mismatch = f"index has dimension {index.dim}, the collection serves {old.index.dim}"
            elif index.multivector != old.index.multivector:
                kinds = {True: "multi-vector", False: "single-vector"}
                mismatch = (
                    f"index is {kinds[index.multivector]}, the collection serves "
                    f"{kinds[old.index.multivector]} queries"
                )
            if mismatch is not None:
                index.close()
                message = f"{path}: {mismatch}; {keeps}"
                raise ServiceError("dimension_mismatch", message, "path", status=409)
            collection = Collection(name=name, index=index, path=Path(path).absolute())
            with self._lock:
                self._collections[name] = collection
        log.info("collection %s: swapped %s -> %s", name, old.path, path)
        return collection

    def _load_index(
        self, name: str, path: Path, keeps: str, *, startup: bool = False
    ) -> Index[Any]:
        """:func:`_open` ``path`` for collection ``name``; a failure is logged with every
        detail (absolute path, full reason) and raised as :func:`_load_failure`'s answer."""
        try:
            return _open(path, verify=self.verify)
        except BaseException as exc:
            where = Path(path).absolute()
            if _expected(exc):
                level = logging.ERROR if startup else logging.WARNING
                log.log(level, "collection %s: cannot load %s: %s", name, where, one_line(exc))
            else:
                log.exception("collection %s: loading %s failed", name, where)
            raise _load_failure(exc, path, keeps) from exc

    def unload(self, name: str) -> None:
        with self._claim(name, "unloading"):
            with self._lock:
                collection = self._collections.pop(name, None)
                self._failed.pop(name, None)
            if collection is None:
                raise ServiceError("not_found", f"collection {name!r} does not exist", "name")
        log.info("collection %s: unloaded", name)

    def close(self) -> None:
        with self._lock:
            for collection in self._collections.values():
                collection.index.close()
            self._collections.clear()
