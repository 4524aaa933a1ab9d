"""Convolutions that need no workspace: depthwise ones, and 3x3 ones over a few input channels (the
picture's), summed window by window where an im2col GEMM would be too thin to run well."""
from __future__ import annotations

from numba import njit

from kernels.blas import F32, floats_at, row_at
from kernels.epilogue import ZERO, finish_row
from kernels.microgemm import AVX512
from kernels.windows import windows3x3


@njit(cache=True, nogil=True, inline="always")
def _window(x, c, w, r, col0, oy, ox, size, stride, pad_top, pad_left):
    """One window's sum before the epilogue: channel c under output (oy, ox) times the taps w[r, col0:], those
    inside the map, in (ky, kx) order."""
    _, h, width = x.shape
    total = ZERO
    for ky in range(size):
        iy = oy * stride + ky - pad_top
        if 0 <= iy < h:
            for kx in range(size):
                ix = ox * stride + kx - pad_left
                if 0 <= ix < width:
                    total += w[r, col0 + ky * size + kx] * x[c, iy, ix]
    return total


@njit(cache=True, nogil=True, inline="always")
def _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, j):
    """A 3x3 window's sum whose three input rows start at a[j], b[j], d[j], in (ky, kx) order."""
    return (ZERO + t0 * a[j] + t1 * a[j + 1] + t2 * a[j + 2] + t3 * b[j] + t4 * b[j + 1] + t5 * b[j + 2]
            + t6 * d[j] + t7 * d[j + 1] + t8 * d[j + 2])


@njit(cache=True, nogil=True, inline="always")
def _tap_row(w, r, col, iy, h):
    """The three taps w[r, col:col + 3] of a window row reading input row ``iy``: zeros if it is outside."""
    if 0 <= iy < h:
        return w[r, col], w[r, col + 1], w[r, col + 2]
    return ZERO, ZERO, ZERO


@njit(cache=True, nogil=True, inline="always")
def _sides(row, t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, lo, hi, e, add):
    """The border columns of a 3x3 stride-1 row that has an interior and at most one border column each
    side (padding of one): the left one's taps on the map's first two columns (a[0], a[1]), the right one's
    on its last two (a[e], a[e + 1]), added in the order ``_window`` adds them."""
    if lo == 1:
        v = ZERO + t1 * a[0] + t2 * a[1] + t4 * b[0] + t5 * b[1] + t7 * d[0] + t8 * d[1]
        row[0] = row[0] + v if add else v
    if hi < row.shape[0]:
        v = ZERO + t0 * a[e] + t1 * a[e + 1] + t3 * b[e] + t4 * b[e + 1] + t6 * d[e] + t7 * d[e + 1]
        row[hi] = row[hi] + v if add else v


@njit(cache=True, nogil=True, inline="always")
def _keep_even(run, n):
    """run[j] = run[2j] for j < n, in place: a stride-2 row's windows kept from the stride-1 run computed in
    its room and the next row's. Front to back, each value is read before it is overwritten."""
    for j in range(n):
        run[j] = run[2 * j]


@njit(cache=True, nogil=True, inline="always")
def _window_row(row, x, c, w, r, col0, oy, size, stride, pad_top, pad_left, add):
    """Output row ``oy`` of channel c's windows times the taps w[r, col0:] into ``row`` (added to it if
    ``add``). A 3x3 row (stride 1 or 2) sums its nine taps unrolled over the columns whose taps are all
    inside the map (a loop that vectorizes: rows read as contiguous runs, where they are); a tap row above or
    below the map gets zero taps (and reads a row inside: zero times it adds nothing). Every other value is
    summed tap by tap, skipping the border (``_sides`` unrolls a stride-1 row's, padded by one). All add in
    (ky, kx) order, so the result does not depend on the path."""
    out_w = row.shape[0]
    _, h, width = x.shape
    top = oy * stride - pad_top
    lo = hi = 0
    if size == 3 and (stride == 1 or stride == 2) and x.strides[2] == F32 and row.strides[0] == F32:
        lo = min(out_w, -(-pad_left // stride))  # the columns whose three taps are all inside
        hi = max(lo, min(out_w, (width - 3 + pad_left) // stride + 1))
        t0, t1, t2 = _tap_row(w, r, col0, top, h)
        t3, t4, t5 = _tap_row(w, r, col0 + 3, top + 1, h)
        t6, t7, t8 = _tap_row(w, r, col0 + 6, top + 2, h)
        start = lo * stride - pad_left  # the input column under the first interior column's left tap
        at, span = x.ctypes.data + c * x.strides[0] + start * F32, max(0, width - start)
        a = floats_at(at + min(max(top, 0), h - 1) * x.strides[1], span)
        b = floats_at(at + min(max(top + 1, 0), h - 1) * x.strides[1], span)
        d = floats_at(at + min(max(top + 2, 0), h - 1) * x.strides[1], span)
        inner = floats_at(row.ctypes.data + lo * F32, hi - lo)
        if stride == 1 and add:
            for i in range(hi - lo):
                inner[i] += _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, i)
        elif stride == 1:
            for i in range(hi - lo):
                inner[i] = _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, i)
        elif add:
            for i in range(hi - lo):
                inner[i] += _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, 2 * i)
        else:
            for i in range(hi - lo):
                inner[i] = _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, 2 * i)
        if stride == 1 and hi > lo and lo <= 1 and out_w - hi <= 1:
            _sides(row, t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, lo, hi, width - 2 - start, add)
            return
    for ox in range(out_w - (hi - lo)):  # the border columns, [0, lo) and [hi, out_w)
        ox += (hi - lo) * (ox >= lo)
        v = _window(x, c, w, r, col0, oy, ox, size, stride, pad_top, pad_left)
        row[ox] = row[ox] + v if add else v


@njit(cache=True, nogil=True)
def depthwise_tile(out, x, pad_top, pad_left, w, mult, offset, act, size, stride, part, parts):
    """A depthwise convolution (one filter per channel), directly: out (C, OH, OW) <- x (C, H, W) with border
    pads * w (C, k*k), then BN + activation; no workspace. Share ``part`` of ``parts`` of the channels."""
    channels, out_h, out_w = out.shape
    width = x.shape[2]
    share = -(-channels // parts)
    # stride 2 (``_depthwise_halved``): MobileNetV2-YOLOv3-Nano's 208-wide layer (48 channels) took 0.47 ms
    # summing strided windows
    halved = stride == 2 and size == 3 and out.strides[2] == F32 and out.strides[1] == out_w * F32
    lo, hi = min(out_w, pad_left), min(out_w, width - 2 + pad_left)  # the columns whose taps are all inside
    plane = (stride == 1 and size == 3 and x.strides[2] == F32 and out.strides[1] == out_w * F32
             and x.strides[1] == out.strides[1] and hi > lo and lo <= 1 and out_w - hi <= 1)
    for c in range(part * share, min(channels, (part + 1) * share)):
        if plane:
            _depthwise_plane(out, x, c, w, pad_top, lo, hi, mult[c], offset[c], act)
            continue
        if halved:
            _depthwise_halved(out, x, c, w, pad_top, pad_left, mult[c], offset[c], act)
            continue
        for oy in range(out_h):
            if out.strides[2] == F32:
                _depthwise_row(row_at(out, c, oy), x, c, w, oy, size, stride, pad_top, pad_left, mult[c], offset[c],
                               act)
            else:
                _depthwise_row(out[c, oy], x, c, w, oy, size, stride, pad_top, pad_left, mult[c], offset[c], act)


@njit(cache=True, nogil=True)
def _depthwise_halved(out, x, c, w, pad_top, pad_left, m, o, act):
    """Channel c of a stride-2 3x3 depthwise conv whose output rows lie end to end: each row's windows at
    every input column (stride 1, whose loop vectorizes: strided loads ran at a fifth of its rate) in its own
    room and the next row's, every other one kept; the last row's at stride 2; then the epilogue once over
    the plane (one core, 288 planes of 13x13: 0.155 ms with the epilogue row by row, 0.129 so)."""
    _, out_h, out_w = out.shape
    for oy in range(out_h - 1):
        row = row_at(out, c, oy)
        wide = floats_at(row.ctypes.data, 2 * out_w - 1)
        _window_row(wide, x, c, w, c, 0, 2 * oy, 3, 1, pad_top, pad_left, False)
        _keep_even(wide, out_w)
    _window_row(row_at(out, c, out_h - 1), x, c, w, c, 0, out_h - 1, 3, 2, pad_top, pad_left, False)
    whole = floats_at(out.ctypes.data + c * out.strides[0], out_h * out_w)
    finish_row(whole, whole, 0, m, o, False, act)


@njit(cache=True, nogil=True)
def _depthwise_plane(out, x, c, w, pad_top, lo, hi, m, o, act):
    """Channel c of a stride-1 3x3 depthwise conv padded by at most one column each side (``lo``), whose
    input and output rows lie end to end one pitch apart: the interior windows of the rows whose taps all lie
    inside the map run as one loop over the plane, as if it were one long row (rows of 13 or 26 alone were
    too short to vectorize well: 480 channels of 13x13, one core, 0.32 ms row by row, 0.084 so). Each row's
    border columns, which that loop wraps across, are then summed by ``_sides``, the rows at the top and
    bottom by ``_window_row``, and the epilogue runs once over the plane: the same sums in the same order as
    row by row."""
    _, out_h, out_w = out.shape
    _, h, width = x.shape
    pitch = x.strides[1] // F32
    r_lo = min(out_h, pad_top)  # the rows whose taps are all inside
    r_hi = max(r_lo, min(out_h, h - 2 + pad_top))
    t0, t1, t2, t3, t4, t5, t6, t7, t8 = w[c, 0], w[c, 1], w[c, 2], w[c, 3], w[c, 4], w[c, 5], w[c, 6], w[c, 7], w[c, 8]
    plane = x.ctypes.data + c * x.strides[0] - pad_top * pitch * F32  # where row 0 of the windows' top rows lies
    if r_hi > r_lo:
        n = (r_hi - 1 - r_lo) * pitch + hi - lo
        at = plane + r_lo * pitch * F32  # under the first interior window's left tap
        a, b, d = floats_at(at, n + 2), floats_at(at + pitch * F32, n + 2), floats_at(at + 2 * pitch * F32, n + 2)
        run = floats_at(out.ctypes.data + c * out.strides[0] + (r_lo * pitch + lo) * F32, n)
        for i in range(n):
            run[i] = _nine(t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, i)
    for oy in range(out_h):
        if r_lo <= oy < r_hi:
            at = plane + oy * pitch * F32
            a, b, d = floats_at(at, width), floats_at(at + pitch * F32, width), floats_at(at + 2 * pitch * F32, width)
            _sides(row_at(out, c, oy), t0, t1, t2, t3, t4, t5, t6, t7, t8, a, b, d, lo, hi, width - 2, False)
        else:
            _window_row(row_at(out, c, oy), x, c, w, c, 0, oy, 3, 1, pad_top, lo, False)
    whole = floats_at(out.ctypes.data + c * out.strides[0], out_h * out_w)
    finish_row(whole, whole, 0, m, o, False, act)


@njit(cache=True, nogil=True, inline="always")
def _depthwise_row(row, x, c, w, oy, size, stride, pad_top, pad_left, m, o, act):
    _window_row(row, x, c, w, c, 0, oy, size, stride, pad_top, pad_left, False)
    finish_row(row, row, 0, m, o, False, act)


@njit(cache=True, nogil=True, inline="always")
def _border_windows(row, x, w, n, oy, stride, pad_top, pad_left, lo, hi, add):
    """A thin conv's row ``oy`` of filter n at its border columns, [0, lo) and [hi, out), window by window over
    every channel (added to the row if ``add``)."""
    for ox in range(row.shape[0] - (hi - lo)):
        ox += (hi - lo) * (ox >= lo)
        v = ZERO
        for c in range(x.shape[0]):
            v += _window(x, c, w, n, 9 * c, oy, ox, 3, stride, pad_top, pad_left)
        row[ox] = row[ox] + v if add else v


THIN_BAND = 4  # output rows per run of windows: the band's input rows stay in L1, its output rows in L2


@njit(cache=True, nogil=True)
def thin_tile(out, x, pad_top, pad_left, w, mult, offset, act, stride, first, last, part, parts):
    """A 3x3 convolution of few input channels (an RGB picture: an im2col GEMM of 27-long rows ran at a fifth
    of the machine's rate), directly: out (N, OH, OW) <- x (C, H, W) with border pads * w (N, C*9) [+ out
    unless ``first``], BN + activation if ``last`` (as ``conv_tile``); no workspace. Share ``part`` of
    ``parts`` of the output rows.

    With stride 1 (and AVX-512), the windows that lie inside the map run through ``windows3x3``, band by
    band: all filters at once, each input value loaded once for six of them (yolov2-tiny's first layer,
    one thread: 98 GFLOP/s, against 38 summing window rows filter by filter). A band of whole rows is one
    run through both maps, its border columns (which read the neighbouring row) summed again window by
    window. The rows whose windows cross the map's top or bottom go window row by window row."""
    filters, out_h, out_w = out.shape
    channels, h, width = x.shape
    share = -(-out_h // parts)
    begin, end = min(out_h, part * share), min(out_h, (part + 1) * share)
    # the columns and rows whose taps all lie inside the map
    lo, hi = min(out_w, -(-pad_left // stride)), max(0, min(out_w, (width - 3 + pad_left) // stride + 1))
    inner_lo, inner_hi = begin, begin
    if AVX512 and stride == 1 and hi > lo and x.strides[2] == F32 and out.strides[2] == F32:
        inner_lo = min(end, max(begin, pad_top))
        inner_hi = max(inner_lo, min(end, h - 2 + pad_top))
    halved = (AVX512 and stride == 2 and first and hi > lo and x.strides[2] == F32 and out.strides[2] == F32
              and out.strides[1] == out_w * F32)
    if halved:  # each row lends the next one's room: not the share's last row
        inner_lo = min(end, max(begin, -(-pad_top // 2)))
        inner_hi = max(inner_lo, min(end - 1, (h - 3 + pad_top) // 2 + 1))
        _halved_rows(out, x, pad_top, pad_left, w, mult, offset, act, last, inner_lo, inner_hi, lo, hi)
    for oy in range(begin, end):
        if oy < inner_lo or oy >= inner_hi:
            for n in range(filters):
                row = out[n, oy]
                for c in range(channels):
                    _window_row(row, x, c, w, n, 9 * c, oy, 3, stride, pad_top, pad_left, c > 0 or not first)
                if last:
                    finish_row(row, row, 0, mult[n], offset[n], False, act)
    whole = first and out_w == width and x.strides[1] == width * F32 and out.strides[1] == out_w * F32
    a_row, a_step = w.strides[0] // F32, w.strides[1] // F32
    plane, pitch, ldc = x.strides[0] // F32, x.strides[1] // F32, out.strides[0] // F32
    if halved:
        return
    for r0 in range(inner_lo, inner_hi, THIN_BAND):
        r1 = min(inner_hi, r0 + THIN_BAND)
        for oy in range(r0, r0 + 1 if whole else r1):
            # whole rows: one run from (r0, lo) to (r1 - 1, hi); else the row's columns [lo, hi)
            n = (r1 - r0 - 1) * out_w + hi - lo if whole else hi - lo
            windows3x3(filters, n, channels, w.ctypes.data, a_row, a_step,
                       x.ctypes.data + (oy - pad_top) * x.strides[1] + (lo - pad_left) * F32, plane, pitch,
                       out.ctypes.data + oy * out.strides[1] + lo * F32, ldc, 0 if first else 1)
        for n in range(filters):
            for oy in range(r0, r1):
                row = row_at(out, n, oy)  # rows here are contiguous (the condition above)
                _border_windows(row, x, w, n, oy, 1, pad_top, pad_left, lo, hi, not first)
                if last:
                    finish_row(row, row, 0, mult[n], offset[n], False, act)


@njit(cache=True, nogil=True)
def _halved_rows(out, x, pad_top, pad_left, w, mult, offset, act, last, row_lo, row_hi, lo, hi):
    """``thin_tile``'s rows [row_lo, row_hi) of a stride-2 conv through ``windows3x3``: each row's windows at
    every input column (the stride-1 run through its interior, twice the outputs it needs) go into the
    row's own room and the next row's, which it has not computed yet; every other one is kept, in place,
    front to back. Summing each window row filter by filter, Nano COCO's first layer ran at 12 GFLOP/s on one
    core; twice the work at the windows' rate, at 34. The border columns go window by window."""
    filters, _, out_w = out.shape
    channels = x.shape[0]
    a_row, a_step = w.strides[0] // F32, w.strides[1] // F32
    plane, pitch, ldc = x.strides[0] // F32, x.strides[1] // F32, out.strides[0] // F32
    n = 2 * (hi - lo) - 1
    for oy in range(row_lo, row_hi):
        windows3x3(filters, n, channels, w.ctypes.data, a_row, a_step,
                   x.ctypes.data + (2 * oy - pad_top) * x.strides[1] + (2 * lo - pad_left) * F32, plane, pitch,
                   out.ctypes.data + oy * out.strides[1] + lo * F32, ldc, 0)
        for f in range(filters):
            _keep_even(floats_at(out.ctypes.data + f * out.strides[0] + oy * out.strides[1] + lo * F32, n), hi - lo)
            row = row_at(out, f, oy)
            _border_windows(row, x, w, f, oy, 2, pad_top, pad_left, lo, hi, False)
            if last:
                finish_row(row, row, 0, mult[f], offset[f], False, act)
