"""Convert weights between Darknet .weights and the HDF5 store.

    python -m yolo.convert IN.weights OUT.h5 --cfg yolov2.cfg
    python -m yolo.convert IN.h5 OUT.weights          (the .h5 carries its cfg)

The direction follows IN's content (HDF5 or not). Errors: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolo.errors import FusetileError, WeightsError
from yolo.cfg import build_network, parse_sections, resolve_cfg
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
    text = path.read_text()
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
    try:
        if not args.src.is_file():
            raise WeightsError(f"{args.src}: no such file")
        if not args.dst.parent.is_dir():
            raise WeightsError(f"{args.dst}: folder {args.dst.parent} does not exist")
        print(convert(args.src, args.dst, args.cfg))
    except FusetileError as err:
        print(f"yolo.convert: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
