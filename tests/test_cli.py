"""The CLI end to end, in-process (fast) and once as a subprocess (exit status, stdout purity)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from yolo.params import random_params
from engine.cli.main import main
from yolo.cfg import load_network
from yolo.weights import write_darknet
from tests.helpers import sharpened_params


def run_cli(capsys, *args):
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_one_object_with_stable_keys(tmp_path, capsys):
    net = load_network("yolov2-tiny.cfg", 160)
    write_darknet(tmp_path / "w.weights", sharpened_params(net, 3, 24.0))
    status, out, err = run_cli(capsys, "yolov2-tiny.cfg", "--size", "160", "--weights", str(tmp_path / "w.weights"),
                               "--json", "--quiet", "--out", str(tmp_path / "p.png"), "--save-output", str(tmp_path / "o.npy"))
    assert status == 0 and err == ""
    report = json.loads(out)
    assert set(report) >= {"config", "detections", "latency_s", "memory", "macs"}
    assert report["config"]["size"] == [160, 160] and report["config"]["mode"] == "fused"
    held = {"weights": "resident", "bands": 1, "scratch_bytes": 0}
    # at 160 the default's second group (6-8) lowers no peak; its first keeps the pool 5, folded into conv 4
    assert report["config"]["groups"] == [{"layers": [0, 5], "grid": [6, 1], "reuse": "stream"} | held]
    assert report["config"]["stream_weights"] is False and report["config"]["band_bytes"] is None
    assert report["config"]["weights"].endswith("w.weights") and report["config"]["cfg"] == "yolov2-tiny.cfg"
    assert report["memory"]["layer_by_layer_peak_bytes"] == (16 * 160 * 160 + 16 * 80 * 80) * 4
    assert report["macs"]["network"] == net.macs and report["macs"]["overhead"] == 1.0  # stream: no recompute
    assert [g["executed"] for g in report["macs"]["groups"]] == [sum(net[i].macs for i in range(6))]
    assert abs(report["macs"]["executed"] / net.macs - report["macs"]["overhead"]) < 1e-5
    mem = report["memory"]
    assert mem["measured_peak_bytes"] < mem["layer_by_layer_peak_bytes"] <= mem["weights_bytes"]
    assert mem["arena_bytes"] >= mem["measured_peak_bytes"]
    assert (mem["predicted_peak_bytes"], mem["predicted_arena_bytes"]) == (mem["measured_peak_bytes"], mem["arena_bytes"])
    assert [g["layers"] for g in mem["groups"]] == [[0, 5]]
    assert max(g["peak_bytes"] for g in mem["groups"]) <= mem["measured_peak_bytes"]
    assert all(0 <= g["strip_bytes_at_peak"] <= g["max_strip_bytes"] < g["peak_bytes"] for g in mem["groups"])
    assert all(g["max_strip_bytes"] > 0 for g in mem["groups"])
    assert report["detections"], "sharpened weights should give detections"
    for d in report["detections"]:
        assert set(d) == {"class", "class_id", "confidence", "box"} and len(d["box"]) == 4
        assert 0.5 < d["confidence"] <= 1
    raw = np.load(tmp_path / "o.npy")
    assert raw.shape == (425, 5, 5) and raw.dtype == np.float32
    from PIL import Image
    assert Image.open(tmp_path / "p.png").size == (768, 576)  # dog.jpg


def test_human_output_and_random_weights_warning(tmp_path, capsys):
    status, out, err = run_cli(capsys, "yolov2-tiny-voc.cfg", "--size", "96", "--out", str(tmp_path / "p.png"))
    assert status == 0
    assert "random weights" in err and "meaningless" in err
    assert "latency:" in out and "peak activation memory" in out and str(tmp_path / "p.png") in out


@pytest.fixture(scope="module")
def measured_baseline():
    """Measured before the bad-input cases, so that the one line they print is not preceded by the note that
    the measurement (a few seconds, once per machine) is under way, whichever case first needs it."""
    from engine.runtime.baseline import runtime_baseline_bytes
    return runtime_baseline_bytes()


@pytest.mark.parametrize("args, message", [
    (["nope.cfg"], "cfg 'nope.cfg': no such file"),
    (["yolov2.cfg", "--size", "100"], "size 100x100: expected a multiple of the network's total stride 32"),
    (["yolov2-tiny.cfg", "missing.jpg", "--size", "64"], "image 'missing.jpg': no such file"),
    (["yolov2-tiny.cfg", "--size", "64", "--weights", "none.weights"], "--weights 'none.weights': no such file"),
    (["yolov2-tiny.cfg", "--size", "64", "--out", "/no/such/dir/p.png"], "folder /no/such/dir does not exist"),
    (["yolov2-tiny.cfg", "--thresh", "1.5"], "argument --thresh: 1.5 is outside [0, 1]"),
    (["yolov2-tiny.cfg", "--size", "0"], "argument --size: 0 is not a positive integer"),
    (["yolov2.cfg", "--groups", "0-25:2x2"], "layer 25 does not read layer 24 first: a group must be a chain"),
    (["yolov2.cfg", "--tiles", "3"], "--tiles '3': expected ROWSxCOLS"),
    (["yolov2.cfg", "--tiles", "3x3", "--groups", "0-7:2x2"], "--tiles and --groups both given"),
    (["yolov2.cfg", "--reference", "--tiles", "2x2"], "--tiles and --reference both given"),
    (["yolov2-tiny.cfg", "--budget", "6MB", "--tiles", "3x3"], "--budget searches the plan: drop --tiles, or drop"),
    (["yolov2-tiny.cfg", "--budget", "6MB", "--groups", "0-5:2x2"], "--budget searches the plan: drop --groups"),
    (["yolov2-tiny.cfg", "--budget", "6MB", "--reference"], "--budget searches the plan: drop --reference"),
    (["yolov2-tiny.cfg", "--groups", "5-3:2x2"], "layers 5-3 are reversed"),
    (["--order", "heads-last", "--reference"], "--order heads-last orders the fused path; --reference runs in"),
    (["--order", "last"], "argument --order: invalid choice: 'last'"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", "0-8:5x5"], "grid 5x5 exceeds the group's 4x4 output map"),
    (["yolov2-tiny.cfg", "--reuse", "cache"], "--reuse: reuse mode 'cache': expected one of none, checkerboard, stream"),
    (["yolov2-tiny.cfg", "--groups", "0-8:2x2:all"], "--groups '0-8:2x2:all': reuse mode 'all'"),
    (["yolov2-tiny.cfg", "--device", "pi9"], "--device 'pi9': unknown device 'pi9', expected one of rpi3"),
    (["yolov2-tiny.cfg", "--device", "rpi3:read=fast"], "--device 'rpi3:read=fast': bad field 'read=fast'"),
    (["yolov2-tiny.cfg", "--device-memory", "1GB"], "--device-memory needs --device"),
    (["yolov2-tiny.cfg", "--device", "rpi3", "--device-memory", "10MB"], "no larger than the runtime baseline"),
    (["yolov2-tiny.cfg", "--device-memory", "lots"], "argument --device-memory: 'lots': expected a size"),
])
def test_bad_input_one_line_status_2(tmp_path, capsys, args, message, measured_baseline):
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "p.png")]
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p.png").exists()


def test_mismatched_weights_leave_no_output(tmp_path, capsys):
    voc = load_network("yolov2-tiny-voc.cfg", 64)
    write_darknet(tmp_path / "voc.weights", random_params(voc, 0))
    status, out, err = run_cli(capsys, "yolov2-tiny.cfg", "--size", "64", "--weights", str(tmp_path / "voc.weights"),
                               "--out", str(tmp_path / "p.png"), "--save-output", str(tmp_path / "o.npy"))
    assert status == 2 and "voc.weights" in err and ("truncated at layer" in err or "trailing floats" in err)
    assert list(tmp_path.iterdir()) == [tmp_path / "voc.weights"]


def test_subprocess_exit_status_and_clean_stdout(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "engine.run", "yolov2-tiny.cfg", "--size", "64", "--json",
                         "--out", str(tmp_path / "p.png")], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["config"]["size"] == [64, 64]
    bad = subprocess.run([sys.executable, "-m", "engine.run", "yolov2-tiny.cfg", "--bogus"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1


def test_a_groups_own_workspace_is_reported(tmp_path, capsys):
    """The text names each group as --groups does (its weights mode and workspace included); the JSON gives
    the workspace in bytes (0: the run's)."""
    common = ["yolov2-tiny.cfg", "--size", "64", "--quiet", "--out", str(tmp_path / "p.png"), "--groups",
              "0-5:2x2:stream@64,6-8:2x1:stream:tile/2"]
    status, out, _ = run_cli(capsys, *common)
    assert status == 0 and "groups 0-5:2x2:stream@64, 6-8:2x1:stream:tile/2)" in out
    report = json.loads(run_cli(capsys, *common, "--json")[1])
    assert [g["scratch_bytes"] for g in report["config"]["groups"]] == [64 << 10, 0]
    assert [g["scratch_bytes"] for g in report["memory"]["groups"]] == [64 << 10, 0]


def test_tiles_and_reference_modes_agree(tmp_path, capsys):
    common = ["yolov2-tiny.cfg", "--size", "128", "--json", "--out", str(tmp_path / "p.png")]
    fused = json.loads(run_cli(capsys, *common, "--tiles", "3x2", "--reuse", "checkerboard",
                               "--save-output", str(tmp_path / "f.npy"))[1])
    ref = json.loads(run_cli(capsys, *common, "--reference", "--save-output", str(tmp_path / "r.npy"))[1])
    assert fused["config"]["groups"] == [{"layers": [0, 8], "grid": [3, 2], "reuse": "checkerboard",
                                         "weights": "resident", "bands": 1, "scratch_bytes": 0}]
    assert ref["config"]["groups"] == []
    assert ref["memory"]["measured_peak_bytes"] == ref["memory"]["layer_by_layer_peak_bytes"]
    a, b = np.load(tmp_path / "f.npy"), np.load(tmp_path / "r.npy")
    assert np.abs(a - b).max() <= 2e-5 * np.abs(b).max()


def test_device_model_beside_the_measured_latency(tmp_path, capsys):
    from engine.runtime.baseline import runtime_baseline_bytes
    net = load_network("yolov2-tiny.cfg", 128)
    weights = random_params(net, 0).nbytes
    common = ["yolov2-tiny.cfg", "--size", "128", "--json", "--out", str(tmp_path / "p.png"), "--device", "rpi3"]
    squeezed = runtime_baseline_bytes() + weights // 2  # half the weights fit
    paged = json.loads(run_cli(capsys, *common, "--device-memory", str(squeezed))[1])
    roomy = json.loads(run_cli(capsys, *common)[1])  # the preset's 1 GiB
    device = paged["device"]
    assert device["model"].startswith("model:") and device["device"] == "rpi3"
    assert device["device_memory_bytes"] == squeezed and device["swap_ins"] > 0
    assert device["modelled_latency_s"] == pytest.approx(paged["latency_s"] + device["paging_seconds"], abs=2e-6)
    assert roomy["device"]["device_memory_bytes"] == 2**30 and roomy["device"]["swap_ins"] == 0
    mem = paged["memory"]
    from engine.cli.pipeline import default_image
    from yolo.letterbox import decoded_size
    width, height = decoded_size(default_image(), (128, 128))
    # every weight resident: the parameters and what the engine derives from them (Winograd, epilogue)
    assert mem["weights_resident_peak_bytes"] > mem["weights_bytes"]
    assert mem["predicted_process_bytes"] == (mem["weights_resident_peak_bytes"] + mem["arena_bytes"]
                                              + mem["runtime_baseline_bytes"] + width * height * 3 * 4 * 3)
    assert mem["measured_process_peak_bytes"] > mem["runtime_baseline_bytes"]
    status, out, _ = run_cli(capsys, "yolov2-tiny.cfg", "--size", "128", "--out", str(tmp_path / "p.png"),
                             "--reference", "--device", "rpi3", "--device-memory", str(squeezed))
    assert status == 0 and "device model (rpi3" in out and "a model" in out


def test_budget_auto_fits_the_device(tmp_path, capsys, monkeypatch):
    from engine.runtime.baseline import runtime_baseline_bytes
    from engine.memory.predictor import Predictor
    monkeypatch.setenv("FUSETILE_CACHE", str(tmp_path))
    net = load_network("yolov2-tiny.cfg", 128)
    predictor = Predictor(net)
    room = predictor.predict(()).arena_bytes // 2  # half what layer by layer needs for activations
    memory = runtime_baseline_bytes() + predictor.weights_bytes + room
    common = ["yolov2-tiny.cfg", "--size", "128", "--json", "--out", str(tmp_path / "p.png"), "--device", "rpi3",
              "--device-memory", str(memory), "--max-grid", "3"]
    layer_by_layer = json.loads(run_cli(capsys, *common, "--groups", "none")[1])
    auto = json.loads(run_cli(capsys, *common, "--budget", "auto")[1])
    assert layer_by_layer["device"]["swap_ins"] > 0 and auto["device"]["swap_ins"] == 0
    assert auto["config"]["budget_bytes"] == room and auto["config"]["search"]["chosen"].startswith("--budget auto")
    assert auto["memory"]["measured_peak_bytes"] == auto["config"]["search"]["predicted_peak_bytes"]
    assert main(["yolov2-tiny.cfg", "--size", "64", "--budget", "auto", "--out", str(tmp_path / "q.png")]) == 2
    assert "--budget auto fits the device: give --device" in capsys.readouterr().err


def key_paths(value, prefix=""):
    """Every key path of a JSON value ('memory.groups[].peak_bytes'); a list's items by its first."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in {prefix + k} | key_paths(v, prefix + k + ".")}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return key_paths(value[0], prefix[:-1] + "[].")
    return set()


FUSED_SCHEMA = {
    "config", "config.cfg", "config.size", "config.mode", "config.weights", "config.image", "config.groups",
    "config.groups[].layers", "config.groups[].grid", "config.groups[].reuse", "config.groups[].weights",
    "config.groups[].bands", "config.groups[].scratch_bytes", "config.scratch_bytes", "config.stream_weights",
    "config.band_bytes", "config.threads", "config.semantics",
    "config.preprocess", "config.thresh", "config.order",
    "detections", "latency_s", "latencies_s", "runs_alone",
    "memory", "memory.layer_by_layer_peak_bytes", "memory.weights_bytes",
    "memory.counts", "memory.measured_peak_bytes", "memory.predicted_peak_bytes", "memory.arena_bytes",
    "memory.engine_peak_bytes", "memory.predicted_engine_peak_bytes", "memory.weights_resident_peak_bytes",
    "memory.weights_read_bytes",
    "memory.predicted_arena_bytes", "memory.groups", "memory.groups[].layers", "memory.groups[].grid",
    "memory.groups[].reuse", "memory.groups[].weights", "memory.groups[].bands", "memory.groups[].scratch_bytes",
    "memory.groups[].peak_bytes", "memory.groups[].strip_bytes_at_peak",
    "memory.groups[].max_strip_bytes", "memory.runtime_baseline_bytes", "memory.predicted_process_bytes",
    "memory.measured_process_peak_bytes", "macs", "macs.network", "macs.executed", "macs.overhead", "macs.groups",
    "macs.groups[].layers", "macs.groups[].grid", "macs.groups[].reuse", "macs.groups[].weights",
    "macs.groups[].bands", "macs.groups[].scratch_bytes", "macs.groups[].network",
    "macs.groups[].executed", "macs.groups[].overhead", "macs.groups[].per_layer", "macs.groups[].per_layer[].layer",
    "macs.groups[].per_layer[].network", "macs.groups[].per_layer[].executed", "outputs", "outputs.picture",
    "outputs.raw_output", "outputs.plots"}


def test_json_schema_is_pinned(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "yolov2-tiny.cfg", "--size", "64", "--json", "--out", str(tmp_path / "p.png"))
    assert status == 0 and key_paths(json.loads(out)) == FUSED_SCHEMA
    status, out, _ = run_cli(capsys, "yolov2-tiny.cfg", "--size", "64", "--json", "--reference",
                             "--out", str(tmp_path / "p.png"))
    reference = {"memory.predicted_peak_bytes", "memory.arena_bytes", "memory.predicted_arena_bytes",
                 "memory.groups", "macs.groups", "config.groups[]",
                 "memory.predicted_engine_peak_bytes"}
    assert status == 0 and key_paths(json.loads(out)) == {k for k in FUSED_SCHEMA
                                                          if not any(k.startswith(r) for r in reference)}


def test_repeat_reports_the_median_of_n_timed_runs(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "yolov2-tiny.cfg", "--size", "64", "--json", "--quiet", "--repeat", "5",
                             "--out", str(tmp_path / "p.png"))
    report = json.loads(out)
    assert status == 0 and len(report["latencies_s"]) == 5 and 0 <= report["runs_alone"] <= 5
    assert report["latency_s"] == round(float(np.median(report["latencies_s"])), 6)
    status, out, _ = run_cli(capsys, "yolov2-tiny.cfg", "--size", "64", "--quiet", "--repeat", "3",
                             "--out", str(tmp_path / "p.png"))
    assert status == 0 and "median of 3 runs" in out
