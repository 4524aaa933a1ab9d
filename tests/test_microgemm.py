"""The IR-kernel GEMM against NumPy: every edge of its blocks, both layouts of a, both betas, row strides
wider than the rows, b row-major or in panels, and b ending at an unreadable page (its whole-vector loads
past an edge block's columns must stay inside b). The 3x3 windows read straight from the planes, which
begin and end at unreadable pages."""
import ctypes
import mmap

import numpy as np
from hypothesis import given, settings, strategies as st
from numba import njit

from kernels.microgemm import PANEL, gemm, gemm_panels, panel_index
from kernels.windows import windows3x3

F32 = 4


@njit(cache=True)
def _call(m, n, k, a, lda, a_transposed, b, ldb, c, ldc, beta):
    gemm(m, n, k, a.ctypes.data, lda, a_transposed, b.ctypes.data, ldb, c.ctypes.data, ldc, beta)


def _expected(a, a_transposed, b, c, m, n, k, beta):
    left = (a[:k, :m].T if a_transposed else a[:m, :k]).astype(np.float64)
    return left @ b[:k, :n].astype(np.float64) + beta * c[:m, :n]


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 14), n=st.integers(1, 140), k=st.integers(0, 40), wider=st.integers(0, 20),
       a_transposed=st.booleans(), beta=st.sampled_from([0.0, 1.0]), seed=st.integers(0, 2 ** 16))
def test_gemm_matches_numpy(m, n, k, wider, a_transposed, beta, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m + wider) if a_transposed else (m, k + wider)).astype(np.float32)
    b = rng.standard_normal((k, n + wider)).astype(np.float32)
    c = rng.standard_normal((m, n + wider)).astype(np.float32)
    outside = c[:, n:].copy()
    expected = _expected(a, a_transposed, b, c, m, n, k, beta)
    _call(m, n, k, a, a.shape[1], a_transposed, b, b.shape[1], c, c.shape[1], beta)
    np.testing.assert_allclose(c[:, :n], expected, rtol=1e-5, atol=1e-5 * max(1, k))
    np.testing.assert_array_equal(c[:, n:], outside)  # columns past n are never written


def _panels(b: np.ndarray, into: np.ndarray) -> np.ndarray:
    """``b`` (k x n) written into ``into`` in panels of PANEL columns, through ``panel_index``."""
    k, n = b.shape
    for row in range(k):
        for col in range(n):
            into[panel_index(row, col, k, n, PANEL)] = b[row, col]
    return into


@njit(cache=True)
def _call_panels(m, n, k, a, lda, a_transposed, b_address, c, ldc, beta):
    gemm_panels(m, n, k, a.ctypes.data, lda, a_transposed, b_address, c.ctypes.data, ldc, beta)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 14), n=st.integers(1, 200), k=st.integers(1, 40), a_transposed=st.booleans(),
       beta=st.sampled_from([0.0, 1.0]), seed=st.integers(0, 2 ** 16))
def test_gemm_panels_matches_numpy(m, n, k, a_transposed, beta, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if a_transposed else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    expected = _expected(a, a_transposed, b, c, m, n, k, beta)
    packed = _panels(b, _guarded_floats(k * n))  # the last panel ends at an unreadable page
    assert sorted(panel_index(r, q, k, n, PANEL) for r in range(k) for q in range(n)) == list(range(k * n))
    _call_panels(m, n, k, a, a.shape[1], a_transposed, packed.ctypes.data, c, n, beta)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5 * max(1, k))


def _guarded_floats(count: int, at_start: bool = False):
    """``count`` float32 that end where an unreadable page begins (or, ``at_start``, begin where one ends):
    a read past them (before them) faults."""
    page = mmap.PAGESIZE
    size = -(-count * F32 // page) * page
    region = mmap.mmap(-1, size + 2 * page)
    floats = np.frombuffer(region, np.float32, count, page + (0 if at_start else size - count * F32))
    libc = ctypes.CDLL(None)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    data = ctypes.addressof(ctypes.c_char.from_buffer(region))
    assert libc.mprotect(data, page, 0) == 0  # PROT_NONE
    assert libc.mprotect(data + page + size, page, 0) == 0
    return floats  # (the array keeps the mapping alive)


@njit(cache=True)
def _call_windows(m, n, channels, a, a_transposed, x, plane, width, c, add):
    a_row, a_step = (1, a.shape[1]) if a_transposed else (a.shape[1], 1)
    windows3x3(m, n, channels, a.ctypes.data, a_row, a_step, x.ctypes.data, plane, width, c.ctypes.data,
               c.shape[1], add)


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 14), channels=st.integers(1, 5), width=st.integers(3, 90), rows=st.integers(1, 4),
       a_transposed=st.booleans(), add=st.booleans(), at_start=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_windows3x3_match_numpy_and_read_only_their_planes(m, channels, width, rows, a_transposed, add, at_start,
                                                          seed):
    """A run of ``rows`` rows of windows but the last two columns (whose windows would reach past the
    planes): planes of rows + 2 rows, the last one's end (or the first one's start) at an unreadable page."""
    rng = np.random.default_rng(seed)
    plane, n = (rows + 2) * width, rows * width - 2
    if n < 1:
        return
    x = _guarded_floats(channels * plane, at_start)
    x[:] = rng.standard_normal(x.size)
    w = rng.standard_normal((m, channels * 9)).astype(np.float32)
    a = np.ascontiguousarray(w.T) if a_transposed else w
    c = rng.standard_normal((m, n + 3)).astype(np.float32)
    expected = (c[:, :n].astype(np.float64) if add else 0) + sum(
        w[:, ch * 9 + ky * 3 + kx, None].astype(np.float64) * x[ch * plane + ky * width + kx:][:n]
        for ch in range(channels) for ky in range(3) for kx in range(3))
    outside = c[:, n:].copy()
    _call_windows(m, n, channels, a, a_transposed, x, plane, width, c, add)
    np.testing.assert_allclose(c[:, :n], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(c[:, n:], outside)  # columns past n are never written


def test_edge_blocks_read_nothing_past_b():
    rng = np.random.default_rng(0)
    for n, ldb, k in [(41, 41, 30), (7, 7, 9), (1, 1, 20), (100, 100, 3), (20, 33, 5), (64, 64, 4)]:
        flat = _guarded_floats(k * ldb - (ldb - n))  # b's last row ends at the page
        b = np.lib.stride_tricks.as_strided(flat, (k, n), (ldb * F32, F32))
        flat[:] = rng.standard_normal(flat.size)
        a = rng.standard_normal((9, k)).astype(np.float32)
        c = np.zeros((9, n), np.float32)
        _call_address(9, n, k, a, b.ctypes.data, ldb, c)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-4)


@njit(cache=True)
def _call_address(m, n, k, a, b_address, ldb, c):
    gemm(m, n, k, a.ctypes.data, k, False, b_address, ldb, c.ctypes.data, n, 0.0)
