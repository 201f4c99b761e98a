"""``reducing_gap``: JPEGs decoded scaled down by libjpeg and a two-step resize, recorded and served identically.

The option reads as Pillow's ``Image.thumbnail`` does (``Image.draft`` then
``Image.resize(reducing_gap=)``), is validated at the edge, is written in the
preprocessing record only when set (older records and default readings keep
the full decode), is part of the cache's fingerprint, and a model fitted on
images read with it predicts the files identically through every face.
"""

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image, ImageOps  # noqa: E402

from minicnn import load, load_predictor, preprocessing  # noqa: E402
from minicnn.datasets import load_image_folder, load_images  # noqa: E402
from test_image_folder_cli import _fit, photos, rows_of, run_cli  # noqa: E402,F401
from test_images_fast import JPEGS, PHOTO  # noqa: E402


def _thumbnail_reading(path, size, gap, color):
    """An independent reading: Pillow's draft + reducing_gap resize, as ``Image.thumbnail`` does them."""
    with Image.open(path) as image:
        turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        request = (int(size[1] * gap), int(size[0] * gap))
        image.draft(None, request[::-1] if turned else request)
        image = ImageOps.exif_transpose(image).convert("RGB" if color == "rgb" else "L")
        image = image.resize(size[::-1], Image.Resampling.BILINEAR, reducing_gap=gap)
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


@pytest.mark.parametrize("size, gap", [((5, 5), 1.0), ((9, 13), 1.0), ((4, 6), 2.0), ((10, 10), 1.5)])
@pytest.mark.parametrize("kind", ["baseline-RGB", "progressive", "baseline-L", "exif-orientation", "png"])
def test_reading_is_pillows_thumbnail_reading_and_differs_from_the_full_decode(tmp_path, kind, size, gap):
    path = str(tmp_path / "a.png") if kind == "png" else JPEGS[kind](tmp_path / "a.jpg")
    if kind == "png":
        Image.fromarray(PHOTO).save(path)
    color = "grayscale" if kind == "baseline-L" else "rgb"
    X = load_images([path], image_size=size, color=color, reducing_gap=gap)
    np.testing.assert_array_equal(X[0], _thumbnail_reading(path, size, gap, color))
    full = load_images([path], image_size=size, color=color)
    assert not np.array_equal(X, full)   # the option is applied (every case here reduces by 2 or more)
    assert X.preprocessing == dict(full.preprocessing, reducing_gap=float(gap))
    assert "reducing_gap" not in full.preprocessing   # default readings write the record they always wrote


@pytest.mark.parametrize("value", [0.5, 0, -1.0, float("nan"), float("inf"), True, "1", [1.0]])
def test_bad_reducing_gap_names_the_parameter(tmp_path, value):
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    with pytest.raises(ValueError, match=r"reducing_gap must be None or a finite number >= 1.0; received "
                                         r"reducing_gap="):
        load_images([path], image_size=(8, 8), reducing_gap=value)


def test_reducing_gap_needs_an_image_size(tmp_path):
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="reducing_gap needs an image_size"):
        load_images([path], reducing_gap=1.0)


def test_record_keeps_the_key_only_when_set_and_accepts_older_records():
    old = preprocessing.make_record((8, 8), "rgb")
    assert "reducing_gap" not in old and preprocessing.problem(old, (8, 8, 3)) is None
    assert preprocessing.reading(old)["reducing_gap"] is None   # an older model keeps the full decode
    new = preprocessing.make_record((8, 8), "rgb", reducing_gap=2)
    assert new["reducing_gap"] == 2.0 and preprocessing.problem(new, (8, 8, 3)) is None
    assert preprocessing.reading(new)["reducing_gap"] == 2.0
    assert "optional keys" in preprocessing.problem(dict(old, reducing_gap=None))
    assert "reducing_gap must be" in preprocessing.problem(dict(old, reducing_gap=0.5))
    assert "expected a dict" in preprocessing.problem(dict(old, draft=True))


def test_cache_keeps_the_two_readings_apart(tmp_path):
    root = tmp_path / "photos"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            JPEGS["baseline-RGB"](root / name / f"{i}.jpg")
    cache = tmp_path / "cache"
    full, _, _ = load_image_folder(root, image_size=(5, 5), cache=cache)
    reduced, _, _ = load_image_folder(root, image_size=(5, 5), cache=cache, reducing_gap=1.0)
    assert not np.array_equal(full, reduced)
    assert len(list(cache.glob("*.npy"))) == 2
    again, _, _ = load_image_folder(root, image_size=(5, 5), cache=cache, reducing_gap=1.0)
    np.testing.assert_array_equal(again, reduced)
    assert again.preprocessing == reduced.preprocessing and again.preprocessing["reducing_gap"] == 1.0


def test_every_face_predicts_the_files_as_the_training_images(photos, tmp_path, capsys):   # noqa: F811
    """Trained on images read with reducing_gap: the estimator, load, load_predictor and the command agree."""
    X, y, class_names = load_image_folder(photos, image_size=(4, 4), reducing_gap=1.0)
    full, _, _ = load_image_folder(photos, image_size=(4, 4))
    assert not np.array_equal(X, full)
    clf = _fit(X, np.array(class_names)[y])
    assert clf.preprocessing_["reducing_gap"] == 1.0
    files = sorted(str(p) for p in photos.rglob("*.*"))
    expected = clf.predict_proba(X)
    assert not np.array_equal(clf.predict_proba(full), expected)   # a face reading without the key would show
    np.testing.assert_array_equal(clf.predict_proba(files), expected)
    path = tmp_path / "model.npz"
    clf.save(path)
    assert load(path).preprocessing_ == X.preprocessing
    np.testing.assert_array_equal(load(path).predict_proba(files), expected)
    np.testing.assert_array_equal(load_predictor(path).predict_proba(files), expected)
    code, out, err = run_cli("predict", "--model", path, photos / "bag", photos / "coat", photos / "shoe",
                             "--proba", capsys=capsys)
    assert code == 0, err
    rows = rows_of(out)
    assert [r[0] for r in rows[1:]] == files
    assert [r[1] for r in rows[1:]] == clf.predict(X).tolist()
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows[1:]], expected, rtol=1e-5, atol=1e-6)


def test_a_model_without_the_key_keeps_the_full_decode(photos, tmp_path):   # noqa: F811
    X, y, class_names = load_image_folder(photos, image_size=(4, 4))
    clf = _fit(X, np.array(class_names)[y])
    assert "reducing_gap" not in clf.preprocessing_
    clf.save(tmp_path / "m.npz")
    files = sorted(str(p) for p in photos.rglob("*.*"))
    np.testing.assert_array_equal(load_predictor(tmp_path / "m.npz").predict_proba(files), clf.predict_proba(X))
