"""Kernel modules compiled for the avx512 instruction-set level (see :mod:`minicnn.backend.isa`)."""
