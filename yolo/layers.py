"""Darknet's layers as frozen descriptions, their shape rules, and the constants every reader shares.

Nothing here runs a tensor. Layer indices are Darknet's (0-based); the network input is source ``INPUT`` (-1).
"""
from __future__ import annotations

from dataclasses import dataclass
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
