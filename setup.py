"""Build the Cython kernels in ``kernels/`` into ``minicnn.backend``, once per instruction-set level.

Everything else (metadata, dependencies) lives in ``pyproject.toml``; this file
turns each ``kernels/<name>.pyx`` into the extension ``minicnn.backend._<name>``
(x86-64 baseline, SSE2), and, on an x86-64 target, the modules that gain from a
higher level also into ``minicnn.backend._<level>._<name>``
(:mod:`minicnn.backend.isa` holds the table of levels, flags and modules; the
kernels choose their level at import). Nothing here reads the building
machine's CPU: a build is valid on every x86-64 machine.

Cython translation and the C compiler both run in parallel, one job per core
unless ``build_ext -j N`` says otherwise.
"""

import importlib.util
import os
import sysconfig
from pathlib import Path

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def _load_isa():
    """:mod:`minicnn.backend.isa` loaded by path (importing the package would import its dependencies)."""
    spec = importlib.util.spec_from_file_location("_minicnn_isa", HERE / "minicnn" / "backend" / "isa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


isa = _load_isa()

# -fno-math-errno lets sqrtf vectorize (errno is never read; results are unchanged): the fused
# Adam kernel took 4.0 ms per MNIST step without it and ~0.7 ms with it (Numba: 0.75 ms).
# -g0 drops the debug information Python's own CFLAGS ask for: 24% less compiler time (dropout.c:
# 5.5 s instead of 7.2 s of CPU) and 7x smaller objects. The level flags (isa.compile_flags) add
# -march and -ffp-contract.
COMPILE_ARGS = ["-O3", "-fopenmp", "-fno-math-errno", "-g0"]
LINK_ARGS = ["-fopenmp"]

CYTHON_DIRECTIVES = {
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}


def kernel_extensions(platform_tag=None):
    """One Extension per kernel module and level it is built at (baseline only for a non-x86-64 target)."""
    x86 = isa.is_x86_64(platform_tag or sysconfig.get_platform())
    extensions = []
    for pyx in sorted((HERE / "kernels").glob("*.pyx")):
        for level in isa.levels_of(pyx.stem) if x86 else () if pyx.stem in isa.FEATURE_MODULES else ("baseline",):
            extension = Extension(
                isa.module_name(pyx.stem, level),
                [str(pyx.relative_to(HERE))],
                include_dirs=[numpy.get_include(), str(HERE / "kernels")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=COMPILE_ARGS + isa.compile_flags(level, pyx.stem, x86),
                extra_link_args=LINK_ARGS,
            )
            extension.cpu_level = level
            extensions.append(extension)
    return extensions


class BuildKernels(build_ext):
    """``build_ext`` that translates the .pyx files when it runs and compiles, both in parallel.

    Each level's C files go to their own folder under ``build/cython/<level>``
    (the module name is part of the generated code), so the levels never
    overwrite each other's translation.
    """

    def finalize_options(self):
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        super().finalize_options()

    def run(self):
        self._translate()
        super().run()

    def _translate(self):
        """Point each extension at its C file, translating the .pyx files that changed (or all, with --force)."""
        from Cython.Build import cythonize

        jobs = int(self.parallel or 1)
        for level in isa.LEVELS:
            group = [ext for ext in self.extensions if getattr(ext, "cpu_level", None) == level]
            if group:
                translated = cythonize(group, language_level=3, compiler_directives=CYTHON_DIRECTIVES,
                                       build_dir=os.path.join("build", "cython", level), force=bool(self.force),
                                       nthreads=jobs if jobs > 1 else 0)
                by_name = {ext.name: ext for ext in translated}
                for ext in group:   # keep the extension objects (their own flags; build_ext's bookkeeping)
                    ext.sources = by_name[ext.name].sources
                    ext.depends = sorted(set(ext.depends) | set(by_name[ext.name].depends))


setup(ext_modules=kernel_extensions(), cmdclass={"build_ext": BuildKernels})
