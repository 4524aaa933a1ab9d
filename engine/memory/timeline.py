"""Live bytes per step: the one implementation, from buffers given as (bytes, first step, last step).

Everyone who counts live memory asks here: the reference's layer-by-layer figure, the arena's predicted
timeline, the predictor's per-group and per-segment peaks, the search and the plots.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.ir.order import run_order
from engine.lower.table import B_BYTES, B_FIRST, B_LAST
from yolo.network import INPUT, Network, nbytes


@njit(cache=True)
def live_bytes(sizes, first, last, steps):
    """[s]: the bytes of buffers with first <= s <= last."""
    delta = np.zeros(steps + 1, np.int64)
    for i in range(len(sizes)):
        delta[first[i]] += sizes[i]
        delta[last[i] + 1] -= sizes[i]
    return np.cumsum(delta[:steps])


@njit(cache=True)
def split_peaks(sizes, first, last, steps, split):
    """(peak live bytes over steps 0..split, peak over the steps after it): a group's own bytes while its
    input map lives and after the map's last reader."""
    live = live_bytes(sizes, first, last, steps)
    before = live[:split + 1].max() if split >= 0 else 0
    after = live[split + 1:].max() if steps > split + 1 else 0
    return before, after


def program_live_bytes(buffers: np.ndarray, steps: int) -> np.ndarray:
    """Live bytes during each step of a lowered program (what the arena must measure)."""
    return live_bytes(buffers[:, B_BYTES], buffers[:, B_FIRST], buffers[:, B_LAST], steps)


def layer_maps(network: Network, order: str = "darknet") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run layer by layer in ``order``, every map as a buffer over the positions layers run at: the input and
    each layer's output, live from their producer to their last reader (the results to the last step)."""
    n = len(network)
    run = run_order(network, order)
    at, last_reader = run.position, run.last_reader
    sources = [INPUT, *range(n)]
    sizes = np.array([nbytes(network.shape_of(i)) for i in sources], np.int64)
    first = np.array([max(at[i], 0) for i in sources], np.int64)
    last = np.array([min(at[last_reader[i]], n - 1) for i in sources], np.int64)
    return sizes, first, last


def layer_by_layer_live_bytes(network: Network, order: str = "darknet") -> tuple[int, ...]:
    """Live activation bytes at each position of ``order`` run layer by layer (in Darknet's order: what the
    reference measures)."""
    sizes, first, last = layer_maps(network, order)
    return tuple(int(v) for v in live_bytes(sizes, first, last, len(network)))
