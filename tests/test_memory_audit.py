"""Honest accounting: during a fused run nothing but the arena holds activations.

- tracemalloc around the measured part of a fused yolov2-416 run, its steps split between two threads or
  run in pairs (``columns``): at most 64 KiB of Python objects
  (views and ints) while the arena holds megabytes; the same audit on the NumPy reference sees its
  feature maps, so it can fail.
- Numba's NRT allocation statistics: each kernel (the whole conv with its BLAS calls, and the weights
  reader), driven 1 or 5 times from inside an @njit loop, shows the same count (only the Python-boundary
  adaption of its array arguments), so kernels allocate nothing.
- The executor and kernels run once more with NUMBA_BOUNDSCHECK=1 on several plans.
"""
import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

from engine.runtime.executor import FusedExecutor
from yolo.params import random_params
from engine.ir.plan import Plan, parse_groups
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from yolo.letterbox import Placement
from tests.helpers import random_image

SLACK_BYTES = 64 * 1024


def traced_peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


@pytest.mark.parametrize("spec", ["0-7:4x4,8-16:2x2", "0-7:4x2:columns,8-16:2x2"])  # split steps; pairs
def test_fused_run_allocates_nothing_outside_the_arena(spec):
    net = load_network("yolov2.cfg")
    params = random_params(net, 0)
    x = random_image(net.input_shape)
    picture = random_image((3, 300, 500))  # letterboxed, tile by tile
    placement = Placement.of((500, 300), (416, 416), "letterbox")
    executor = FusedExecutor(Plan(net, parse_groups(spec)), params, threads=2)
    executor.run(picture, placement)  # warm-up: JIT cache load
    arena = executor.arena()
    fused = traced_peak(lambda: executor.execute(picture, placement))
    assert fused <= SLACK_BYTES, fused
    assert arena.peak_bytes > 4_000_000
    reference = traced_peak(lambda: run_reference(net, params, x))
    assert reference > 27_000_000  # the audit does see NumPy feature maps


def run_script(code: str, env_extra: dict, tmp_path) -> str:
    env = dict(os.environ, **env_extra, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


NRT_SCRIPT = """
import os
import numpy as np
from numba import njit
from numba.core.runtime import rtsys
from kernels import conv, direct, elementwise, pool, pooled, layout, picture, winograd, winograd_transforms
from yolo.sources import read_runs

f32 = np.float32
x = np.random.default_rng(0).random((4, 9, 9)).astype(f32)
out = np.zeros((6, 9, 9), f32)
cols = np.zeros(4 * 9 * 81, f32)
acc = np.zeros(6 * 81, f32)
m, o = np.ones(6, f32), np.zeros(6, f32)
w2d = np.random.default_rng(3).random((6, 36)).astype(f32)
w2t = np.ascontiguousarray(w2d.T)
w1 = np.random.default_rng(4).random((6, 4)).astype(f32)
fd = os.open(__file__ if "__file__" in globals() else "/proc/self/exe", os.O_RDONLY)
big = np.zeros((8, 9, 9), f32)
flat_in = np.random.default_rng(1).random(16 * 4 * 4).astype(f32)
flat_out = np.zeros(16 * 4 * 4, f32)
reg_in = np.random.default_rng(2).random((14, 3, 3)).astype(f32)
reg_out = np.zeros((14, 3, 3), f32)
u = winograd_transforms.transform_filters(np.random.default_rng(5).random((6, 4, 3, 3)).astype(f32))
v, mm = np.zeros(36 * 2 * 3, f32), np.zeros(36 * 6 * 3, f32)  # bands of a tile row of 3 tiles

@njit
def drive(n, x, out, cols, acc, m, o, w2d, w2t, w1, fd, big, flat_in, flat_out, reg_in, reg_out, u, v, mm):
    for _ in range(n):
        conv.conv_tile(out, x, 1, 1, w2d, False, m, o, 1, 3, 1, 9, 2, True, False, cols, acc, 0, 1)  # im2col, two blocks
        conv.conv_tile(out, x, 1, 1, w2t, True, m, o, 1, 3, 1, 4, 4, False, True, cols, acc, 0, 1)  # adds, finishes
        conv.conv_tile(out, x, 0, 0, w1, False, m, o, 2, 1, 1, 9, 4, True, True, cols[:0], acc, 0, 1)  # in place
        read_runs(fd, 0, 64, w1)
        pool.maxpool_tile(out[:4, :4, :4], x, 2, 2, 0, 0)
        pool.maxpool_tile(out[:4], x, 5, 1, 2, 2)  # separably, row by row
        layout.copy_channels(big, x, 2)
        layout.reorg(flat_out, flat_in, 16, 4, 4, 2)
        layout.region(reg_out, reg_in, 2, 4, 2, True)
        picture.fit_region(x, f32(1), 5, 7, 1, 2, 0, 0, out[:4])  # a letterboxed region
        direct.depthwise_tile(out[:4], x, 1, 1, w2d[:4, :9], m, o, 1, 3, 1, 0, 1)  # unrolled 3x3 and borders
        direct.thin_tile(out, x[:3], 1, 1, w2d[:, :27], m, o, 1, 1, True, False, 0, 2)  # a share, partial sums
        direct.thin_tile(out[:, :5, :5], x[:3], 1, 1, w2t[:27].T, m, o, 1, 2, False, True, 1, 2)  # strided, adds
        direct.thin_tile(flat_out[:150].reshape(6, 5, 5), x[:3], 1, 1, w2d[:, :27], m, o, 1, 2, True, True, 0,
                         1)  # stride 2 through the windows, each row in the next one's room
        elementwise.shortcut(out[:4, 1:5, 1:5], x[:, :4, :4], big[:4, 2:6, 2:6], 1)  # regions of three maps
        elementwise.upsample(out[:4, :5, :5], x[:, :3, :3], 2, f32(1), 1, 1)
        winograd.winograd_tile(out, x, 1, 1, u, m, o, 1, 4, 8, 2, v, mm, 0, 1)  # 3 tile rows in 2 bands, 2 blocks
        pooled.conv_pooled(out[:, :4, :4], x[:, :8, :8], 1, 1, w2d, False, m, o, 1, 3, 1, 4, 4, cols, acc, 1, 2)
        pooled.winograd_pooled(out[:, :4, :4], x[:, :8, :8], 1, 1, u, m, o, 1, 4, 8, 2, v, mm, acc, 0, 2)  # runs
        pooled.thin_pooled(out[:, :4, :4], x[:3, :8, :8], 1, 1, w2d[:, :27], m, o, 1, 1, 4, acc, 0, 2)

args = (x, out, cols, acc, m, o, w2d, w2t, w1, fd, big, flat_in, flat_out, reg_in, reg_out, u, v, mm)
drive(1, *args)
s0 = rtsys.get_allocation_stats(); drive(1, *args)
s1 = rtsys.get_allocation_stats(); drive(5, *args)
s2 = rtsys.get_allocation_stats()
print(s1.alloc - s0.alloc, s2.alloc - s1.alloc, s2.alloc - s2.free)
"""


def test_kernels_make_no_nrt_allocations(tmp_path):
    once, five, outstanding = map(int, run_script(NRT_SCRIPT, {"NUMBA_NRT_STATS": "1"}, tmp_path).split())
    assert once == five  # the loop adds nothing: kernels allocate nothing per call
    assert once <= 18    # one adaption per array argument at the Python boundary
    assert outstanding == 0


BOUNDS_SCRIPT = """
import numpy as np
from engine.runtime.executor import run_fused
from yolo.params import random_params
from engine.ir.plan import Plan, parse_groups
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
for cfg, size, specs, scratch in [("yolov2-tiny.cfg", 96, ["", "0-8:3x2", "0-5:3x3,6-13:2x2"], 4096),
                                  ("yolov2-tiny.cfg", 96, ["", "0-5:2x2", "0-5:3x2:columns"], 1 << 20),  # Winograd
                                  ("yolov2.cfg", 64, ["0-7:4x4,8-16:2x2", "0-16:2x1"], 4096)]:
    net = load_network(cfg, size)
    p = random_params(net, 1)
    x = np.random.default_rng(0).random(net.input_shape, dtype=np.float32)
    ref = run_reference(net, p, x).output
    for spec in specs:
        out = run_fused(Plan(net, parse_groups(spec)), p, x, scratch_bytes=scratch).output
        assert np.abs(out - ref).max() <= 2e-5 * np.abs(ref).max(), (cfg, spec)
print("ok")
"""


def test_executor_and_kernels_under_bounds_checking(tmp_path):
    assert run_script(BOUNDS_SCRIPT, {"NUMBA_BOUNDSCHECK": "1"}, tmp_path).strip() == "ok"
