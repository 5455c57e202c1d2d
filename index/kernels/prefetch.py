"""``prefetch_row``: ask the CPU to start loading a row of a 2-D array (``llvm.prefetch``).

Graph search is bound by memory latency: while the distance to one neighbour is computed,
the rows of the next neighbours should already be on their way.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_row"]

_LINE = 64


@intrinsic
def _prefetch(typingctx, array, row, col):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """Prefetch the cache line holding ``array[row, col]`` (read, keep in all cache levels)."""
    if not (isinstance(array, types.Array) and array.ndim == 2):
        return None
    sig = types.void(array, row, col)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]  # numba types these at compile time
        array_type = signature.args[0]
        arr = context.make_array(array_type)(context, builder, args[0])
        indices = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        pointer = cgutils.get_item_pointer(context, builder, array_type, arr, indices)
        i8_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [i8_pointer, i32, i32, i32]),
            "llvm.prefetch.p0i8",
        )
        builder.call(function, [builder.bitcast(pointer, i8_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", nogil=True)
def prefetch_row(array, row):  # type: ignore[no-untyped-def]  # numba types these at compile time
    """Prefetch every cache line of ``array[row]``."""
    per_line = max(1, _LINE // array.itemsize)
    for col in range(0, array.shape[1], per_line):
        _prefetch(array, row, col)  # type: ignore[call-arg]  # numba supplies the typing context
