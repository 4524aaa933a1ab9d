"""The epilogue every conv kernel ends its output rows with: partial sums added, batch norm and bias as one
multiply-add per channel, and the activation."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.elementwise import activate, logistic

LEAKY = np.float32(0.1)
ONE = np.float32(1.0)
ZERO = np.float32(0.0)


@njit(cache=True, nogil=True, inline="always")
def finish_row(dst, acc, at, m, o, add, act):
    """One output row from the GEMM result at ``acc[at:]``: one branch-free loop per case, so each
    vectorizes."""
    width = dst.shape[0]
    if add:
        for ox in range(width):
            acc[at + ox] += dst[ox]
    if act == 1:
        for ox in range(width):
            v = acc[at + ox] * m + o
            dst[ox] = max(v, v * LEAKY)
    elif act == 2:
        for ox in range(width):
            dst[ox] = max(acc[at + ox] * m + o, ZERO)
    elif act == 4:
        for ox in range(width):
            dst[ox] = logistic(acc[at + ox] * m + o)
    elif act == 0:
        for ox in range(width):
            dst[ox] = acc[at + ox] * m + o
    else:
        for ox in range(width):
            dst[ox] = activate(acc[at + ox] * m + o, act)
