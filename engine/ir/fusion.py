"""The one fusability rule: which consecutive layers may form a fused group.

A group is a chain of tileable layers, each reading the one before it first (a shortcut or route may read a
second map: another member, or a map held whole before the group), in which no layer but the last is read
from outside the group. Heads ([yolo], [region]) are not tileable, so the map feeding a head, which the run
returns whole, always ends a group. Plans, defaults, the search and the lowering ask here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from yolo.network import Conv, MaxPool, Network, Route, Shortcut, Upsample


def tileable(layer) -> bool:
    """Layers a group may contain: each output region follows from regions of its inputs (a window; a
    shortcut's sum; an upsample; a route's channels, from at most two maps)."""
    if isinstance(layer, Route):
        return len(layer.inputs) <= 2
    return isinstance(layer, (MaxPool, Conv, Shortcut, Upsample))


def runs_alone(layer) -> bool:
    """Layers that, outside every group, run as a 1x1 one-layer group (the others are whole-map steps)."""
    return isinstance(layer, (MaxPool, Conv))


@dataclass(frozen=True)
class Fusion:
    """Which layers may be in a group, and which runs of layers form one."""
    network: Network

    @cached_property
    def can_tile(self) -> tuple[bool, ...]:
        return tuple(tileable(layer) for layer in self.network.layers)

    @cached_property
    def alone(self) -> tuple[bool, ...]:
        return tuple(runs_alone(layer) for layer in self.network.layers)

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
    def links(self) -> tuple[bool, ...]:
        """[i]: layer i may follow layer i - 1 in a group (both tileable, i reads i - 1 first)."""
        net, ok = self.network, self.can_tile
        return tuple(i > 0 and ok[i] and ok[i - 1] and net[i].inputs[0] == i - 1 for i in range(len(net)))

    def why_not(self, first: int, last: int) -> str | None:
        """Why layers first..last cannot form a group (None if they can). A member's second map may be
        another member or any map held before the group; every member but the last is read only inside it."""
        net = self.network
        for i in range(first, last + 1):
            if not self.can_tile[i]:
                return f"layer {i} is a {net[i].kind} that a group cannot run"
        for i in range(first + 1, last + 1):
            if not self.links[i]:
                return f"layer {i} does not read layer {i - 1} first: a group must be a chain"
        for i in range(first, last):
            outside = [r for r in self.readers[i] if r > last]
            if outside:
                return f"layer {i}'s output is read by layer {outside[0]} outside the group"
        return None

    def ends(self, first: int) -> list[int]:
        """The layers a group starting at ``first`` may end on (none if ``first`` cannot be tiled)."""
        if not self.can_tile[first]:
            return []
        found, last, reach = [], first, -1  # reach: the last reader of the members before ``last``
        while True:
            if reach <= last:
                found.append(last)
            if last + 1 >= len(self.network) or not self.links[last + 1]:
                return found
            reach = max(reach, *self.readers[last], -1)
            last += 1

    def chain_start(self, last: int) -> int:
        """The first layer of the longest chain of linked layers ending at ``last`` (the geometry's walk)."""
        first = last
        while first > 0 and self.links[first]:
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
