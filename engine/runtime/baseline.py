"""The runtime baseline: resident bytes of the interpreter and libraries an inference needs, measured.

A fresh interpreter imports what a run imports (the engine, Pillow for the picture; h5py too for a run
reading the HDF5 store), runs every kernel once on a toy network (so Numba's compiled code and LLVM are
loaded, as in any real run) and reports its resident high-water mark. The toy's own arrays are a few KiB,
so the figure is what the process costs before weights, the arena and the picture. The child runs again
once the kernels are in Numba's cache, so compiling them (a first run's cost) is not counted. Measured
once per machine and library versions and cached beside the cost model.
"""
from __future__ import annotations

import json
import subprocess
import sys

from engine.cache import cache_dir, versions_key


def resident_high_water() -> int:
    """VmHWM of this process in bytes (Linux); ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _toy_run(h5: bool) -> int:
    """What a run imports and does, on a toy: a 16x16 JPEG decoded, letterboxed and drawn; every kernel once
    on a toy chain (resident and streamed weights, read from a file of the run's format) and the predictor;
    the resident high-water mark afterwards."""
    import importlib
    import tempfile
    from pathlib import Path
    import numpy as np
    for module in ("engine.cli.pipeline", "yolo.draw", "yolo.letterbox", "PIL.Image") + (("h5py",) if h5 else ()):
        importlib.import_module(module)
    from engine.ir.plan import Group, Plan
    from engine.memory.predictor import Predictor
    from engine.runtime.executor import FusedExecutor
    from yolo.network import Network, make_conv, make_maxpool
    from yolo.params import random_params
    from yolo.sources import open_source
    shape = (3, 16, 16)
    conv0 = make_conv(0, shape, 4, 3, 1, 1, 1, True, "leaky", source=-1)
    pool = make_maxpool(1, conv0.out_shape, 2, 2, source=0)
    conv2 = make_conv(2, pool.out_shape, 4, 3, 1, 1, 1, False, "linear", source=1)
    network = Network("toy", shape, (conv0, pool, conv2))
    params = random_params(network, 0)
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    from PIL import Image
    from yolo.draw import draw_detections
    from yolo.letterbox import letterbox, load_image
    with tempfile.TemporaryDirectory() as folder:
        Image.new("RGB", (16, 16), (90, 140, 200)).save(Path(folder) / "toy.jpg")
        picture = load_image(Path(folder) / "toy.jpg", (16, 16))
        letterbox(picture, 16, 16)
        draw_detections(picture, [], ()).save(Path(folder) / "boxes.png")
        path = Path(folder) / ("toy.h5" if h5 else "toy.weights")
        if h5:
            from yolo.h5store import write_h5
            write_h5(path, params, network, "")
        else:
            from yolo.weights import write_darknet
            write_darknet(path, params)
        with open_source(path, network) as source:
            for reuse in ("none", "stream"):
                for weights, held in (("resident", params), ("tile", None)):
                    plan = Plan(network, (Group(0, 2, 2, 2, reuse, weights, 1 if weights == "resident" else 2),),
                                "streamed" if held is None else "resident")
                    Predictor(network).predict(plan)
                    FusedExecutor(plan, held, source=None if held is not None else source).run(image)
    return resident_high_water()


def runtime_baseline_bytes(h5: bool = False) -> int:
    """Measured once per machine and versions (a few seconds in child processes), then cached; ``h5``: for
    a run that reads the HDF5 store."""
    path = cache_dir() / f"baseline-{versions_key()}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if "h5_bytes" in data:
            return int(data["h5_bytes" if h5 else "bytes"])
    from engine.report.progress import PROGRESS
    PROGRESS.note("measuring the runtime baseline once (child processes; a few seconds) ...")
    for h5_run in (False, True):  # compile the kernels into Numba's cache if they are not there yet (an HDF5
        _child(h5_run)            # store delivers weights channel major: some kernels see other array types)
    measured = {"bytes": _child(False), "h5_bytes": _child(True)}
    from yolo.files import atomic_write_bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(measured).encode())
    return measured["h5_bytes" if h5 else "bytes"]


def _child(h5: bool) -> int:
    code = f"from engine.runtime.baseline import _toy_run; print(_toy_run({h5}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring the runtime baseline failed: {done.stderr.strip()[-2000:]}")
    return int(done.stdout.split()[-1])
