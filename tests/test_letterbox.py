import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from kernels.picture import fit_region
from yolo.errors import ImageError
from yolo.letterbox import Placement, fit, fitted_size, letterbox, load_image, resize
from tests import naive


@pytest.mark.parametrize("src, dst", [((7, 11), (5, 3)), ((4, 4), (9, 13)), ((10, 3), (10, 2)), ((1, 6), (4, 4))])
def test_resize_bitwise_equals_darknet_scalar_loop(src, dst):
    im = np.random.default_rng(0).random((3, *src), dtype=np.float32)
    w, h = dst
    np.testing.assert_array_equal(resize(im, w, h), naive.resize(im, w, h))


def test_resize_keeps_corners_and_identity():
    im = np.random.default_rng(1).random((3, 6, 8), dtype=np.float32)
    np.testing.assert_array_equal(resize(im, 8, 6), im)
    out = resize(im, 15, 11)
    for y, x, sy, sx in [(0, 0, 0, 0), (0, 14, 0, 7), (10, 0, 5, 0), (10, 14, 5, 7)]:
        assert abs(out[:, y, x] - im[:, sy, sx]).max() < 1e-6


def test_letterbox_geometry_and_grey_border():
    assert fitted_size(768, 576, 416, 416) == (416, 312)
    assert fitted_size(576, 768, 416, 416) == (312, 416)
    im = np.ones((3, 576, 768), np.float32)
    box = letterbox(im, 416, 416)
    assert box.shape == (3, 416, 416)
    assert (box[:, :52] == 0.5).all() and (box[:, 52 + 312:] == 0.5).all()
    assert np.allclose(box[:, 52:52 + 312], 1.0)


def test_load_image_rgb_float_and_errors(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.shape == (3, 5, 7) and im.dtype == np.float32
    np.testing.assert_array_equal(im, rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")  # greyscale becomes RGB
    assert load_image(tmp_path / "grey.png").shape == (3, 5, 7)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="bad.jpg'.*not a readable image"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "none.jpg")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["letterbox", "resize"]))
def test_any_region_of_the_input_is_the_whole_inputs_bit_for_bit(data, mode):
    """What the fused path relies on: a tile's input region made on its own equals that region of the whole
    input; a uint8 picture with divisor 255 gives what its float32 decoding gives."""
    ih, iw, nh, nw = (data.draw(st.integers(1, 40)) for _ in range(4))
    pixels = np.random.default_rng(ih * 41 + iw).integers(0, 256, (3, ih, iw)).astype(np.uint8)
    picture = pixels.astype(np.float32) / np.float32(255)
    placement = Placement.of((iw, ih), (nw, nh), mode)
    whole = fit(picture, nw, nh, placement)
    y0, x0 = data.draw(st.integers(0, nh - 1)), data.draw(st.integers(0, nw - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, nh)), data.draw(st.integers(x0 + 1, nw))
    region = np.empty((3, y1 - y0, x1 - x0), np.float32)
    fit_region(pixels, np.float32(255), placement.width, placement.height, placement.left, placement.top, y0, x0,
               region)
    np.testing.assert_array_equal(region, whole[:, y0:y1, x0:x1])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_picture_placed_at_its_own_size_is_darknets_resize_to_that_size(data):
    """The unscaled input (benchmarks feed one; so does any picture of the network's size) takes a copying
    path: bit for bit Darknet's scalar resize to its own size, on the grey canvas, in any region."""
    ih, iw = data.draw(st.integers(2, 30)), data.draw(st.integers(2, 30))  # naive.resize needs two pixels
    top, left = data.draw(st.integers(-3, 6)), data.draw(st.integers(-3, 6))
    nh, nw = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    pixels = np.random.default_rng(ih * 31 + iw).integers(0, 256, (3, ih, iw)).astype(np.uint8)
    darknet = naive.resize(pixels.astype(np.float32) / np.float32(255), iw, ih)
    canvas = np.full((3, 50, 50), 0.5, np.float32)  # the picture at (top, left) + 6, wherever it lands
    canvas[:, 6 + top:6 + top + ih, 6 + left:6 + left + iw] = darknet
    y0, x0 = data.draw(st.integers(0, nh - 1)), data.draw(st.integers(0, nw - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, nh)), data.draw(st.integers(x0 + 1, nw))
    region = np.empty((3, y1 - y0, x1 - x0), np.float32)
    fit_region(pixels, np.float32(255), iw, ih, left, top, y0, x0, region)
    np.testing.assert_array_equal(region, canvas[:, 6 + y0:6 + y1, 6 + x0:6 + x1])
