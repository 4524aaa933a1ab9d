"""Weights streamed into the arena: read from .weights and .h5 files at their offsets, equal to weights in
memory (bit for bit from a .weights file, whose filter-major order is memory's; within float rounding from
the channel-major store, which BLAS multiplies transposed); a file that changed since it was opened is
refused before the run."""
import os

import numpy as np
import pytest

from engine.ir.plan import Plan, parse_groups
from engine.lower.table import B_BYTES, B_KIND, B_LAYER, WEIGHTS_BUFFER
from engine.runtime.executor import FusedExecutor
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from yolo.errors import WeightsError
from yolo.h5store import write_h5
from yolo.params import random_params
from yolo.sources import darknet_source, h5_source, open_source
from yolo.weights import write_darknet
from tests.helpers import bundled_text, random_image

SPEC = "0-5:4x4:stream:group,6-8:2x2:checkerboard:tile/3"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    net = load_network("yolov2-tiny.cfg", 96)
    params = random_params(net, 4)
    write_darknet(folder / "w.weights", params)
    write_h5(folder / "w.h5", params, net, bundled_text("yolov2-tiny.cfg", 96))
    return net, params, folder


def test_file_sources_equal_weights_in_memory_bit_for_bit(case):
    net, params, folder = case
    x = random_image(net.input_shape, 2)
    plan = Plan(net, parse_groups(SPEC), "streamed", band_bytes=1 << 18)
    memory = FusedExecutor(plan, params).run(x)
    ref = run_reference(net, params, x)
    assert np.abs(memory.output - ref.output).max() <= 2e-5 * np.abs(ref.output).max()
    for source in (darknet_source(folder / "w.weights", net), h5_source(folder / "w.h5", net)):
        run = FusedExecutor(plan, None, source=source).run(x)
        if source.channel_major:
            assert np.abs(run.output - memory.output).max() <= 1e-5 * np.abs(memory.output).max()
        else:
            assert np.array_equal(run.output, memory.output), source.source
        assert run.weights_read_bytes == memory.weights_read_bytes > 0
    assert open_source(folder / "w.h5", net).offsets == h5_source(folder / "w.h5", net).offsets


def test_streamed_weights_are_arena_buffers_counted_in_the_peak(case):
    net, params, _ = case
    x = random_image(net.input_shape, 2)
    resident = FusedExecutor(Plan(net, parse_groups(SPEC.replace(":group", "").replace(":tile/3", ""))),
                             params).run(x)
    streamed = FusedExecutor(Plan(net, parse_groups(SPEC), "streamed", band_bytes=1 << 18), params).run(x)
    weights = [e for e in streamed.events if e.kind == "weights"]
    assert weights and sum(e.nbytes for e in weights) == 0  # every load released
    assert streamed.peak_bytes > resident.peak_bytes
    b = streamed.program.buffers
    outside = b[(b[:, B_KIND] == WEIGHTS_BUFFER) & (b[:, B_LAYER] > 8)]
    convs = [i for i in range(9, len(net)) if net[i].kind == "conv"]
    slack = {i: net[i].filters * (net[i].size ** 2 + 4) * 4 for i in convs}  # a channel's rounding, the vectors
    assert len(outside) > len(convs)  # the large layers come in several bands of input channels ...
    assert all(size <= (1 << 18) + slack[layer] for size, layer in outside[:, [B_BYTES, B_LAYER]])  # of 256 KiB


def test_a_changed_or_wrong_file_is_refused_before_the_run(case, tmp_path):
    net, params, folder = case
    copy = tmp_path / "w.weights"
    copy.write_bytes((folder / "w.weights").read_bytes())
    executor = FusedExecutor(Plan(net, parse_groups(SPEC), "streamed"), None, source=darknet_source(copy, net))
    executor.run(random_image(net.input_shape, 0))
    with open(copy, "r+b") as f:
        f.truncate(os.path.getsize(copy) - 4)
    with pytest.raises(WeightsError, match="changed since it was opened"):
        executor.run(random_image(net.input_shape, 0))
    with pytest.raises(WeightsError, match="truncated at layer 14 \\(weights\\)"):
        darknet_source(copy, net)
    with pytest.raises(WeightsError, match="layer_000/biases has shape \\(16,\\) \\(16 floats\\), layer 0 needs"):
        h5_source(folder / "w.h5", load_network("yolov2-voc.cfg", 96))


@pytest.mark.parametrize("suffix", [".weights", ".h5"])
def test_cli_streams_from_a_file_with_the_resident_runs_detections_and_exact_figures(case, tmp_path, capsys, suffix):
    import json
    from engine.cli.main import main
    from tests.helpers import sharpened_params
    net, _, folder = case
    params = sharpened_params(net, 3, 24.0)
    path = tmp_path / f"w{suffix}"
    write_darknet(path, params) if suffix == ".weights" else write_h5(path, params, net,
                                                                       bundled_text("yolov2-tiny.cfg", 96))
    common = ["yolov2-tiny.cfg", "--size", "96", "--weights", str(path), "--json", "--quiet",
              "--out", str(tmp_path / "p.png")]
    assert main(common) == 0
    resident = json.loads(capsys.readouterr().out)
    assert main(common + ["--stream-weights", "--band-kib", "256"]) == 0
    streamed = json.loads(capsys.readouterr().out)
    got, want = streamed["detections"], resident["detections"]
    assert want and [d["class_id"] for d in got] == [d["class_id"] for d in want]  # bands sum in another order:
    np.testing.assert_allclose([d["confidence"] for d in got], [d["confidence"] for d in want], atol=1e-4)
    np.testing.assert_allclose([d["box"] for d in got], [d["box"] for d in want], atol=0.05)
    m, r = streamed["memory"], resident["memory"]
    assert m["engine_peak_bytes"] == m["predicted_engine_peak_bytes"] < r["engine_peak_bytes"]
    assert r["engine_peak_bytes"] == r["predicted_engine_peak_bytes"] >= r["measured_peak_bytes"] + r["weights_bytes"]
    assert m["measured_peak_bytes"] == m["predicted_peak_bytes"]
    assert m["weights_read_bytes"] == m["weights_bytes"]  # each layer read once per inference
    assert r["weights_read_bytes"] == 0 and m["weights_resident_peak_bytes"] < r["weights_resident_peak_bytes"]


@pytest.mark.parametrize("suffix, streamed", [(".weights", False), (".h5", True)])
def test_whole_process_prediction_is_within_ten_percent_of_the_measured_peak(case, tmp_path, suffix, streamed):
    """A separate process (this one holds the whole suite): the predicted process bytes (baseline measured
    warm + arena + weights held in memory + picture) against its resident high-water mark."""
    import json
    import subprocess
    import sys
    from yolo.params import random_params
    net = load_network("yolov2-tiny.cfg")
    params = random_params(net, 1)
    path = tmp_path / f"w{suffix}"
    write_darknet(path, params) if suffix == ".weights" else write_h5(path, params, net, bundled_text("yolov2-tiny.cfg"))
    command = [sys.executable, "-m", "engine.run", "yolov2-tiny.cfg", "--weights", str(path), "--json", "--quiet",
               "--out", str(tmp_path / "p.png")] + (["--stream-weights"] if streamed else [])
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    memory = json.loads(done.stdout)["memory"]
    held = memory["weights_bytes"] if not streamed else 0
    assert memory["predicted_process_bytes"] >= memory["runtime_baseline_bytes"] + memory["arena_bytes"] + held
    assert 0.9 <= memory["measured_process_peak_bytes"] / memory["predicted_process_bytes"] <= 1.1, memory
