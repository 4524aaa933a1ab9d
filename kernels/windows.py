"""A stride-1 3x3 convolution of whole rows as a GEMM whose input rows are the planes' own rows, shifted by
each tap: nothing packed, six filters sharing every load in registers (``kernels.registers``). One core:
98 GFLOP/s on yolov2-tiny's first layer, against 38 when each filter summed its window rows alone."""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from kernels.blas import F32
from kernels.registers import (FLOAT, I64, PANEL, ROWS, by_width, fma_step, loop_end,
                               loop_start, row_offsets, store_block)


def _window_kernel(edge: bool):
    """An intrinsic computing c[0:rows, 0:cols] (=, or += if ``add``) the 3x3 windows of ``channels`` input
    planes (``plane`` floats apart, rows ``width`` apart) times a's rows: column j's window has its top left
    tap at x + j, so b's nine rows per channel are the plane's runs at x, x + 1, x + 2, x + width, ... (an
    im2col matrix never packed). a holds each row's taps in (channel, ky, kx) order, ``a_step`` apart.
    A whole block is 64 columns; ``edge``: cols may end inside the last vector, whose lanes past it are
    masked on every step (a run past the columns may end outside the map), with as many vectors as the
    columns need (``by_width``)."""
    @intrinsic
    def kernel(typingctx, a, a_row, a_step, x, plane, width, channels, c, ldc, rows, cols, add):
        signature = types.void(*(types.intp,) * 12)

        def codegen(context, builder, sig, args):
            a0, a_row_, a_step_, x0, plane_, width_, channels_, c0, ldc_, rows_, cols_, add_ = args
            fp = FLOAT.as_pointer()
            a_offsets = row_offsets(builder, rows_, a_row_)
            taps = [builder.add(builder.mul(width_, ir.Constant(I64, ky)), ir.Constant(I64, kx))
                    for ky in range(3) for kx in range(3)]
            operands = (builder.inttoptr(a0, fp), a_step_, a_offsets, builder.inttoptr(x0, fp), plane_, taps,
                        channels_, c0, ldc_, rows_, add_)
            by_width(builder, edge, cols_, lambda vectors, masks: _windows(builder, vectors, masks, *operands))
            return context.get_dummy_value()
        return signature, codegen
    return kernel


def _windows(builder, vectors, masks, a0, a_step_, a_offsets, x0, plane_, taps, channels_, c0, ldc_, rows_,
             add_) -> None:
    """A block's code with ``vectors`` vectors per row, the last one masked on every step if ``masks``."""
    entry = builder.block
    loop, done = builder.append_basic_block("window.loop"), builder.append_basic_block("window.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    i, pa, px, accumulators = loop_start(builder, entry, a0, x0, ROWS * vectors)
    sums, tap_a = accumulators, pa
    for tap in taps:
        sums = fma_step(builder, tap_a, a_offsets, builder.gep(px, [tap]), sums, masks)
        tap_a = builder.gep(tap_a, [a_step_])
    i_next = builder.add(i, ir.Constant(I64, 1))
    loop_end(builder, [i, pa, px, *accumulators], [i_next, tap_a, builder.gep(px, [plane_]), *sums])
    builder.cbranch(builder.icmp_signed("<", i_next, channels_), loop, done)
    builder.position_at_end(done)
    store_block(builder, c0, ldc_, rows_, add_, sums, masks)


_window_whole, _window_edge = _window_kernel(False), _window_kernel(True)


@njit(cache=True, nogil=True)
def windows3x3(m, n, channels, a, a_row, a_step, x, plane, width, c, ldc, add):
    """c (m x n) (=, or += if ``add``) a (m x channels*9) times the 3x3 windows of ``channels`` planes whose
    column j has its top left tap at x + j (addresses; strides in floats): a stride-1 3x3 convolution of
    whole rows, ``n`` output columns read as one run, without packing its input. Every read lies in
    [x, x + (channels - 1) * plane + 2 * width + n + 2)."""
    for i in range(0, m, ROWS):
        rows = min(ROWS, m - i)
        pa, pc = a + F32 * i * a_row, c + F32 * i * ldc
        for j in range(0, n, PANEL):
            cols = min(PANEL, n - j)
            px, pcj = x + F32 * j, pc + F32 * j
            if cols == PANEL:
                _window_whole(pa, a_row, a_step, px, plane, width, channels, pcj, ldc, rows, cols, add)
            else:
                _window_edge(pa, a_row, a_step, px, plane, width, channels, pcj, ldc, rows, cols, add)
