"""Every resize option of ``minicnn fit`` given without ``--image-size`` is refused, naming it (never ignored).

``--interpolation``, ``--reducing-gap``, ``--crop-to-aspect-ratio`` and ``--pad-to-aspect-ratio`` only act on
the resize to ``--image-size``: typed without it, nothing is resized, so the value would be silently dropped
(and the model's record would keep a filter no image went through). Swept over every such option and value.
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("PIL", reason="folder: data needs Pillow")
from PIL import Image  # noqa: E402

from helpers import run_cli  # noqa: E402
from minicnn.preprocessing import INTERPOLATIONS  # noqa: E402

CASES = ([["--interpolation", name] for name in INTERPOLATIONS if name != "bilinear"]
         + [["--reducing-gap", "2"], ["--crop-to-aspect-ratio"], ["--pad-to-aspect-ratio"]])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("resize")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


@pytest.mark.parametrize("option", CASES, ids=" ".join)
def test_a_resize_option_without_an_image_size_is_refused(folder, option, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run_cli("fit", "--quiet", "--epochs", "1", "--layers", "conv2,maxpool",
                                 "--data", f"folder:{folder}", "--test-size", "0.5", *option,
                                 "--out", str(tmp_path / "m.npz"))
    assert code in (1, 2) and err.startswith("minicnn fit: error: "), (code, err)
    assert option[0] in err and "--image-size" in err and "Traceback" not in err, err
    assert not (tmp_path / "m.npz").exists()


def test_the_default_filter_without_an_image_size_fits(folder, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run_cli("fit", "--quiet", "--epochs", "1", "--layers", "conv2,maxpool",
                                 "--data", f"folder:{folder}", "--test-size", "0.5", "--out", str(tmp_path / "m.npz"))
    assert code == 0, err
