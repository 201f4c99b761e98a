"""Reading your own images (minicnn.images): every format, colour mode, resize policy, cache and bad input."""

import os
import warnings

import numpy as np
import pytest

PIL = pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image, features  # noqa: E402

from minicnn.datasets import load_image_folder, load_images  # noqa: E402
from minicnn.images import ImageFileError  # noqa: E402
from minicnn import images as images_module  # noqa: E402

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
RGB = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
SMOOTH = np.repeat(np.repeat(RNG.integers(40, 216, (5, 6, 3), dtype=np.uint8), 8, 0), 8, 1)   # 40x48, JPEG-friendly
GRAY16 = RNG.integers(0, 30000, (10, 12)).astype(np.uint16)   # never above 0.46: a "white image" bug shows


def luma(rgb):
    """ITU-R 601-2 luma of uint8 RGB, as Pillow rounds it (an independent formula)."""
    rgb = rgb.astype(np.int64)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def _palette(path, save=None):
    image = Image.fromarray(RGB).quantize(colors=16)
    image.save(path, **(save or {}))
    return np.asarray(image.convert("RGB"))


# name -> (writer(path) -> expected float pixels (h, w, c) in the file's native colour, tolerance, native colour)
def _formats():
    cases = {
        "png-L": (".png", lambda p: Image.fromarray(GRAY).save(p), GRAY[..., None] / 255, 0, "grayscale"),
        "png-RGB": (".png", lambda p: Image.fromarray(RGB).save(p), RGB / 255, 0, "rgb"),
        "png-16bit": (".png", lambda p: Image.fromarray(GRAY16).save(p), GRAY16[..., None] / 65535, 1e-6,
                      "grayscale"),
        "png-RGBA": (".png", lambda p: Image.fromarray(np.dstack([RGB, GRAY])).save(p), RGB / 255, 0, "rgb"),
        "png-LA": (".png", lambda p: Image.fromarray(np.dstack([GRAY, GRAY[::-1]])).save(p), GRAY[..., None] / 255,
                   0, "grayscale"),
        "png-1bit": (".png", lambda p: Image.fromarray(GRAY > 128).save(p), (GRAY > 128)[..., None] * 1.0, 0,
                     "grayscale"),
        "bmp": (".bmp", lambda p: Image.fromarray(RGB).save(p), RGB / 255, 0, "rgb"),
        "tiff-RGB": (".tif", lambda p: Image.fromarray(RGB).save(p), RGB / 255, 0, "rgb"),
        "tiff-16bit": (".tiff", lambda p: Image.fromarray(GRAY16).save(p), GRAY16[..., None] / 65535, 1e-6,
                       "grayscale"),
        "jpeg-RGB": (".jpg", lambda p: Image.fromarray(SMOOTH).save(p, quality=95), SMOOTH / 255, 0.04, "rgb"),
        "jpeg-L": (".jpeg", lambda p: Image.fromarray(SMOOTH[..., 0]).save(p, quality=95), SMOOTH[..., :1] / 255,
                   0.04, "grayscale"),
        "jpeg-CMYK": (".jpg", lambda p: Image.fromarray(SMOOTH).convert("CMYK").save(p, quality=95), SMOOTH / 255,
                      0.04, "rgb"),
        "gif-palette": (".gif", lambda p: _palette(p) / 255, None, 0, "rgb"),
        "gif-gray": (".gif", lambda p: Image.fromarray(GRAY).save(p), GRAY[..., None] / 255, 0, "grayscale"),
    }
    if features.check("webp"):
        cases["webp-lossless"] = (".webp", lambda p: Image.fromarray(RGB).save(p, lossless=True), RGB / 255, 0,
                                  "rgb")
        cases["webp-lossy"] = (".webp", lambda p: Image.fromarray(SMOOTH).save(p, quality=95), SMOOTH / 255, 0.04,
                               "rgb")
    return cases


FORMATS = _formats()


def write(tmp_path, name):
    ext, writer, expected, tol, native = FORMATS[name]
    path = tmp_path / f"{name}{ext}"
    returned = writer(path)
    expected = returned if expected is None else expected
    return str(path), np.asarray(expected, dtype=np.float64), tol, native


def _close(actual, expected, tol):
    if tol == 0:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-7)
    else:   # lossy: near on average, never far
        assert np.abs(actual - expected).mean() < tol and np.abs(actual - expected).max() < 0.5


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("color", ["auto", "grayscale", "rgb"])
def test_every_format_in_every_colour_mode_reads_its_pixels(tmp_path, name, color):
    path, expected, tol, native = write(tmp_path, name)
    X = load_images([path], color=color)
    assert X.dtype == np.float32 and X.flags.c_contiguous and X.ndim == 4 and len(X) == 1
    assert 0.0 <= X.min() and X.max() <= 1.0
    final = native if color == "auto" else color
    assert X.shape[-1] == {"grayscale": 1, "rgb": 3}[final] and X.preprocessing["color"] == final
    if final == native:
        want = expected
    elif final == "rgb":   # gray repeated into three equal channels
        want = np.repeat(expected, 3, axis=2)
    else:                  # RGB to luma, as Pillow (and TensorFlow's rgb_to_grayscale) weighs it
        want = luma(np.rint(expected * 255).astype(np.uint8))[..., None] / 255
        tol = max(tol, 1 / 255 + 1e-7) if tol == 0 else tol
        if tol < 0.01:
            np.testing.assert_allclose(X[0], want, atol=tol)
            return
    _close(X[0], want, tol)


def test_16bit_png_is_scaled_by_65535_not_clipped_white(tmp_path):
    """The 16-bit PNG read as a white image: 30000/65535 is 0.46, not 1."""
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 30000, np.uint16)).save(path)
    X = load_images([path], image_size=(2, 2))
    np.testing.assert_allclose(X, 30000 / 65535, rtol=1e-6)
    X = load_images([path], color="rgb")
    np.testing.assert_allclose(X, 30000 / 65535, rtol=1e-6)


@pytest.mark.parametrize("orientation, turn", [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)),
                                               (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
                                               (2, lambda a: a[:, ::-1])])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    path = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(GRAY).save(path, exif=exif)
    X = load_images([path])
    np.testing.assert_array_equal(X[0, :, :, 0], turn(GRAY) / np.float32(255))
    # the size check reads the header: a quarter-turned image is listed at its displayed size
    assert load_images([path, path]).shape[1:3] == turn(GRAY).shape


def _halves(width=20, height=10):
    image = np.zeros((height, width), np.uint8)
    image[:, width // 2:] = 255
    return image


def test_resize_policies(tmp_path):
    """stretch (the default), crop_to_aspect_ratio and pad_to_aspect_ratio, as Keras defines them."""
    halves, white = tmp_path / "halves.png", tmp_path / "white.png"
    Image.fromarray(_halves()).save(halves)
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(white)
    stretched = load_images([halves], image_size=(10, 10))[0, :, :, 0]
    assert stretched[:, :4].max() < 0.05 and stretched[:, 6:].min() > 0.95
    cropped = load_images([halves], image_size=(10, 10), crop_to_aspect_ratio=True)[0, :, :, 0]
    np.testing.assert_array_equal(cropped, _halves()[:, 5:15] / np.float32(255))   # the centred 10x10 box
    padded = load_images([white], image_size=(10, 10), pad_to_aspect_ratio=True)[0, :, :, 0]
    assert padded[:2].max() < 0.05 and padded[-2:].max() < 0.05 and padded[3:7].min() > 0.95   # black bands
    assert load_images([white], image_size=(5, 10), pad_to_aspect_ratio=True).min() > 0.99   # same ratio: no band
    nearest = load_images([halves], image_size=(5, 10), interpolation="nearest")[0, :, :, 0]
    np.testing.assert_array_equal(nearest, _halves()[::2, ::2] / np.float32(255))
    for policy in ({}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}):
        record = load_images([halves], image_size=(7, 9), **policy).preprocessing
        assert record["image_size"] == [7, 9]
        assert record["crop_to_aspect_ratio"] == policy.get("crop_to_aspect_ratio", False)
        assert record["pad_to_aspect_ratio"] == policy.get("pad_to_aspect_ratio", False)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"image_size": (0, 3)}, "image_size"), ({"image_size": 8}, "image_size"), ({"image_size": (2.5, 3)}, "image_size"),
    ({"color": "rgba"}, "color"), ({"interpolation": "cubic"}, "interpolation"),
    ({"crop_to_aspect_ratio": True}, "image_size"), ({"pad_to_aspect_ratio": True}, "image_size"),
    ({"image_size": (4, 4), "crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, "crop_to_aspect_ratio"),
    ({"crop_to_aspect_ratio": "yes", "image_size": (4, 4)}, "crop_to_aspect_ratio"),
    ({"on_error": "ignore"}, "on_error"), ({"n_threads": 0}, "n_threads"), ({"mmap_mode": "r"}, "mmap_mode"),
])
def test_bad_options_name_the_parameter(tmp_path, kwargs, parameter):
    root = _folder(tmp_path)
    with pytest.raises(ValueError, match=parameter):
        load_image_folder(root, **kwargs)


def _folder(tmp_path, classes=("cat", "dog"), n=3, size=(10, 12), mode="L"):
    root = tmp_path / "photos"
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.full(size + ((3,) if mode == "RGB" else ()), 30 * k + 10 * i, np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:04d}.png")
    return root


def test_folder_order_labels_and_class_names(tmp_path):
    root = _folder(tmp_path, classes=("zebra", "ant", "Moth"))
    (root / "ant" / "sub").mkdir()
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "ant" / "sub" / "deep.png")
    (root / ".hidden").mkdir()
    (root / "ant" / ".DS_Store").write_bytes(b"junk")
    X, y, class_names = load_image_folder(root)
    assert class_names == ["Moth", "ant", "zebra"]
    assert y.dtype == np.int64 and y.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert X.shape == (10, 10, 12, 1)
    np.testing.assert_allclose(X[:3, 0, 0, 0], np.array([60, 70, 80]) / 255, rtol=1e-6)   # Moth's files, sorted
    X1, _, _ = load_image_folder(root, n_threads=1)
    X3, _, _ = load_image_folder(root, n_threads=3)
    assert np.array_equal(X1, X3) and np.array_equal(X1, X)


def test_auto_colour_is_rgb_when_any_image_has_colour(tmp_path):
    root = _folder(tmp_path)
    assert load_image_folder(root)[0].shape[-1] == 1
    Image.fromarray(RGB).save(root / "dog" / "colour.png")
    Image.fromarray(GRAY).save(root / "cat" / "gray.gif")   # a gray palette stays gray
    X, y, _ = load_image_folder(root, image_size=(10, 12))
    assert X.shape[-1] == 3 and X.preprocessing["color"] == "rgb"
    gray = X[:4]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 0] == gray[..., 2]).all()


def test_list_of_paths_with_labels(tmp_path):
    root = _folder(tmp_path)
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = ["b" if "cat" in p else "a" for p in paths]
    X, y, class_names = load_image_folder(paths, labels)
    assert class_names == ["a", "b"] and y.tolist() == [1, 1, 1, 0, 0, 0] and len(X) == 6
    X2, y2, names2 = load_image_folder(paths)
    assert y2 is None and names2 == [] and np.array_equal(X, X2)
    with pytest.raises(ValueError, match="labels"):
        load_image_folder(paths, labels[:2])
    with pytest.raises(ValueError, match="labels"):
        load_image_folder(root, labels)


# --------------------------------------------------------------------------- bad input, every kind


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


BAD_FILES = {
    "truncated-png": lambda p: (Image.fromarray(RGB).save(p / "t.png"), _truncated(p / "t.png")),
    "truncated-jpeg": lambda p: (Image.fromarray(SMOOTH).save(p / "t.jpg"), _truncated(p / "t.jpg")),
    "not-an-image-named-png": lambda p: (p / "fake.png").write_bytes(b"not a png at all"),
    "text-file": lambda p: (p / "notes.txt").write_text("a note, not an image\n"),
    "empty-file": lambda p: (p / "empty.png").write_bytes(b""),
    "dangling-link": lambda p: os.symlink(p / "nowhere.png", p / "gone.png"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("reading", [{}, {"image_size": (10, 12), "color": "rgb"}], ids=["headers-first", "direct"])
def test_a_bad_file_is_one_error_naming_it_or_skipped_with_one_warning(tmp_path, kind, reading):
    root = _folder(tmp_path, mode="RGB")
    BAD_FILES[kind](root / "dog")
    bad = sorted(set(os.listdir(root / "dog")) - {"0000.png", "0001.png", "0002.png"})
    cache = tmp_path / "cache"
    with pytest.raises(ImageFileError, match=bad[0].replace(".", r"\.")) as info:
        load_image_folder(root, cache=cache, **reading)
    assert "on_error='skip'" in str(info.value)
    assert not any(cache.iterdir()), "nothing half-written"
    for use_cache in (None, cache, cache):   # decoded, written to the cache, read from it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            X, y, class_names = load_image_folder(root, on_error="skip", cache=use_cache, **reading)
        assert len(caught) == 1 and bad[0] in str(caught[0].message) and "skipped 1" in str(caught[0].message)
        assert X.shape == (6, 10, 12, 3) and y.tolist() == [0, 0, 0, 1, 1, 1]
        np.testing.assert_allclose(X[3:, 0, 0, 0], np.array([30, 40, 50]) / 255, rtol=1e-6)


def test_bad_file_through_load_images_names_it(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ImageFileError, match="fake.jpg"):
        load_images([path])


def test_folder_kinds_of_bad_input(tmp_path):
    root = _folder(tmp_path)
    (root / "empty_class").mkdir()
    with pytest.raises(ImageFileError, match="empty class folder.*empty_class"):
        load_image_folder(root)
    (root / "empty_class").rmdir()
    only = _folder(tmp_path / "one", classes=("solo",))
    with pytest.raises(ImageFileError, match="one class subfolder.*solo"):
        load_image_folder(only)
    with pytest.raises(ImageFileError, match="no class subfolders"):
        load_image_folder(root / "cat")
    with pytest.raises(ImageFileError, match="directory=.*is not a folder"):
        load_image_folder(tmp_path / "missing")
    os.symlink(root, root / "cat" / "loop")
    with pytest.raises(ImageFileError, match="symbolic link loop.*loop.*follow_links=False"):
        load_image_folder(root)
    assert load_image_folder(root, follow_links=False)[0].shape == (6, 10, 12, 1)
    os.unlink(root / "cat" / "loop")
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(root / "dog" / "odd.png")
    with pytest.raises(ImageFileError, match=r"different sizes.*12x10.*9x7: .*odd\.png.*image_size=\(height, width\)"):
        load_image_folder(root)
    assert load_image_folder(root, image_size=(10, 12))[0].shape == (7, 10, 12, 1)


def test_skipping_every_file_of_a_class_is_an_error(tmp_path):
    root = _folder(tmp_path, n=1)
    (root / "dog" / "0000.png").write_bytes(b"broken")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageFileError, match="dog"):
            load_image_folder(root, on_error="skip")


def test_decompression_bomb_is_refused_from_the_header(tmp_path, monkeypatch):
    root = _folder(tmp_path)
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageFileError, match="more than the limit"):
        load_image_folder(root)


def test_without_pillow_the_error_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name.split(".")[0] == "PIL":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match=r"pip install pillow.*minicnn-engine\[images\]"):
        load_images([tmp_path / "a.png"])


# --------------------------------------------------------------------------- the cache


def test_cache_second_load_decodes_nothing_and_sees_changes(tmp_path, monkeypatch):
    root = _folder(tmp_path, mode="RGB")
    monkeypatch.setattr(images_module, "RACY_NS", 0)   # trust entries of files just written (see the hostile tests)
    cache = tmp_path / "cache"
    X, y, names = load_image_folder(root, image_size=(8, 8), cache=cache)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    real_decode = images_module.decode

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")
    monkeypatch.setattr(images_module, "decode", no_decoding)
    X2, y2, names2 = load_image_folder(root, image_size=(8, 8), cache=cache)
    assert np.array_equal(X, X2) and np.array_equal(y, y2) and names == names2
    assert X2.preprocessing == X.preprocessing
    Xm, _, _ = load_image_folder(root, image_size=(8, 8), cache=cache, mmap_mode="r")
    assert isinstance(Xm.base, np.memmap) or isinstance(Xm, np.memmap) and np.array_equal(Xm, X)
    assert np.array_equal(Xm, X) and Xm.preprocessing == X.preprocessing
    monkeypatch.setattr(images_module, "decode", real_decode)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "dog" / "0001.png")   # a changed file
    os.utime(root / "dog" / "0001.png", ns=(1, 1))
    X3, _, _ = load_image_folder(root, image_size=(8, 8), cache=cache)
    assert X3[4].max() == 0 and not np.array_equal(X3, X)
    X4, _, _ = load_image_folder(root, image_size=(6, 6), cache=cache)   # other options: another entry
    assert X4.shape[1:3] == (6, 6) and len(list(cache.glob("*.npy"))) == 3
    assert not list(cache.glob("*.tmp"))


def test_cache_survives_a_corrupt_entry(tmp_path):
    root = _folder(tmp_path)
    cache = tmp_path / "cache"
    X, _, _ = load_image_folder(root, cache=cache)
    next(cache.glob("*.npy")).write_bytes(b"garbage")
    X2, _, _ = load_image_folder(root, cache=cache)
    assert np.array_equal(X, X2)


# --------------------------------------------------------------------------- the record in model files


def test_model_records_preprocessing_and_old_files_still_load(tmp_path):
    from minicnn import CNNClassifier, load, load_predictor
    from minicnn import io

    root = _folder(tmp_path, mode="RGB")
    X, y, _ = load_image_folder(root, image_size=(8, 8), pad_to_aspect_ratio=True)
    clf = CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        assert clf.preprocessing_ == X.preprocessing
        clf.save(tmp_path / "m.npz")
        assert load(tmp_path / "m.npz").preprocessing_ == X.preprocessing
        assert load_predictor(tmp_path / "m.npz").preprocessing_ == X.preprocessing
        clf.fit(np.asarray(X), y)   # refitted on plain arrays: no record left over
    assert not hasattr(clf, "preprocessing_")
    clf.save(tmp_path / "old.npz")   # a file as written before records existed
    assert not hasattr(load(tmp_path / "old.npz"), "preprocessing_")
    paths = sorted(str(p) for p in root.rglob("*.png"))
    with pytest.raises(ValueError, match=r"12x10 pixels.*takes 8x8.*image_size=\(8, 8\)"):
        load_predictor(tmp_path / "old.npz").predict(paths)
    # a record that contradicts the network is refused as a bad file
    from minicnn._record import model_record

    clf.preprocessing_ = dict(X.preprocessing, color="grayscale")
    io.save(model_record(clf), tmp_path / "bad.npz")
    with pytest.raises(io.ModelFileError, match="preprocessing record is invalid.*color"):
        load(tmp_path / "bad.npz")


def test_partial_fit_refuses_images_read_another_way(tmp_path):
    from minicnn import CNNClassifier

    root = _folder(tmp_path, mode="RGB")
    X, y, _ = load_image_folder(root, image_size=(8, 8))
    X2, _, _ = load_image_folder(root, image_size=(8, 8), crop_to_aspect_ratio=True)
    clf = CNNClassifier(layers=("conv2",), dropout="none", backend="numpy", random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(np.asarray(X2), y)   # plain arrays: the user vouches for them
    with pytest.raises(ValueError, match="crop_to_aspect_ratio"):
        clf.partial_fit(X2, y)


def test_memory_mapped_cache_and_partial_fit_on_chunks_keep_the_record(tmp_path):
    """The route for folders larger than memory: chunks of the mapped cache train like chunks in memory."""
    from minicnn import CNNClassifier

    root = _folder(tmp_path, mode="RGB", n=6)
    X, y, names = load_image_folder(root, image_size=(8, 8))
    Xm, ym, _ = load_image_folder(root, image_size=(8, 8), cache=tmp_path / "cache", mmap_mode="r")
    assert isinstance(Xm.base, np.memmap) and not Xm.flags.writeable
    models = []
    for data in (X, Xm):
        clf = CNNClassifier(layers=("conv2", "maxpool"), backend="numpy", random_state=0)
        for rows in (slice(0, 5), slice(5, 12)):
            clf.partial_fit(data[rows], y[rows], classes=np.arange(len(names)))
        models.append(clf)
    assert models[1].preprocessing_ == X.preprocessing
    np.testing.assert_array_equal(models[0].predict_proba(X), models[1].predict_proba(X))
