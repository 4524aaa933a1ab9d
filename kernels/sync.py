"""Counters in shared memory that threads post to, poll and claim without the GIL.

Handing a step to a sleeping thread through the operating system (a queue, an event) took about 70 µs
per step on the 2-core VM this was built on, a quarter of a small conv step; polling a counter in a
compiled loop that holds no GIL takes about 4 µs. The loads and stores are atomic (acquire/release), so
what one thread wrote before posting is visible to the thread that sees the post.

Every return from compiled code to Python takes the GIL again, and a thread that finds it held sleeps in the
operating system until it is let go: 25-55 µs more per step here, as long as a strip's whole conv step. So a
helper does everything between two shares (post the last one done, poll, claim) in one compiled call
(``serve``), and after claiming it waits a moment (``settle``) for the caller to be inside its own share,
holding no GIL, before returning to Python to start the helper's share; the caller's side of a step is one
compiled call too (``await_share``).
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _load_acquire(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.load_atomic(builder.inttoptr(args[0], ir.IntType(64).as_pointer()), "acquire", 8)
    return types.int64(types.intp), codegen


@intrinsic
def _store_release(typingctx, address, value):
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[1], builder.inttoptr(args[0], ir.IntType(64).as_pointer()), "release", 8)
        return context.get_dummy_value()
    return types.none(types.intp, types.int64), codegen


@intrinsic
def _compare_exchange(typingctx, address, expected, value):
    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        outcome = builder.cmpxchg(pointer, args[1], args[2], "acq_rel", "acquire")
        return builder.extract_value(outcome, 1)
    return types.boolean(types.intp, types.int64, types.int64), codegen


@njit(cache=True, nogil=True)
def claim(counters, slot, value):
    """Raise counters[slot] to ``value`` unless it is there already: True for the one thread of any number
    racing to claim the same value that did it."""
    address = counters.ctypes.data + slot * 8
    while True:
        seen = _load_acquire(address)
        if seen >= value:
            return False
        if _compare_exchange(address, seen, value):
            return True


@njit(cache=True, nogil=True)
def post(counters, slot, value):
    """counters[slot] = value, visible to pollers with everything written before it."""
    _store_release(counters.ctypes.data + slot * 8, value)


@njit(cache=True, nogil=True)
def poll(counters, slot, at_least, spins):
    """counters[slot] once it is at least ``at_least``, or -1 after ``spins`` looks."""
    address = counters.ctypes.data + slot * 8
    for _ in range(spins):
        value = _load_acquire(address)
        if value >= at_least:
            return value
    return -1


@intrinsic
def _ticks(typingctx):
    """The processor's cycle counter (a time stamp counter at a constant rate on x86), 0 where it has none."""
    def codegen(context, builder, signature, args):
        counter = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                                 "llvm.readcyclecounter")
        return builder.call(counter, [])
    return types.int64(), codegen


@njit(cache=True, nogil=True)
def ticks():
    """The cycle counter, read from Python to measure its rate."""
    return _ticks()


@njit(cache=True, nogil=True)
def serve(counters, go, claimed, done, finished, at_least, spins, settle):
    """A helper's wait for its next share: post ``finished`` (if > 0) to ``done``, then poll ``go`` for a
    step of at least ``at_least`` and claim it, posting at once as done each step the caller claimed first.
    Returns the step claimed (after ``settle`` ticks, for the caller to enter its own share), or the END
    value the poller was given, or -1 - the step still awaited after ``spins`` looks."""
    if finished > 0:
        post(counters, done, finished)
    address = counters.ctypes.data + go * 8
    for _ in range(spins):
        step = _load_acquire(address)
        if step < at_least:
            continue
        if not claim(counters, claimed, step):  # the caller ran this share itself
            post(counters, done, step)
            at_least = step + 1
            continue
        start = _ticks()
        while _ticks() - start < settle:
            pass
        return step
    return -1 - at_least


@njit(cache=True, nogil=True)
def await_share(counters, claimed, done, step, spins):
    """The caller's end of a step: 1 if it claimed the helper's share (so runs it itself), 0 once the helper
    has posted it done, -1 if not done after ``spins`` looks."""
    if claim(counters, claimed, step):
        return 1
    return 0 if poll(counters, done, step, spins) >= 0 else -1
