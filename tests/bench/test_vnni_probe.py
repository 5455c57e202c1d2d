"""The VNNI probe (glint.bench.vnni): where the CPU has avx512_vnni, its intrinsic kernel
computes the exact integer dot product and the machine code holds vpdpbusd."""

from __future__ import annotations

import json

import pytest

from glint.bench.vnni import main


def test_vnni_probe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "3000", "--dim", "128", "--calls", "2000"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    if lines == [{"vnni": False, "note": "this CPU has no avx512_vnni"}]:
        pytest.skip("this CPU has no avx512_vnni")
    timings, checks = lines[:-1], lines[-1]
    assert [t["rows"] for t in timings] == ["random rows", "hot rows"]
    assert all(t[key] > 0 for t in timings for key in ("float_ns", "int_loop_ns", "vnni_ns"))
    assert checks["vnni_equals_exact_int_dot"] is True
    assert checks["vpdpbusd_in_vnni_kernel"] is True


def test_dim_must_be_whole_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--dim", "100"])
    assert exited.value.code == 2
    assert "--dim must be a multiple of 64" in capsys.readouterr().err
