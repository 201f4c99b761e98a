"""The backend contract: every kernel exists in every backend, in the file of its op family, and is compared
with its NumPy reference by a named test."""

import ast
import importlib
import pathlib

import pytest

from minicnn.backend import _MODULES, KERNELS, OPTIONAL_KERNELS, isa

BACKEND = pathlib.Path(importlib.import_module("minicnn.backend").__file__).parent
TESTS = pathlib.Path(__file__).parent
PYX = BACKEND.parents[1] / "kernels"

#: Each kernel of the contract -> the test that compares a fast backend's kernel with the NumPy reference.
REFERENCE_TESTS = {
    "conv2d_forward": "test_kernels.py::test_conv_matches_reference",
    "conv2d_backward_input": "test_kernels.py::test_conv_matches_reference",
    "conv2d_backward_weight": "test_kernels.py::test_conv_matches_reference",
    "maxpool2d_forward": "test_kernels.py::test_maxpool_matches_reference",
    "maxpool2d_backward": "test_kernels.py::test_maxpool_matches_reference",
    "avgpool2d_forward": "test_kernels.py::test_avgpool_matches_reference",
    "avgpool2d_backward": "test_kernels.py::test_avgpool_matches_reference",
    "dropout_forward": "test_kernels.py::test_dropout_bit_identical_to_reference",
    "dropout_backward": "test_kernels.py::test_dropout_bit_identical_to_reference",
    "spatial_dropout_forward": "test_kernels.py::test_dropout_bit_identical_to_reference",
    "spatial_dropout_backward": "test_kernels.py::test_dropout_bit_identical_to_reference",
    "bias_act_forward": "test_kernels.py::test_bias_act_matches_reference",
    "bias_act_backward": "test_kernels.py::test_bias_act_matches_reference",
    "matmul": "test_fused_kernels.py::test_matmul_matches_reference",
    "adam_update": "test_fused_kernels.py::test_adam_update_bit_identical_to_reference",
    "softmax_xent": "test_fused_kernels.py::test_softmax_xent_matches_reference",
    "conv2d_bias_act_forward": "test_fused_kernels.py::test_conv2d_bias_act_forward_matches_unfused",
    "dense_bias_act_forward": "test_fused_kernels.py::test_dense_bias_act_forward_matches_unfused",
    "augment_batch": "test_augment.py::test_kernel_matches_the_numpy_twin",
    "depthwise_conv2d_forward": "test_depthwise_kernels.py::test_matches_reference",
    "depthwise_conv2d_backward_input": "test_depthwise_kernels.py::test_matches_reference",
    "depthwise_conv2d_backward_weight": "test_depthwise_kernels.py::test_matches_reference",
    "depthwise_conv2d_bias_act_forward": "test_depthwise_kernels.py::test_bias_act_is_conv_then_bias_act_forward",
    "depthwise_conv2d_bias_act_backward": "test_depthwise_backward.py::test_fused_backward_matches_reference",
    "conv2d_winograd_bias_act_forward": "test_winograd.py::test_winograd_matches_direct_reference",
    "conv2d_backward_weight_from_input": "test_conv_wgrad.py::test_wgrad_from_input_matches_col_reference",
    "conv2d_winograd_backward_weight": "test_conv_wgrad.py::test_winograd_wgrad_matches_col_reference",
    "conv2d_winograd_bias_act_maxpool2_forward":
        "test_winograd.py::test_winograd_maxpool2_equals_winograd_then_maxpool",
    "conv2d_direct_bias_act_maxpool2_forward": "test_fused_kernels.py::test_direct_conv_maxpool2_matches_reference",
    "conv2d_winograd_bias_add_act_forward": "test_residual_fused.py::test_bias_add_act_matches_reference",
    "conv2d_direct_bias_act_forward": "test_conv_direct.py::test_direct_conv_matches_reference",
    "winograd_weight_transform": "test_winograd_weights.py::test_weight_transform_matches_reference",
    "pointwise_conv2d_bias_act_forward": "test_pointwise_kernel.py::test_matches_reference",
    "separable_conv2d_bias_act_forward": "test_separable_inference.py::test_kernel_matches_reference",
    "conv2d_blocked_bias_act_forward": "test_blocked_conv.py::test_matches_reference",
    "conv2d_winograd16_bias_act_forward": "test_winograd16.py::test_matches_reference",
    "conv2d_winograd16_bias_add_act_forward": "test_winograd16.py::test_matches_reference",
    "softmax_shift_rows": "test_predict_outputs.py::test_softmax_row_kernels_bit_identical_to_reference",
    "softmax_normalize_rows": "test_predict_outputs.py::test_softmax_row_kernels_bit_identical_to_reference",
    "batchnorm_forward": "test_batchnorm_kernels.py::test_matches_reference",
    "batchnorm_inference_forward": "test_batchnorm_kernels.py::test_matches_reference",
    "batchnorm_backward": "test_batchnorm_kernels.py::test_matches_reference",
}
#: Kernels of the reduced-precision families (``isa.FEATURE_MODULES``: compiled only for a CPU extension, loaded by
#: ``minicnn.backend.lowp``, not by ``get_backend``) -> the test comparing the compiled kernel with its NumPy twin.
FEATURE_REFERENCE_TESTS = {
    "quantize_u8": "test_quantize_kernels.py::test_quantize_u8_matches_reference_exactly",
    "quantize_pad_u8": "test_quantize_kernels.py::test_quantize_pad_u8_matches_reference_exactly",
    "quantize_pad_rows4_u8": "test_quantize_kernels.py::test_quantize_pad_rows4_u8_matches_reference_exactly",
    "qconv_u8s8_bias_act": "test_quantize_kernels.py::test_qconv_matches_reference_exactly",
    "qgemm_u8s8": "test_quantize_kernels.py::test_qgemm_matches_reference_exactly",
    "qgemm_u8s8_bias_act": "test_quantize_kernels.py::test_qgemm_bias_act_matches_reference_exactly",
    "qgemm_u8s8_requant": "test_quantize_kernels.py::test_qgemm_requant_matches_reference_and_the_two_steps_exactly",
    "qconv_u8s8_requant": "test_quantize_kernels.py::test_qconv_requant_matches_reference_and_the_two_steps_exactly",
    "to_bf16": "test_quantize_kernels.py::test_to_bf16_matches_reference_exactly",
    "to_bf16_pad": "test_quantize_kernels.py::test_to_bf16_pad_matches_reference_exactly",
    "conv_bf16_bias_act": "test_quantize_kernels.py::test_conv_bf16_matches_reference_within_the_summation_bound",
    "gemm_bf16_bias_act": "test_quantize_kernels.py::test_gemm_bf16_matches_reference_within_the_summation_bound",
}
#: Op families: one ``kernels/<family>.pyx`` each (``openmp.pyx`` holds the runtimes' thread counts and
#: ``percall.pyx`` a prediction call's value checks: no kernel); the feature families have a NumPy twin and no Numba one.
FAMILIES = sorted(p.stem for p in PYX.glob("*.pyx")
                  if p.stem not in ("openmp", "percall") and p.stem not in isa.FEATURE_MODULES)
FEATURE_FAMILIES = sorted(isa.FEATURE_MODULES)
PACKAGES = ("reference", "numba_kernels")


def backend_module(name):
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError as exc:
        pytest.skip(f"backend {name!r} not importable: {exc}")


@pytest.mark.parametrize("backend", sorted(_MODULES))
def test_every_contract_kernel_is_in_every_backend(backend):
    module = backend_module(backend)
    assert [k for k in KERNELS if not callable(getattr(module, k, None))] == []


def test_the_reference_has_every_kernel_optional_ones_included():
    assert [k for k in KERNELS + OPTIONAL_KERNELS if not hasattr(backend_module("numpy"), k)] == []


@pytest.mark.parametrize("backend", sorted(_MODULES))
def test_each_kernel_lives_in_the_file_of_its_family(backend):
    """``reference/<family>.py``, ``numba_kernels/<family>.py`` and the compiled ``_<family>`` hold the same kernels."""
    module = backend_module(backend)
    for kernel in KERNELS + OPTIONAL_KERNELS:
        func = getattr(module, kernel, None)
        if func is None:
            continue
        reference = getattr(backend_module("numpy"), kernel).__module__.rsplit(".", 1)[1]
        assert func.__module__.rsplit(".", 1)[1].lstrip("_") == reference, kernel


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_has_one_file_per_family_and_exports_it(package):
    """A family is one file per backend plus one line in each package ``__init__``."""
    assert len(FAMILIES) >= 10
    root = BACKEND / package
    files = {p.stem for p in root.glob("*.py") if not p.stem.startswith("_")}
    features = set(FEATURE_FAMILIES) if package == "reference" else set()
    assert files == set(FAMILIES) | features, "one file per kernels/<family>.pyx, named as it"
    init = ast.parse((root / "__init__.py").read_text())
    starred = {node.module for node in init.body if isinstance(node, ast.ImportFrom) and node.level == 1
               and [a.name for a in node.names] == ["*"]}
    assert starred == set(FAMILIES)
    for family in FAMILIES + sorted(features):
        source = (root / f"{family}.py").read_text()
        assert "Shape letters" in ast.get_docstring(ast.parse(source)).split("\n\n")[1], \
            f"{package}/{family}.py opens with a legend of its shape letters"


def _test_nodes(path, name):
    """Test ``name`` of ``path``, every function of that file it calls (transitively) and the module-level names they
    read, as AST nodes."""
    body = ast.parse(path.read_text()).body
    functions = {node.name: node for node in body if isinstance(node, ast.FunctionDef)}
    constants = {t.id: node for node in body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}   # module-level tables a test reads (e.g. a tuple of kernel names)
    if name not in functions:
        return None
    seen, todo = {}, [name]
    while todo:
        node = functions[todo.pop()]
        if node.name not in seen:
            seen[node.name] = node
            todo += [n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                     and n.func.id in functions]
    read = {n.id for node in seen.values() for n in ast.walk(node) if isinstance(n, ast.Name)}
    return list(seen.values()) + [constants[n] for n in sorted(read & set(constants))]


REFERENCE_NAMES = ("ref", "reference")


def _runs_fast_and_reference(nodes, kernel):
    """``(fast, reference)``: whether the nodes call ``kernel`` outside the reference, and call the reference.

    A fast backend's kernel is named by a string (``kernel(backend, "matmul")``, a parametrized name) or taken
    as an attribute of anything but the reference module (``get_backend(backend).matmul``); the reference is
    ``ref.<kernel>`` / ``getattr(ref, name)`` or the ``"numpy"`` backend.
    """
    walked = [n for node in nodes for n in ast.walk(node)]
    fast = any(isinstance(n, ast.Constant) and n.value == kernel for n in walked) or any(
        isinstance(n, ast.Attribute) and n.attr == kernel
        and not (isinstance(n.value, ast.Name) and n.value.id in REFERENCE_NAMES) for n in walked)
    reference = any(isinstance(n, ast.Name) and n.id in REFERENCE_NAMES for n in walked) or any(
        isinstance(n, ast.Constant) and n.value == "numpy" for n in walked)
    return fast, reference


def test_every_kernel_has_a_reference_comparison_test():
    assert set(REFERENCE_TESTS) == set(KERNELS + OPTIONAL_KERNELS)
    for kernel, where in REFERENCE_TESTS.items():
        filename, name = where.split("::")
        nodes = _test_nodes(TESTS / filename, name)
        assert nodes is not None, f"{where} does not exist"
        assert _runs_fast_and_reference(nodes, kernel) == (True, True), f"{where} does not compare {kernel}"


def test_the_comparison_check_sees_a_missing_fast_call():
    tree = ast.parse("def test_a(backend):\n    ref.matmul(c, a, b, 0, 0)\n    kernel(backend, 'adam')(c)\n")
    assert _runs_fast_and_reference(tree.body, "matmul") == (False, True)
    tree = ast.parse("def test_a(backend):\n    get_backend(backend).matmul(c, a, b, 0, 0)\n")
    assert _runs_fast_and_reference(tree.body, "matmul") == (True, False)


def test_feature_families_have_a_twin_per_compiled_kernel_and_a_comparison_test():
    """Each reduced-precision family: a ``kernels/<family>.pyx`` whose every kernel (``def`` of the .pyx) has a
    NumPy twin of the same name in ``reference/<family>.py`` (its ``__all__``) and a named comparison test."""
    kernels = []
    for family in FEATURE_FAMILIES:
        source = (PYX / f"{family}.pyx").read_text()
        defs = sorted(line.split("(")[0][4:] for line in source.splitlines() if line.startswith("def "))
        twin = importlib.import_module(f"minicnn.backend.reference.{family}")
        assert defs == sorted(twin.__all__), family
        kernels += defs
    assert sorted(FEATURE_REFERENCE_TESTS) == sorted(kernels)
    for kernel, where in FEATURE_REFERENCE_TESTS.items():
        filename, name = where.split("::")
        nodes = _test_nodes(TESTS / filename, name)
        assert nodes is not None, f"{where} does not exist"
        assert _runs_fast_and_reference(nodes, kernel) == (True, True), f"{where} does not compare {kernel}"
