"""The one fusability rule: which consecutive layers may form a fused group.

A group is a chain of tileable layers (conv, maxpool) in which each layer reads only the one before it and
no layer but the last is read from outside the group. Plans, defaults, the search and the lowering ask here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from yolo.network import Conv, MaxPool, Network


def tileable(layer) -> bool:
    """Layers whose output region follows from an input region by a window (what a tile can run)."""
    return isinstance(layer, (MaxPool, Conv))


@dataclass(frozen=True)
class Fusion:
    """For each layer, whether it may be in a group, and whether it may share one with the next layer."""
    network: Network

    @cached_property
    def can_tile(self) -> tuple[bool, ...]:
        return tuple(tileable(layer) for layer in self.network.layers)

    @cached_property
    def readers(self) -> tuple[tuple[int, ...], ...]:
        """[i]: the layers that read layer i's output."""
        found = [[] for _ in self.network.layers]
        for layer in self.network.layers:
            for src in layer.inputs:
                if src >= 0:
                    found[src].append(layer.index)
        return tuple(tuple(r) for r in found)

    @cached_property
    def joins_next(self) -> tuple[bool, ...]:
        """[i]: layers i and i + 1 may be in one group (i + 1 reads only i, and nothing else reads i)."""
        net, ok = self.network, self.can_tile
        return tuple(i + 1 < len(net) and ok[i] and ok[i + 1] and net[i + 1].inputs == (i,)
                     and self.readers[i] == (i + 1,) for i in range(len(net)))

    def is_group(self, first: int, last: int) -> bool:
        return self.can_tile[first] and all(self.joins_next[i] for i in range(first, last))

    def ends(self, first: int) -> list[int]:
        """The layers a group starting at ``first`` may end on (none if ``first`` cannot be tiled)."""
        if not self.can_tile[first]:
            return []
        last = first
        while self.joins_next[last]:
            last += 1
        return list(range(first, last + 1))

    def chain_start(self, last: int) -> int:
        """The first layer of the longest group ending at ``last``."""
        first = last
        while first > 0 and self.joins_next[first - 1]:
            first -= 1
        return first

    def spans(self) -> list[tuple[int, int]]:
        """Maximal runs of layers that may form one group."""
        out, i = [], 0
        while i < len(self.network):
            ends = self.ends(i)
            if ends:
                out.append((i, ends[-1]))
                i = ends[-1] + 1
            else:
                i += 1
        return out


def fusion(network: Network) -> Fusion:
    """The network's fusability, computed once per network object."""
    found = _CACHE.get(id(network))
    if found is None or found.network is not network:
        found = _CACHE[id(network)] = Fusion(network)
    return found


_CACHE: dict[int, Fusion] = {}
