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
# Darknet's activations (AlexeyAB's fork names them all; pjreddie's has all but relu6, swish, mish, hard_mish)
ACTIVATIONS = ("linear", "leaky", "relu", "relu6", "logistic", "tanh", "elu", "selu", "swish", "mish", "hard_mish")
BN_RULES = ("pjreddie", "alexeyab", "opencv")  # whose batch norm arithmetic (yolo.params.BN_EPSILONS)

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
    bn_rule: str = "pjreddie"  # one of BN_RULES: the fork whose batch norm arithmetic the layer follows
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
    groups: int = 1    # each source's channels split into this many parts (AlexeyAB's channel split) ...
    group_id: int = 0  # ... of which this one is taken
    kind: ClassVar[str] = "route"

    def describe(self) -> str:
        split = f" part {self.group_id}/{self.groups}" if self.groups > 1 else ""
        return "layers " + ",".join(str(i) for i in self.inputs) + split

    def channel_range(self, channels: int) -> tuple[int, int]:
        """The channels taken from a source of ``channels`` channels."""
        part = channels // self.groups
        return part * self.group_id, part * (self.group_id + 1)


@dataclass(frozen=True)
class Combine(Layer):
    """A layer joining the previous layer with a second map (``inputs[1]``), then an activation."""
    activation: str = "linear"
    joins: ClassVar[str] = ""

    def describe(self) -> str:
        return f"{self.joins} L{self.inputs[1]} {self.activation}"


@dataclass(frozen=True)
class Shortcut(Combine):
    """Residual add: inputs (previous layer, ``from`` layer) of one map size; the ``from`` layer's first
    channels are added (all of them, or as many as the output has: AlexeyAB's flat-index rule)."""
    kind: ClassVar[str] = "shortcut"
    joins: ClassVar[str] = "plus"


@dataclass(frozen=True)
class ScaleChannels(Combine):
    """Squeeze-excitation's product: inputs (previous layer, a (C, 1, 1) scale; the ``from`` map), each channel
    of the map times its scale."""
    kind: ClassVar[str] = "scale_channels"
    joins: ClassVar[str] = "scales"


@dataclass(frozen=True)
class Upsample(Layer):
    stride: int = 2
    scale: float = 1.0
    kind: ClassVar[str] = "upsample"

    def describe(self) -> str:
        return f"x{self.stride}" + (f" *{self.scale:g}" if self.scale != 1 else "")


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
class Yolo(Layer):
    """YOLOv3/v4's head (AlexeyAB's semantics): logistic on x, y, objectness and classes, x and y scaled."""
    mask: tuple[int, ...] = ()
    anchors: tuple[float, ...] = ()  # every anchor of the network (width, height pairs); ``mask`` picks
    classes: int = 80
    scale_x_y: float = 1.0
    nms_kind: str = "default"  # one of NMS_KINDS
    beta_nms: float = 0.6
    kind: ClassVar[str] = "yolo"

    @property
    def num(self) -> int:
        return len(self.mask)

    def describe(self) -> str:
        return f"mask {','.join(map(str, self.mask))}, {self.classes} classes"


NMS_KINDS = ("default", "greedynms", "diounms")  # AlexeyAB's: IoU, DIoU with exponent 0.6, DIoU with beta_nms
HEADS = (Region, Yolo)


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
              source: int | None = None, bn_rule: str = "pjreddie") -> Conv:
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
                filters, size, stride, padding, groups, batch_normalize, activation, bn_rule)


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


def make_route(index: int, sources: tuple[int, ...], shapes: list[Shape], groups: int = 1, group_id: int = 0) -> Route:
    hw = {s[1:] for s in shapes}
    if len(hw) != 1:
        raise CfgError(f"layer {index} route: layers {list(sources)} have different map sizes "
                       f"{[s[1:] for s in shapes]}; a route concatenates maps of one size")
    h, w = shapes[0][1:]
    out = (sum(s[0] // groups for s in shapes), h, w)
    return Route(index, tuple(sources), out, out, groups, group_id)


# --- the network ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    name: str
    input_shape: Shape
    layers: tuple[Layer, ...]
    source: str = field(default="", compare=False)
    letter_box: bool = False  # [net] letter_box=1 (AlexeyAB): letterbox the picture rather than stretch it

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def shape_of(self, i: int) -> Shape:
        return self.input_shape if i == INPUT else self.layers[i].out_shape

    @cached_property
    def last_use(self) -> dict[int, int]:
        """For every tensor (INPUT and each layer), the index of the last layer that reads it.

        The final layer's output and every head's are read by the caller after the run: their last use is
        len(network).
        """
        last = {INPUT: 0} | {layer.index: layer.index for layer in self.layers}
        for layer in self.layers:
            for src in layer.inputs:
                last[src] = max(last[src], layer.index)
        for result in {self.layers[-1].index} | {h.index for h in self.heads}:
            last[result] = len(self.layers)
        return last

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def heads(self) -> tuple[Layer, ...]:
        """The detection heads ([region] or [yolo]) in layer order."""
        return tuple(l for l in self.layers if isinstance(l, HEADS))

    @property
    def region(self) -> Region | None:
        last = self.layers[-1]
        return last if isinstance(last, Region) else None

    @property
    def head_inputs(self) -> tuple[int, ...]:
        """The layers whose raw output feeds each head (the last layer if there is no head)."""
        return tuple(h.inputs[0] for h in self.heads) or (self.layers[-1].index,)

    @property
    def head_index(self) -> int:
        """The layer feeding the first head (or the last layer if there is none)."""
        return self.head_inputs[0]

    @property
    def fork(self) -> str:
        """Whose semantics the network follows: [yolo] heads come from AlexeyAB's Darknet, [region] from
        pjreddie's (batch norm's arithmetic, the default preprocessing, NMS)."""
        return "alexeyab" if any(isinstance(l, Yolo) for l in self.layers) else "pjreddie"

    @property
    def default_preprocess(self) -> str:
        """What Darknet's detector test does with the picture: pjreddie's letterboxes; AlexeyAB's resizes
        (stretches) unless the cfg's [net] says letter_box=1."""
        return "letterbox" if self.fork == "pjreddie" or self.letter_box else "resize"

    @cached_property
    def stride(self) -> int:
        """Total downsampling from the input to the coarsest map: an input size must be a multiple of it."""
        acc = {INPUT: 1}
        for l in self.layers:
            step = l.stride if isinstance(l, (Conv, MaxPool, Reorg)) else 1
            acc[l.index] = max(acc[s] for s in l.inputs) * step // (l.stride if isinstance(l, Upsample) else 1)
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
