"""Rung 1: naive loops vs the NumPy reference operations."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.runtime import reference_ops as ops
from yolo.params import ConvParams
from tests import naive


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9), n=st.integers(1, 4),
       k=st.sampled_from([1, 2, 3]), stride=st.sampled_from([1, 2]), pad=st.integers(0, 2),
       groups=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_conv2d_matches_naive(c, h, w, n, k, stride, pad, groups, seed):
    c, n = c * groups, n * groups
    if h + 2 * pad < k or w + 2 * pad < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((c, h, w)).astype(np.float32)
    wt = rng.standard_normal((n, c // groups, k, k)).astype(np.float32)
    np.testing.assert_allclose(ops.conv2d(x, wt, stride, pad, groups), naive.conv2d(x, wt, stride, pad, groups),
                               rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), size=st.integers(1, 3),
       stride=st.integers(1, 3), extra=st.integers(-1, 2), seed=st.integers(0, 2**16))
def test_maxpool_matches_naive_with_darknet_padding(c, h, w, size, stride, extra, seed):
    padding = max(size - 1 + extra, 0)
    if (h + padding - size) // stride + 1 < 1 or (w + padding - size) // stride + 1 < 1:
        return
    x = np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)
    np.testing.assert_array_equal(ops.maxpool(x, size, stride, padding), naive.maxpool(x, size, stride, padding))


def test_maxpool_size2_pads_only_right_and_bottom():
    x = -np.arange(9, dtype=np.float32).reshape(1, 3, 3)  # decreasing: any -inf/0 leak would show
    out = ops.maxpool(x, 2, 1, 1)
    assert out.shape == (1, 3, 3)
    assert out[0, 2, 2] == x[0, 2, 2] and out[0, 0, 0] == x[0, 0, 0]


@pytest.mark.parametrize("shape", [(8, 4, 4), (16, 6, 2), (64, 26, 26)])
def test_reorg_matches_darknet_loop(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(ops.reorg(x, 2), naive.reorg(x, 2))


def test_reorg_is_not_space_to_depth():
    x = np.arange(8 * 4 * 4, dtype=np.float32).reshape(8, 4, 4)
    s2d = x.reshape(8, 2, 2, 2, 2).transpose(2, 4, 0, 1, 3).reshape(32, 2, 2)
    assert not np.array_equal(ops.reorg(x, 2), s2d)


def test_conv_layer_bn_order_and_activations():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 5)).astype(np.float32)
    p = ConvParams(biases=np.array([0.5, -0.25], np.float32), weights=rng.standard_normal((2, 2, 3, 3)).astype(np.float32),
                   scales=np.array([2.0, 0.5], np.float32), rolling_mean=np.array([0.1, -0.2], np.float32),
                   rolling_variance=np.array([4.0, 0.25], np.float32))
    y = naive.conv2d(x, p.weights, 1, 1)
    expect = (y - p.rolling_mean[:, None, None]) / (np.sqrt(p.rolling_variance)[:, None, None] + 1e-6)
    expect = expect * p.scales[:, None, None] + p.biases[:, None, None]
    for act, f in [("linear", lambda v: v), ("leaky", lambda v: np.where(v > 0, v, 0.1 * v)),
                   ("relu", lambda v: np.maximum(v, 0)), ("logistic", lambda v: 1 / (1 + np.exp(-v)))]:
        np.testing.assert_allclose(ops.conv_layer(x, p, 1, 1, 1, act), f(expect), rtol=1e-5, atol=1e-6)
    mult, offset = p.epilogue()
    np.testing.assert_allclose(y * mult[:, None, None] + offset[:, None, None], expect, rtol=1e-5, atol=1e-5)


def test_region_activations_and_softmax():
    rng = np.random.default_rng(2)
    num, coords, classes = 2, 4, 3
    x = rng.standard_normal((num * (coords + 1 + classes), 2, 3)).astype(np.float32)
    out = ops.region(x, num, coords, classes, True).reshape(num, 8, 2, 3)
    raw = x.reshape(num, 8, 2, 3)
    np.testing.assert_allclose(out[:, 0], 1 / (1 + np.exp(-raw[:, 0])), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 2:4], raw[:, 2:4])  # w, h stay raw
    np.testing.assert_allclose(out[:, 4], 1 / (1 + np.exp(-raw[:, 4])), rtol=1e-6)
    e = np.exp(raw[:, 5:])
    np.testing.assert_allclose(out[:, 5:], e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_avgpool_and_softmax():
    x = np.random.default_rng(3).standard_normal((4, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(ops.avgpool(x)[:, 0, 0], x.mean(axis=(1, 2)), rtol=1e-5)
    s = ops.softmax(x.reshape(1, -1), axis=1)
    assert abs(float(s.sum()) - 1) < 1e-5
