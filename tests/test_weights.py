import numpy as np
import pytest

from yolo.errors import WeightsError
from yolo.params import Header, Params, random_params
from engine.runtime.reference import run_reference
from yolo.cfg import load_network
from yolo.convert import main as convert_main
from yolo.h5store import read_h5, write_h5
from yolo.weights import expected_floats, load_weights, read_darknet, write_darknet
from tests.helpers import bundled_text, random_image


@pytest.fixture(scope="module")
def tiny():
    return load_network("yolov2-tiny.cfg", 96)


def same_params(a: Params, b: Params) -> bool:
    return a.layers.keys() == b.layers.keys() and all(
        all(n1 == n2 and np.array_equal(x, y) for (n1, x), (n2, y) in zip(a[i].arrays(), b[i].arrays()))
        for i in a.layers)


@pytest.mark.parametrize("header, header_bytes", [(Header(0, 2, 0, 123456789012), 20), (Header(0, 1, 0, 77), 16)])
def test_darknet_round_trip_is_exact_for_both_header_variants(tmp_path, tiny, header, header_bytes):
    params = Params(random_params(tiny, 3).layers, header)
    path = tmp_path / "a.weights"
    write_darknet(path, params)
    assert path.stat().st_size == header_bytes + 4 * expected_floats(tiny)
    back = read_darknet(path, tiny)
    assert back.header == header and same_params(back, params)
    write_darknet(tmp_path / "b.weights", back)
    assert (tmp_path / "b.weights").read_bytes() == path.read_bytes()


def test_hdf5_round_trip_and_cli_convert(tmp_path, tiny):
    params = random_params(tiny, 5)
    src = tmp_path / "w.weights"
    write_darknet(src, params)
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(bundled_text("yolov2-tiny.cfg", 96))
    assert convert_main([str(src), str(tmp_path / "w.h5"), "--cfg", str(cfg)]) == 0
    assert convert_main([str(tmp_path / "w.h5"), str(tmp_path / "back.weights")]) == 0
    assert (tmp_path / "back.weights").read_bytes() == src.read_bytes()
    from_h5 = load_weights(tmp_path / "w.h5", tiny)  # format detected from content
    assert same_params(from_h5, params)
    import h5py
    with h5py.File(tmp_path / "w.h5") as f:
        assert f["layer_000"].attrs["filters"] == 16 and f["layer_000/weights"].shape == (3, 3, 3, 16)  # channel major
        assert "[net]" in f.attrs["cfg"]
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_truncated_trailing_and_mismatched_files_name_layer_and_counts(tmp_path, tiny):
    path = tmp_path / "w.weights"
    write_darknet(path, random_params(tiny, 1))
    data = path.read_bytes()
    want = expected_floats(tiny)
    (tmp_path / "short.weights").write_bytes(data[:-4000])
    with pytest.raises(WeightsError, match=rf"truncated at layer 14 \(weights\).*needs {want} floats, the file holds {want - 1000}"):
        read_darknet(tmp_path / "short.weights", tiny)
    (tmp_path / "long.weights").write_bytes(data + b"\0" * 8)
    with pytest.raises(WeightsError, match=rf"2 trailing floats: .* needs {want} floats, the file holds {want + 2}"):
        read_darknet(tmp_path / "long.weights", tiny)
    (tmp_path / "odd.weights").write_bytes(data + b"\0")
    with pytest.raises(WeightsError, match="not a whole number of float32"):
        read_darknet(tmp_path / "odd.weights", tiny)
    (tmp_path / "tiny.weights").write_bytes(data[:10])
    with pytest.raises(WeightsError, match="too short for a Darknet header"):
        read_darknet(tmp_path / "tiny.weights", tiny)
    voc = load_network("yolov2-tiny-voc.cfg", 96)
    with pytest.raises(WeightsError, match="truncated at layer|trailing floats"):
        read_darknet(path, voc)
    with pytest.raises(WeightsError, match="cannot read weights"):
        read_darknet(tmp_path / "missing.weights", tiny)


def test_hdf5_mismatch_and_foreign_files(tmp_path, tiny):
    write_h5(tmp_path / "w.h5", random_params(tiny, 1), tiny, bundled_text("yolov2-tiny.cfg", 96))
    voc = load_network("yolov2-tiny-voc.cfg", 96)
    with pytest.raises(WeightsError, match=r"layer_013/biases has shape \(512,\) \(512 floats\), layer 13 needs \(1024,\) \(1024 floats\)"):
        read_h5(tmp_path / "w.h5", voc)
    import h5py
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "keras"
    with pytest.raises(WeightsError, match="format='keras', expected 'fusetile-weights-2'"):
        load_weights(tmp_path / "other.h5", tiny)


def test_convert_cli_errors_are_one_line_status_2(tmp_path, capsys):
    (tmp_path / "w.weights").write_bytes(b"\0" * 100)
    assert convert_main([str(tmp_path / "w.weights"), str(tmp_path / "o.h5")]) == 2
    assert convert_main([str(tmp_path / "nope.weights"), str(tmp_path / "o.h5")]) == 2
    assert convert_main([str(tmp_path / "w.weights"), str(tmp_path / "o.h5"), "--cfg", "yolov2-tiny.cfg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "pass --cfg" in err[0] and "no such file" in err[1] and "truncated at layer 0 (scales)" in err[2]
    assert not (tmp_path / "o.h5").exists() and not list(tmp_path.glob(".o.h5*"))


def test_random_params_are_deterministic_and_keep_activations_order_one():
    net = load_network("yolov2.cfg", 160)
    a, b = random_params(net, 7), random_params(net, 7)
    assert same_params(a, b) and not same_params(a, random_params(net, 8))
    run = run_reference(net, a, random_image(net.input_shape), keep=tuple(range(len(net))))
    stds = [float(run.kept[i].std()) for i in range(len(net) - 1)]
    assert min(stds) > 0.05 and max(stds) < 20, stds
