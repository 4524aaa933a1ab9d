"""BLAS's sgemm, callable from compiled kernels with no allocation and no Python in between.

The kernels call the Fortran sgemm SciPy exports for Cython (``scipy.linalg.cython_blas``, a public API
that exists in every SciPy build), through a symbol registered with LLVM: unlike a ctypes pointer, a
named external function lets Numba cache the kernels that call it. Fortran takes every scalar by
address; ``_on_stack`` gives each one a stack slot, so a call allocates nothing on the heap. Row-major
operands with any row stride map to the column-major call by swapping the two factors.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

llvm.add_symbol("fusetile_sgemm", get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
_sgemm = types.ExternalFunction("fusetile_sgemm", types.void(*(types.intp,) * 13))


@intrinsic
def _on_stack(typingctx, value):
    """The address of a stack slot holding ``value`` (int32 for integers, float32 for floats)."""
    def codegen(context, builder, signature, args):
        if isinstance(signature.args[0], types.Integer):
            stored = builder.trunc(args[0], ir.IntType(32)) if args[0].type.width > 32 else args[0]
        else:
            stored = builder.fptrunc(args[0], ir.FloatType()) if args[0].type != ir.FloatType() else args[0]
        slot = cgutils.alloca_once_value(builder, stored)
        return builder.ptrtoint(slot, ir.IntType(64))
    return types.intp(value), codegen


NO_TRANSPOSE, TRANSPOSE = 78, 84  # ord("N"), ord("T")
F32 = 4  # bytes of a float32


@njit(cache=True, nogil=True)
def gemm(m, n, k, a, lda, a_transposed, b, ldb, c, ldc, beta):
    """c (m x n) = a (m x k) @ b (k x n) + beta * c, row-major, operands given as addresses of their first
    element and row strides in elements; ``a_transposed``: ``a`` is stored as its transpose (k x m). The
    column-major call computes c^T = b^T a^T."""
    _sgemm(_on_stack(NO_TRANSPOSE), _on_stack(TRANSPOSE if a_transposed else NO_TRANSPOSE), _on_stack(n),
           _on_stack(m), _on_stack(k), _on_stack(1.0), b, _on_stack(ldb), a, _on_stack(lda), _on_stack(beta), c,
           _on_stack(ldc))


@intrinsic
def _float_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.FloatType().as_pointer())
    return types.CPointer(types.float32)(types.intp), codegen


@njit(cache=True, nogil=True, inline="always")
def floats_at(address, n):
    """The ``n`` float32 at ``address`` as a contiguous 1D array (no allocation): a strided view's plane that
    the caller knows is contiguous, copied as one run."""
    return carray(_float_pointer(address), n)


@njit(cache=True, nogil=True, inline="always")
def row_at(a, n, y):
    """Row ``y`` of channel ``n`` of a (C, H, W) float32 map whose rows are contiguous, as a contiguous 1D
    array: the same row of a sliced view is typed as strided, and Numba keeps loops over it scalar (the
    epilogue of a 52-wide Winograd band ran 2.6x slower so)."""
    return floats_at(a.ctypes.data + n * a.strides[0] + y * a.strides[1], a.shape[2])


@njit(cache=True, nogil=True, inline="always")
def copy_run(dst, src):
    """dst[:n] = src for a 1D ``src`` of n floats: an element loop (a slice assignment checked its operands'
    overlap every call)."""
    for i in range(src.size):
        dst[i] = src[i]
