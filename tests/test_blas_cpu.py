"""The check of OpenBLAS's kernels: a CPU with AVX-512 given kernels without it is caught, one given
SkylakeX's is not, a CPU without AVX-512 is never asked to use them, and the user's choice stands."""
import subprocess
import sys

from engine.blas_cpu import AVX512, needs_avx512_kernels, openblas_kernels


def test_a_cpu_with_avx512_given_older_kernels_is_caught():
    assert needs_avx512_kernels({"numpy": "Haswell", "scipy": "SkylakeX"}, AVX512 | {"avx2"})
    assert not needs_avx512_kernels({"numpy": "SkylakeX", "scipy": "Cooperlake"}, AVX512)
    assert not needs_avx512_kernels({"numpy": "Haswell"}, {"avx2", "avx512f"})  # no full AVX-512: Haswell is right


def test_the_libraries_are_found_and_a_users_coretype_is_kept():
    assert openblas_kernels()  # NumPy's and SciPy's OpenBLAS report their kernels
    code = "import os, engine.blas_cpu as b; b.restart_with_avx512_kernels(); print(os.environ['OPENBLAS_CORETYPE'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"OPENBLAS_CORETYPE": "Haswell", "PATH": ""})
    assert out.stdout.strip() == "Haswell" and "note:" not in out.stderr
