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
