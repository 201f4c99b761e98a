"""The constants and workspace layouts of minicnn.backend.tuning equal those of the compiled kernels."""

import ast
import importlib
import itertools
import pathlib
import re

import pytest

from minicnn.backend import activation_codes, tuning


def compiled(name):
    try:
        return importlib.import_module(f"minicnn.backend.{name}")
    except ImportError as exc:
        pytest.skip(f"compiled kernels not built: {exc}")


#: (compiled module, its name, the name in tuning): every constant tuning mirrors.
MIRRORED = [
    ("_conv", "DW_GROUPS", "DW_GROUPS"),
    ("_conv_wgrad", "DW_GROUPS", "DW_GROUPS"),
    ("_bias_act", "DB_BLOCK_ROWS", "DB_BLOCK_ROWS"),
    ("_openmp", "PARALLEL_WORK_THRESHOLD", "PARALLEL_WORK_THRESHOLD"),
    ("_winograd", "WINOGRAD_TILE_BLOCK", "WINOGRAD_TILE_BLOCK"),
    ("_winograd", "WINOGRAD_STRIDE_PAD", "WINOGRAD_STRIDE_PAD"),
    ("_conv_wgrad", "WGRAD_BLOCK_MNK", "WGRAD_BLOCK_MNK"),
    ("_conv_wgrad", "WGRAD_SLOT_CAP", "WGRAD_SLOT_CAP"),
    ("_conv_wgrad", "WGRAD_PACKED_SLOT", "WGRAD_PACKED_SLOT"),
    ("_conv_wgrad", "WINO_WGRAD_BUDGET", "WINO_WGRAD_BUDGET"),
    ("_conv_wgrad", "WINO_WGRAD_PAD", "WINO_WGRAD_PAD"),
    ("_winograd16", "WINOGRAD16_MAX_CHANNELS", "WINOGRAD16_MAX_CHANNELS"),
]


@pytest.mark.parametrize("module, name, mirror", MIRRORED)
def test_tuning_constants_equal_the_compiled_ones(module, name, mirror):
    assert getattr(compiled(module), name) == getattr(tuning, mirror)


#: (.pyx file, its compile-time ``cdef enum`` name, the name in tuning): constants the compiled modules do not
#: expose, compared with the source they are built from.
MIRRORED_ENUMS = [
    ("conv.pyx", "SMALL_K", "CONV_SMALL_K"),
    ("gemm.pyx", "MIN_BLOCK_ROWS", "GEMM_MIN_BLOCK_ROWS"),
    ("pointwise.pyx", "PW_BLOCK", "POINTWISE_BLOCK_ROWS"),
]


@pytest.mark.parametrize("source, name, mirror", MIRRORED_ENUMS)
def test_tuning_constants_equal_the_pyx_enums(source, name, mirror):
    path = pathlib.Path(tuning.__file__).parents[2] / "kernels" / source
    if not path.exists():
        pytest.skip(f"no kernel sources next to the package: {path}")
    text = path.read_text()
    values = re.findall(rf"^\s+{name} = (\d+)$", text, flags=re.M)
    assert values == [str(getattr(tuning, mirror))]


def test_every_tuning_constant_is_compared():
    constants = {name for name in vars(tuning) if name.isupper()}
    assert constants == {mirror for _, _, mirror in MIRRORED + MIRRORED_ENUMS}


@pytest.mark.parametrize("module, name", [("_bias_act", "ACTIVATION_CODES"), ("_conv", "ROW_ACTIVATION_CODES"),
                                          ("_gemm", "ROW_ACTIVATION_CODES"), ("_winograd", "ROW_ACTIVATION_CODES")])
def test_activation_codes_equal_the_compiled_enums(module, name):
    assert getattr(compiled(module), name) == activation_codes.CODES


SHAPES = [dict(zip("HWCFhw", s)) for s in itertools.product((1, 5, 26), (3, 26), (1, 8, 32), (1, 64), (1, 3, 24),
                                                                 (1, 24, 101))]


def test_workspace_layouts_equal_the_compiled_ones():
    winograd, wgrad = compiled("_winograd"), compiled("_conv_wgrad")
    for s in SHAPES:
        shape = (s["H"], s["W"], s["C"], s["F"], s["h"], s["w"])
        assert tuning.winograd_workspace_length(*shape) == winograd.winograd_workspace_length(*shape), shape
        for N, K, slots in itertools.product((1, 7, 128), (1, 3), (1, 2, 16)):
            args = (N, s["H"], s["W"], s["C"], K, K, s["F"], s["h"], s["w"], slots)
            assert tuning.conv_wgrad_workspace_length(*args) == wgrad.conv_wgrad_workspace_length(*args), args
            args = (N, s["C"], s["F"], s["h"], s["w"], slots)
            assert (tuning.conv_winograd_wgrad_workspace_length(*args)
                    == wgrad.conv_winograd_wgrad_workspace_length(*args)), args


def test_the_backends_define_no_constant_of_their_own():
    """Every number a NumPy or Numba kernel file tunes by (groups, blocks, thresholds) is read from ``tuning``."""
    root = pathlib.Path(tuning.__file__).parent
    found = []
    for path in sorted([*root.glob("reference/*.py"), *root.glob("numba_kernels/*.py")]):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, (int, float)) and not isinstance(node.value.value, bool)):
                found.append(f"{path.relative_to(root)}: {ast.unparse(node)}")
    assert found == []
