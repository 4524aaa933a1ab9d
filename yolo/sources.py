"""Weight sources: one band of filters of one conv layer's arrays, read straight into the caller's array (an
arena view), with no whole-file read and no temporary copy of a layer.

- ``ParamsSource``: weights already in memory (random weights, or a file read whole);
- ``DarknetSource``: a Darknet ``.weights`` file, read at each array's byte offset;
- ``H5Source``: the HDF5 store, read with h5py's ``read_direct`` (each layer's arrays are contiguous
  datasets, so a band of filters is one contiguous range).

A file source checks its size when opened and again before every run (``check``), so a file that changes
or shrinks between runs is one WeightsError before the run starts, never a half-run.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from yolo.errors import WeightsError
from yolo.network import Network
from yolo.params import Params, conv_layers, expected_arrays


class ParamsSource:
    def __init__(self, params: Params):
        self.params, self.source = params, params.source
        self.read_bytes = 0

    def read(self, layer: int, name: str, f0: int, f1: int, out: np.ndarray) -> None:
        band = getattr(self.params[layer], name)[f0:f1]
        np.copyto(out.reshape(band.shape), band)
        self.read_bytes += out.nbytes

    def check(self) -> None:
        pass


class DarknetSource:
    def __init__(self, path: str | Path, network: Network):
        from yolo.weights import expected_floats, read_header
        self.path, self.source = Path(path), str(path)
        try:
            self.file = open(self.path, "rb")
            head = self.file.read(20)
        except OSError as err:
            raise WeightsError(f"{path}: cannot read weights: {err.strerror}") from None
        _, start = read_header(self.path, head)
        self.offsets: dict[tuple[int, str], tuple[int, int]] = {}  # (layer, array) -> (byte offset, floats per filter)
        at = start
        for layer in conv_layers(network):
            for name, shape in expected_arrays(layer):
                self.offsets[layer.index, name] = (at, int(np.prod(shape[1:])))
                at += int(np.prod(shape)) * 4
        self.size = at
        want = expected_floats(network)
        found = os.fstat(self.file.fileno()).st_size
        if found != self.size:
            raise WeightsError(f"{path}: {found} bytes, but the cfg {network.source or network.name} needs {want} "
                               f"floats after a {start}-byte header ({self.size} bytes): wrong cfg for these weights?")
        self.stamp = os.fstat(self.file.fileno()).st_mtime_ns
        self.read_bytes = 0

    def read(self, layer: int, name: str, f0: int, f1: int, out: np.ndarray) -> None:
        at, per_filter = self.offsets[layer, name]
        wanted = (f1 - f0) * per_filter * 4
        got = os.preadv(self.file.fileno(), [memoryview(out).cast("B")], at + f0 * per_filter * 4)
        self.read_bytes += got
        if got != wanted:
            raise WeightsError(f"{self.path}: layer {layer} {name}: read {got} of {wanted} bytes (the file changed?)")

    def check(self) -> None:
        status = os.stat(self.path)
        if status.st_size != self.size or status.st_mtime_ns != self.stamp:
            raise WeightsError(f"{self.path}: changed since it was opened ({status.st_size} bytes now, "
                               f"{self.size} before): run again to read it anew")


class H5Source:
    def __init__(self, path: str | Path, network: Network):
        from yolo.h5store import open_checked
        self.path, self.source = Path(path), str(path)
        self.file = open_checked(path, network)
        self.stamp = os.stat(path).st_mtime_ns
        self.read_bytes = 0

    def read(self, layer: int, name: str, f0: int, f1: int, out: np.ndarray) -> None:
        dataset = self.file[f"layer_{layer:03d}"][name]
        dataset.read_direct(out.reshape((f1 - f0,) + dataset.shape[1:]), np.s_[f0:f1])
        self.read_bytes += out.nbytes

    def check(self) -> None:
        if os.stat(self.path).st_mtime_ns != self.stamp:
            raise WeightsError(f"{self.path}: changed since it was opened: run again to read it anew")


def open_source(path: str | Path, network: Network):
    """The streaming source for a weights file of either format (told apart by content)."""
    from yolo.weights import is_hdf5
    return H5Source(path, network) if is_hdf5(path) else DarknetSource(path, network)
