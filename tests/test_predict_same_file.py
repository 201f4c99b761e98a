"""``minicnn predict`` writes one row per file: every other spelling of a file already reached adds no row.

The rule (``minicnn._images_cli.ONE_ROW_PER_FILE``, in ``minicnn predict --help``): rows are keyed by the path
as given, in argument order; a file is known by its device and inode, so a repeat, ``./a.png`` beside
``a.png``, an absolute path, a symlink, a hard link and the file inside a folder also given all reach the same
file, which keeps the row of its first spelling. One warning names each spelling dropped.
"""

import csv
import io
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image  # noqa: E402

from helpers import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    from minicnn import CNNClassifier
    from minicnn.datasets import load_digits_images

    root = tmp_path_factory.mktemp("same")
    X, y = load_digits_images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0, backend="numpy").fit(
            X[:100], y[:100]).save(root / "m.npz")
    (root / "folder").mkdir()
    for i in range(3):
        Image.fromarray(np.rint(X[i, :, :, 0] * 255).astype(np.uint8)).save(root / "folder" / f"{i}.png")
    os.symlink(root / "folder" / "0.png", root / "link.png")
    os.link(root / "folder" / "0.png", root / "hard.png")
    return root


SPELLINGS = {   # another spelling of folder/0.png, relative to the model's folder
    "repeated": "folder/0.png", "dot-slash": "./folder/0.png", "absolute": "{root}/folder/0.png",
    "dot-dot": "folder/../folder/0.png", "symlink": "link.png", "hard link": "hard.png", "inside a folder": "folder",
}


def _rows(text):
    return list(csv.reader(io.StringIO(text)))[1:]


@pytest.mark.parametrize("first_is_folder", [False, True])
@pytest.mark.parametrize("kind", list(SPELLINGS))
def test_every_spelling_of_a_file_gives_it_one_row(model_and_images, monkeypatch, kind, first_is_folder):
    root = model_and_images
    monkeypatch.chdir(root)
    first = "folder" if first_is_folder else "folder/0.png"
    other = SPELLINGS[kind].format(root=root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli("predict", "--model", "m.npz", first, other)
    assert code == 0, err
    ids = [row[0] for row in _rows(out)]
    files = {os.path.realpath(i) for i in ids}
    assert len(ids) == len(files), ids                       # one row per file
    assert ids[0] == os.path.join(first, "0.png") if first_is_folder else ids[0] == first   # keyed as first given
    assert files == {str(root / "folder" / f"{i}.png") for i in range(3 if "folder" in (first, other) else 1)}
    said = err + " ".join(str(w.message) for w in caught)
    if kind in ("repeated", "inside a folder"):   # the same string twice: said how it came again, no "a -> a"
        assert f"{ids[0]} (named again, or inside a folder also given)" in said and "-> " not in said, said
    else:
        assert "a second time" in said and "-> " + ids[0] in said, said   # the dropped spelling is named


def test_distinct_files_with_one_name_keep_their_rows(model_and_images, tmp_path, monkeypatch):
    """Two files named alike in two folders are two files: both rows, keyed by their paths, no warning."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.open(model_and_images / "folder" / "0.png").save(tmp_path / name / "0.png")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("predict", "--model", model_and_images / "m.npz", "a", "b")
    assert code == 0 and [r[0] for r in _rows(out)] == ["a/0.png", "b/0.png"] and "warning" not in err, (out, err)


def test_the_rule_is_in_the_help():
    from minicnn._images_cli import ONE_ROW_PER_FILE
    from minicnn.cli import build_parser, commands_parser

    text = " ".join(commands_parser(build_parser(), "predict").format_help().split())
    assert " ".join(ONE_ROW_PER_FILE.split()) in text
