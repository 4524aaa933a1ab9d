"""The runtime baseline: resident bytes of the interpreter and libraries an inference needs, measured.

A fresh interpreter imports the engine, runs every kernel once on a toy network (so Numba's compiled
code and LLVM are loaded, as in any real run) and reports its resident high-water mark. The toy's own
arrays are a few KiB, so the figure is what the process costs before weights and the arena. It is
measured once per machine and library versions and cached beside the cost model.
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


def _toy_run() -> int:
    """Every kernel once on a toy chain; the resident high-water mark afterwards."""
    import numpy as np
    from engine.runtime.executor import FusedExecutor
    from yolo.network import Network, make_conv, make_maxpool
    from yolo.params import random_params
    from engine.ir.plan import Group, Plan
    shape = (3, 16, 16)
    conv0 = make_conv(0, shape, 4, 3, 1, 1, 1, True, "leaky", source=-1)
    pool = make_maxpool(1, conv0.out_shape, 2, 2, source=0)
    conv2 = make_conv(2, pool.out_shape, 4, 3, 1, 1, 1, False, "linear", source=1)
    network = Network("toy", shape, (conv0, pool, conv2))
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    for reuse in ("none", "stream"):
        FusedExecutor(Plan(network, (Group(0, 2, 2, 2, reuse),)), random_params(network, 0)).run(image)
    return resident_high_water()


def runtime_baseline_bytes() -> int:
    """Measured once per machine and versions (a second or two in a child process), then cached."""
    path = cache_dir() / f"baseline-{versions_key()}.json"
    if path.is_file():
        return int(json.loads(path.read_text())["bytes"])
    from engine.report.progress import PROGRESS
    PROGRESS.note("measuring the runtime baseline once (a child process; a few seconds) ...")
    code = "from engine.runtime.baseline import _toy_run; print(_toy_run())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measuring the runtime baseline failed: {done.stderr.strip()[-2000:]}")
    measured = int(done.stdout.split()[-1])
    from yolo.files import atomic_write_bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"bytes": measured}).encode())
    return measured
