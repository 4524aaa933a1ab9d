"""Mutated cfg, .weights and .h5 files (byte flips, truncation, insertion, line and value swaps) reach only
the named errors (CfgError, WeightsError), never another exception."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from yolo.cfg import build_network, parse_sections
from yolo.errors import FusetileError
from yolo.h5store import read_h5, write_h5
from yolo.params import random_params
from yolo.weights import read_darknet, write_darknet
from tests.helpers import bundled_text, network_from_text

CFG = bundled_text("yolov2-tiny.cfg", 64)
NETWORK = network_from_text(CFG, "tiny")


@st.composite
def mutated(draw, data: bytes, lines: bool = False):
    """One or a few mutations of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "swap"] + (["lines"] if lines else [])))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        elif kind == "swap" and len(out) > 1:
            other = draw(st.integers(0, len(out) - 1))
            out[at], out[other] = out[other], out[at]
        elif kind == "lines":
            text = out.decode("utf-8", "replace").splitlines()
            if len(text) > 1:
                i, j = draw(st.integers(0, len(text) - 1)), draw(st.integers(0, len(text) - 1))
                if draw(st.booleans()):  # swap two lines
                    text[i], text[j] = text[j], text[i]
                else:  # give line i the value of line j
                    key, value = text[i].partition("=")[0], text[j].partition("=")[2]
                    text[i] = f"{key}={value}"
            out = bytearray("\n".join(text).encode())
    return bytes(out)


def only_named_errors(call):
    try:
        call()
    except FusetileError:
        pass


@settings(max_examples=300, deadline=None)
@given(data=mutated(CFG.encode(), lines=True))
def test_mutated_cfg_gives_a_cfg_error_or_a_network(data):
    def load():
        text = data.decode("utf-8")  # the loader reports non-UTF-8 itself (tested in test_cfg)
        build_network(parse_sections(text, "fuzz.cfg"), name="fuzz")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    only_named_errors(load)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    params = random_params(NETWORK, 0)
    write_darknet(folder / "w.weights", params)
    write_h5(folder / "w.h5", params, NETWORK, CFG)
    return {suffix: (folder / f"w{suffix}").read_bytes() for suffix in (".weights", ".h5")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_weights_give_a_weights_error_or_weights(weight_files, tmp_path, data):
    path = tmp_path / "m.weights"
    path.write_bytes(data.draw(mutated(weight_files[".weights"][:4096])) + weight_files[".weights"][4096:])
    only_named_errors(lambda: read_darknet(path, NETWORK))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_h5_gives_a_weights_error_or_weights(weight_files, tmp_path, data):
    original = weight_files[".h5"]
    # mutate the header and metadata region (where the structure lives) or anywhere
    head = data.draw(st.integers(64, min(len(original), 8192)))
    path = tmp_path / "m.h5"
    path.write_bytes(data.draw(mutated(original[:head])) + original[head:])
    only_named_errors(lambda: read_h5(path, NETWORK))
