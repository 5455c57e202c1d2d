"""``python -m glint.bench``: the ``glint-bench`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
