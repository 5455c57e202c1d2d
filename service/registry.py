"""Loaded collections: a name -> index map whose entries are swapped atomically."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from glint.client.models import CollectionInfo
from glint.index import Index, load_index

from .errors import ServiceError

__all__ = ["Collection", "Registry", "parse_index_arg"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collection:
    name: str
    index: Index
    path: Path
    loaded_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def info(self) -> CollectionInfo:
        manifest = self.index._reader.manifest if self.index._reader is not None else {}
        stats = self.index.stats()
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
            path=str(self.path),
            format_version=int(manifest.get("format_version", 0)),
            glint_version=str(manifest.get("glint_version", "")),
            created=str(manifest.get("created", "")),
            build=stats["build"],
        )


def parse_index_arg(arg: str) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (the collection is then named after the directory)."""
    name, sep, path = arg.partition("=")
    if not sep:
        path, name = arg, Path(arg.rstrip("/")).name
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"{arg}: collection name {name!r} must be letters, digits, '-', '_', '.'")
    return name, Path(path)


class Registry:
    """Thread-safe name -> :class:`Collection` map.

    Readers take a reference to a collection and keep using it; replacing an entry never
    disturbs a search already running on the old index.
    """

    def __init__(self, *, verify: bool = True) -> None:
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        self.verify = verify

    def names(self) -> list[str]:
        return sorted(self._collections)

    def all(self) -> list[Collection]:
        with self._lock:
            return [self._collections[n] for n in sorted(self._collections)]

    def get(self, name: str) -> Collection:
        collection = self._collections.get(name)
        if collection is None:
            known = ", ".join(self.names()) or "none"
            raise ServiceError(
                404, "not_found", f"collection {name!r} does not exist (loaded: {known})", "name"
            )
        return collection

    def load(self, name: str, path: Path) -> Collection:
        """Load ``path`` and install it as ``name`` (replacing any previous entry)."""
        index = load_index(path, verify=self.verify)
        index.warm()
        collection = Collection(name=name, index=index, path=Path(path).absolute())
        with self._lock:
            old = self._collections.get(name)
            self._collections[name] = collection
        log.info("collection %s: loaded %s (%s, %d vectors)", name, path, index.spec, index.count)
        if old is not None:
            log.info("collection %s: replaced %s", name, old.path)
        return collection

    def replace(self, name: str, path: Path, dim: int) -> Collection:
        """Load ``path`` and swap it in for ``name`` only if it has the same dimension."""
        index = load_index(path, verify=self.verify)
        if index.dim != dim:
            index.close()
            raise ServiceError(
                409,
                "dimension_mismatch",
                f"{path}: index has dimension {index.dim}, collection {name!r} serves {dim}",
                "path",
            )
        index.warm()
        collection = Collection(name=name, index=index, path=Path(path).absolute())
        with self._lock:
            self._collections[name] = collection
        log.info("collection %s: swapped to %s", name, path)
        return collection

    def unload(self, name: str) -> None:
        with self._lock:
            collection = self._collections.pop(name, None)
        if collection is None:
            raise ServiceError(404, "not_found", f"collection {name!r} does not exist", "name")
        log.info("collection %s: unloaded", name)

    def close(self) -> None:
        with self._lock:
            for collection in self._collections.values():
                collection.index.close()
            self._collections.clear()
