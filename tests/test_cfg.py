import pytest

from yolo.errors import CfgError
from yolo.network import INPUT, Conv, MaxPool, Region, Reorg, Route
from yolo.cfg import BUNDLED_CFGS, load_network
from tests.helpers import network_from_text

NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_yolov2_shapes_routes_and_macs():
    net = load_network("yolov2.cfg")
    assert net.input_shape == (3, 416, 416) and len(net) == 32
    assert net[0].out_shape == (32, 416, 416) and net[1].out_shape == (32, 208, 208)
    assert isinstance(net[25], Route) and net[25].inputs == (16,)
    assert isinstance(net[28], Route) and net[28].inputs == (27, 24) and net[28].out_shape == (1280, 13, 13)
    assert isinstance(net[27], Reorg) and net[27].out_shape == (256, 13, 13)
    assert isinstance(net[31], Region) and net[31].classes == 80 and len(net[31].anchors) == 10
    assert net[0].inputs == (INPUT,)
    # conv MACs: filters * out area * fan-in
    assert net[0].macs == 32 * 416 * 416 * 3 * 9
    assert net.macs == sum(l.macs for l in net.layers if isinstance(l, Conv))
    assert net.head_index == 30 and net.stride == 32
    assert net.last_use[16] == 25 and net.last_use[24] == 28 and net.last_use[31] == 32


@pytest.mark.parametrize("name", BUNDLED_CFGS)
def test_bundled_cfgs_build_at_other_sizes(name):
    own = load_network(name)
    ratios = [own.input_shape[1] // h.in_shape[1] for h in own.heads]
    for size in (224, 320, 608):
        net = load_network(name, size)
        assert net.input_shape == (3, size, size)
        assert [size // h.in_shape[1] for h in net.heads] == ratios and size % net.stride == 0


def test_tiny_maxpool_size2_stride1_keeps_map():
    net = load_network("yolov2-tiny.cfg")
    pool = net[11]
    assert isinstance(pool, MaxPool) and (pool.size, pool.stride, pool.padding) == (2, 1, 1)
    assert pool.out_shape == pool.in_shape == (512, 13, 13)


def test_comments_whitespace_lists_and_defaults():
    text = NET + """
# a comment
; another
[convolutional]
 filters = 4
size=3
stride = 2
pad=1
activation = leaky
batch_normalize=1

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=1
padding=0

[route]
layers = -1, -2
"""
    net = network_from_text(text)
    assert net[0].out_shape == (4, 16, 16) and net[0].padding == 1 and net[0].batch_normalize
    assert net[1].out_shape == (4, 8, 8)
    assert net[2].activation == "logistic"  # Darknet's default activation
    assert net[3].inputs == (2, 1) and net[3].out_shape == (12, 8, 8)


def test_route_concat_order_and_size_mismatch():
    text = NET + "[convolutional]\nfilters=4\nsize=1\n[convolutional]\nfilters=6\nsize=1\n[route]\nlayers=-1,-2\n"
    net = network_from_text(text)
    assert net[2].inputs == (1, 0) and net[2].out_shape == (10, 32, 32)
    bad = NET + "[convolutional]\nfilters=4\nsize=1\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n"
    with pytest.raises(CfgError, match=r"route: layers \[1, 0\] have different map sizes"):
        network_from_text(bad)


@pytest.mark.parametrize("body, pattern", [
    ("[convolutional]\nfilters=4\nsize=3\nfoo=1\n", r"test\.cfg:8: \[convolutional\] unknown key foo=1"),
    ("[crop]\nstride=2\n", r"test\.cfg:5: \[crop\] unknown section"),
    ("[convolutional]\nfilters=0\n", r"test\.cfg:6: \[convolutional\] filters=0: expected an integer >= 1"),
    ("[convolutional]\nfilters=four\n", r"test\.cfg:6: \[convolutional\] filters=four: expected an integer"),
    ("[convolutional]\nfilters=4\nactivation=softsign\n", r"test\.cfg:7: \[convolutional\] activation=softsign: expected one of"),
    ("[convolutional]\nfilters=4\nfilters=5\n", r"test\.cfg:7: \[convolutional\] filters given twice \(first on line 6\)"),
    ("[route]\n", r"test\.cfg:5: \[route\] missing layers"),
    ("[convolutional]\nfilters=4\n[route]\nlayers=3\n", r"test\.cfg:8: \[route\] layers=3: expected indices of earlier layers"),
    ("[convolutional]\nfilters=4\nsize=64\n", r"test\.cfg:5: \[convolutional\] layer 0 conv: size=64 stride=1 padding=0 on a 32x32 map gives an empty output"),
    ("[reorg]\nstride=3\n", r"reorg: stride=3 must divide the 32x32 input map"),
    ("[convolutional]\nfilters=30\nsize=1\n[region]\nanchors=1,1\nnum=1\nclasses=2\n",
     r"\[region\] anchors=1,1: expected 2 numbers|the layer before has 30 channels"),
    ("[convolutional]\nfilters=7\nsize=1\n[region]\nanchors=1,1,2\nnum=1\nclasses=2\n",
     r"test\.cfg:9: \[region\] anchors=1,1,2: expected 2 numbers"),
    ("[convolutional]\nfilters=8\nsize=1\n[region]\nanchors=1,1\nnum=1\nclasses=2\n",
     r"the layer before has 8 channels: expected num\*\(coords\+1\+classes\) = 1\*\(4\+1\+2\) = 7"),
    ("filters=3\n", r"appears before any \[section\]"),
])
def test_bad_cfg_names_line_key_and_value(body, pattern):
    text = NET + body if not body.startswith("filters") else body
    with pytest.raises(CfgError, match=pattern):
        network_from_text(text)


def test_first_section_must_be_net_and_needs_layers():
    with pytest.raises(CfgError, match=r"test\.cfg:1: \[convolutional\] the first section must be \[net\]"):
        network_from_text("[convolutional]\nfilters=1\n")
    with pytest.raises(CfgError, match="no layers after"):
        network_from_text(NET)
    with pytest.raises(CfgError, match=r"\[net\] missing width: expected an integer \(required key\)"):
        network_from_text("[net]\nheight=3\n[maxpool]\n")


def test_size_override_must_be_multiple_of_stride():
    with pytest.raises(CfgError, match=r"size 100x100: expected a multiple of the network's total stride 32"):
        load_network("yolov2.cfg", 100)


def test_unknown_cfg_name_lists_bundled():
    with pytest.raises(CfgError, match=r"no such file, and not a bundled cfg \(bundled: yolov2.cfg"):
        load_network("yolov3.cfg")


def test_training_keys_are_ignored_but_typos_are_not():
    ok = "[net]\nwidth=32\nheight=32\nlearning_rate=0.1\nmomentum=0.9\n[maxpool]\n"
    assert network_from_text(ok)[0].out_shape == (3, 32, 32)
    with pytest.raises(CfgError, match=r"\[net\] unknown key widht=32"):
        network_from_text("[net]\nwidht=32\nwidth=32\nheight=32\n[maxpool]\n")
