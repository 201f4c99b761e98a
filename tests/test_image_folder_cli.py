"""A folder of image files through every face: the estimator, load/load_predictor and the command line agree."""

import csv
import io
import warnings

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image  # noqa: E402

from minicnn import CNNClassifier, load, load_predictor  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.datasets import load_digits_images, load_image_folder  # noqa: E402


def run_cli(*args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def rows_of(text):
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Class folders of mixed files: RGB and gray, PNG/JPEG/BMP/GIF/16-bit PNG, several sizes, same file names."""
    root = tmp_path_factory.mktemp("photos")
    X, y = load_digits_images()
    for label, name in ((0, "bag"), (1, "coat"), (7, "shoe")):
        (root / name).mkdir()
        for i, index in enumerate(np.flatnonzero(y == label)[:12]):
            gray = np.rint(X[index, :, :, 0] * 255).astype(np.uint8)
            image = Image.fromarray(np.dstack([gray, gray // 2, gray]) if i % 2 else gray)
            image = image.resize([(8, 8), (16, 16), (12, 9)][i % 3], Image.Resampling.NEAREST)
            kind = i % 5
            if kind == 4 and image.mode == "L":   # 16-bit
                Image.fromarray(np.asarray(image).astype(np.uint16) * 257).save(root / name / f"{i:04d}.png")
                continue
            ext = [".png", ".jpg", ".bmp", ".gif", ".png"][kind]
            image.save(root / name / f"{i:04d}{ext}", quality=95)
    return root


def _fit(X, y, **kwargs):
    clf = CNNClassifier(layers=("conv4", "maxpool", "dense16"), max_iter=3, backend="numpy", random_state=0,
                        **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X, y)


@pytest.mark.parametrize("policy", [{}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}])
@pytest.mark.parametrize("color", ["auto", "grayscale"])
def test_every_face_predicts_the_files_as_the_training_images(photos, tmp_path, capsys, policy, color):
    X, y, class_names = load_image_folder(photos, image_size=(10, 10), color=color, **policy)
    labels = np.array(class_names)[y]
    clf = _fit(X, labels)
    files = sorted(str(p) for p in photos.rglob("*.*"))
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(files), expected)
    path = tmp_path / "model.npz"
    clf.save(path)
    np.testing.assert_array_equal(load(path).predict_proba(files), expected)
    np.testing.assert_array_equal(load_predictor(path).predict_proba(files), expected)
    np.testing.assert_array_equal(load_predictor(path).predict(files[0]), clf.predict(X[:1]))
    code, out, err = run_cli("predict", "--model", path, photos / "bag", photos / "coat", photos / "shoe",
                             "--proba", capsys=capsys)
    assert code == 0, err
    rows = rows_of(out)
    assert rows[0] == ["id", "prediction"] + [f"proba_{c}" for c in class_names]
    assert [r[0] for r in rows[1:]] == files   # keyed by the path as given: bag/0001.png, coat/0001.png differ
    assert [r[1] for r in rows[1:]] == clf.predict(X).tolist()
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows[1:]], expected, rtol=1e-5, atol=1e-6)


def test_channels_first_model_reads_files_in_its_layout(photos):
    X, y, _ = load_image_folder(photos, image_size=(8, 8), color="rgb")
    clf = _fit(X.transpose(0, 3, 1, 2), y, data_format="channels_first")
    files = sorted(str(p) for p in photos.rglob("*.*"))
    np.testing.assert_array_equal(clf.predict_proba(files), clf.predict_proba(np.asarray(X).transpose(0, 3, 1, 2)))


def test_fit_command_on_folders_then_predict(photos, tmp_path, capsys):
    model = tmp_path / "m.npz"
    code, out, err = run_cli("fit", "--data", f"folder:{photos}", "--test-data", f"folder:{photos}",
                             "--image-size", "12,12", "--color", "rgb", "--pad-to-aspect-ratio", "--layers",
                             "conv4,maxpool", "--epochs", 2, "--quiet", "--out", model, capsys=capsys)
    assert code == 0, err
    assert "(36 images)" in out
    clf = load(model)
    assert clf.preprocessing_["image_size"] == [12, 12] and clf.preprocessing_["color"] == "rgb"
    assert clf.preprocessing_["pad_to_aspect_ratio"] and list(clf.classes_) == ["bag", "coat", "shoe"]
    X, _, _ = load_image_folder(photos, image_size=(12, 12), color="rgb", pad_to_aspect_ratio=True)
    shoe = sorted((photos / "shoe").iterdir())[0]
    code, out, err = run_cli("predict", "--model", model, shoe, capsys=capsys)
    assert code == 0, err
    assert rows_of(out)[1] == [str(shoe), clf.predict(X[24:25])[0]]


@pytest.mark.parametrize("options, record", [
    (["--interpolation", "bicubic"], {"interpolation": "bicubic"}),
    (["--reducing-gap", "1.5"], {"reducing_gap": 1.5}),
    (["--crop-to-aspect-ratio", "--interpolation", "lanczos", "--reducing-gap", "1"],
     {"crop_to_aspect_ratio": True, "interpolation": "lanczos", "reducing_gap": 1.0}),
])
def test_every_reading_option_of_fit_is_recorded_and_read_alike_by_evaluate_and_predict(photos, tmp_path, capsys,
                                                                                         options, record):
    """Every reading option the command takes reaches the record, and evaluate and predict read the files with it."""
    model = tmp_path / "m.npz"
    code, out, err = run_cli("fit", "--data", f"folder:{photos}", "--test-size", "0.25", "--image-size", "6,6",
                             "--color", "rgb", *options, "--layers", "conv4,maxpool", "--epochs", 1, "--quiet",
                             "--out", model, capsys=capsys)
    assert code == 0, err
    clf = load(model)
    assert {k: clf.preprocessing_.get(k) for k in record} == record
    reading = {k: v for k, v in record.items()}
    X, y, classes = load_image_folder(photos, image_size=(6, 6), color="rgb", **reading)
    files = sorted(str(p) for p in photos.rglob("*.*"))
    code, out, err = run_cli("predict", "--model", model, photos, "--proba", capsys=capsys)
    assert code == 0, err
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows_of(out)[1:]], clf.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    assert [r[0] for r in rows_of(out)[1:]] == files
    code, out, err = run_cli("evaluate", "--model", model, "--test-data", f"folder:{photos}", capsys=capsys)
    assert code == 0, err
    assert f"{clf.score(X, np.array(classes)[y]):.4f}" in out


@pytest.mark.parametrize("args, message", [
    (["--data", "folder:PHOTOS", "--image-size", "8,8", "--reducing-gap", "0.5"], "--reducing-gap"),
    (["--data", "folder:PHOTOS", "--reducing-gap", "2"], "--reducing-gap needs an --image-size"),
    (["--data", "digits", "--interpolation", "bicubic"], "--interpolation: only for folder:PATH data"),
    (["--data", "digits", "--image-size", "8,8"], "--image-size: only for folder:PATH data"),
    (["--data", "folder:"], "folder:PATH needs a folder"),
    (["--data", "folder:/no/such/dir"], "is not a folder"),
    (["--data", "folder:PHOTOS", "--image-size", "0,3"], "--image-size: expected HEIGHT,WIDTH"),
    (["--data", "folder:PHOTOS", "--crop-to-aspect-ratio"], "--crop-to-aspect-ratio needs an --image-size"),
    (["--data", "folder:PHOTOS"], "different sizes"),   # mixed sizes without --image-size
])
def test_fit_command_bad_image_options_are_one_line(photos, tmp_path, capsys, args, message):
    args = [a.replace("PHOTOS", str(photos)) for a in args]
    code, out, err = run_cli("fit", *args, "--epochs", 1, "--quiet", "--out", tmp_path / "m.npz", capsys=capsys)
    assert code in (1, 2) and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.npz").exists()


def test_predict_command_reads_files_of_a_model_without_record(tmp_path, capsys):
    """A model fitted on arrays (or saved before records existed) reads files at its size, in its channels;
    a 16-bit PNG is scaled by 65535 (it was read as a white image)."""
    X, y = load_digits_images()
    clf = _fit(X[:200], y[:200])
    model = tmp_path / "digits.npz"
    clf.save(model)
    levels = np.rint(X[:3, :, :, 0] * 65535).astype(np.uint16)
    paths = []
    for i, image in enumerate(levels):
        paths.append(tmp_path / f"deep{i}.png")
        Image.fromarray(image).save(paths[-1])
    code, out, err = run_cli("predict", "--model", model, *paths, "--proba", capsys=capsys)
    assert code == 0, err
    proba = np.array([[float(v) for v in r[2:]] for r in rows_of(out)[1:]])
    np.testing.assert_allclose(proba, clf.predict_proba(levels[..., None] / np.float32(65535)), rtol=1e-5,
                               atol=1e-6)
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "colour.jpg")
    code, out, err = run_cli("predict", "--model", model, tmp_path / "small.png", capsys=capsys)
    assert code == 1 and "small.png" in err and "image_size" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("predict", "--model", model, tmp_path / "colour.jpg", capsys=capsys)
    assert code == 0, err   # an RGB file for a gray model: read as gray (luma)
    (tmp_path / "notes.txt").write_text("no image")
    code, out, err = run_cli("predict", "--model", model, tmp_path / "deep0.png", tmp_path / "notes.txt",
                             capsys=capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "wide.png")
    code, out, err = run_cli("predict", "--model", model, tmp_path / "deep0.png", tmp_path / "wide.png",
                             capsys=capsys)
    assert code == 1 and "different sizes" in err and "takes 8x8" in err and "wide.png" in err, err
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.fromarray(levels[0]).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image: a folder's files with an image extension are read")
    code, out, err = run_cli("predict", "--model", model, folder, capsys=capsys)
    assert code == 0 and [r[0] for r in rows_of(out)[1:]] == [str(folder / "a.png")], err
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run_cli("predict", "--model", model, tmp_path / "broken.png", capsys=capsys)
    assert code == 1 and "broken.png" in err and len(err.strip().splitlines()) == 1, err


def test_images_too_small_for_the_network_are_one_line_naming_their_shape(photos, tmp_path, capsys):
    code, out, err = run_cli("fit", "--data", f"folder:{photos}", "--image-size", "2,2", "--layers",
                             "conv4,maxpool,conv4", "--padding", "valid", "--epochs", 1, "--quiet", "--out",
                             tmp_path / "m.npz", capsys=capsys)
    assert code == 1 and "(2, 2, 3)" in err and len(err.strip().splitlines()) == 1, err


def test_an_rgb_model_without_record_predicts_rgb_files(tmp_path, capsys):
    """The reported case: an RGB model could not predict an RGB PNG ("expects (8, 8, 3)"), a JPEG was read as idx."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    clf = _fit(X / np.float32(255), np.arange(40) % 2)
    clf.save(tmp_path / "rgb.npz")
    Image.fromarray(X[0]).save(tmp_path / "a.png")
    Image.fromarray(X[1]).save(tmp_path / "b.bmp")
    code, out, err = run_cli("predict", "--model", tmp_path / "rgb.npz", tmp_path / "a.png", tmp_path / "b.bmp",
                             "--proba", capsys=capsys)
    assert code == 0, err
    proba = np.array([[float(v) for v in r[2:]] for r in rows_of(out)[1:]])
    np.testing.assert_allclose(proba, clf.predict_proba(X[:2] / np.float32(255)), rtol=1e-5, atol=1e-6)
