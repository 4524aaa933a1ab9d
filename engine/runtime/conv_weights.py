"""Conv weights: resident (prepared once, outside the arena), or in the arena: a load step fills a weights
buffer from the source (a band of input channels, with the layer's vectors folded into the epilogue), and a
conv step reads its filters and epilogue back."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.lower.table import vector_floats
from engine.ir.plan import PlanError
from kernels.winograd_transforms import transform_filters
from yolo.network import Conv, Network
from yolo.params import BN_EPSILONS, Params


def band_vectors(layer: Conv, c1: int) -> int:
    """Floats of vectors a weights buffer holds before its filters: the layer's, in the band of the last
    channels only."""
    return vector_floats(layer.batch_normalize, layer.filters) if c1 == layer.weight_shape[1] else 0


def loaded_weights(view: np.ndarray, layer: Conv, c0: int, c1: int, channel_major: bool
                   ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(filters' channels [c0, c1) as (N, (c1 - c0)*k*k), or its transpose if ``channel_major``, (multiplier,
    offset)) in a weights buffer (layout in ``load_weights``); the vectors are empty but for the band of the
    last channels."""
    n, vectors = layer.filters, band_vectors(layer, c1)
    w2d = view[vectors:].reshape((-1, n) if channel_major else (n, -1))
    return w2d, (view[n:2 * n], view[:n]) if vectors else (view[:0], view[:0])


def load_weights(view: np.ndarray, source, layer: Conv, c0: int, c1: int) -> None:
    """Input channels [c0, c1) of every filter of ``layer`` into a weights buffer, preceded, for the band of
    the last channels, by the layer's vectors folded in place into the epilogue (offset in the first
    quarter, multiplier in the second; the same float32 operations as ``ConvParams.epilogue``)."""
    n, vectors = layer.filters, band_vectors(layer, c1)
    if vectors:
        source.read_vector(layer.index, "biases", view[:n])
        if layer.batch_normalize:
            scales, mean, var = view[n:2 * n], view[2 * n:3 * n], view[3 * n:4 * n]
            source.read_vector(layer.index, "scales", scales)
            source.read_vector(layer.index, "rolling_mean", mean)
            source.read_vector(layer.index, "rolling_variance", var)
            inside, outside = BN_EPSILONS[layer.bn_rule]  # in place, as bn_divisor computes it
            np.add(var, inside, out=var)
            np.sqrt(var, out=var)
            np.add(var, outside, out=var)
            np.divide(scales, var, out=scales)       # multiplier
            np.multiply(mean, scales, out=mean)
            np.subtract(view[:n], mean, out=view[:n])  # offset
        else:
            view[n:2 * n] = 1.0
    source.read_filters(layer.index, c0, c1, view[vectors:])


@dataclass(frozen=True)
class ConvWeights:
    w2d: np.ndarray      # (N, C/g*k*k) view of the filters
    epilogue: tuple[np.ndarray, np.ndarray]  # per-channel multiplier and offset (BN and bias folded)
    transformed: np.ndarray | None  # (36, C, N) for Winograd's steps (``transform_filters``), if the layer has any
    held_bytes: int      # what this engine holds for the layer outside the arena


def prepare_weights(network: Network, params: Params | None, layers, winograd) -> dict[int, ConvWeights]:
    """Resident weights of ``layers`` (those no program step loads into the arena); those of the layers in
    ``winograd`` transformed as well: their tiles too narrow for Winograd run the GEMM."""
    prepared = {}
    for layer in network.layers:
        if not isinstance(layer, Conv) or layer.index not in layers:
            continue
        if params is None:
            raise PlanError(f"layer {layer.index}: resident weights need the parameters in memory")
        p = params[layer.index]
        epilogue = p.epilogue(layer.bn_rule)
        u = transform_filters(p.weights) if layer.index in winograd else None
        prepared[layer.index] = ConvWeights(np.ascontiguousarray(p.weights.reshape(layer.filters, -1)), epilogue, u,
                                            p.nbytes + epilogue[0].nbytes + epilogue[1].nbytes
                                            + (u.nbytes if u is not None else 0))
    return prepared
