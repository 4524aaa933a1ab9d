"""HDF5 weight store: one group per conv layer, its arrays as datasets, its hyper-parameters as attributes.

The file also keeps the cfg text and the Darknet header, so it converts back to .weights with no cfg.

Layout, chosen for streaming: every dataset is one contiguous little-endian float32 run (no chunks, no
filters), so a reader can take it at its file offset; and a conv layer's ``weights`` are stored channel
major, shape (C/groups, k, k, filters) -- Darknet's (filters, C/groups, k, k) transposed. Streaming reads a
layer in bands of input channels (see ``engine.lower.walk``), and in this order a band is one contiguous
read that lands as the transposed GEMM operand the kernel multiplies directly. Darknet's filter-major order
would make a band one short run per filter (1024 reads of 1 KiB for a band of yolov2's layer 29, 9x
slower), and chunks by filter bands would make every channel band touch every chunk.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from yolo.errors import WeightsError
from yolo.network import Network
from yolo.params import Header, Params, conv_layers, expected_arrays
from yolo.files import atomic_output

FORMAT = "fusetile-weights-2"  # 1: weights stored filter major (Darknet's order); read no more


def stored_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a layer's array has in the store: the weights channel major."""
    return shape[1:] + shape[:1] if name == "weights" else shape


def _stored(name: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(array, 0, -1)) if name == "weights" else array


def _loaded(name: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(array, -1, 0)) if name == "weights" else array


def write_h5(path: str | Path, params: Params, network: Network, cfg_text: str) -> None:
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, cfg=cfg_text, network=network.name,
                           header=[params.header.major, params.header.minor, params.header.revision],
                           seen=params.header.seen)
            for layer in conv_layers(network):
                g = f.create_group(f"layer_{layer.index:03d}")
                g.attrs.update(index=layer.index, kind=layer.kind, filters=layer.filters, size=layer.size,
                               stride=layer.stride, padding=layer.padding, groups=layer.groups,
                               batch_normalize=layer.batch_normalize, activation=layer.activation,
                               in_shape=layer.in_shape, out_shape=layer.out_shape)
                for name, array in params[layer.index].arrays():
                    g.create_dataset(name, data=_stored(name, array))


@contextmanager
def _reading(path: str | Path):
    """Damage found while reading (h5py raises many kinds) is one WeightsError."""
    try:
        yield
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
        raise WeightsError(f"{path}: damaged HDF5 store: {type(err).__name__}: {err}"[:300]) from None


def read_h5_cfg(path: str | Path) -> str:
    with _open(path) as f, _reading(path):
        return str(f.attrs["cfg"])


def open_checked(path: str | Path, network: Network) -> h5py.File:
    """The open store, its layout checked against ``network`` (every dataset there, of the right shape);
    no array is read."""
    f = _open(path)
    try:
        expected_groups = {f"layer_{l.index:03d}" for l in conv_layers(network)}
        extra = sorted(set(f.keys()) - expected_groups)
        if extra:
            shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
            raise WeightsError(f"{path}: holds weights of another network ({f.attrs.get('network', '?')}): "
                               f"{shown} have no conv layer in {network.name}")
        for layer in conv_layers(network):
            key = f"layer_{layer.index:03d}"
            if key not in f:
                raise WeightsError(f"{path}: no group {key}: the cfg has a conv layer {layer.index}")
            for name, shape in expected_arrays(layer):
                if name not in f[key]:
                    raise WeightsError(f"{path}: {key}/{name} missing: layer {layer.index} needs it")
                found, shape = f[key][name].shape, stored_shape(name, shape)
                if found != shape:
                    raise WeightsError(f"{path}: {key}/{name} has shape {found} ({int(np.prod(found))} floats), "
                                       f"layer {layer.index} needs {shape} ({int(np.prod(shape))} floats)")
    except WeightsError:  # (a ValueError too: named before the damage below)
        f.close()
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
        f.close()
        raise WeightsError(f"{path}: damaged HDF5 store: {type(err).__name__}: {err}"[:300]) from None
    return f


def dataset_offsets(path: str | Path, network: Network) -> tuple[dict[tuple[int, str], int], Header]:
    """(layer, array) -> byte offset in the file of every dataset, for reading them without HDF5, and the
    Darknet header the store keeps. ``write_h5``
    stores each as one contiguous little-endian float32 run; anything else (chunked, compressed, another
    type: a store written by other tools) is refused with what to do."""
    with open_checked(path, network) as f, _reading(path):
        offsets = {}
        for layer in conv_layers(network):
            for name, shape in expected_arrays(layer):
                dataset = f[f"layer_{layer.index:03d}"][name]
                at = dataset.id.get_offset()
                if dataset.dtype != np.dtype("<f4") or dataset.chunks is not None or at is None:
                    raise WeightsError(f"{path}: layer_{layer.index:03d}/{name} is not stored as one contiguous "
                                       f"float32 run (type {dataset.dtype}, chunks {dataset.chunks}): convert the "
                                       f".weights file again with python -m yolo.convert")
                offsets[layer.index, name] = int(at)
        major, minor, revision = (int(v) for v in f.attrs["header"])
        header = Header(major, minor, revision, int(f.attrs["seen"]))
    return offsets, header


def read_h5(path: str | Path, network: Network) -> Params:
    """Every array of the store, read at its file offset (``yolo.sources``)."""
    from yolo.sources import h5_source
    with h5_source(path, network) as source:
        return source.read_params()


def _open(path: str | Path) -> h5py.File:
    try:
        f = h5py.File(path, "r")
        found = f.attrs.get("format")
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise WeightsError(f"{path}: not a readable HDF5 file ({err})"[:300]) from None
    if found != FORMAT:
        f.close()
        older = " (an older fusetile's layout: convert the .weights file again)" if found == "fusetile-weights-1" else ""
        raise WeightsError(f"{path}: attribute format={found!r}, expected {FORMAT!r} (written by yolo.convert){older}")
    return f
