"""The pieces, in LLVM IR, of a kernel that holds a block of c in registers: ``ROWS`` rows of a broadcast
against vectors of b's row, fused multiply-adds into the accumulators, k loops that carry them, and the
store of the block (masked past its columns). ``kernels.microgemm`` builds its GEMM from them and
``kernels.windows`` its 3x3 windows."""
from __future__ import annotations

from llvmlite import ir

ROWS = 6        # rows of c per kernel call
LANES = 16      # float32 per vector (512 bits)
VECTORS = 4     # vectors per row of a block
PANEL = LANES * VECTORS  # columns of a block: 64
FLOAT = ir.FloatType()
VECTOR = ir.VectorType(FLOAT, LANES)
I64, I32 = ir.IntType(64), ir.IntType(32)
MASK = ir.VectorType(ir.IntType(1), LANES)


def function(module, name, result, *params):
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(result, list(params)), name)


def splat(builder, value, vector_type):
    lane0 = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(lane0, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(I32, LANES), [0] * LANES))


def lane_masks(builder, cols, vectors: int) -> list:
    """Per vector of a block's row, which of its lanes lie before column ``cols``."""
    i64x16 = ir.VectorType(I64, LANES)
    limit = splat(builder, cols, i64x16)
    return [builder.icmp_signed("<", ir.Constant(i64x16, [LANES * j + t for t in range(LANES)]), limit)
            for j in range(vectors)]


def row_offsets(builder, rows, a_row) -> list:
    """Where each of a block's ``ROWS`` rows of a starts: rows past ``rows`` read the last one again."""
    last_row = builder.sub(rows, ir.Constant(I64, 1))
    return [builder.mul(builder.select(builder.icmp_signed("<", ir.Constant(I64, r), rows),
                                       ir.Constant(I64, r), last_row), a_row) for r in range(ROWS)]


def fma_step(builder, pa, a_offsets, pb, accumulators, masks) -> list:
    """One step along k: the vectors of b's row at ``pb`` (the last one masked if ``masks``), each times a's
    value in each row, added to the accumulators (row-major: ``len(accumulators) // ROWS`` per row)."""
    vectors = len(accumulators) // ROWS
    vp = VECTOR.as_pointer()
    fma = function(builder.module, "llvm.fma.v16f32", VECTOR, VECTOR, VECTOR, VECTOR)
    at = [builder.bitcast(builder.gep(pb, [ir.Constant(I64, LANES * j)]), vp) for j in range(vectors)]
    bs = [builder.load(at[j], align=4) for j in range(vectors)]
    if masks is not None:
        load_masked = function(builder.module, "llvm.masked.load.v16f32.p0v16f32", VECTOR, vp, I32, MASK, VECTOR)
        bs[-1] = builder.call(load_masked, [at[-1], ir.Constant(I32, 4), masks[-1], ir.Constant(VECTOR, [0.0] * LANES)])
    out = []
    for r in range(ROWS):
        ar = splat(builder, builder.load(builder.gep(pa, [a_offsets[r]])), VECTOR)
        out += [builder.call(fma, [ar, bs[j], accumulators[r * vectors + j]]) for j in range(vectors)]
    return out


def store_block(builder, c, ldc, rows, add, sums, masks) -> None:
    """The block's sums into c's first ``rows`` rows (``ldc`` apart), added to what is there if ``add``; the
    last vector of each row masked if ``masks``."""
    vectors = len(sums) // ROWS
    vp = VECTOR.as_pointer()
    c0 = builder.inttoptr(c, FLOAT.as_pointer())
    align, zero = ir.Constant(I32, 4), ir.Constant(VECTOR, [0.0] * LANES)
    adding = builder.icmp_signed("!=", add, ir.Constant(I64, 0))
    for r in range(ROWS):
        with builder.if_then(builder.icmp_signed("<", ir.Constant(I64, r), rows)):
            row = builder.mul(ldc, ir.Constant(I64, r))
            for j in range(vectors):
                at = builder.bitcast(builder.gep(c0, [builder.add(row, ir.Constant(I64, LANES * j))]), vp)
                if masks is not None and j == vectors - 1:
                    load_masked = function(builder.module, "llvm.masked.load.v16f32.p0v16f32", VECTOR, vp, I32, MASK,
                                            VECTOR)
                    store_masked = function(builder.module, "llvm.masked.store.v16f32.p0v16f32", ir.VoidType(), VECTOR,
                                             vp, I32, MASK)
                    old = builder.call(load_masked, [at, align, masks[j], zero])
                    value = builder.select(adding, builder.fadd(old, sums[r * vectors + j]), sums[r * vectors + j])
                    builder.call(store_masked, [value, at, align, masks[j]])
                else:
                    old = builder.load(at, align=4)
                    value = builder.select(adding, builder.fadd(old, sums[r * vectors + j]), sums[r * vectors + j])
                    builder.store(value, at, align=4)


def by_width(builder, edge: bool, cols, body) -> None:
    """A kernel's block: ``body(vectors, masks)`` with all VECTORS vectors per row, unmasked, or, for an edge
    block (``cols`` < PANEL), emitted for each count of vectors a row may need, its last vector masked past
    ``cols``, and the one the columns need run: each kind of kernel has one edge intrinsic, the choice made
    here."""
    if not edge:
        body(VECTORS, None)
        return
    needed = builder.add(builder.sdiv(builder.sub(cols, ir.Constant(I64, 1)), ir.Constant(I64, LANES)),
                         ir.Constant(I64, 1))
    cases = [builder.append_basic_block(f"width.{v}") for v in range(1, VECTORS + 1)]
    end = builder.append_basic_block("width.end")
    choice = builder.switch(needed, cases[-1])
    for vectors, block in enumerate(cases[:-1], 1):
        choice.add_case(ir.Constant(I64, vectors), block)
    for vectors, block in enumerate(cases, 1):
        builder.position_at_end(block)
        body(vectors, lane_masks(builder, cols, vectors))
        builder.branch(end)
    builder.position_at_end(end)


def loop_start(builder, entry, a0, b0, count: int) -> tuple:
    """A k loop's phis, entered from ``entry``: its step from 0, a's and b's pointers from a0 and b0, and
    ``count`` accumulators from zero (``loop_end`` adds what each holds after a pass)."""
    phis = (builder.phi(I64), builder.phi(a0.type), builder.phi(b0.type), *(builder.phi(VECTOR) for _ in range(count)))
    for phi, value in zip(phis, (ir.Constant(I64, 0), a0, b0, *(ir.Constant(VECTOR, [0.0] * LANES),) * count)):
        phi.add_incoming(value, entry)
    return phis[0], phis[1], phis[2], list(phis[3:])


def loop_end(builder, phis, values) -> None:
    """Each of a loop's phis takes its value from the end of the pass (the current block)."""
    for phi, value in zip(phis, values):
        phi.add_incoming(value, builder.block)
