"""Layer-by-layer reference executor (NumPy + BLAS) with live-activation accounting.

Each activation is dropped after its last consumer, so the recorded peak is the true layer-by-layer
peak of live activations (input image included, weights and transient im2col scratch excluded).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.runtime import reference_ops as ops
from yolo.network import (INPUT, AvgPool, Conv, Cost, Layer, MaxPool, Network, Region, Reorg, Route, ScaleChannels,
                          Shortcut, Softmax, Upsample, Yolo)
from yolo.params import Params


class HeadResults:
    """What every run hands back about the heads (``head_inputs``: layer -> the tensor feeding a head)."""
    head_inputs: dict[int, np.ndarray]

    @property
    def head(self) -> np.ndarray:
        """The raw tensor feeding the first head (the last layer's output without a head)."""
        return next(iter(self.head_inputs.values()))


@dataclass(frozen=True, eq=False)
class ReferenceRun(HeadResults):
    output: np.ndarray             # the last layer's output (C, H, W)
    head_inputs: dict[int, np.ndarray]   # layer -> its raw output, for each layer feeding a head
    head_outputs: dict[int, np.ndarray]  # head layer -> its output (what detections are decoded from)
    kept: dict[int, np.ndarray]    # outputs of the layers asked for with keep=
    live_bytes: tuple[int, ...]    # live activation bytes while layer i runs (inputs + its output)
    seconds: float
    layer_seconds: tuple[float, ...] = field(default=())

    @property
    def peak_bytes(self) -> int:
        return max(self.live_bytes)

    @property
    def peak_layer(self) -> int:
        return int(np.argmax(self.live_bytes))


def forward_layer(layer: Layer, inputs: list[np.ndarray], params: Params) -> np.ndarray:
    x = inputs[0]
    if isinstance(layer, Conv):
        return ops.conv_layer(x, params[layer.index], layer.stride, layer.padding, layer.groups, layer.activation,
                              layer.bn_rule)
    if isinstance(layer, MaxPool):
        return ops.maxpool(x, layer.size, layer.stride, layer.padding)
    if isinstance(layer, AvgPool):
        return ops.avgpool(x)
    if isinstance(layer, Route):
        return ops.route(inputs, layer.groups, layer.group_id)
    if isinstance(layer, Shortcut):
        return ops.shortcut(x, inputs[1], layer.activation)
    if isinstance(layer, ScaleChannels):
        return ops.scale_channels(x, inputs[1], layer.activation)
    if isinstance(layer, Upsample):
        return ops.upsample(x, layer.stride, layer.scale)
    if isinstance(layer, Yolo):
        return ops.yolo(x, layer.num, layer.classes, layer.scale_x_y)
    if isinstance(layer, Reorg):
        return ops.reorg(x, layer.stride)
    if isinstance(layer, Region):
        return ops.region(x, layer.num, layer.coords, layer.classes, layer.softmax)
    if isinstance(layer, Softmax):
        return ops.softmax(x.reshape(layer.groups, -1), axis=1).reshape(x.shape)
    if isinstance(layer, Cost):
        return x  # Darknet's network output skips [cost]: identity at inference
    raise TypeError(f"no reference implementation for {layer.kind}")


def run_reference(network: Network, params: Params, image: np.ndarray, keep: tuple[int, ...] = ()) -> ReferenceRun:
    """Run ``image`` (C, H, W float32) through the network; ``keep`` names layer outputs to return."""
    if image.shape != network.input_shape:
        raise ValueError(f"input shape {image.shape} != network input {network.input_shape}")
    live = {INPUT: np.ascontiguousarray(image, np.float32)}
    kept, timeline, layer_seconds = {}, [], []
    head_inputs, head_outputs = {}, {}
    head_layers = {h.index for h in network.heads}
    start = time.perf_counter()
    for layer in network.layers:
        t0 = time.perf_counter()
        out = forward_layer(layer, [live[s] for s in layer.inputs], params)
        layer_seconds.append(time.perf_counter() - t0)
        timeline.append(sum(a.nbytes for a in live.values()) + out.nbytes)
        live[layer.index] = out
        if layer.index in keep:
            kept[layer.index] = out
        if layer.index in network.head_inputs:
            head_inputs[layer.index] = out
        if layer.index in head_layers:
            head_outputs[layer.index] = out
        for src in set(layer.inputs) | {layer.index}:
            if network.last_use[src] <= layer.index:
                del live[src]
    seconds = time.perf_counter() - start
    output = live[network.layers[-1].index]
    return ReferenceRun(output, head_inputs, head_outputs, kept, tuple(timeline), seconds, tuple(layer_seconds))
