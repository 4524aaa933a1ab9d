"""Shared test helpers: small networks from cfg text, weights sharpened so detections survive, random conv
parameters, and calls run on threads at once."""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from yolo.network import Network
from yolo.params import ConvParams, Params, conv_layers, random_params
from yolo.cfg import BUNDLED_DIR, build_network, cfg_text_at_size, parse_sections


def bundled_text(name: str, size: int | None = None) -> str:
    return cfg_text_at_size(name, size) if size is not None else (BUNDLED_DIR / name).read_text()


def network_from_text(text: str, name: str = "test") -> Network:
    return build_network(parse_sections(text, f"{name}.cfg"), name=name)


def sharpened_params(network: Network, seed: int, gain: float) -> Params:
    """Random weights whose objectness and class filters are scaled by ``gain``, so boxes pass 0.5."""
    params = random_params(network, seed)
    last = conv_layers(network)[-1]
    region = network.region
    per = region.coords + 1 + region.classes
    scale = np.where(np.arange(last.filters) % per >= region.coords, gain, 1.0).astype(np.float32)
    layers = dict(params.layers)
    layers[last.index] = replace(layers[last.index], weights=layers[last.index].weights * scale[:, None, None, None])
    return replace(params, layers=layers)


def random_image(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def random_stack(draw_kinds, size: int, channels: int = 3) -> Network:
    """A chain network from a list of ('conv', k, stride, filters[, activation]), ('dw', k, stride, activation),
    ('g2', k, stride, activation) (depthwise; two groups of two filters each) and ('maxpool', size, stride)
    tuples."""
    from yolo.network import INPUT, make_conv, make_maxpool
    layers, shape = [], (channels, size, size)
    for i, spec in enumerate(draw_kinds):
        source = INPUT if i == 0 else i - 1
        if spec[0] == "conv":
            _, k, stride, filters, *act = spec
            layer = make_conv(i, shape, filters, k, stride, k // 2, 1, True, act[0] if act else "leaky", source=source,
                              bn_rule="alexeyab" if act else "pjreddie")
        elif spec[0] in ("dw", "g2"):
            _, k, stride, act = spec
            groups = shape[0] if spec[0] == "dw" else 2
            layer = make_conv(i, shape, shape[0] if spec[0] == "dw" else 4, k, stride, k // 2, groups, True, act,
                              source=source, bn_rule="alexeyab")
        else:
            _, k, stride = spec
            layer = make_maxpool(i, shape, k, stride, source=source)
        layers.append(layer)
        shape = layer.out_shape
    return Network("stack", (channels, size, size), tuple(layers))


def run_at_once(calls) -> None:
    """Each call on its own thread, all at once."""
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def bn_params(rng, filters: int, channels: int, k: int) -> ConvParams:
    """Random filters, biases and batch-norm vectors (a variance away from zero)."""
    f32 = np.float32
    return ConvParams(rng.standard_normal(filters).astype(f32),
                      rng.standard_normal((filters, channels, k, k)).astype(f32),
                      rng.uniform(0.5, 1.5, filters).astype(f32), rng.normal(0, 0.1, filters).astype(f32),
                      rng.uniform(0.5, 2, filters).astype(f32))
