"""Bad input through the command line: one line on stderr, exit status 2, the folder unchanged; signals;
two processes at once; every image mode Pillow opens."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.cli.main import main
from yolo.letterbox import load_image
from tests.helpers import bundled_text


def listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Bad files, made once."""
    d = tmp_path_factory.mktemp("corpus")
    tiny = bundled_text("yolov2-tiny.cfg")
    Image.fromarray(np.zeros((10, 20000, 3), np.uint8)).save(d / "wide.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "small.png")
    (d / "text.weights").write_text("this is not a weights file at all " * 10)
    (d / "latin1.cfg").write_bytes(b"\xff\xfe[net]\nwidth=32\n")
    (d / "ch4.cfg").write_text(tiny.replace("channels=3", "channels=4"))
    (d / "nofilters.cfg").write_text(tiny.replace("filters=16\n", "", 1))
    (d / "w400.cfg").write_text(tiny.replace("width=416", "width=400").replace("height=416", "height=400"))
    (d / "huge.cfg").write_text(tiny.replace("filters=16", "filters=1000000000", 1))
    (d / "notimage.jpg").write_text("not a picture")
    (d / "folder").mkdir()
    return d


BAD = [  # (arguments, what the one line must say); files are named relative to the corpus folder
    (["yolov2-tiny.cfg", "--size", "64", "--out", "x.txt"], "unknown picture format '.txt'"),
    (["yolov2-tiny.cfg", "--size", "64", "--save-output", "o.txt"], "expected a .npy or .npz file name"),
    (["yolov2-tiny.cfg", "--size", "64", "--seed=-1"], "expected an integer from 0 to 4294967295"),
    (["latin1.cfg"], "is not UTF-8"),
    (["ch4.cfg", "--size", "64"], "channels=4: expected 1 (grayscale input) or 3 (RGB input)"),
    (["nofilters.cfg", "--size", "64"], "missing filters"),
    (["w400.cfg"], "width=400, height=400: expected a multiple of the network's total stride 32"),
    (["yolov2-tiny.cfg", "--size", "20000"], "at most 16,777,216 input pixels"),
    (["huge.cfg", "--size", "64"], "predicted) but"),
    (["yolov2-tiny.cfg", "--size", "64", "--max-memory", "10MB"], "but --max-memory leaves"),
    (["yolov2-tiny.cfg", "--size", "64", "--weights", "text.weights"], "not a Darknet weights file"),
    (["yolov2-tiny.cfg", "notimage.jpg", "--size", "64"], "not a readable image"),
    (["yolov2-tiny.cfg", "folder", "--size", "64"], "a folder, not an image"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", ",,,"], "--groups ',,,': expected groups"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", ""], "--groups '': expected groups"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", "5-3:2x2"], "are reversed"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", "0-5:2x2@0"], "workspace @0: expected at least 1 KiB"),
    (["yolov2-tiny.cfg", "--size", "64", "--groups", "0-5:2x2@" + "9" * 20], "expected whole KiB up to 1 TiB"),
    (["yolov2-tiny.cfg", "--size", "64", "--scratch-kib", "9" * 20], "expected at most 1073741824 (1 TiB)"),
    (["yolov2-tiny.cfg", "--size", "64", "--band-kib", "9" * 20], "expected at most 1073741824 (1 TiB)"),
    (["yolov2-tiny.cfg", "--size", "64", "--threads", "100000"], "expected at most 256 (threads)"),
    (["yolov2-tiny.cfg", "--size", "64", "--repeat", "1000000000"], "expected at most 100000"),
    (["yolov2-tiny.cfg", "--size", "64", "--budget", "1MB", "--max-grid", "416"], "expected at most 32"),
    (["yolov2-tiny.cfg", "--size", "64", "--device", ""], "--device '': expected a device name"),
    (["yolov2-tiny.cfg", "--size", "64", "--device-memory", "1GB"], "--device-memory needs --device"),
    (["yolov2-tiny.cfg", "--size", "64", "--out", "folder"], "--out 'folder': cannot write: is a folder"),
    (["yolov2-tiny.cfg", "--size", "64", "--out", "missing/p.png"], "folder"),
    (["yolov2-tiny.cfg", "--size", "64", "--plot", "small.png"], "--plot 'small.png'"),
    (["yolov2-tiny.cfg", "--size", "64", "--weights", "folder"], "--weights 'folder': a folder, not a weights file"),
    (["yolov2-tiny.cfg", "--size", "64", "--tiles", "0x3"], "--tiles '0x3': expected ROWSxCOLS"),
    (["yolov2-tiny.cfg", "--size", "64", "--budget=-5MB"], "expected a size"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_status_2_and_leaves_the_folder_unchanged(corpus, capsys, monkeypatch, args,
                                                                        message):
    monkeypatch.chdir(corpus)
    before = listing(corpus)
    if "--out" not in args:
        args = args + ["--out", "p.png"]
    try:
        status = main(args + ["--quiet"])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith("warning: no --weights")]
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert listing(corpus) == before


def test_a_huge_jpeg_is_decoded_at_reduced_scale_without_warnings(tmp_path, capsys):
    Image.new("RGB", (12000, 9000), (200, 100, 50)).save(tmp_path / "big.jpg", quality=50)
    assert load_image(tmp_path / "big.jpg", (416, 416)).shape == (3, 1125, 1500)  # 1/8: a long side >= 1024
    assert main(["yolov2-tiny.cfg", str(tmp_path / "big.jpg"), "--size", "64", "--quiet", "--json",
                 "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: no --weights")  # no DecompressionBombWarning
    assert Image.open(tmp_path / "p.png").size == (1500, 1125)


def test_a_very_wide_picture_runs(corpus, tmp_path, capsys):
    assert main(["yolov2-tiny.cfg", str(corpus / "wide.png"), "--size", "64", "--quiet", "--out",
                 str(tmp_path / "p.png")]) == 0
    assert "no detections above 0.50" in capsys.readouterr().out


@pytest.mark.parametrize("sig, status, word", [(signal.SIGINT, 130, "interrupted"),
                                               (signal.SIGTERM, 143, "terminated")])
def test_signals_say_one_line_and_leave_nothing(tmp_path, sig, status, word):
    out = tmp_path / "out"
    out.mkdir()
    # a handler here, which exec resets to the default in the child: a suite run as a shell's background job
    # has SIGINT ignored, which its children would inherit
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        child = subprocess.Popen([sys.executable, "-m", "engine.run", "yolov2.cfg", "--out", "p.png", "--save-output",
                                  "o.npy", "--plot", "plots", "--budget", "6MB", "--max-grid", "8"], cwd=out,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=os.environ | {"FUSETILE_CACHE": str(tmp_path / "cache")})
    finally:
        signal.signal(signal.SIGINT, previous)
    first = child.stderr.readline()  # the first progress line: the run is under way
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    lines = [l for l in (first + err).splitlines() if not l.startswith(("warning: no --weights", "calibrating",
                                                                         "measuring", "compiling", "search:"))]
    assert child.returncode == status and len(lines) == 1 and word in lines[0], err
    assert list(out.iterdir()) == []


def test_two_processes_writing_one_picture_leave_one_complete_file(tmp_path):
    command = [sys.executable, "-m", "engine.run", "yolov2-tiny.cfg", "--size", "96", "--quiet", "--json",
               "--out", "p.png", "--save-output", "o.npy"]
    children = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(2)]
    assert [c.wait(timeout=300) for c in children] == [0, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npy", "p.png"]  # no temporaries either
    assert Image.open(tmp_path / "p.png").size == (768, 576) and np.load(tmp_path / "o.npy").shape == (425, 3, 3)


def test_two_processes_calibrating_leave_one_valid_cache_entry(tmp_path):
    code = ("from yolo.cfg import load_network; from engine.tune.costmodel import load_or_calibrate; "
            "print(load_or_calibrate(load_network('yolov2-tiny.cfg', 64), 1 << 16).coefficients)")
    env = os.environ | {"FUSETILE_CACHE": str(tmp_path)}
    children = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE) for _ in range(2)]
    assert [c.wait(timeout=300) for c in children] == [0, 0]
    entries = [p for p in tmp_path.iterdir() if p.name.startswith("costmodel-")]
    assert len(entries) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    record = json.loads(entries[0].read_text())
    assert len(record["coefficients"]) == len(record["features"]) and min(record["coefficients"]) >= 0


def test_temporaries_of_killed_processes_are_removed_by_the_next_write(tmp_path):
    from yolo.files import atomic_write_bytes
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".p.png.fusetile-{dead.stdout.strip()}-abc.tmp"
    stale.write_bytes(b"x" * 1000)
    alive = tmp_path / f".p.png.fusetile-{os.getpid()}-def.tmp"
    alive.write_bytes(b"y")
    atomic_write_bytes(tmp_path / "p.png", b"picture")
    assert not stale.exists() and alive.exists() and (tmp_path / "p.png").read_bytes() == b"picture"


def modes(tmp_path):
    """Pictures in many of Pillow's modes, each a 4x4 with a known value."""
    made = {}
    grey16 = np.full((4, 4), 32768, np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    made["g16.png"] = (32768 / 65535,) * 3
    Image.fromarray(np.full((4, 4), 255, np.uint8), "L").convert("P").save(tmp_path / "p.png")
    made["p.png"] = (1.0, 1.0, 1.0)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red: the letterbox grey shows
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    made["clear.png"] = (0.5, 0.5, 0.5)
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    made["cmyk.jpg"] = (1.0, 1.0, 1.0)
    Image.fromarray(np.full((4, 4), 0.25, np.float32), "F").save(tmp_path / "f.tif")
    made["f.tif"] = (0.25, 0.25, 0.25)
    return made


def test_every_image_mode_is_read_to_rgb_in_0_1(tmp_path):
    for name, expected in modes(tmp_path).items():
        x = load_image(tmp_path / name)
        assert x.shape == (3, 4, 4) and x.dtype == np.float32, name
        np.testing.assert_allclose(x.mean(axis=(1, 2)), expected, atol=2 / 255, err_msg=name)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "turned.jpg", exif=exif)
    assert load_image(tmp_path / "turned.jpg").shape == (3, 6, 2)


def test_grayscale_network_runs_on_a_picture(tmp_path, capsys):
    cfg = tmp_path / "grey.cfg"
    cfg.write_text(bundled_text("yolov2-tiny.cfg").replace("channels=3", "channels=1"))
    assert main([str(cfg), "--size", "64", "--quiet", "--json", "--out", str(tmp_path / "p.png")]) == 0
    assert json.loads(capsys.readouterr().out)["memory"]["layer_by_layer_peak_bytes"] > 0


@pytest.fixture(scope="module")
def darknet_file(tmp_path_factory):
    from yolo.cfg import load_network
    from yolo.params import random_params
    from yolo.weights import write_darknet
    folder = tmp_path_factory.mktemp("convert")
    write_darknet(folder / "w.weights", random_params(load_network("yolov2-tiny.cfg", 64), 0))
    (folder / "latin1.cfg").write_bytes(b"\xff\xfe[net]\n")
    (folder / "folder").mkdir()
    return folder


CONVERT_BAD = [
    (["missing.weights", "o.h5", "--cfg", "yolov2-tiny.cfg"], "missing.weights: no such file"),
    (["folder", "o.h5", "--cfg", "yolov2-tiny.cfg"], "folder: a folder, not a weights file"),
    (["w.weights", "folder", "--cfg", "yolov2-tiny.cfg"], "folder: is a folder"),
    (["w.weights", "w.weights", "--cfg", "yolov2-tiny.cfg"], "w.weights: is the input file"),
    (["w.weights", "o.weights", "--cfg", "yolov2-tiny.cfg"], "o.weights: expected an .h5 name"),
    (["w.weights", "o.h5", "--cfg", "latin1.cfg"], "is not UTF-8"),
    (["w.weights", "o.h5"], "pass --cfg CFG"),
    (["w.weights", "/proc/o.h5", "--cfg", "yolov2-tiny.cfg"], "/proc/o.h5"),  # a folder no one may write in
]


@pytest.mark.parametrize("args, message", CONVERT_BAD, ids=[" ".join(a) for a, _ in CONVERT_BAD])
def test_convert_bad_input_is_one_line_status_2(darknet_file, capsys, monkeypatch, args, message):
    from yolo.convert import main as convert
    monkeypatch.chdir(darknet_file)
    before = listing(darknet_file)
    status = convert(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert listing(darknet_file) == before


def test_convert_refuses_to_overwrite_its_input(darknet_file, capsys, monkeypatch):
    from yolo.convert import main as convert
    monkeypatch.chdir(darknet_file)
    assert convert(["w.weights", "w.h5", "--cfg", "yolov2-tiny.cfg"]) == 0
    assert convert(["w.h5", "w.h5"]) == 2
    assert "is the input file" in capsys.readouterr().err
