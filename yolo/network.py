"""Frozen description of a layer-by-layer network: shapes inferred once, routes absolute, MACs counted.

Nothing here runs a tensor; the reference executor, the tiling planner and the predictor all read it.
Layer indices are Darknet's (0-based); the network input is source ``INPUT`` (-1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

from yolo.errors import CfgError

INPUT = -1
FLOAT_BYTES = 4
ACTIVATIONS = ("linear", "leaky", "relu", "logistic")

Shape = tuple[int, int, int]  # (C, H, W)


def nbytes(shape: Shape) -> int:
    c, h, w = shape
    return c * h * w * FLOAT_BYTES


@dataclass(frozen=True)
class Layer:
    index: int
    inputs: tuple[int, ...]  # absolute layer indices read by this layer; INPUT for the image
    in_shape: Shape
    out_shape: Shape
    kind: ClassVar[str] = "layer"

    @property
    def macs(self) -> int:
        return 0

    def describe(self) -> str:
        return ""

    @property
    def out_bytes(self) -> int:
        return nbytes(self.out_shape)


@dataclass(frozen=True)
class Conv(Layer):
    filters: int = 0
    size: int = 1
    stride: int = 1
    padding: int = 0  # per side, Darknet's conv padding
    groups: int = 1
    batch_normalize: bool = False
    activation: str = "linear"
    kind: ClassVar[str] = "conv"

    @property
    def macs(self) -> int:
        _, oh, ow = self.out_shape
        return self.filters * oh * ow * (self.in_shape[0] // self.groups) * self.size * self.size

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.filters, self.in_shape[0] // self.groups, self.size, self.size)

    def describe(self) -> str:
        bn = " bn" if self.batch_normalize else ""
        g = f" g{self.groups}" if self.groups > 1 else ""
        return f"{self.size}x{self.size}/{self.stride} p{self.padding}{g}{bn} {self.activation}"


@dataclass(frozen=True)
class MaxPool(Layer):
    size: int = 2
    stride: int = 2
    padding: int = 1  # Darknet's *total* padding; the window starts at -padding//2
    kind: ClassVar[str] = "maxpool"

    def describe(self) -> str:
        return f"{self.size}x{self.size}/{self.stride} p{self.padding}"


@dataclass(frozen=True)
class AvgPool(Layer):
    kind: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class Route(Layer):
    kind: ClassVar[str] = "route"

    def describe(self) -> str:
        return "layers " + ",".join(str(i) for i in self.inputs)


@dataclass(frozen=True)
class Reorg(Layer):
    stride: int = 2
    kind: ClassVar[str] = "reorg"

    def describe(self) -> str:
        return f"/{self.stride}"


@dataclass(frozen=True)
class Softmax(Layer):
    groups: int = 1
    kind: ClassVar[str] = "softmax"


@dataclass(frozen=True)
class Region(Layer):
    anchors: tuple[float, ...] = ()
    classes: int = 20
    coords: int = 4
    num: int = 5
    softmax: bool = True
    kind: ClassVar[str] = "region"

    def describe(self) -> str:
        return f"{self.num} anchors, {self.classes} classes"


@dataclass(frozen=True)
class Cost(Layer):
    kind: ClassVar[str] = "cost"


# --- shape rules (Darknet's) -------------------------------------------------------------------

def conv_out(n: int, size: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - size) // stride + 1


def maxpool_out(n: int, size: int, stride: int, padding: int) -> int:
    return (n + padding - size) // stride + 1


def make_conv(index: int, in_shape: Shape, filters: int, size: int, stride: int = 1, padding: int = 0,
              groups: int = 1, batch_normalize: bool = False, activation: str = "linear",
              source: int | None = None) -> Conv:
    c, h, w = in_shape
    if c % groups or filters % groups:
        raise CfgError(f"layer {index} conv: groups={groups} must divide channels={c} and filters={filters}")
    oh, ow = conv_out(h, size, stride, padding), conv_out(w, size, stride, padding)
    if oh < 1 or ow < 1:
        raise CfgError(f"layer {index} conv: size={size} stride={stride} padding={padding} on a {h}x{w} map "
                       f"gives an empty output")
    if activation not in ACTIVATIONS:
        raise CfgError(f"layer {index} conv: activation={activation!r}, expected one of {', '.join(ACTIVATIONS)}")
    return Conv(index, (index - 1 if source is None else source,), in_shape, (filters, oh, ow),
                filters, size, stride, padding, groups, batch_normalize, activation)


def make_maxpool(index: int, in_shape: Shape, size: int, stride: int, padding: int | None = None,
                 source: int | None = None) -> MaxPool:
    c, h, w = in_shape
    padding = size - 1 if padding is None else padding
    oh, ow = maxpool_out(h, size, stride, padding), maxpool_out(w, size, stride, padding)
    if oh < 1 or ow < 1:
        raise CfgError(f"layer {index} maxpool: size={size} stride={stride} on a {h}x{w} map gives an empty output")
    return MaxPool(index, (index - 1 if source is None else source,), in_shape, (c, oh, ow), size, stride, padding)


def make_reorg(index: int, in_shape: Shape, stride: int) -> Reorg:
    c, h, w = in_shape
    if h % stride or w % stride:
        raise CfgError(f"layer {index} reorg: stride={stride} must divide the {h}x{w} input map")
    return Reorg(index, (index - 1,), in_shape, (c * stride * stride, h // stride, w // stride), stride)


def make_route(index: int, sources: tuple[int, ...], shapes: list[Shape]) -> Route:
    hw = {s[1:] for s in shapes}
    if len(hw) != 1:
        raise CfgError(f"layer {index} route: layers {list(sources)} have different map sizes "
                       f"{[s[1:] for s in shapes]}; a route concatenates maps of one size")
    h, w = shapes[0][1:]
    out = (sum(s[0] for s in shapes), h, w)
    return Route(index, tuple(sources), out, out)


# --- the network ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    source: str = field(default="", compare=False)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def shape_of(self, i: int) -> Shape:
        return self.input_shape if i == INPUT else self.layers[i].out_shape

    @cached_property
    def last_use(self) -> dict[int, int]:
        """For every tensor (INPUT and each layer), the index of the last layer that reads it.

        The final layer's output is read by the caller after the run: its last use is len(network).
        """
        last = {INPUT: 0} | {layer.index: layer.index for layer in self.layers}
        for layer in self.layers:
            for src in layer.inputs:
                last[src] = max(last[src], layer.index)
        last[self.layers[-1].index] = len(self.layers)
        return last

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def region(self) -> Region | None:
        last = self.layers[-1]
        return last if isinstance(last, Region) else None

    @property
    def head_index(self) -> int:
        """Index of the layer whose raw output feeds [region] (or the last layer if there is none)."""
        return self.layers[-1].inputs[0] if self.region is not None else self.layers[-1].index

    @cached_property
    def stride(self) -> int:
        """Total downsampling from the input to the coarsest map: an input size must be a multiple of it."""
        acc = {INPUT: 1}
        for l in self.layers:
            step = l.stride if isinstance(l, (Conv, MaxPool, Reorg)) else 1
            acc[l.index] = max(acc[s] for s in l.inputs) * step
        return max(acc.values())

    def summary(self) -> str:
        c, h, w = self.input_shape
        rows = [f"{self.name}: input {c}x{h}x{w}, {len(self.layers)} layers, {self.macs / 1e9:.2f} GMAC",
                f"{'#':>3} {'kind':<8} {'detail':<24} {'input':>16} -> {'output':<16} {'MMAC':>8}"]
        for l in self.layers:
            ci, hi, wi = l.in_shape
            co, ho, wo = l.out_shape
            rows.append(f"{l.index:>3} {l.kind:<8} {l.describe():<24} {f'{ci}x{hi}x{wi}':>16} -> "
                        f"{f'{co}x{ho}x{wo}':<16} {l.macs / 1e6:>8.1f}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return f"Network({self.name!r}, input={c}x{h}x{w}, layers={len(self.layers)}, GMAC={self.macs / 1e9:.2f})"
