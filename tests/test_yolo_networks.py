"""Residual, depthwise, squeeze-excitation and YOLOv3-style networks: the layers' Darknet semantics, the
fused executor against the reference on them, and the bundled trained model's real detections."""
import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli.main import main
from engine.ir.plan import REUSE_MODES, Plan, parse_groups
from engine.memory.predictor import Predictor
from engine.runtime import reference_ops as ops
from engine.runtime.executor import run_fused
from engine.runtime.reference import run_reference
from kernels import elementwise
from yolo.cfg import BUNDLED_DIR, load_network
from yolo.network import ACTIVATIONS
from yolo.params import bn_divisor, random_params
from yolo.yolo_head import detect_all
from tests.helpers import network_from_text, random_image
from tests.test_fused import assert_arena_invariants, assert_close

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def mini():
    return network_from_text((DATA / "mini-mobile.cfg").read_text(), "mini-mobile")


def test_activations_are_darknets_in_the_reference_and_the_kernels():
    values = np.linspace(-25, 25, 2001, dtype=np.float32)
    spot = {"relu6": [(7, 6), (-1, 0), (3, 3)], "hard_mish": [(-1, -0.5), (-3, 0), (2, 2)], "mish": [(0, 0)],
            "swish": [(0, 0)], "elu": [(-100, -1)], "leaky": [(-1, -0.1)], "logistic": [(0, 0.5)]}
    for name in ACTIVATIONS:
        ref = ops.activate(values.copy(), name)
        kernel = np.array([elementwise.activate(v, elementwise.ACT_CODES[name]) for v in values], np.float32)
        np.testing.assert_allclose(kernel, ref, rtol=2e-6, atol=2e-6, err_msg=name)
        for x, y in spot.get(name, []):
            assert ops.activate(np.array([x], np.float32), name)[0] == pytest.approx(y, abs=1e-6), name
    mish = ops.activate(np.array([1.0], np.float32), "mish")[0]
    assert mish == pytest.approx(np.tanh(np.log1p(np.e)), rel=1e-6)


def test_batch_norm_divisor_follows_the_fork():
    var = np.array([0.0, 1e-4, 1.0], np.float32)
    assert np.allclose(bn_divisor(var, "pjreddie"), np.sqrt(var) + 1e-6)
    assert np.allclose(bn_divisor(var, "alexeyab"), np.sqrt(var + 1e-5))


def test_whole_map_layers_by_hand():
    x = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    wide = np.ones((3, 2, 3), np.float32)
    assert np.array_equal(ops.shortcut(x, wide, "linear"), x + 1)  # the first channels of a wider source
    narrow = ops.shortcut(wide, x[:1], "linear")
    assert np.array_equal(narrow[0], 1 + x[0]) and np.array_equal(narrow[1:], wide[1:])
    assert np.array_equal(ops.route([x, x + 100], groups=2, group_id=1), np.stack([x[1], x[1] + 100]))
    up = ops.upsample(x, 2, 1.0)
    assert up.shape == (2, 4, 6) and up[1, 3, 5] == x[1, 1, 2] and up[0, 2, 1] == x[0, 1, 0]
    scaled = ops.scale_channels(np.array([2, 3], np.float32).reshape(2, 1, 1), x, "linear")
    assert np.array_equal(scaled, x * np.array([2, 3], np.float32)[:, None, None])
    head = ops.yolo(np.zeros((2 * 7, 1, 1), np.float32), 2, 2, 1.1).reshape(2, 7)
    assert np.allclose(head[:, :2], 0.5 * 1.1 - 0.05) and np.all(head[:, 2:4] == 0) and np.allclose(head[:, 4:], 0.5)


def test_whole_map_kernels_equal_the_reference():
    rng = np.random.default_rng(0)
    x, other = rng.standard_normal((2, 5, 6, 7), dtype=np.float32)
    out = np.empty_like(x)
    elementwise.shortcut(out, x, other[:3], elementwise.ACT_CODES["mish"])
    np.testing.assert_allclose(out, ops.shortcut(x, other[:3], "mish"), rtol=1e-5, atol=1e-6)
    scales = rng.standard_normal((5, 1, 1), dtype=np.float32)
    elementwise.scale_channels(out, scales, x, elementwise.ACT_CODES["logistic"])
    np.testing.assert_allclose(out, ops.scale_channels(scales, x, "logistic"), rtol=1e-6)
    up = np.empty((5, 18, 21), np.float32)
    elementwise.upsample(up, x, 3, np.float32(0.5), 0, 0)
    np.testing.assert_array_equal(up, ops.upsample(x, 3, 0.5))
    mean = np.empty((5, 1, 1), np.float32)
    elementwise.global_avgpool(mean, x)
    np.testing.assert_allclose(mean, ops.avgpool(x), rtol=1e-6)
    head = rng.standard_normal((2 * 7, 4, 3), dtype=np.float32)
    got = np.empty_like(head)
    elementwise.yolo(got, head, 2, 2, np.float32(1.2), np.float32(-0.1))
    np.testing.assert_allclose(got, ops.yolo(head, 2, 2, 1.2), rtol=1e-6, atol=1e-7)


def test_upsample_and_shortcut_regions_equal_the_reference():
    """Regions at every phase of the stride, into and from maps whose planes are whole, whose rows are
    contiguous but apart, or whose columns are apart: the same values as the whole-map reference."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 7, 9), dtype=np.float32)

    def spaced(shape):
        return np.full((shape[0], shape[1], 2 * shape[2]), np.nan, np.float32)[:, :, ::2]

    for stride in (2, 3):
        whole = ops.upsample(x, stride, 0.5)
        for y0, y1, x0, x1 in [(0, 7 * stride, 0, 9 * stride), (1, 6, 1, 8), (stride - 1, 2 * stride + 3, 3, 4)]:
            src = x[:, y0 // stride:(y1 - 1) // stride + 1, x0 // stride:(x1 - 1) // stride + 1]
            for out in (np.empty((3, y1 - y0, x1 - x0), np.float32), spaced((3, y1 - y0, x1 - x0)),
                        np.empty((3, y1 - y0 + 2, x1 - x0 + 1), np.float32)[:, 1:-1, 1:]):
                for source in (src, np.ascontiguousarray(src)):
                    elementwise.upsample(out, source, stride, np.float32(0.5), y0 % stride, x0 % stride)
                    np.testing.assert_array_equal(out, whole[:, y0:y1, x0:x1])
    other = rng.standard_normal((2, 7, 9), dtype=np.float32)
    for act in ("linear", "leaky"):
        expect = ops.shortcut(x, other, act)
        for out, region in [(np.empty_like(x), np.s_[:]), (spaced(x.shape), np.s_[:]),
                            (np.empty((3, 5, 6), np.float32), np.s_[:, 1:6, 2:8])]:
            elementwise.shortcut(out, x[region], other[region], elementwise.ACT_CODES[act])
            np.testing.assert_array_equal(out, expect[region])


MINI_PLANS = ["", "0-0:3x3", "1-3:4x4,9-9:2x2", "0-0:2x2,1-3:3x2,6-7:1x1,10-10:2x2,12-12:3x3,15-15:2x2,21-21:2x2"]


@pytest.mark.parametrize("spec", MINI_PLANS)
@pytest.mark.parametrize("reuse", REUSE_MODES)
def test_residual_depthwise_network_fused_equals_reference(mini, spec, reuse):
    params = random_params(mini, 5)
    x = random_image(mini.input_shape, 5)
    ref = run_reference(mini, params, x)
    plan = Plan(mini, parse_groups(spec, reuse))
    for threads in (1, 2):
        run = run_fused(plan, params, x, scratch_bytes=4096, threads=threads)
        for i in ref.head_outputs:
            assert_close(run.head_outputs[i], ref.head_outputs[i])
            assert_close(run.head_inputs[i - 1], ref.head_inputs[i - 1])
        assert_arena_invariants(run)
        predicted = Predictor(mini, 4096).predict(plan)
        assert (predicted.peak_bytes, predicted.arena_bytes) == (run.peak_bytes, run.arena_bytes)
        assert run.macs == mini.macs or reuse != "stream"
    dets = detect_all(mini, run.head_outputs, (64, 64), 0.3, 0.45, False)
    assert dets == detect_all(mini, ref.head_outputs, (64, 64), 0.3, 0.45, False)


def test_results_stay_live_to_the_end(mini):
    """Every head's output is read after the run: layer by layer and in the predictor it lives to the end."""
    for head in mini.heads:
        assert mini.last_use[head.index] == len(mini)


def test_bundled_trained_model_finds_darknets_objects(capsys, tmp_path):
    """The default run: the bundled Nano COCO model on the bundled photo, fused, with its own weights.
    AlexeyAB's Darknet finds dog 98%, car 92%, car 48%, bicycle 47%, car 29% (stb's JPEG decoder; Pillow's
    pixels differ slightly, so confidences are compared within 0.01)."""
    status = main(["--json", "--quiet", "--out", str(tmp_path / "p.png"), "--save-output", str(tmp_path / "h.npz")])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["config"]["cfg"] == "MobileNetV2-YOLOv3-Nano-coco.cfg"
    assert report["config"]["preprocess"] == "resize" and report["config"]["thresh"] == 0.25
    found = sorted((d["class"], d["confidence"]) for d in report["detections"])
    darknet = sorted([("dog", 0.982617), ("car", 0.922086), ("car", 0.482873), ("bicycle", 0.4661),
                      ("car", 0.293227)])
    assert [c for c, _ in found] == [c for c, _ in darknet]
    assert np.allclose([p for _, p in found], [p for _, p in darknet], atol=0.01)
    mem = report["memory"]
    assert mem["measured_peak_bytes"] == mem["predicted_peak_bytes"] < mem["layer_by_layer_peak_bytes"]
    saved = np.load(tmp_path / "h.npz")
    assert sorted(saved.files) == ["L68", "L78"] and saved["L68"].shape == (255, 10, 10)


def test_several_heads_refuse_a_npy(capsys, tmp_path):
    status = main(["yoloface-500k.cfg", "--save-output", str(tmp_path / "h.npy"), "--out", str(tmp_path / "p.png")])
    err = capsys.readouterr().err
    assert status == 2 and "3 heads" in err and ".npz" in err and not list(tmp_path.iterdir())


def test_preprocess_overrides_the_fork(capsys, tmp_path):
    status = main(["yoloface-50k.cfg", "--preprocess", "letterbox", "--json", "--quiet", "--reference",
                   "--out", str(tmp_path / "p.png")])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["config"]["preprocess"] == "letterbox" and report["config"]["semantics"] == "alexeyab"


def test_every_bundled_trained_model_runs_fused_as_its_reference():
    from yolo.cfg import TRAINED_MODELS
    from yolo.weights import load_weights
    for name in TRAINED_MODELS:
        net = load_network(f"{name}.cfg")
        params = load_weights(BUNDLED_DIR / f"{name}.weights", net)
        x = random_image(net.input_shape, 1)
        ref = run_reference(net, params, x)
        from engine.ir.plan import default_groups
        run = run_fused(Plan(net, default_groups(net)), params, x)
        for i in ref.head_outputs:
            assert_close(run.head_outputs[i], ref.head_outputs[i])
