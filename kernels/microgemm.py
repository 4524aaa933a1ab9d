"""A float32 GEMM with the same contract as ``kernels.blas.gemm``, from a register-blocked kernel written in
LLVM IR. On this Zen 4, one core, warm operands, the shapes a conv step multiplies: 84-107 GFLOP/s against
OpenBLAS's SkylakeX kernels' 81-95 (0.99x to 1.27x, about 1.12x in the median).

Each kernel call computes a block of 6 rows by up to 64 columns of c: 24 sixteen-float accumulators held in
registers while k runs, each step one broadcast of a's six values and four vector loads of b's row, 24
fused multiply-adds. Neither operand is packed: a's six rows are read where they lie (row-major, or
transposed), b's rows of the block too, so the GEMM needs no workspace, and the arena stays as it was.
Blocks run row block by row block, so a's rows stay in L1 while b (one channel block of the packed input,
sized by the workspace budget to stay in L2) is reread; a b larger than L2 ran at OpenBLAS's rate.

Written in IR because Numba's loops did not get there: dot products along k ran at OpenBLAS's rate at
best, outer products came out scalar. Masked loads inside the loop ran at a third of this rate, so a
block narrower than 64 columns loads whole vectors for every step but the last (past its columns, b's
next row: memory that exists and lanes that are never stored) and masks only its last step and its
stores. Rows past ``m`` in the last row block read a's last row again, and are not stored.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from kernels.blas import F32, floats_at
from kernels.blas import gemm as blas_gemm
from kernels.registers import (FLOAT, I64, LANES, PANEL, ROWS, VECTOR, by_width, fma_step, loop_end, loop_start,
                              row_offsets, store_block)


def _block_kernel(edge: bool):
    """An intrinsic computing c[0:rows, 0:cols] (=, or += if ``add``) a[0:rows, :k] @ b[:k, 0:cols]: a whole
    block (64 columns, four vectors per row), or, if ``edge``, a block whose cols may end inside its last
    vector (masked there), with as many vectors as they need (``by_width``)."""
    @intrinsic
    def kernel(typingctx, a, a_row, a_step, b, ldb, c, ldc, k, rows, cols, add):
        signature = types.void(*(types.intp,) * 11)

        def codegen(context, builder, sig, args):
            a0, a_row_, a_step_, b0, ldb_, c0, ldc_, k_, rows_, cols_, add_ = args
            fp = FLOAT.as_pointer()
            a_offsets = row_offsets(builder, rows_, a_row_)
            a0, b0 = builder.inttoptr(a0, fp), builder.inttoptr(b0, fp)
            operands = (a0, a_step_, a_offsets, b0, ldb_, c0, ldc_, k_, rows_, add_)
            by_width(builder, edge, cols_, lambda vectors, masks: _block(builder, vectors, masks, *operands))
            return context.get_dummy_value()
        return signature, codegen
    return kernel


def _block(builder, vectors, masks, a0, a_step_, a_offsets, b0, ldb_, c0, ldc_, k_, rows_, add_) -> None:
    """A block's code with ``vectors`` vectors per row, the last one masked if ``masks``."""
    fp, zero = FLOAT.as_pointer(), ir.Constant(VECTOR, [0.0] * LANES)

    def step(pa, pb, accumulators, masked):
        return fma_step(builder, pa, a_offsets, pb, accumulators, masks if masked else None)

    # the loop runs k - 1 steps with whole loads; the last step (masked at an edge) follows it
    entry = builder.block
    loop, tail = builder.append_basic_block("gemm.loop"), builder.append_basic_block("gemm.tail")
    steps = builder.sub(k_, ir.Constant(I64, 1))
    builder.cbranch(builder.icmp_signed(">", steps, ir.Constant(I64, 0)), loop, tail)
    builder.position_at_end(loop)
    i, pa, pb, accumulators = loop_start(builder, entry, a0, b0, ROWS * vectors)
    updated = step(pa, pb, accumulators, False)
    i_next, pa_next, pb_next = (builder.add(i, ir.Constant(I64, 1)), builder.gep(pa, [a_step_]),
                                builder.gep(pb, [ldb_]))
    pass_end = builder.block
    loop_end(builder, [i, pa, pb, *accumulators], [i_next, pa_next, pb_next, *updated])
    builder.cbranch(builder.icmp_signed("<", i_next, steps), loop, tail)

    builder.position_at_end(tail)
    pa_t, pb_t = builder.phi(fp), builder.phi(fp)
    pa_t.add_incoming(a0, entry)
    pa_t.add_incoming(pa_next, pass_end)
    pb_t.add_incoming(b0, entry)
    pb_t.add_incoming(pb_next, pass_end)
    carried = []
    for new in updated:
        phi = builder.phi(VECTOR)
        phi.add_incoming(zero, entry)
        phi.add_incoming(new, pass_end)
        carried.append(phi)
    sums = step(pa_t, pb_t, carried, True)

    store_block(builder, c0, ldc_, rows_, add_, sums, masks)


_whole, _edge = _block_kernel(False), _block_kernel(True)


@njit(cache=True, nogil=True)
def gemm(m, n, k, a, lda, a_transposed, b, ldb, c, ldc, beta):
    """c (m x n) = a (m x k) @ b (k x n) + beta * c (beta 0 or 1), row-major operands given as addresses of
    their first elements and row strides in elements; ``a_transposed``: ``a`` is stored as its transpose
    (k x m). The contract of ``kernels.blas.gemm``."""
    _multiply(m, n, k, a, lda, a_transposed, b, ldb, False, c, ldc, beta)


@njit(cache=True, nogil=True)
def gemm_panels(m, n, k, a, lda, a_transposed, b, c, ldc, beta):
    """``gemm`` with b stored in panels of ``PANEL`` columns (``panel_index``): each block of the kernel
    then reads one contiguous run of b, 64 floats a step, rather than rows ``n`` floats apart. yolov2's 3x3
    conv steps on two threads ran 1-7% faster so with 1 MiB workspaces, 15-26% with 4 MiB (b larger than
    L2 is where the rows' stride hurt most)."""
    _multiply(m, n, k, a, lda, a_transposed, b, 0, True, c, ldc, beta)


@njit(cache=True, nogil=True, inline="always")
def panel_index(row, col, k, n, panel):
    """Where element (row, col) of a k x n matrix lies when stored in panels of ``panel`` columns: panel after
    panel, each k rows of its own width (``panel``, or what is left for the last). A panel as wide as the
    matrix is the row-major layout."""
    first = col - col % panel
    return first * k + row * min(panel, n - first) + col - first


@njit(cache=True, nogil=True, inline="always")
def _multiply(m, n, k, a, lda, a_transposed, b, ldb, panels, c, ldc, beta):
    a_row, a_step = (1, lda) if a_transposed else (lda, 1)
    add = 1 if beta != 0.0 else 0
    if k <= 0:
        if not add:
            for i in range(m):
                floats_at(c + F32 * i * ldc, n)[:] = 0.0
        return
    for i in range(0, m, ROWS):
        rows = min(ROWS, m - i)
        pa, pc = a + F32 * i * a_row, c + F32 * i * ldc
        for j in range(0, n, PANEL):
            cols = min(PANEL, n - j)
            pb, step, pcj = (b + F32 * j * k, cols, pc + F32 * j) if panels else (b + F32 * j, ldb, pc + F32 * j)
            if cols == PANEL:
                _whole(pa, a_row, a_step, pb, step, pcj, ldc, k, rows, cols, add)
                continue
            # an edge block's whole loads of row s reach up to LANES - 1 floats past its columns: inside b
            # while later rows hold them, (k - 1 - s) * step >= LANES - 1; the last ``masked`` rows are each
            # a masked step
            masked = -(-(LANES - 1) // step)
            whole_steps = max(1, min(k, k + 1 - masked))  # one call: whole loads, then its own masked last step
            _edge(pa, a_row, a_step, pb, step, pcj, ldc, whole_steps, rows, cols, add)
            for s in range(whole_steps, k):
                _edge(pa + F32 * s * a_step, a_row, a_step, pb + F32 * s * step, step, pcj, ldc, 1, rows, cols, 1)


# Only measured with AVX-512: elsewhere the kernel's 512-bit vectors would split in two, so OpenBLAS stays.
# Numba's cache keys compiled code by the CPU's features, so each machine compiles the kernels that call
# ``matmul`` with its own choice.
AVX512 = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
matmul = gemm if AVX512 else blas_gemm


@njit(cache=True, nogil=True)
def _blas_row_major(m, n, k, a, lda, a_transposed, b, c, ldc, beta):
    blas_gemm(m, n, k, a, lda, a_transposed, b, n, c, ldc, beta)


# ``matmul_packed`` multiplies a b stored in panels of ``PACKED_PANEL`` columns: OpenBLAS packs its operands
# itself, and one panel as wide as any matrix is plain row-major
PACKED_PANEL, matmul_packed = (PANEL, gemm_panels) if AVX512 else (1 << 40, _blas_row_major)
