"""The index kinds glint ships. Importing a kind's module registers it in
:mod:`glint.index.registry`; a new kind is one module plus one name here."""

from __future__ import annotations

from . import flat, hnsw, ivfpq, muvera

__all__ = ["flat", "hnsw", "ivfpq", "muvera"]
