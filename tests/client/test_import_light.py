"""``import glint.client`` must stay light: no server, index or JIT dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["faiss", "numba", "fastapi", "starlette", "uvicorn", "glint.index", "glint.service"]

SCRIPT = """
import json, sys
import glint.client
heavy = json.loads(sys.argv[1])
print(json.dumps(sorted(
    m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)
)))
"""


def test_import_glint_client_is_light() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
