"""Weight sources: a conv layer's vectors, or a band of input channels of all its filters, read straight into
the caller's array (an arena view), with no whole-file read and no temporary copy of a layer.

- ``ParamsSource``: weights already in memory (random weights, or a file read whole);
- ``FileSource``: a weights file whose arrays are contiguous float32 runs at known byte offsets: a Darknet
  ``.weights`` file (``darknet_source``) or the HDF5 store (``h5_source``: ``yolo.convert`` writes every
  array as one contiguous little-endian dataset, whose file offset HDF5 reports).

A source delivers a band of weights in its own order (``channel_major``): the HDF5 store keeps the weights
channel major, so a band of input channels is one read, landing as (channels * k * k, filters); Darknet's
file and weights in memory keep each filter's weights together, so a band is one run per filter, (filters,
channels * k * k), read by a compiled loop of ``pread`` calls (about 1 us each from the page cache) with no
Python between. The kernel multiplies either order directly.

A file source checks its size and time stamp when opened and again before every run (``check``), so a file
that changes or shrinks between runs is one WeightsError before the run starts, never a half-run.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numba import njit, types

from yolo.errors import WeightsError
from yolo.network import Network
from yolo.params import ConvParams, Header, Params, conv_layers, expected_arrays

STAGING_BYTES = 1 << 20  # reading a channel-major store whole: channels transposed through a buffer this large

_pread = types.ExternalFunction("pread", types.intp(types.intc, types.intp, types.uintp, types.int64))


@njit(cache=True, nogil=True)
def read_runs(fd, offset, stride, out):
    """Row n of ``out`` (2-D, rows contiguous) <- the bytes at ``offset + n * stride``; returns the bytes read
    (fewer than ``out.nbytes`` if the file ended or failed)."""
    run = out.shape[1] * out.itemsize
    got = 0
    for n in range(out.shape[0]):
        done = 0
        while done < run:  # pread may return less than asked (signals, large reads)
            g = _pread(fd, out[n].ctypes.data + done, run - done, offset + n * stride + done)
            if g <= 0:
                return got + done
            done += g
        got += run
    return got


class ParamsSource:
    channel_major = False

    def __init__(self, params: Params):
        self.params, self.source = params, params.source
        self.read_bytes = 0

    def read_vector(self, layer: int, name: str, out: np.ndarray) -> None:
        np.copyto(out, getattr(self.params[layer], name))
        self.read_bytes += out.nbytes

    def read_filters(self, layer: int, c0: int, c1: int, out: np.ndarray) -> None:
        """Input channels [c0, c1) of every filter into the flat ``out``, filter major."""
        weights = self.params[layer].weights
        np.copyto(out.reshape(weights.shape[0], c1 - c0, -1), weights.reshape(weights.shape[:2] + (-1,))[:, c0:c1])
        self.read_bytes += out.nbytes

    def check(self) -> None:
        pass


class FileSource:
    """Arrays at byte offsets of one open file (``offsets[layer, name]``); the weights filter major (Darknet's
    order) or channel major."""

    def __init__(self, path: Path, fd: int, offsets: dict[tuple[int, str], int], network: Network,
                 channel_major: bool, header: Header):
        self.path, self.source, self.fd, self.offsets = path, str(path), fd, offsets
        self.channel_major, self.header, self.network = channel_major, header, network
        # per layer: filters, input channels (per group), bytes of one filter's one channel
        self.shapes = {layer.index: (layer.filters, layer.weight_shape[1], layer.size ** 2 * 4)
                       for layer in conv_layers(network)}
        status = os.fstat(fd)
        self.size, self.stamp = status.st_size, status.st_mtime_ns
        self.read_bytes = 0

    def read_vector(self, layer: int, name: str, out: np.ndarray) -> None:
        self._read(layer, name, self.offsets[layer, name], 0, out.reshape(1, -1))

    def read_filters(self, layer: int, c0: int, c1: int, out: np.ndarray) -> None:
        """Input channels [c0, c1) of every filter into ``out``, in the source's order: one read when channel
        major or when the band is every channel, else one run per filter into the rows of ``out``."""
        at, (filters, channels, tap_bytes) = self.offsets[layer, "weights"], self.shapes[layer]
        if self.channel_major:
            return self._read(layer, "weights", at + c0 * filters * tap_bytes, 0, out.reshape(1, -1))
        if c1 - c0 == channels:
            return self._read(layer, "weights", at, 0, out.reshape(1, -1))
        self._read(layer, "weights", at + c0 * tap_bytes, channels * tap_bytes, out.reshape(filters, -1))

    def read_params(self) -> Params:
        """Every array, each read straight into its own array (no copy of the file, no temporary of a layer;
        a channel-major store passes through one small staging buffer)."""
        layers = {}
        staging = np.empty(STAGING_BYTES // 4, np.float32) if self.channel_major else None
        for layer in conv_layers(self.network):
            arrays = {name: np.empty(shape, np.float32) for name, shape in expected_arrays(layer)}
            for name, array in arrays.items():
                if name != "weights":
                    self.read_vector(layer.index, name, array)
                elif staging is None:
                    self.read_filters(layer.index, 0, array.shape[1], array.reshape(-1))
                else:
                    filters, channels, k, _ = array.shape
                    step = max(1, len(staging) // (filters * k * k))
                    for c0 in range(0, channels, step):
                        c1 = min(channels, c0 + step)
                        band = staging[:(c1 - c0) * k * k * filters]
                        self.read_filters(layer.index, c0, c1, band)
                        np.copyto(array[:, c0:c1], np.moveaxis(band.reshape(c1 - c0, k, k, filters), -1, 0))
            layers[layer.index] = ConvParams(**arrays)
        self.read_bytes = 0
        return Params(layers, self.header, source=self.source)

    def _read(self, layer: int, name: str, at: int, stride: int, out: np.ndarray) -> None:
        got = read_runs(self.fd, at, stride, out)
        self.read_bytes += got
        if got != out.nbytes:
            raise WeightsError(f"{self.path}: layer {layer} {name}: read {got} of {out.nbytes} bytes "
                               f"(the file changed?)")

    def check(self) -> None:
        status = os.stat(self.path)
        if status.st_size != self.size or status.st_mtime_ns != self.stamp:
            raise WeightsError(f"{self.path}: changed since it was opened ({status.st_size} bytes now, "
                               f"{self.size} before): run again to read it anew")

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_fd(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as err:
        raise WeightsError(f"{path}: cannot read weights: {err.strerror}") from None


def darknet_source(path: str | Path, network: Network) -> FileSource:
    """A Darknet ``.weights`` file: a header, then every conv layer's arrays in order. A size that does not
    fit the cfg names the layer where the file ends, or the floats left over."""
    from yolo.weights import expected_floats, read_header
    path = Path(path)
    fd = _open_fd(path)
    try:
        header, start = read_header(path, os.pread(fd, 20, 0))
        body = os.fstat(fd).st_size - start
        if body % 4:
            raise WeightsError(f"{path}: {body} bytes after the header is not a whole number of float32 values")
        held, want = body // 4, expected_floats(network)
        offsets, at = {}, start
        for layer in conv_layers(network):
            for name, shape in expected_arrays(layer):
                offsets[layer.index, name] = at
                at += int(np.prod(shape)) * 4
                if at > start + body:
                    raise WeightsError(f"{path}: truncated at layer {layer.index} ({name}): the cfg "
                                       f"{network.source or network.name} needs {want} floats, the file holds {held}")
        if held != want:
            raise WeightsError(f"{path}: {held - want} trailing floats: the cfg {network.source or network.name} "
                               f"needs {want} floats, the file holds {held} (wrong cfg for these weights?)")
    except BaseException:
        os.close(fd)
        raise
    return FileSource(path, fd, offsets, network, False, header)


def h5_source(path: str | Path, network: Network) -> FileSource:
    """The HDF5 store: its layout checked against the cfg, then each dataset's file offset."""
    from yolo.h5store import dataset_offsets
    path = Path(path)
    offsets, header = dataset_offsets(path, network)
    return FileSource(path, _open_fd(path), offsets, network, True, header)


def open_source(path: str | Path, network: Network) -> FileSource:
    """The streaming source for a weights file of either format (told apart by content)."""
    from yolo.weights import is_hdf5
    return h5_source(path, network) if is_hdf5(path) else darknet_source(path, network)
