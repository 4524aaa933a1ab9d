"""Darknet .weights files: read, write (exact round trip), and check against a network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo.errors import WeightsError
from yolo.network import Network
from yolo.params import Header, Params, conv_layers, expected_arrays
from yolo.files import atomic_write_bytes


def expected_floats(network: Network) -> int:
    return sum(int(np.prod(shape)) for l in conv_layers(network) for _, shape in expected_arrays(l))


def read_header(path: Path, head: bytes) -> tuple[Header, int]:
    """The Darknet header from a file's first (up to) 20 bytes, and its length (16 or 20 bytes)."""
    if len(head) < 16:
        raise WeightsError(f"{path}: {len(head)} bytes is too short for a Darknet header (16 or 20 bytes)")
    major, minor, revision = (int(v) for v in np.frombuffer(head, "<i4", 3))
    if not (0 <= major <= 1000 and 0 <= minor <= 1000 and 0 <= revision <= 1000):
        raise WeightsError(f"{path}: not a Darknet weights file: its header reads version {major}.{minor}.{revision}, "
                           f"expected a small version such as 0.2.0 (the first 12 bytes: three int32)")
    seen_bytes = 8 if Header(major, minor, revision).wide_seen else 4
    if len(head) < 12 + seen_bytes:
        raise WeightsError(f"{path}: truncated header: expected {12 + seen_bytes} bytes, found {len(head)}")
    seen = int(np.frombuffer(head, "<u8" if seen_bytes == 8 else "<i4", 1, 12)[0])
    return Header(major, minor, revision, seen), 12 + seen_bytes


def read_darknet(path: str | Path, network: Network) -> Params:
    """Read a .weights file for ``network``, each array straight into its own; any size mismatch names the
    layer and the float counts (``yolo.sources.darknet_source``)."""
    from yolo.sources import darknet_source
    with darknet_source(path, network) as source:
        return source.read_params()


def write_darknet(path: str | Path, params: Params) -> None:
    """Write params in Darknet's layout, atomically (temp file, then rename)."""
    h = params.header
    parts = [np.array([h.major, h.minor, h.revision], "<i4").tobytes(),
             np.array([h.seen], "<u8" if h.wide_seen else "<i4").tobytes()]
    for index in sorted(params.layers):
        parts += [np.ascontiguousarray(a, "<f4").tobytes() for _, a in params.layers[index].arrays()]
    atomic_write_bytes(path, b"".join(parts))


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def load_weights(path: str | Path, network: Network) -> Params:
    """Either format, told apart by content rather than by file name."""
    if is_hdf5(path):
        from yolo.h5store import read_h5
        return read_h5(path, network)
    return read_darknet(path, network)
