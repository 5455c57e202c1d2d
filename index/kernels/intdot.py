"""Integer dot products of LVQ codes with an 8-bit query, on AVX-512 VNNI (and, for 4-bit
codes, on AVX2).

numba (LLVM) does not turn a plain ``uint8 × int8`` loop into VNNI instructions: it widens
every element to 32 bits (``python -m glint.bench.vnni`` shows the machine code and the cost).
These intrinsics call ``vpdpbusd`` directly (as :mod:`.prefetch` calls ``llvm.prefetch``): one
instruction multiplies 64 unsigned code bytes by 64 signed query bytes and adds them, in groups
of four, into sixteen 32-bit sums. Sums cannot overflow: 255 · 127 · 4 per lane and block, far
below 2^31 for any dimension an index accepts.

On a CPU with AVX2 but no VNNI, 4-bit codes take ``vpmaddubsw`` (32 code bytes times 32
query bytes, adjacent pairs summed into 16-bit lanes) then ``vpmaddwd`` (pairs of those into
32-bit lanes): a nibble is at most 15, so a 16-bit lane holds at most 15 · 127 · 2 for each
half of the byte, 7,620 for both, and never saturates. 8-bit codes could (255 · 127 · 2 is
over 32,767), so LVQ-8 keeps the float kernel there.

Only whole 64-byte blocks go through these instructions; callers add the tail (``nb % 64``
bytes) in plain code, so no read passes the end of a record. :data:`HAS_VNNI` and
:data:`HAS_AVX2` say what this CPU has; without them (or with ``GLINT_NO_VNNI=1`` set, which
turns every integer kernel off) the index keeps the float kernels, which give the same
rankings to within the query's 8-bit rounding, and these intrinsics emit the same arithmetic
as portable vector code, so that code naming them still compiles.
"""

from __future__ import annotations

import os
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["BLOCK", "HAS_AVX2", "HAS_VNNI", "dot_u4_i8", "dot_u8_i8"]

#: Bytes one ``vpdpbusd`` reads from each operand.
BLOCK = 64


def _host_has(*names: str) -> bool:
    if os.environ.get("GLINT_NO_VNNI", "") not in ("", "0"):
        return False
    features = llvm.get_host_cpu_features()
    return all(features.get(name, False) for name in names)


#: Whether the search kernels use the VNNI integer path (8- and 4-bit codes) on this machine.
HAS_VNNI = _host_has("avx512vnni", "avx512bw")
#: Whether 4-bit codes take the AVX2 integer path (where there is no VNNI).
HAS_AVX2 = _host_has("avx2")

_I8, _I16, _I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
_LANES = ir.VectorType(_I32, 16)
_BYTES = ir.VectorType(_I8, BLOCK)
_HALF = ir.VectorType(_I8, BLOCK // 2)  # one AVX2 register of bytes
_WORDS = ir.VectorType(_I16, BLOCK // 4)
_LANES8 = ir.VectorType(_I32, BLOCK // 8)


class _Portable:
    """``vpdpbusd``'s arithmetic in plain LLVM vector code, for a compile target without VNNI
    (the integer kinds are then never chosen, but code that names them must still compile:
    LLVM aborts the process on an instruction the target lacks)."""

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.wide = ir.VectorType(_I32, BLOCK)

    def __call__(self, args: list[Any]) -> Any:
        b = self.builder
        total, unsigned, signed = args
        u = b.zext(b.bitcast(unsigned, _BYTES), self.wide)
        v = b.sext(b.bitcast(signed, _BYTES), self.wide)
        products = b.mul(u, v)
        # sum groups of four adjacent products into the 16 lanes, as vpdpbusd does
        lanes = [
            b.shuffle_vector(
                products,
                products,
                ir.Constant(ir.VectorType(_I32, 16), [4 * i + j for i in range(16)]),
            )
            for j in range(4)
        ]
        return b.add(total, b.add(b.add(lanes[0], lanes[1]), b.add(lanes[2], lanes[3])))


def _vpdpbusd(builder: Any) -> Any:
    """A callable ``f([acc, unsigned, signed]) -> acc'`` emitting ``vpdpbusd`` (or its
    portable arithmetic where the target has no VNNI)."""
    if not HAS_VNNI:
        return _Portable(builder)
    function = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]  # numba is untyped
        builder.module,
        ir.FunctionType(_LANES, [_LANES, _LANES, _LANES]),
        "llvm.x86.avx512.vpdpbusd.512",
    )
    return lambda args: builder.call(function, args)


def _reduce(builder: Any, total: Any) -> Any:
    add = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]  # numba is untyped
        builder.module, ir.FunctionType(_I32, [_LANES]), "llvm.vector.reduce.add.v16i32"
    )
    return builder.call(add, [builder.load(total)])


def _block_pointer(context: Any, builder: Any, array_type: Any, value: Any) -> Any:
    data = context.make_array(array_type)(context, builder, value).data
    return builder.bitcast(data, _BYTES.as_pointer())


def _load(builder: Any, pointer: Any, index: Any) -> Any:
    return builder.load(builder.gep(pointer, [index]), align=1)


@intrinsic
def dot_u8_i8(typingctx, codes, query, blocks):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """Σ codes[j] · query[j] over the first ``64 · blocks`` bytes, as int32 (codes uint8,
    query int8, both 1-D and contiguous)."""
    sig = types.int32(codes, query, blocks)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pa = _block_pointer(context, builder, signature.args[0], args[0])
        pb = _block_pointer(context, builder, signature.args[1], args[1])
        vpdpbusd = _vpdpbusd(builder)
        zero = ir.Constant(_LANES, None)
        total = cgutils.alloca_once_value(builder, zero)  # type: ignore[no-untyped-call]
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        with cgutils.for_range(builder, count) as loop:
            va = builder.bitcast(_load(builder, pa, loop.index), _LANES)
            vb = builder.bitcast(_load(builder, pb, loop.index), _LANES)
            builder.store(vpdpbusd([builder.load(total), va, vb]), total)
        return _reduce(builder, total)

    return sig, codegen


def _avx2_u4_block(builder: Any, packed: Any, q_low: Any, q_high: Any) -> Any:
    """Σ over one 64-byte block of 4-bit codes (``packed``) with the query's low and high
    halves, as <8 x i32> partial sums: two AVX2 halves, each ``vpmaddubsw`` on both nibbles,
    added in 16 bits (at most 7,620 a lane), then ``vpmaddwd`` into 32 bits."""
    maddubs = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]  # numba is untyped
        builder.module, ir.FunctionType(_WORDS, [_HALF, _HALF]), "llvm.x86.avx2.pmadd.ub.sw"
    )
    maddwd = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]  # numba is untyped
        builder.module, ir.FunctionType(_LANES8, [_WORDS, _WORDS]), "llvm.x86.avx2.pmadd.wd"
    )
    nibble = ir.Constant(_BYTES, [15] * BLOCK)
    four = ir.Constant(_BYTES, [4] * BLOCK)
    ones = ir.Constant(_WORDS, [1] * (BLOCK // 4))
    low = builder.and_(packed, nibble)
    high = builder.lshr(packed, four)
    sums = []
    for half in range(2):
        pick = ir.Constant(
            ir.VectorType(_I32, BLOCK // 2), [half * BLOCK // 2 + i for i in range(BLOCK // 2)]
        )

        def take(v: Any, pick: Any = pick) -> Any:
            return builder.shuffle_vector(v, v, pick)

        words = builder.add(
            builder.call(maddubs, [take(low), take(q_low)]),
            builder.call(maddubs, [take(high), take(q_high)]),
        )
        sums.append(builder.call(maddwd, [words, ones]))
    return builder.add(sums[0], sums[1])


def _dot_u4_avx2(builder: Any, pa: Any, p_low: Any, p_high: Any, count: Any) -> Any:
    total = cgutils.alloca_once_value(builder, ir.Constant(_LANES8, None))  # type: ignore[no-untyped-call]
    with cgutils.for_range(builder, count) as loop:
        block = _avx2_u4_block(
            builder,
            _load(builder, pa, loop.index),
            _load(builder, p_low, loop.index),
            _load(builder, p_high, loop.index),
        )
        builder.store(builder.add(builder.load(total), block), total)
    add = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]  # numba is untyped
        builder.module, ir.FunctionType(_I32, [_LANES8]), "llvm.vector.reduce.add.v8i32"
    )
    return builder.call(add, [builder.load(total)])


@intrinsic
def dot_u4_i8(typingctx, codes, query, blocks, half):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """The 4-bit form: byte ``t`` of ``codes`` holds dimension ``t`` (low nibble) and ``t +
    half`` (high nibble), and ``query`` holds the low dimensions' bytes at ``[0, half)`` and
    the high ones' at ``[half, 2 · half)``. Sums over the first ``64 · blocks`` code bytes."""
    sig = types.int32(codes, query, blocks, half)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pa = _block_pointer(context, builder, signature.args[0], args[0])
        query_bytes = context.make_array(signature.args[1])(context, builder, args[1]).data
        offset = context.cast(builder, args[3], signature.args[3], types.intp)
        p_low = builder.bitcast(query_bytes, _BYTES.as_pointer())
        p_high = builder.bitcast(builder.gep(query_bytes, [offset]), _BYTES.as_pointer())
        count = context.cast(builder, args[2], signature.args[2], types.intp)
        if HAS_AVX2 and not HAS_VNNI:
            return _dot_u4_avx2(builder, pa, p_low, p_high, count)
        vpdpbusd = _vpdpbusd(builder)
        nibble = ir.Constant(_BYTES, [15] * BLOCK)
        four = ir.Constant(_BYTES, [4] * BLOCK)
        zero = ir.Constant(_LANES, None)
        total = cgutils.alloca_once_value(builder, zero)  # type: ignore[no-untyped-call]
        with cgutils.for_range(builder, count) as loop:
            packed = _load(builder, pa, loop.index)
            low = builder.bitcast(builder.and_(packed, nibble), _LANES)
            high = builder.bitcast(builder.lshr(packed, four), _LANES)
            q_low = builder.bitcast(_load(builder, p_low, loop.index), _LANES)
            q_high = builder.bitcast(_load(builder, p_high, loop.index), _LANES)
            acc = vpdpbusd([builder.load(total), low, q_low])
            builder.store(vpdpbusd([acc, high, q_high]), total)
        return _reduce(builder, total)

    return sig, codegen
