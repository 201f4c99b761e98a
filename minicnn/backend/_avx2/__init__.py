"""Kernel modules compiled for the avx2 instruction-set level (see :mod:`minicnn.backend.isa`)."""
