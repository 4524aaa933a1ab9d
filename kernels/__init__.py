"""Numba tile kernels. They never allocate: outputs and scratch are views handed in by the caller."""
