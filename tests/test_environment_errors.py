"""Errors of the environment (thread variables) are reported as what they are, never as a geometry error."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np
from minicnn import CNNClassifier, threads
X = np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32)
try:
    CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, backend=sys.argv[1]).fit(X, np.arange(20) % 2)
except threads.ThreadEnvironmentError as exc:
    print("ENVIRONMENT", exc)
except Exception as exc:
    print("OTHER", type(exc).__name__, exc)
else:
    print("FITTED")
"""


@pytest.mark.parametrize("name,value", [("NUMBA_NUM_THREADS", "0"),
                                        ("NUMBA_THREADING_LAYER", "bogus")])
def test_bad_numba_environment_is_an_environment_error_naming_the_variable(name, value):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_NUM", "NUMBA_THREADING"))}
    env[name] = value
    done = subprocess.run([sys.executable, "-c", SCRIPT, "numba"], capture_output=True, text=True, env=env,
                          timeout=300)
    out = done.stdout.strip()
    assert out.startswith("ENVIRONMENT"), (out, done.stderr[-1500:])
    assert f"{name}={value!r}" in out and "does not fit" not in out


def test_the_cli_reports_it_in_one_line(tmp_path):
    import os

    env = {**os.environ, "NUMBA_NUM_THREADS": "0"}
    done = subprocess.run([sys.executable, "-m", "minicnn", "fit", "--backend", "numba", "--epochs", "1",
                           "--out", str(tmp_path / "m.npz"), "--quiet"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "NUMBA_NUM_THREADS='0'" in done.stderr
