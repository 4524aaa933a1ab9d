"""Hypothesis strategy: random chains of conv (plain, depthwise, grouped, any activation) and maxpool."""
from hypothesis import strategies as st

from yolo.errors import CfgError
from yolo.network import ACTIVATIONS
from tests.helpers import random_stack

LAYER = st.one_of(
    st.tuples(st.just("conv"), st.sampled_from([1, 3]), st.sampled_from([1, 2]), st.integers(1, 4)),
    st.tuples(st.just("conv"), st.sampled_from([1, 3]), st.sampled_from([1, 2]), st.integers(1, 4),
              st.sampled_from(ACTIVATIONS)),
    st.tuples(st.sampled_from(["dw", "g2"]), st.sampled_from([3, 5]), st.sampled_from([1, 2]),
              st.sampled_from(ACTIVATIONS)),
    st.tuples(st.just("maxpool"), st.sampled_from([2, 3]), st.sampled_from([1, 2])),
)


@st.composite
def stacks(draw, max_layers: int = 5, sizes=(5, 24)):
    while True:
        kinds = draw(st.lists(LAYER, min_size=1, max_size=max_layers))
        size = draw(st.integers(*sizes))
        try:
            return random_stack(kinds, size, channels=draw(st.integers(1, 3)))
        except CfgError:
            continue


@st.composite
def weights_of(draw, network, first, last):
    """(mode, bands) for a group: resident, kept for the group's run, or loaded per tile in 1-3 bands of input
    channels."""
    from yolo.network import Conv
    mode = draw(st.sampled_from(("resident", "group", "tile")))
    fewest = min((network[i].in_shape[0] for i in range(first, last + 1) if isinstance(network[i], Conv)), default=1)
    return mode, 1 if mode == "group" else draw(st.integers(1, min(3, fewest)))


BLOCKS = ("conv", "residual", "residual", "split", "concat", "upsample", "maxpool", "head")


def _conv_section(filters: int, size: int, stride: int, activation: str, groups: int = 1) -> str:
    return (f"[convolutional]\nbatch_normalize=1\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
            f"groups={groups}\nactivation={activation}\n")


@st.composite
def residual_nets(draw, max_blocks: int = 5, sizes=(6, 20)):
    """Random MobileNetV2-like networks from cfg text: inverted residual blocks (1x1 expand, depthwise 3x3,
    1x1 project, [shortcut] to the block's input), channel splits, two-source routes, upsampling, maxpool,
    and [yolo] heads on a branch (a 1x1 conv and the head; a route then goes back to the fork)."""
    from tests.helpers import network_from_text
    while True:
        channels = draw(st.integers(1, 3))
        size = draw(st.integers(*sizes))
        text = [f"[net]\nwidth={size}\nheight={size}\nchannels={channels}\n"]
        text.append(_conv_section(draw(st.integers(2, 6)), 3, draw(st.sampled_from([1, 2])), "leaky"))
        for block in draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=max_blocks)):
            act = draw(st.sampled_from(ACTIVATIONS))
            if block == "conv":
                text.append(_conv_section(draw(st.integers(2, 6)), draw(st.sampled_from([1, 3])),
                                          draw(st.sampled_from([1, 2])), act))
            elif block == "residual":  # the block's output has its input's channels: [shortcut] from=-4
                wide = draw(st.integers(2, 8))
                text += [_conv_section(wide, 1, 1, act), _conv_section(wide, 3, 1, act, groups=wide),
                         "[convolutional]\nbatch_normalize=1\nfilters=-1\nsize=1\nstride=1\npad=1\nactivation=linear\n",
                         f"[shortcut]\nfrom=-4\nactivation={draw(st.sampled_from(['linear', 'leaky']))}\n"]
            elif block == "split":
                text.append(f"[route]\nlayers=-1\ngroups=2\ngroup_id={draw(st.integers(0, 1))}\n")
            elif block == "concat":
                text += [_conv_section(draw(st.integers(1, 4)), 3, 1, act), "[route]\nlayers=-1,-2\n"]
            elif block == "head":  # 2 boxes of 1 class: 12 channels
                text += [_conv_section(12, draw(st.sampled_from([1, 3])), 1, "linear"),
                         "[yolo]\nmask=0,1\nanchors=2,3, 4,5\nclasses=1\nnum=2\n", "[route]\nlayers=-3\n"]
            elif block == "upsample":
                text.append("[upsample]\nstride=2\n")
            else:
                text.append(f"[maxpool]\nsize={draw(st.sampled_from([2, 3]))}\nstride={draw(st.sampled_from([1, 2]))}\n")
        try:
            return network_from_text(_with_channels("\n".join(text)))
        except CfgError:
            continue


def _with_channels(text: str) -> str:
    """``filters=-1`` (a residual block's projection) becomes the channel count its [shortcut] adds to."""
    from tests.helpers import network_from_text
    while "filters=-1" in text:
        head, tail = text.split("filters=-1", 1)
        upto = head.rsplit("[convolutional]", 1)[0]
        net = network_from_text(upto)  # the layers before the projection: the block's input is 3 back
        text = head + f"filters={net[len(net) - 3].out_shape[0]}" + tail
    return text
