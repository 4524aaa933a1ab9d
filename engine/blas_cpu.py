"""OpenBLAS's kernels for this CPU: checked once NumPy and SciPy have loaded them, corrected by restarting.

OpenBLAS builds for many CPUs (DYNAMIC_ARCH) pick their kernels from the CPU's identity when they load. A
build older than the CPU falls back to older kernels: OpenBLAS 0.3.31 took an AMD Zen 5 with AVX-512 for
a Haswell and multiplied at half speed (214 against 415 GFLOP/s on a 2048-cube sgemm). The choice can
only be made before the library loads, through ``OPENBLAS_CORETYPE``, so the command line checks what
was chosen and, if a CPU with AVX-512 got kernels without it, starts itself again with
``OPENBLAS_CORETYPE=SkylakeX`` and says so on stderr. ``FUSETILE_BLAS_CORETYPE=keep`` (or any
``OPENBLAS_CORETYPE`` of the user's) leaves OpenBLAS's choice alone.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}  # what OpenBLAS's SkylakeX kernels use
WITH_AVX512 = {"skylakex", "cooperlake", "sapphirerapids"}
OPT_OUT = "FUSETILE_BLAS_CORETYPE"


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def openblas_kernels() -> dict[str, str]:
    """{library file: kernel architecture} of the OpenBLAS builds loaded (NumPy's and SciPy's)."""
    from importlib import import_module
    from threadpoolctl import threadpool_info
    import_module("numpy")          # loads NumPy's OpenBLAS
    import_module("scipy.linalg")   # and SciPy's, which the kernels call
    return {Path(i["filepath"]).name: i.get("architecture") or "?" for i in threadpool_info()
            if i.get("internal_api") == "openblas"}


def needs_avx512_kernels(kernels: dict[str, str], flags: set[str]) -> bool:
    return AVX512 <= flags and any(arch.lower() not in WITH_AVX512 for arch in kernels.values())


def restart_with_avx512_kernels() -> None:
    """If this CPU's AVX-512 went unused, run the same command again with SkylakeX's kernels (never
    returns then); otherwise return."""
    if OPT_OUT in os.environ or "OPENBLAS_CORETYPE" in os.environ:
        return
    kernels = openblas_kernels()
    if not needs_avx512_kernels(kernels, cpu_flags()):
        return
    chosen = ", ".join(f"{arch} ({name})" for name, arch in kernels.items())
    print(f"note: OpenBLAS chose {chosen} kernels on a CPU with AVX-512; running again with "
          f"OPENBLAS_CORETYPE=SkylakeX (set {OPT_OUT}=keep to keep OpenBLAS's choice)", file=sys.stderr)
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "engine.run", *sys.argv[1:]],
              os.environ | {"OPENBLAS_CORETYPE": "SkylakeX"})
