"""Run orders: the order in which a plan's layers run.

Darknet runs layers in index order. A head's branch (the layers from a fork to a [yolo] or [region] head
that nothing else reads) may run later without changing any value: deferring it to the end ("heads-last")
means its output is not held while the rest of the network runs, at the cost of holding the fork's map
longer. Which is smaller depends on the network, so the search tries both. Every reader of time (the
program's segments, the predictor, the search) asks a RunOrder for positions and last readers.

A branch ends at its head, which no group contains, so in either order a group's layers run one after
another.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from engine.ir.fusion import fusion
from yolo.network import INPUT, Network

ORDERS = ("darknet", "heads-last")


def head_branches(network: Network) -> tuple[range, ...]:
    """The branches that may run last: runs of layers ending at a head before the network's last layer, each
    read only by the next and reading only the one before it (the first reads the fork)."""
    readers = fusion(network).readers
    found = []
    for head in network.heads:
        end = head.index
        if end == len(network) - 1 or readers[end]:
            continue
        start = end
        while start > 1 and network[start].inputs == (start - 1,) and readers[start - 1] == (start,):
            start -= 1
        found.append(range(start, end + 1))
    return tuple(found)


@dataclass(frozen=True)
class RunOrder:
    network: Network
    name: str  # one of ORDERS

    @cached_property
    def layers(self) -> tuple[int, ...]:
        """Layer indices in the order they run."""
        if self.name == "darknet":
            return tuple(range(len(self.network)))
        later = tuple(i for branch in head_branches(self.network) for i in branch)
        moved = set(later)
        return tuple(i for i in range(len(self.network)) if i not in moved) + later

    @cached_property
    def position(self) -> dict[int, int]:
        """Layer (INPUT: before everything) -> when it runs; len(network): the caller, after the run."""
        n = len(self.network)
        return {INPUT: -1, n: n} | {layer: k for k, layer in enumerate(self.layers)}

    @cached_property
    def last_reader(self) -> dict[int, int]:
        """Tensor (INPUT and each layer) -> the reader that runs last (len(network) for the run's results; the
        layer itself if nothing reads it)."""
        network, at = self.network, self.position
        last = {t: (len(network) if use == len(network) else t) for t, use in network.last_use.items()}
        for layer in network.layers:
            for src in layer.inputs:
                if last[src] != len(network) and at[layer.index] > at[last[src]]:
                    last[src] = layer.index
        return last

    def dies_by(self, tensor: int, layer: int) -> bool:
        """Whether ``tensor``'s last reader runs no later than ``layer``."""
        return self.position[self.last_reader[tensor]] <= self.position[layer]


def orders_of(network: Network) -> tuple[str, ...]:
    """The distinct orders a network can run in (only Darknet's if no head's branch can move)."""
    return ORDERS if head_branches(network) else ORDERS[:1]


def run_order(network: Network, name: str = "darknet") -> RunOrder:
    """The network's run order called ``name`` (computed once per network object)."""
    if name not in ORDERS:
        raise ValueError(f"order {name!r}: expected one of {', '.join(ORDERS)}")
    key = (id(network), name)
    found = _CACHE.get(key)
    if found is None or found.network is not network:
        found = _CACHE[key] = RunOrder(network, name)
    return found


_CACHE: dict[tuple[int, str], RunOrder] = {}

