"""Sixteen-lane float32 vectors for the numba kernels, with a plain-numpy meaning.

numba has no vector type, and LLVM's vectorizers can't be steered from numba: a block of 16
outputs accumulated over inputs is fully unrolled into 16 scalar chains rather than kept in one
vector register (measured 4-6x slower), and a dot product is vectorized only under fast-math
reassociation, with a tail loop whose cost depends on the tap count. These helpers make the
kernels' vectors explicit.

Each helper is a plain Python function on numpy arrays, so a kernel that uses them still runs
uncompiled (the tests run both); numba gets its own implementation through ``overload``, an
intrinsic that emits the LLVM vector IR. The meanings differ only in rounding: ``vfma`` is
fused when compiled (one rounding) and rounds twice in numpy. Compiled, every operation is
explicit, so a lane's arithmetic never depends on where a chunk boundary fell.

numba's cache is keyed on the kernels' own source file, not on this one: after editing this
file, clear ``bargein/dsp/__pycache__`` (or ``$NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

from typing import Any

import numba.core.cgutils
import numba.extending
import numpy as np
from llvmlite import ir
from numba import types
from numpy.typing import NDArray

F32 = NDArray[np.float32]

LANES = 16

# ---- the plain meanings ---------------------------------------------------------------------


def vzero() -> F32:
    """A vector of zeros."""
    return np.zeros(LANES, np.float32)


def vload(a: F32, i: int) -> F32:
    """``a[i : i + 16]``. Compiled there is no bounds check: the caller keeps it inside ``a``."""
    return np.array(a[i : i + LANES], np.float32)


def vstore(a: F32, i: int, v: F32) -> None:
    """``a[i : i + 16] = v``, the caller keeping it inside ``a``."""
    a[i : i + LANES] = v


def vfma(acc: F32, v: F32, s: F32 | float) -> F32:
    """``acc + v * s``, ``s`` a vector or a scalar broadcast to every lane."""
    return (acc + v * np.asarray(s, np.float32)).astype(np.float32)


def vadd(a: F32, b: F32) -> F32:
    return (a + b).astype(np.float32)


def vsum(v: F32) -> float:
    """The sum of the lanes by a fixed pairwise tree (16 -> 8 -> 4 -> 2 -> 1)."""
    while v.shape[0] > 1:
        half = v.shape[0] // 2
        v = (v[:half] + v[half:]).astype(np.float32)
    return float(v[0])


# ---- the compiled meanings ------------------------------------------------------------------
# numba's extension API is only partly annotated; it is used through Any, and the decorators
# are applied as calls so the functions above keep their types.

_ext: Any = numba.extending
_cg: Any = numba.core.cgutils

_VEC = ir.VectorType(ir.FloatType(), LANES)
_I32 = ir.IntType(32)


class _F32x16(types.Type):
    def __init__(self) -> None:
        super().__init__(name="f32x16")


_f32x16 = _F32x16()


class _F32x16Model(_ext.models.PrimitiveModel):  # type: ignore[misc]
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VEC)


_ext.register_model(_F32x16)(_F32x16Model)


def _vec_ptr(context: Any, builder: Any, arrty: Any, arr: Any, idx: Any) -> Any:
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), _VEC.as_pointer())


def _halves(builder: Any, v: Any, n: int) -> tuple[Any, Any]:
    def take(lo: int) -> Any:
        mask = ir.Constant(ir.VectorType(_I32, n // 2), list(range(lo, lo + n // 2)))
        return builder.shuffle_vector(v, v, mask)

    return take(0), take(n // 2)


def _zero_typer(typingctx: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return ir.Constant(_VEC, None)

    return _f32x16(), codegen


def _load_typer(typingctx: Any, arr: Any, idx: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=4)

    return _f32x16(arr, idx), codegen


def _store_typer(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()

    return types.void(arr, idx, v), codegen


def _fma_typer(typingctx: Any, acc: Any, v: Any, s: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        acc_, v_, s_ = args
        if isinstance(sig.args[2], _F32x16):
            splat = s_
        else:
            s_ = context.cast(builder, s_, sig.args[2], types.float32)
            undef = ir.Constant(_VEC, ir.Undefined)
            splat = builder.shuffle_vector(
                builder.insert_element(undef, s_, ir.Constant(_I32, 0)),
                undef,
                ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES),
            )
        fma = _cg.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC]), "llvm.fma.v16f32"
        )
        return builder.call(fma, [v_, splat, acc_])

    return _f32x16(acc, v, s), codegen


def _add_typer(typingctx: Any, a: Any, b: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fadd(args[0], args[1])

    return _f32x16(a, b), codegen


def _sum_typer(typingctx: Any, v: Any) -> Any:
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        x, n = args[0], LANES
        while n > 1:
            lo, hi = _halves(builder, x, n)
            x, n = builder.fadd(lo, hi), n // 2
        return builder.extract_element(x, ir.Constant(_I32, 0))

    return types.float32(v), codegen


_zero = _ext.intrinsic(_zero_typer)
_load = _ext.intrinsic(_load_typer)
_store = _ext.intrinsic(_store_typer)
_fma = _ext.intrinsic(_fma_typer)
_add = _ext.intrinsic(_add_typer)
_sum = _ext.intrinsic(_sum_typer)

# numba checks that an implementation's parameters match the typing function's, annotations
# included, so the implementations are annotated defs rather than lambdas.


def _vzero_impl() -> Any:
    def impl() -> Any:
        return _zero()

    return impl


def _vload_impl(a: Any, i: Any) -> Any:
    def impl(a: Any, i: Any) -> Any:
        return _load(a, i)

    return impl


def _vstore_impl(a: Any, i: Any, v: Any) -> Any:
    def impl(a: Any, i: Any, v: Any) -> Any:
        _store(a, i, v)

    return impl


def _vfma_impl(acc: Any, v: Any, s: Any) -> Any:
    def impl(acc: Any, v: Any, s: Any) -> Any:
        return _fma(acc, v, s)

    return impl


def _vadd_impl(a: Any, b: Any) -> Any:
    def impl(a: Any, b: Any) -> Any:
        return _add(a, b)

    return impl


def _vsum_impl(v: Any) -> Any:
    def impl(v: Any) -> Any:
        return _sum(v)

    return impl


for _plain, _impl in (
    (vzero, _vzero_impl), (vload, _vload_impl), (vstore, _vstore_impl), (vfma, _vfma_impl),
    (vadd, _vadd_impl), (vsum, _vsum_impl),
):
    _ext.overload(_plain)(_impl)
