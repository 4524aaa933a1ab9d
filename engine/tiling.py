"""Tile geometry of a fused chain of conv/maxpool layers.

The chain's output map is split into a balanced rows x cols grid; each tile's receptive field is walked
back layer by layer. Regions are half-open (y0, y1, x0, x1) and clipped to the real map; the clipped-off
part becomes padding, so padding appears only where a tile touches the map border, never at a seam.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.network import Conv, Layer, MaxPool

Region = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


def balanced_split(n: int, parts: int) -> list[tuple[int, int]]:
    """Split range(n) into ``parts`` consecutive spans whose lengths differ by at most one."""
    edges = [n * i // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def leading_pad(layer: Layer) -> int:
    """Virtual rows/cols before the map at which the layer's window starts (Darknet's offsets)."""
    if isinstance(layer, Conv):
        return layer.padding
    if isinstance(layer, MaxPool):
        return layer.padding // 2
    raise TypeError(f"layer {layer.index} ({layer.kind}) cannot be tiled")


def input_span(layer: Layer, o0: int, o1: int, n_in: int) -> tuple[int, int, int]:
    """Input rows [i0, i1) that output rows [o0, o1) read, and the virtual rows before i0 (border pad)."""
    start = o0 * layer.stride - leading_pad(layer)
    stop = (o1 - 1) * layer.stride - leading_pad(layer) + layer.size
    return max(start, 0), min(stop, n_in), max(-start, 0)


@dataclass(frozen=True)
class TileStep:
    """One layer of one tile: which output rows/cols it makes from which input rows/cols."""
    layer: int
    out: Region
    inp: Region
    pad_top: int   # virtual rows before inp (non-zero only at the map's top border)
    pad_left: int  # virtual cols before inp (non-zero only at the map's left border)

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.out[1] - self.out[0], self.out[3] - self.out[2]

    @property
    def in_hw(self) -> tuple[int, int]:
        return self.inp[1] - self.inp[0], self.inp[3] - self.inp[2]


@dataclass(frozen=True)
class Tile:
    row: int
    col: int
    steps: tuple[TileStep, ...]  # first layer of the chain first

    @property
    def out(self) -> Region:
        return self.steps[-1].out

    @property
    def inp(self) -> Region:
        return self.steps[0].inp


def tile_chain(layers: tuple[Layer, ...], rows: int, cols: int) -> list[Tile]:
    """All tiles of a chain (row-major), each with its exact per-layer regions."""
    _, out_h, out_w = layers[-1].out_shape
    tiles = []
    for r, (y0, y1) in enumerate(balanced_split(out_h, rows)):
        for c, (x0, x1) in enumerate(balanced_split(out_w, cols)):
            steps = []
            region = (y0, y1, x0, x1)
            for layer in reversed(layers):
                _, in_h, in_w = layer.in_shape
                iy0, iy1, top = input_span(layer, region[0], region[1], in_h)
                ix0, ix1, left = input_span(layer, region[2], region[3], in_w)
                steps.append(TileStep(layer.index, region, (iy0, iy1, ix0, ix1), top, left))
                region = (iy0, iy1, ix0, ix1)
            tiles.append(Tile(r, c, tuple(reversed(steps))))
    return tiles
