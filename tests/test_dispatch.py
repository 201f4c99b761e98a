"""Run-time instruction-set dispatch of the compiled kernels (:mod:`minicnn.backend.isa`).

* Every level this machine (and this build) has, forced in a fresh process by
  ``MINICNN_CPU_LEVEL``: every compiled kernel against the NumPy reference and
  1 vs 2 threads bit-identical (``tests/level_check.py``; the contract is per
  machine, backend and level).
* A level the CPU lacks, an unknown level, a level the build lacks: refused
  with an error naming the variable, the value and the missing features, and
  never silently replaced by another backend.
* The build reads nothing of the building machine's CPU: ``setup.py`` never
  opens ``/proc/cpuinfo`` nor asks for ``-march=native``, and its extension
  list is a function of the target platform only.
* The level in use is reported (``Sequential.summary()``, ``minicnn bench``).
"""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minicnn.backend import isa, levels

REPO = Path(__file__).resolve().parents[1]


def _env(**update):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop(isa.ENV_VAR, None)
    env.update(update)
    return env


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=_env(**env), cwd=REPO, timeout=900)


def _cython_built():
    try:
        import minicnn.backend.cython_kernels  # noqa: F401
    except ImportError:
        return False
    return True


needs_cython = pytest.mark.skipif(not _cython_built(), reason="compiled kernels not built")


def _machine_levels():
    from minicnn.backend import cython_kernels as ck

    features = isa.cpu_features()
    return [level for level in ck._built_levels() if not isa.missing_features(level, features)]


# ----------------------------------------------------------------------------- every level the machine has
@needs_cython
@pytest.mark.parametrize("level", isa.LEVELS)
def test_every_kernel_at_each_level_matches_reference_and_thread_counts(level):
    if level not in _machine_levels():
        pytest.skip(f"this CPU or build lacks level {level!r}: "
                    f"missing {isa.missing_features(level, isa.cpu_features())}")
    run = subprocess.run([sys.executable, str(REPO / "tests" / "level_check.py"), level], capture_output=True,
                         text=True, env=_env(**{isa.ENV_VAR: level}), cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.strip().endswith(f"ok {level}")


@needs_cython
def test_auto_runs_the_highest_level_of_the_machine_and_each_module_at_its_best_build():
    from minicnn.backend import cython_kernels as ck

    assert ck.CPU_LEVEL == _machine_levels()[-1]
    if os.environ.get(isa.ENV_VAR, "auto") in ("", "auto"):
        for value in ("", "auto"):
            out = _python("from minicnn.backend import cython_kernels as ck; print(ck.CPU_LEVEL)", **{isa.ENV_VAR: value})
            assert out.returncode == 0, out.stderr
            assert out.stdout.split() == [ck.CPU_LEVEL]
    for module, level in ck.MODULE_LEVELS.items():
        assert level in isa.levels_of(module)
        assert isa.LEVELS.index(level) <= isa.LEVELS.index(ck.CPU_LEVEL)


# ----------------------------------------------------------------------------- refusals
FULL = set(isa.LEVEL_TABLE["avx512"][1])


@pytest.mark.parametrize("level, feature", [(level, feature) for level in isa.LEVELS
                                            for feature in isa.LEVEL_TABLE[level][1]])
def test_forcing_a_level_without_one_of_its_features_names_the_variable_and_the_feature(level, feature):
    features = FULL - {feature}
    with pytest.raises(isa.CPULevelError) as info:
        isa.choose_level({isa.ENV_VAR: level}, features)
    message = str(info.value)
    assert f"{isa.ENV_VAR}={level!r}" in message and f"missing {feature}" in message
    lower = isa.choose_level({}, features)
    assert isa.LEVELS.index(lower) < isa.LEVELS.index(level)          # auto steps down instead
    assert isa.choose_level({isa.ENV_VAR: lower}, features) == lower   # and the lower level may be forced


@pytest.mark.parametrize("value", ["AVX2", "v3", "x86-64-v4", "native", "avx2 ", "1"])
def test_unknown_level_names_are_refused_with_the_value(value):
    if value.strip() in isa.LEVELS:
        assert isa.choose_level({isa.ENV_VAR: value}, FULL) == value.strip()
        return
    with pytest.raises(isa.CPULevelError, match=f"must be one of .*received {isa.ENV_VAR}={value.strip()!r}"):
        isa.choose_level({isa.ENV_VAR: value}, FULL)


@pytest.mark.parametrize("level", isa.LEVELS[1:])
def test_a_level_the_build_lacks_is_refused_and_never_chosen(level):
    built = tuple(lv for lv in isa.LEVELS if lv != level)
    with pytest.raises(isa.CPULevelError, match=f"this build has no kernels for level {level!r}"):
        isa.choose_level({isa.ENV_VAR: level}, FULL, built=built)
    assert isa.choose_level({}, FULL, built=built) != level


def test_a_cpu_without_any_level_feature_runs_baseline():
    assert isa.choose_level({}, set()) == "baseline"
    assert isa.choose_level({isa.ENV_VAR: "baseline"}, set()) == "baseline"


@needs_cython
@pytest.mark.parametrize("backend", ["cython", "auto"])
def test_forcing_a_level_the_cpu_lacks_fails_the_import_clearly(backend):
    """In a fresh process whose CPU reports no AVX2 (for real, or pretended): the backend errors, no fallback."""
    out = _python(f"""
        from minicnn.backend import isa, levels
        isa.cpu_features = lambda: {{"SSE3"}}
        from minicnn.backend import get_backend
        try:
            get_backend({backend!r})
        except isa.CPULevelError as exc:
            print("refused:", exc)
        """, **{isa.ENV_VAR: "avx2"})
    assert out.returncode == 0, out.stderr
    assert "refused: MINICNN_CPU_LEVEL='avx2' needs CPU features this CPU lacks" in out.stdout
    assert "missing SSSE3" in out.stdout and "AVX2" in out.stdout
    assert "set MINICNN_CPU_LEVEL to a lower level (baseline) or unset it" in out.stdout


@needs_cython
def test_numpy_backend_ignores_the_level_variable():
    out = _python("from minicnn.backend import get_backend; print(get_backend('numpy').name)",
                  **{isa.ENV_VAR: "nonsense"})
    assert out.returncode == 0 and out.stdout.split() == ["numpy"], out.stderr


# ----------------------------------------------------------------------------- the build
def test_setup_reads_nothing_of_the_building_machines_cpu():
    """Audited: running setup.py's module code opens no /proc/cpuinfo, imports no CPU probe, starts no process."""
    code = f"""
        import runpy, sys
        seen = []
        def hook(event, args):
            if event == "open" and str(args[0]).startswith(("/proc/cpuinfo", "/sys/devices/system/cpu")):
                seen.append(str(args[0]))
            if event == "import" and args[0].split(".")[0] in ("cpuinfo", "archspec"):   # CPU-probing packages
                seen.append(args[0])
            if event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"):
                seen.append(repr(args))
        sys.addaudithook(hook)
        sys.argv = ["setup.py", "--name"]
        namespace = runpy.run_path("setup.py", run_name="__main__")
        x86 = namespace["kernel_extensions"]("linux-x86_64")
        arm = namespace["kernel_extensions"]("linux-aarch64")
        print("SEEN", seen)
        print("X86", sorted((e.name, tuple(e.extra_compile_args)) for e in x86))
        print("ARM", sorted((e.name, tuple(e.extra_compile_args)) for e in arm))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                         env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    lines = {line.split(" ", 1)[0]: ast.literal_eval(line.split(" ", 1)[1]) for line in out.stdout.splitlines()
             if line.split(" ", 1)[0] in ("SEEN", "X86", "ARM")}
    assert lines["SEEN"] == []
    stems = sorted(p.stem for p in (REPO / "kernels").glob("*.pyx"))
    x86 = dict(lines["X86"])
    expected = {isa.module_name(stem, level): level for stem in stems for level in isa.levels_of(stem)}
    assert set(x86) == set(expected)
    for name, level in expected.items():
        flags = x86[name]
        assert [f for f in flags if f.startswith("-march=")] == list(isa.LEVEL_TABLE[level][0]), name
        stem = name.rsplit("._", 1)[1]
        extension = isa.FEATURE_MODULES[stem][1] if stem in isa.FEATURE_MODULES else ()   # e.g. -mavx512vnni
        assert [f for f in flags if f.startswith(("-mavx", "-mfma"))] == list(extension), name
        assert not any("native" in f for f in flags), name
    arm = dict(lines["ARM"])
    assert set(arm) == {isa.module_name(stem, "baseline") for stem in stems if stem not in isa.FEATURE_MODULES}
    assert not any(f.startswith("-m") for flags in arm.values() for f in flags)


def test_setup_source_never_mentions_the_build_machines_cpu():
    source = (REPO / "setup.py").read_text()
    for word in ("cpuinfo", "native", "cpu_features", "choose_level", "cpuid"):
        assert word not in source.lower(), word


def test_level_table_names_existing_modules_and_every_level():
    stems = {p.stem for p in (REPO / "kernels").glob("*.pyx")}
    assert set(isa.LEVEL_TABLE) == set(isa.LEVELS) == {"baseline", *isa.LEVEL_MODULES}
    for level, modules in isa.LEVEL_MODULES.items():
        assert set(modules) <= stems, (level, set(modules) - stems)
    assert set(isa.FMA_MODULES) <= {m for ms in isa.LEVEL_MODULES.values() for m in ms}
    for module, (level, flags, features, _) in isa.FEATURE_MODULES.items():   # built only at their level
        assert module in stems and isa.levels_of(module) == (level,) and flags and features, module
        assert module not in {m for ms in isa.LEVEL_MODULES.values() for m in ms}, module
    for lower, higher in zip(isa.LEVELS, isa.LEVELS[1:]):   # each level's features include the lower's
        assert set(isa.LEVEL_TABLE[lower][1]) <= set(isa.LEVEL_TABLE[higher][1])


# ----------------------------------------------------------------------------- reporting
@needs_cython
def test_summary_reports_the_level_of_the_compiled_kernels_and_numbas_target():
    from minicnn.backend import cython_kernels as ck

    for backend, wanted in (("cython", f"cpu level: {ck.CPU_LEVEL}"), ("auto", f"cpu level: {ck.CPU_LEVEL}"),
                            ("numpy", "cpu level: none (NumPy)")):
        summary = _summary(backend)
        assert wanted in summary, summary
    numba = _summary("numba")
    assert "numba target: " in numba and "cpu level" not in numba.replace("cpu level: none", "")


def _summary(backend):
    import numpy as np

    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
    from minicnn.network import Sequential

    net = Sequential([Conv2D(4, 3), MaxPool2D(2), Flatten(), Dense(3)], backend=backend)
    net.build((8, 8, 1), rng=np.random.default_rng(0))
    return net.summary()


def test_bench_report_names_the_level():
    from minicnn.tools import bench

    report = {"machine": {"cpu": "x", "cpus": 2, "python": "3", "numpy": "2", "torch": None,
                          "kernels": "cpu level: avx2 (x86-64-v3; MINICNN_CPU_LEVEL forces a lower one)"},
              "load_average_start": None, "physical": {}, "results": [], "targets": []}
    assert "kernels: cpu level: avx2 (x86-64-v3;" in bench.format_report(report).splitlines()[1]
    machine = bench.machine_description(torch=None)
    assert machine["kernels"] == levels.describe({"cython", "numba"})


@pytest.mark.parametrize("face", ["load_predictor", "load"])
def test_a_bad_level_in_the_environment_is_not_blamed_on_the_model_file(face, tmp_path):
    import numpy as np

    from minicnn import CNNClassifier

    path = tmp_path / "m.npz"
    X = np.random.default_rng(0).random((20, 8, 8, 1)).astype(np.float32)
    CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, backend="cython" if _cython_built() else "numpy",
                  random_state=0).fit(X, np.arange(20) % 2).save(path)
    run = _python(f"import minicnn; minicnn.{face}({str(path)!r})", **{isa.ENV_VAR: "bogus"})
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "CPULevelError" in last and f"received {isa.ENV_VAR}='bogus'" in last and "model file" not in last
