"""Convert weights between Darknet .weights and the HDF5 store.

    python -m yolo.convert IN.weights OUT.h5 --cfg yolov2.cfg
    python -m yolo.convert IN.h5 OUT.weights          (the .h5 carries its cfg)

The direction follows IN's content (HDF5 or not). Errors: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolo.errors import WeightsError, run_command
from yolo.cfg import build_network, parse_sections, read_cfg_text, resolve_cfg
from yolo.h5store import read_h5, read_h5_cfg, write_h5
from yolo.weights import is_hdf5, read_darknet, write_darknet


def convert(src: Path, dst: Path, cfg: str | None = None) -> str:
    if is_hdf5(src):
        text, origin = read_h5_cfg(src), f"{src} (embedded cfg)"
        network = build_network(parse_sections(text, origin), name=Path(src).stem)
        write_darknet(dst, read_h5(src, network))
        return f"{src} -> {dst} (Darknet .weights)"
    if cfg is None:
        raise WeightsError(f"{src}: a Darknet .weights file does not say its network: pass --cfg CFG")
    path = resolve_cfg(cfg)
    text = read_cfg_text(path)
    network = build_network(parse_sections(text, str(path)), name=path.stem)
    write_h5(dst, read_darknet(src, network), network, text)
    return f"{src} -> {dst} (HDF5, cfg {path.name} embedded)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yolo.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="input weights (.weights or .h5)")
    ap.add_argument("dst", type=Path, help="output file (written to a temp name, then renamed)")
    ap.add_argument("--cfg", help="Darknet cfg (path or bundled name); required for .weights input")
    args = ap.parse_args(argv)
    return run_command("yolo.convert", lambda: command(args))


HDF5_SUFFIXES = (".h5", ".hdf5")


def command(args) -> int:
    src, dst = args.src, args.dst
    if not src.is_file():
        raise WeightsError(f"{src}: {'a folder, not a weights file' if src.is_dir() else 'no such file'}")
    if dst.is_dir():
        raise WeightsError(f"{dst}: is a folder: expected the output file's name")
    if not dst.absolute().parent.is_dir():
        raise WeightsError(f"{dst}: folder {dst.absolute().parent} does not exist")
    if dst.exists() and dst.samefile(src):
        raise WeightsError(f"{dst}: is the input file: write the conversion to another name")
    to_hdf5 = not is_hdf5(src)
    if to_hdf5 != (dst.suffix.lower() in HDF5_SUFFIXES):
        wanted = ("an .h5 name (the output is HDF5)" if to_hdf5
                  else "a name not ending in .h5 (the output is Darknet .weights)")
        raise WeightsError(f"{dst}: expected {wanted}")
    print(convert(src, dst, args.cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
