"""Frozen description of a layer-by-layer network: shapes inferred once, routes absolute, MACs counted.

Nothing here runs a tensor; the reference executor, the tiling planner and the predictor all read it. The
layers themselves are described in ``yolo.layers``; their names are re-exported here, where most readers
meet them together with the network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from yolo.layers import (ACTIVATIONS, AvgPool, BN_RULES, Combine, Conv, Cost, FLOAT_BYTES, HEADS, INPUT, Layer,
                         MaxPool, NMS_KINDS, Region, Reorg, Route, ScaleChannels, Shape, Shortcut, Softmax,
                         Upsample, Yolo, conv_out, make_conv, make_maxpool, make_reorg, make_route, maxpool_out,
                         nbytes)

__all__ = ["ACTIVATIONS", "AvgPool", "BN_RULES", "Combine", "Conv", "Cost", "FLOAT_BYTES", "HEADS", "INPUT",
           "Layer", "MaxPool", "NMS_KINDS", "Region", "Reorg", "Route", "ScaleChannels", "Shape", "Shortcut",
           "Softmax", "Upsample", "Yolo", "conv_out", "make_conv", "make_maxpool", "make_reorg", "make_route",
           "maxpool_out", "nbytes", "Network"]


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
    def in_place_heads(self) -> tuple[int, ...]:
        """Heads that may write over their input, because nothing after them reads it (the input is copied
        out as a result first)."""
        last_use = self.last_use
        return tuple(h.index for h in self.heads if last_use[h.inputs[0]] == h.index)

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
