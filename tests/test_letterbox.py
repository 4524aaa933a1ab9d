import numpy as np
import pytest
from PIL import Image

from yolo.errors import ImageError
from yolo.letterbox import fitted_size, letterbox, load_image, resize
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
