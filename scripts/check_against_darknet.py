"""Replay Darknet's own reference cases through the fusetile reference engine.

Not a test: a user's clone has no ../shared. Two sets of cases:

- ``ref/`` (pjreddie's Darknet, random weights): it rebuilds the exact weights with the shared generator
  (checking the sha256), feeds Darknet's own letterboxed input, and reports every stored layer's relative
  error plus whether the detections (labels, percentages, boxes) are identical. It also checks our
  letterbox against Darknet's on Darknet's own decoded pixels.
- ``ref_trained/`` (AlexeyAB's Darknet, trained models): our resize of Darknet's decoded pixels against the
  tensor it fed, every stored tensor, and every detection (class, probability, objectness, box).

    python scripts/check_against_darknet.py [--shared ../shared] [--cases yolov2-tiny_seed0 nano-coco_dog ...]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runtime.reference import run_reference  # noqa: E402
from yolo.cfg import load_network  # noqa: E402
from yolo.letterbox import letterbox, resize, to_chw  # noqa: E402
from yolo.names import class_names  # noqa: E402
from yolo.region import detect  # noqa: E402
from yolo.weights import load_weights, read_darknet  # noqa: E402
from yolo.yolo_head import detect_all  # noqa: E402


def make_weights(shared: Path, case: dict, out: Path) -> None:
    args = case["weights"]["generator"].split()[1:]  # "oracles/make_weights.py CFG OUT --seed N ..."
    cfg = shared.parent / args[0]
    cmd = [sys.executable, str(shared / "tools" / "make_weights.py"), str(cfg), str(out), *args[2:]]
    subprocess.run(cmd, check=True, capture_output=True)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if digest != case["weights"]["sha256"]:
        raise SystemExit(f"weights sha256 {digest} != {case['weights']['sha256']}")


def check_letterbox(shared: Path) -> bool:
    images = np.load(shared / "data" / "ref" / "images_stb_decoded.npz")
    ok = True
    for name in ("dog", "person", "horses", "eagle"):
        ours = letterbox(to_chw(Image.fromarray(images[name])), 416, 416)
        diff = float(np.abs(ours - images[f"{name}_letterbox416"]).max())
        ok &= diff == 0.0
        print(f"letterbox {name:<7} max abs diff vs darknet: {diff:.3g}")
    return ok


def replay(shared: Path, name: str, workdir: Path) -> bool:
    case = json.loads((shared / "data" / "ref" / f"{name}.json").read_text())
    tensors = np.load(shared / "data" / "ref" / f"{name}.npz")
    network = load_network(shared.parent / case["cfg"])
    weights = workdir / f"{name}.weights"
    make_weights(shared, case, weights)
    params = read_darknet(weights, network)
    layers = sorted(int(k[1:]) for k in tensors.files if k.startswith("L"))
    run = run_reference(network, params, tensors["input"], keep=tuple(layers))
    worst = 0.0
    print(f"== {name}: {network!r}")
    for i in layers:
        theirs = tensors[f"L{i}"]
        rel = float(np.abs(run.kept[i] - theirs).max() / np.abs(theirs).max())
        worst = max(worst, rel)
        print(f"  L{i:<3} {network[i].kind:<8} max|diff|/max|darknet| = {rel:.2e}")
    image = np.load(shared / "data" / "ref" / "images_stb_decoded.npz")[Path(case["image"]).stem]
    ih, iw = image.shape[:2]
    dets = detect(run.output, network.region, (iw, ih), network.input_shape[2:0:-1], 0.5, 0.45)
    names = class_names(network.region.classes)
    ours = sorted((d.class_id, f"{names[d.class_id]}: {d.confidence * 100:.0f}%") for d in dets)
    theirs = sorted((int(r[0]), f"{names[int(r[0])]}: {r[1] * 100:.0f}%") for r in case["darknet_dets"])
    labels_ok = sorted(s for _, s in ours) == sorted(case["detect_printed"]) and ours == theirs
    box_err = 0.0
    if len(dets) == len(case["darknet_dets"]):
        a = sorted((d.class_id, -d.confidence, *d.box) for d in dets)
        b = sorted((int(r[0]), -r[1], *r[2:6]) for r in case["darknet_dets"])
        box_err = float(np.abs(np.array(a) - np.array(b)).max()) if a else 0.0
    ok = worst <= 1e-4 and labels_ok and len(dets) == len(case["darknet_dets"]) and box_err < 1e-4
    print(f"  worst layer {worst:.2e}; detections: ours {len(dets)}, darknet {len(case['darknet_dets'])}; "
          f"labels+percentages identical: {labels_ok}; max box/prob diff {box_err:.2e} -> {'OK' if ok else 'MISMATCH'}")
    return ok


def replay_trained(shared: Path, name: str) -> bool:
    """One AlexeyAB case: preprocessing, tensors and detections of a trained model."""
    folder = shared / "data" / "ref_trained"
    case = json.loads((folder / f"{name}.json").read_text())
    tensors = np.load(folder / f"{name}.npz")
    network = load_network(shared / "data" / "trained" / case["cfg"])
    params = load_weights(shared / "data" / "trained" / case["weights"], network)
    pixels = np.load(shared / "data" / "ref" / "images_stb_decoded.npz")[Path(case["image"]).stem]
    _, net_h, net_w = network.input_shape
    fed = resize(to_chw(Image.fromarray(pixels)), net_w, net_h)
    pre = float(np.abs(fed - tensors["input"]).max())
    layers = sorted(int(k[1:]) for k in tensors.files if k.startswith("L"))
    run = run_reference(network, params, tensors["input"], keep=tuple(layers))
    print(f"== {name}: {network!r} ({network.fork}, {network.default_preprocess})")
    print(f"  input: our resize of Darknet's decoded pixels, max abs diff {pre:.2e}")
    worst = 0.0
    for i in layers:
        theirs = tensors[f"L{i}"]
        worst = max(worst, float(np.abs(run.kept[i] - theirs).max() / np.abs(theirs).max()))
    ih, iw = pixels.shape[:2]
    dets = detect_all(network, run.head_outputs, (iw, ih), case["detections_thresh"], 0.45, False)
    ours = sorted((d.class_id, d.confidence, d.objectness, *d.box) for d in dets)
    theirs = sorted((d["class_id"], d["prob"], d["objectness"], *d["bbox_rel_xywh_center"])
                    for d in case["detections"])
    same_classes = [o[0] for o in ours] == [t[0] for t in theirs]
    err = float(np.abs(np.array(ours) - np.array(theirs)).max()) if same_classes and ours else 0.0
    ok = pre == 0.0 and worst <= 1e-4 and same_classes and err <= 2e-6
    print(f"  {len(layers)} tensors, worst max|diff|/max|darknet| = {worst:.2e}; detections: ours {len(ours)}, "
          f"darknet {len(theirs)}, classes identical: {same_classes}, max prob/objectness/box diff {err:.1e} "
          f"(Darknet prints 6 decimals) -> {'OK' if ok else 'MISMATCH'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--cases", nargs="*")
    args = ap.parse_args()
    ref = args.shared / "data" / "ref"
    trained = sorted(p.stem for p in (args.shared / "data" / "ref_trained").glob("*.json"))
    cases = args.cases or sorted(p.stem for p in ref.glob("yolov2*.json")) + trained
    ok = check_letterbox(args.shared)
    with tempfile.TemporaryDirectory() as tmp:
        for name in cases:
            ok &= replay_trained(args.shared, name) if name in trained else replay(args.shared, name, Path(tmp))
    print("ALL OK" if ok else "SOME MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
