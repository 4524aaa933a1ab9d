"""Per-layer parameters. Batch norm is kept unfolded so the reference follows Darknet's arithmetic."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo.network import Conv, Network

# Batch norm divides by sqrt(var + inside) + outside, each fork its own: pjreddie's Darknet adds 1e-6 after
# the sqrt, AlexeyAB's 1e-5 under it, and OpenCV's Darknet importer 1e-6 under it (measured: with this rule
# our tensors match OpenCV's within 3e-6 on the bundled trained models, against up to 1e-2 with AlexeyAB's).
BN_EPSILONS = {"pjreddie": (np.float32(0), np.float32(1e-6)), "alexeyab": (np.float32(1e-5), np.float32(0)),
               "opencv": (np.float32(1e-6), np.float32(0))}


def bn_divisor(variance: np.ndarray, rule: str) -> np.ndarray:
    """What batch norm divides by under the fork's ``rule`` (a BN_EPSILONS key), in float32."""
    inside, outside = BN_EPSILONS[rule]
    return (np.sqrt(variance + inside) + outside).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ConvParams:
    biases: np.ndarray            # (n,) float32: BN beta when batch_normalize, else the conv bias
    weights: np.ndarray           # (n, c/groups, k, k) float32
    scales: np.ndarray | None = None            # (n,) BN gamma
    rolling_mean: np.ndarray | None = None      # (n,)
    rolling_variance: np.ndarray | None = None  # (n,)

    @property
    def batch_normalize(self) -> bool:
        return self.scales is not None

    def arrays(self) -> list[tuple[str, np.ndarray]]:
        """The arrays in Darknet's file order."""
        named = [("biases", self.biases)]
        if self.batch_normalize:
            named += [("scales", self.scales), ("rolling_mean", self.rolling_mean),
                      ("rolling_variance", self.rolling_variance)]
        return named + [("weights", self.weights)]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for _, a in self.arrays())

    def epilogue(self, rule: str = "pjreddie") -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (multiplier, offset) equal to BN-then-bias, for kernels that fuse the epilogue; ``rule``
        names the fork's batch norm divisor (``bn_divisor``)."""
        if not self.batch_normalize:
            return np.ones_like(self.biases), self.biases.copy()
        mult = self.scales / bn_divisor(self.rolling_variance, rule)
        return mult.astype(np.float32), (self.biases - self.rolling_mean * mult).astype(np.float32)


@dataclass(frozen=True)
class Header:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def wide_seen(self) -> bool:
        """Darknet stores `seen` in 8 bytes from version 0.2 on, in 4 bytes before."""
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000


@dataclass(frozen=True, eq=False)
class Params:
    layers: dict[int, ConvParams]  # keyed by conv layer index
    header: Header = Header()
    source: str = "random"

    def __getitem__(self, index: int) -> ConvParams:
        return self.layers[index]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.layers.values())

    @property
    def float_count(self) -> int:
        return self.nbytes // 4


def expected_arrays(layer: Conv) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes a conv layer stores, in file order."""
    n = layer.filters
    shapes = [("biases", (n,))]
    if layer.batch_normalize:
        shapes += [("scales", (n,)), ("rolling_mean", (n,)), ("rolling_variance", (n,))]
    return shapes + [("weights", layer.weight_shape)]


def conv_layers(network: Network) -> list[Conv]:
    return [l for l in network.layers if isinstance(l, Conv)]


def random_params(network: Network, seed: int = 0) -> Params:
    """Deterministic weights that keep activations O(1) through all of yolov2.

    He-scaled filters for leaky layers, and BN statistics near identity, so each layer roughly keeps the
    variance of its input; the last linear layer is scaled down so region logits stay moderate.
    """
    rng = np.random.default_rng(seed)
    layers = {}
    convs = conv_layers(network)
    for layer in convs:
        n = layer.filters
        fan_in = layer.weight_shape[1] * layer.size * layer.size
        gain = 2.0 if layer.activation in ("leaky", "relu") else 1.0
        if layer is convs[-1] and layer.activation == "linear":
            gain = 0.25
        weights = rng.standard_normal(layer.weight_shape, dtype=np.float32)  # float32 throughout: no temporaries
        weights *= np.float32(np.sqrt(gain / fan_in))
        bn = {}
        if layer.batch_normalize:
            bn = dict(scales=rng.uniform(0.8, 1.2, n), rolling_mean=rng.normal(0.0, 0.05, n),
                      rolling_variance=rng.uniform(0.8, 1.25, n))
        layers[layer.index] = ConvParams(
            biases=rng.normal(0.0, 0.05, n).astype(np.float32),
            weights=weights,
            **{k: v.astype(np.float32) for k, v in bn.items()})
    return Params(layers, Header(), source=f"random(seed={seed})")
