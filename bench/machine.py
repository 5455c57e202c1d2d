"""The machine line, library versions and resident memory (from ``/proc``)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = [
    "ResidentProbe",
    "cpu_count",
    "machine_line",
    "mapped_rss",
    "memory_status",
    "rss_bytes",
    "versions",
]

_PACKAGES = {
    "glint": "glint-vector",
    "numpy": "numpy",
    "faiss": "faiss-cpu",
    "hnswlib": "hnswlib",
    "numba": "numba",
}


def cpu_count() -> int:
    """The cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_line() -> str:
    """``"<cpu model>, <n> cores, <RAM>"``."""
    ram = _ram_bytes()
    ram_text = f"{ram / 2**30:.1f} GiB RAM" if ram else "unknown RAM"
    return f"{_cpu_model()}, {cpu_count()} cores, {ram_text}"


def versions() -> dict[str, str | None]:
    """Versions of glint, the peers' libraries and python (``None`` when not installed)."""
    found: dict[str, str | None] = {}
    for key, dist in _PACKAGES.items():
        try:
            found[key] = version(dist)
        except PackageNotFoundError:
            found[key] = None
    found["python"] = platform.python_version()
    return found


def memory_status() -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile`` and ``RssShmem`` of this process in bytes (empty
    where /proc is unavailable)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return {}
    return out


def rss_bytes() -> int | None:
    """This process's resident set size (VmRSS), or ``None`` where /proc is unavailable."""
    return memory_status().get("VmRSS")


def mapped_rss(root: Path) -> int | None:
    """Resident bytes of this process's memory mappings of files under ``root``
    (from /proc/self/smaps), or ``None`` where it is unavailable."""
    prefix = str(root.resolve())
    total, inside = 0, False
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                first = line.split(maxsplit=1)[0]
                if "-" in first and not first.endswith(":"):  # a mapping's header line
                    parts = line.split(maxsplit=5)
                    inside = len(parts) == 6 and parts[5].strip().startswith(prefix)
                elif inside and first == "Rss:":
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return total


class ResidentProbe:
    """Resident memory of an index, best-effort: the anonymous memory its loading allocated
    plus the resident pages of the index's own memory-mapped files (``root``).

    Call :meth:`start` before loading, :meth:`loaded` right after, and :meth:`bytes` after
    searching. Not counted: search temporaries the allocator keeps, JIT compilers' memory and
    library code pages (process costs, not index costs), and anonymous structures an index
    allocates lazily at its first search.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._before: int | None = None
        self._anon_loaded: int | None = None

    def start(self) -> None:
        self._before = memory_status().get("RssAnon")

    def loaded(self) -> None:
        self._anon_loaded = memory_status().get("RssAnon")

    def bytes(self) -> int | None:
        mapped = mapped_rss(self.root)
        if self._before is None or self._anon_loaded is None or mapped is None:
            return None
        return max(0, self._anon_loaded - self._before) + mapped
