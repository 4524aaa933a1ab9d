"""Memory planners: hand-worked layouts (TFLite Micro style), and the overlap invariant on every plan."""
import numpy as np
from hypothesis import given, settings, strategies as st

from engine.lower.table import BUFFER_COLUMNS, B_BYTES, B_FIRST, B_LAST, B_SEGMENT
from engine.memory.planner import greedy_by_size, linear, overlapping_pairs, two_level


def table(rows):
    """Buffer-table rows from (bytes, first, last, segment)."""
    out = np.zeros((len(rows), BUFFER_COLUMNS), np.int64)
    for i, (size, first, last, seg) in enumerate(rows):
        out[i, [B_BYTES, B_FIRST, B_LAST, B_SEGMENT]] = size, first, last, seg
    return out


def test_linear_places_every_buffer_after_the_previous_aligned():
    offsets, size = linear(np.array([100, 64, 1], np.int64))
    assert offsets.tolist() == [0, 128, 192] and size == 193


def test_greedy_by_size_hand_worked():
    # A (256 B, steps 0-1), B (128 B, 1-2), C (192 B, 2-3), D (64 B, 3-3)
    # order by size: A at 0; C at 0 (A is dead by step 2); B overlaps A and C in time: above both, at 256;
    # D overlaps C only: the gap after C's 192 bytes, at 192 (aligned to 64)
    sizes, first, last = (np.array(v, np.int64) for v in ([256, 128, 192, 64], [0, 1, 2, 3], [1, 2, 3, 3]))
    offsets, size = greedy_by_size(sizes, first, last)
    assert offsets.tolist() == [0, 256, 0, 192] and size == 384


def test_greedy_fills_a_gap_between_live_buffers():
    # X (64 B, 0-4) at 0, Y (64 B, 0-4) at 64, Z (128 B, 0-0) first: Z at 0, X at 128, Y at 192;
    # then W (64 B, 2-4) finds the hole Z left at 0
    sizes, first, last = (np.array(v, np.int64) for v in ([64, 64, 128, 64], [0, 0, 0, 2], [4, 4, 0, 4]))
    offsets, size = greedy_by_size(sizes, first, last)
    assert offsets.tolist() == [128, 192, 0, 0] and size == 256


def test_two_level_puts_a_segments_own_buffers_above_the_maps_live_beside_it():
    buffers = table([(1000, 0, 5, -1),   # map live throughout: 0
                     (500, 0, 2, -1),    # map, dies at step 2: above the first, at 1024
                     (300, 1, 2, 0),     # segment 0 (steps 1-2): above both maps, at align(1524) = 1536
                     (200, 3, 4, 1)])    # segment 1 (steps 3-4): only the first map is live: at 1024
    offsets, size = two_level(buffers)
    assert offsets.tolist() == [0, 1024, 1536, 1024] and size == 1856


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 30), st.integers(0, 10), st.integers(-1, 3)),
                min_size=1, max_size=40))
def test_no_two_live_buffers_overlap_in_any_planner(rows):
    # a segment's own buffers live within its steps (segment g: steps 10g..10g+9), as in every program
    placed = [(size, first, first + length, seg) if seg < 0 else
              (size, 10 * seg + first % 10, min(10 * seg + first % 10 + length, 10 * seg + 9), seg)
              for size, first, length, seg in rows]
    buffers = table(placed)
    for offsets, size in (two_level(buffers), greedy_by_size(*(buffers[:, c] for c in (B_BYTES, B_FIRST, B_LAST))),
                          linear(buffers[:, B_BYTES])):
        assert not overlapping_pairs(offsets, buffers)
        assert (offsets % 64 == 0).all() and size >= (offsets + buffers[:, B_BYTES]).max()
    _, greedy_size = greedy_by_size(*(buffers[:, c] for c in (B_BYTES, B_FIRST, B_LAST)))
    assert greedy_size <= sum(-(-int(b) // 64) * 64 for b in buffers[:, B_BYTES])  # never worse than no reuse
