"""Can numba reach AVX-512 VNNI? Per-distance cost of an LVQ-8-shaped dot product three ways.

    python -m glint.bench.vnni [--n 100000] [--dim 384]

- ``float``: the form of today's kernel (``index/kernels/distances.py``): codes converted to
  float32 and multiplied by the float32 query;
- ``int-loop``: the query quantised to int8 and a plain integer loop (what LLVM makes of it
  unaided: it widens to 32 bits, no VNNI);
- ``vnni``: the same integer dot product through ``llvm.x86.avx512.vpdpbusd.512`` called from a
  numba intrinsic, 64 bytes per instruction (as ``index/kernels/prefetch.py`` calls
  ``llvm.prefetch``).

Rows are read at random (as a graph search does) and from a small hot set (cached). A
development probe for docs/design-lvq-hnsw.md; the index's own VNNI kernels are in
``index/kernels/intdot.py``. Needs a CPU with ``avx512_vnni`` (it says so and stops otherwise).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_BLOCK = 64  # bytes per vpdpbusd.512


@intrinsic
def _dot_u8_i8(typingctx, codes, query, blocks):  # type: ignore[no-untyped-def]
    """Σ codes[j] (uint8) × query[j] (int8) over the first ``64 · blocks`` bytes, as int32."""
    sig = types.int32(codes, query, blocks)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a = context.make_array(signature.args[0])(context, builder, args[0])
        b = context.make_array(signature.args[1])(context, builder, args[1])
        i8, i32 = ir.IntType(8), ir.IntType(32)
        lanes, bytes64 = ir.VectorType(i32, 16), ir.VectorType(i8, _BLOCK)
        vpdpbusd = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(lanes, [lanes, lanes, lanes]),
            "llvm.x86.avx512.vpdpbusd.512",
        )
        total = cgutils.alloca_once_value(builder, ir.Constant(lanes, None))
        pa = builder.bitcast(a.data, bytes64.as_pointer())
        pb = builder.bitcast(b.data, bytes64.as_pointer())
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        with cgutils.for_range(builder, count) as loop:
            va = builder.bitcast(builder.load(builder.gep(pa, [loop.index]), align=1), lanes)
            vb = builder.bitcast(builder.load(builder.gep(pb, [loop.index]), align=1), lanes)
            builder.store(builder.call(vpdpbusd, [builder.load(total), va, vb]), total)
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [lanes]), "llvm.vector.reduce.add.v16i32"
        )
        return builder.call(reduce_add, [builder.load(total)])

    return sig, codegen


@njit(nogil=True)
def _vnni(q8, codes, rows, out):  # type: ignore[no-untyped-def]
    blocks = q8.shape[0] // _BLOCK
    for t in range(rows.shape[0]):
        out[t] = _dot_u8_i8(codes[rows[t]], q8, blocks)


@njit(nogil=True, fastmath=True)
def _int_loop(q8, codes, rows, out):  # type: ignore[no-untyped-def]
    for t in range(rows.shape[0]):
        rec = codes[rows[t]]
        s = np.int32(0)
        for j in range(q8.shape[0]):
            s += np.int32(q8[j]) * np.int32(rec[j])
        out[t] = s


@njit(nogil=True, fastmath=True)
def _float(q, codes, rows, out):  # type: ignore[no-untyped-def]
    for t in range(rows.shape[0]):
        rec = codes[rows[t]]
        s = np.float32(0.0)
        for j in range(q.shape[0]):
            s += q[j] * np.float32(rec[j])
        out[t] = s


def _has_vnni() -> bool:
    try:
        return "avx512_vnni" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _ns_per_call(fn, query, codes, rows, out, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn(query, codes, rows[:16], out[:16])  # compile
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(query, codes, rows, out)
        best = min(best, time.perf_counter() - started)
    return 1e9 * best / len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glint.bench.vnni")
    parser.add_argument("--n", type=int, default=100_000, help="rows of codes")
    parser.add_argument("--dim", type=int, default=384, help="a multiple of 64")
    parser.add_argument("--calls", type=int, default=200_000, help="distances per timing")
    args = parser.parse_args(argv)
    if args.dim % _BLOCK:
        parser.error(f"--dim must be a multiple of {_BLOCK}")
    if not _has_vnni():
        print(json.dumps({"vnni": False, "note": "this CPU has no avx512_vnni"}))
        return 0
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (args.n, args.dim), dtype=np.uint8)
    query = rng.standard_normal(args.dim).astype(np.float32)
    q8 = np.round(query / np.abs(query).max() * 127).astype(np.int8)
    rows = {
        "random rows": rng.integers(0, args.n, args.calls),
        "hot rows": np.arange(args.calls) % 2000,
    }
    ints = np.empty(args.calls, np.int32)
    floats = np.empty(args.calls, np.float32)
    exact = codes[rows["random rows"][:1000]].astype(np.int64) @ q8.astype(np.int64)
    _vnni(q8, codes, rows["random rows"][:1000], ints[:1000])
    same = bool(np.array_equal(ints[:1000], exact))
    asm = _vnni.inspect_asm(_vnni.signatures[0])
    for name, which in rows.items():
        line = {
            "rows": name,
            "dim": args.dim,
            "float_ns": round(_ns_per_call(_float, query, codes, which, floats), 1),
            "int_loop_ns": round(_ns_per_call(_int_loop, q8, codes, which, ints), 1),
            "vnni_ns": round(_ns_per_call(_vnni, q8, codes, which, ints), 1),
        }
        print(json.dumps(line))
    loop_asm = _int_loop.inspect_asm(_int_loop.signatures[0])
    print(
        json.dumps(
            {
                "vnni_equals_exact_int_dot": same,
                "vpdpbusd_in_vnni_kernel": "vpdpbusd" in asm,
                "vpdpbusd_in_int_loop": "vpdpbusd" in loop_asm,
                "vpmaddwd_in_int_loop": "vpmaddwd" in loop_asm,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
