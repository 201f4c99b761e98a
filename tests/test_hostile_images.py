"""Hostile image files and options, swept by kind through every face that reads them.

Each test covers one kind of fault: a file whose stored colour Pillow widens
(every PNG colour type and bit depth), a header declaring a huge image (above
Pillow's own decompression-bomb limit or only above ours), an ``image_size``
too large to allocate, a cache folder that cannot be written, a file rewritten
behind the cache with the same size and modification time, and arithmetic on
images that would leave a stale preprocessing record on them.
"""

import copy
import json
import os
import pickle
import struct
import warnings
import zlib

import numpy as np
import pytest

pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image  # noqa: E402

from minicnn import CNNClassifier, load, load_predictor, preprocessing  # noqa: E402
from minicnn import images as images_module  # noqa: E402
from minicnn.images import ImageFileError, load_image_folder, load_images  # noqa: E402

from helpers import run_cli  # noqa: E402


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png(path, pixels, colour_type, bit_depth, palette=None):
    """A PNG written byte by byte (Pillow cannot write 16-bit colour or gray+alpha PNGs)."""
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else ">u1"
    rows = b"".join(b"\0" + pixels[y].astype(dtype).tobytes() for y in range(height))
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        body += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    body += _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)
    return os.fspath(path)


def header_only_png(path, width, height):
    """A PNG whose header declares ``width`` x ``height`` pixels but holds almost no data."""
    body = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body += _chunk(b"IDAT", zlib.compress(b"\0" * 16)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)
    return os.fspath(path)


# ---------------------------------------------------------------- every PNG colour type and bit depth
LEVEL = 0.4   # the gray level (or red channel) stored, as a fraction of the bit depth's maximum
#: (colour type, bit depth, channels stored, stored colour)
PNG_KINDS = [(0, 8, 1, "grayscale"), (0, 16, 1, "grayscale"), (4, 8, 2, "grayscale"), (4, 16, 2, "grayscale"),
             (2, 8, 3, "rgb"), (2, 16, 3, "rgb"), (6, 8, 4, "rgb"), (6, 16, 4, "rgb"), (3, 8, 0, "grayscale"),
             (3, 8, 0, "rgb")]


def _png_of_kind(path, colour_type, bit_depth, channels, colour):
    top = 2 ** bit_depth - 1
    level = round(LEVEL * top)
    if colour_type == 3:   # palette: index 1 is the level (gray) or a red
        entry = [level, level, level] if colour == "grayscale" else [level, 0, top]
        return write_png(path, np.ones((5, 4), np.uint8), 3, 8, palette=[[0, 0, 0], entry])
    values = [level] * channels
    if colour == "rgb":
        values[1:3] = [0, top]   # a colour: red = level, green 0, blue full
    if channels in (2, 4):
        values[-1] = top // 3   # a partly transparent alpha: dropped
    return write_png(path, np.broadcast_to(np.array(values), (5, 4, channels)), colour_type, bit_depth)


@pytest.mark.parametrize("colour_type, bit_depth, channels, colour", PNG_KINDS)
def test_auto_colour_is_the_stored_colour_for_every_png_colour_type_and_bit_depth(tmp_path, colour_type, bit_depth,
                                                                                  channels, colour):
    path = _png_of_kind(tmp_path / "x.png", colour_type, bit_depth, channels, colour)
    X = load_images([path])
    assert X.preprocessing["color"] == colour
    assert X.shape == (1, 5, 4, 1 if colour == "grayscale" else 3)
    np.testing.assert_allclose(X[..., 0], LEVEL, atol=1 / 255)   # gray level or red channel, alpha dropped
    for forced, channels_out in (("grayscale", 1), ("rgb", 3)):
        Y = load_images([path], color=forced)
        assert Y.shape[-1] == channels_out
        if colour == "grayscale":   # a gray file read as RGB repeats its gray level
            np.testing.assert_allclose(Y, LEVEL, atol=1 / 255)


# ---------------------------------------------------------------- huge declared dimensions
#: Above Pillow's own decompression-bomb limit (refused while opening), and above ours only (from the header).
HUGE = [(60000, 60000), (9000, 9000)]


@pytest.mark.parametrize("width, height", HUGE)
@pytest.mark.parametrize("reading", [{}, {"image_size": (4, 4), "color": "grayscale"}])
def test_a_huge_declared_image_is_one_error_naming_the_file_on_every_face(tmp_path, width, height, reading):
    """load_images, load_image_folder (raise and skip), every predicting face and the command line."""
    bomb = header_only_png(tmp_path / "bomb.png", width, height)
    with pytest.raises(ImageFileError, match="bomb.png"):
        load_images([bomb], **reading)
    root = tmp_path / "root"
    for name, level in (("a", 30), ("b", 200)):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (4, 4), level + i).save(root / name / f"{i}.png")
    os.replace(bomb, root / "a" / "bomb.png")
    with pytest.raises(ImageFileError, match="bomb.png.*on_error='skip'"):
        load_image_folder(root, **reading)
    with pytest.warns(UserWarning, match="skipped 1 .*bomb.png"):
        X, y, _ = load_image_folder(root, on_error="skip", **reading)
    assert X.shape[0] == 4 and y.tolist() == [0, 0, 1, 1]
    clf = CNNClassifier(layers=("conv2", "gap"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    clf.save(tmp_path / "m.npz")
    bad = os.fspath(root / "a" / "bomb.png")
    for model in (clf, load(tmp_path / "m.npz"), load_predictor(tmp_path / "m.npz")):
        with pytest.raises(ImageFileError, match="bomb.png"):
            model.predict([bad])
    code, out, err = run_cli("predict", "--model", tmp_path / "m.npz", bad)
    assert code != 0 and "bomb.png" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- image_size too large to allocate
@pytest.mark.parametrize("size", [(10 ** 6, 10 ** 6), (2 ** 40, 1), (1, 2 ** 27)])
def test_an_image_size_too_large_is_refused_naming_it_on_every_face(tmp_path, size):
    path = tmp_path / "a.png"
    Image.new("L", (4, 4), 7).save(path)
    for read in (lambda: load_images([path], image_size=size),   # the one reader of every face
                 lambda: load_image_folder([path], image_size=size),
                 lambda: load_image_folder([path], image_size=size, cache=tmp_path / "cache")):
        with pytest.raises(ValueError, match=r"image_size=.*more than the limit"):
            read()
    (tmp_path / "c" / "x").mkdir(parents=True)
    (tmp_path / "c" / "y").mkdir()
    code, out, err = run_cli("fit", "--data", f"folder:{tmp_path / 'c'}", "--image-size", f"{size[0]},{size[1]}",
                             "--out", tmp_path / "m.npz")
    assert code != 0 and "--image-size" in err and "limit" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- a cache folder that cannot be written
def _two_classes(root, ext=".png"):
    for name, level in (("a", 30), ("b", 200)):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (4, 4), level + i).save(root / name / f"{i}{ext}")
    return root


def _cache_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("x")
    return tmp_path / "cache"


def _cache_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "cache"


def _cache_not_writable(tmp_path, monkeypatch):   # chmod does not stop root: fail the write itself
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(np.lib.format, "open_memmap", refuse)
    return tmp_path / "cache"


def _cache_rename_fails(tmp_path, monkeypatch):   # e.g. a full disk or a read-only remount while writing
    real = os.replace

    def refuse(src, dst):
        if os.fspath(dst).endswith(".npy"):
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(images_module.os, "replace", refuse)
    return tmp_path / "cache"


@pytest.mark.parametrize("make", [_cache_is_a_file, _cache_under_a_file, _cache_not_writable, _cache_rename_fails])
def test_a_cache_that_cannot_be_written_is_an_error_naming_the_cache(tmp_path, monkeypatch, make):
    root = _two_classes(tmp_path / "root")
    cache = make(tmp_path, monkeypatch)
    with pytest.raises(ImageFileError, match=r"cache=.*cannot be used as a cache folder"):
        load_image_folder(root, cache=cache)
    if os.path.isdir(cache):   # nothing half-written is left behind
        assert not [name for name in os.listdir(cache) if name.endswith(".tmp")]


def test_a_file_rewritten_with_the_same_size_and_mtime_is_decoded_again(tmp_path):
    root = _two_classes(tmp_path / "root", ext=".bmp")   # a BMP's size on disk depends on its shape only
    cache = tmp_path / "cache"
    first, _, _ = load_image_folder(root, cache=cache)
    path = root / "b" / "0.bmp"
    before = os.stat(path)
    Image.new("L", (4, 4), 99).save(path)   # same size on disk, other pixels
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    second, _, _ = load_image_folder(root, cache=cache)
    np.testing.assert_array_equal(np.asarray(second)[2], np.float32(99) / np.float32(255))
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("meta", [{}, {"shape": [4, 4, 4, 1]}, [], "x", {"shape": None, "record": 1, "kept": 2}])
def test_a_damaged_cache_entry_is_decoded_again(tmp_path, meta):
    root = _two_classes(tmp_path / "root")
    cache = tmp_path / "cache"
    first, y, _ = load_image_folder(root, cache=cache)
    (entry,) = [name for name in os.listdir(cache) if name.endswith(".json")]
    (cache / entry).write_text(json.dumps(meta))
    second, y2, _ = load_image_folder(root, cache=cache)
    np.testing.assert_array_equal(first, second)
    assert y.tolist() == y2.tolist() and second.preprocessing == first.preprocessing


# ---------------------------------------------------------------- the record on arrays of images
CHANGES = {   # arithmetic: the values are no longer those the record describes
    "scale": lambda X: X * 2 - 1, "divide": lambda X: X / 255, "negate": lambda X: -X, "sum": lambda X: X + X,
    "clip": lambda X: np.clip(X, 0.1, 0.9), "sqrt": np.sqrt, "standardize": lambda X: (X - X.mean()) / X.std(),
}
IN_PLACE = {
    "isub": lambda X: X.__isub__(0.5), "imul": lambda X: X.__imul__(2), "out": lambda X: np.multiply(X, 2, out=X),
    "at": lambda X: np.add.at(X, (0,), 1.0),
}
KEEPS = {   # the same values (or a subset): the record still describes them
    "slice": lambda X: X[1:], "fancy": lambda X: X[[0, 1]], "mask": lambda X: X[np.array([True, False, True, True])],
    "copy": lambda X: X.copy(), "astype": lambda X: X.astype(np.float32), "pickle": lambda X: pickle.loads(
        pickle.dumps(X)), "deepcopy": copy.deepcopy, "take": lambda X: X.take([0, 2], axis=0),
}


@pytest.fixture()
def images(tmp_path):
    X, y, _ = load_image_folder(_two_classes(tmp_path / "root"))
    return X, y


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_arithmetic_on_images_drops_the_record(images, name):
    X, y = images
    changed = CHANGES[name](X)
    assert preprocessing.of(changed) is None
    assert X.preprocessing is not None   # the original keeps its own
    clf = CNNClassifier(layers=("conv2", "gap"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(changed, y)
    assert not hasattr(clf, "preprocessing_")   # no record of a reading these values did not come from


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_arithmetic_in_place_drops_the_record_of_the_array_written(images, name):
    X, _ = images
    Y = X.copy()
    IN_PLACE[name](Y)
    assert preprocessing.of(Y) is None and isinstance(Y, images_module.ImageArray)
    assert X.preprocessing is not None


@pytest.mark.parametrize("name", sorted(KEEPS))
def test_views_copies_and_pickles_keep_their_own_copy_of_the_record(images, name):
    X, _ = images
    kept = KEEPS[name](X)
    assert kept.preprocessing == X.preprocessing
    kept.preprocessing["color"] = "rgb"   # changing one array's record leaves the others alone
    assert X.preprocessing["color"] == "grayscale"


# ---------------------------------------------------------------- several writers filling one cache entry
_FILL = """
import sys, threading
import numpy as np
from minicnn.images import load_image_folder
root, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sums, errors = [], []
def fill():
    try:
        X, y, _ = load_image_folder(root, cache=cache, n_threads=1)
        sums.append((float(np.asarray(X, dtype=np.float64).sum()), y.tolist()))
    except BaseException as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=fill) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(len(set(map(repr, sums))), len(sums), errors)
"""


@pytest.mark.parametrize("processes, threads", [(1, 3), (3, 1), (2, 2)])
def test_threads_and_processes_filling_the_same_cache_entry_at_once_all_get_the_images(tmp_path, processes, threads):
    """Each writer uses its own temporary file (a shared one, truncated under another's memory map, crashed
    the process with SIGBUS); run in child processes so such a crash fails the test, not the test run."""
    import subprocess
    import sys

    root = tmp_path / "root"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(120):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    expected, y, _ = load_image_folder(root)
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    children = [subprocess.Popen([sys.executable, "-c", _FILL, str(root), str(cache), str(threads)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(processes)]
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
        assert out.split(None, 2) == ["1", str(threads), "[]\n"], (out, err[-2000:])
    X, y2, _ = load_image_folder(root, cache=cache)
    np.testing.assert_array_equal(X, expected)
    assert y2.tolist() == y.tolist()
    assert sorted(name.rsplit(".", 1)[-1] for name in os.listdir(cache)) == ["json", "npy"]   # no temporary left


# ---------------------------------------------------------------- file and folder names of every kind
NAMES = ["with space", "ünïcødé", "new\nline", "tab\there", os.fsdecode(b"bytes\xff"), "-dash", "'quote\""]


def test_file_and_class_folder_names_of_every_kind_through_the_cache_the_model_and_the_command(tmp_path):
    import csv
    import io as text_io

    root = tmp_path / "root"
    paths = []
    for c, folder in enumerate(("plain", NAMES[1], NAMES[4])):
        for i, name in enumerate(NAMES):
            path = root / folder / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (4, 4), 40 * c + i).save(path)
            paths.append(os.fspath(path))
    X, y, class_names = load_image_folder(root)
    assert class_names == sorted(("plain", NAMES[1], NAMES[4]))
    for _ in range(2):   # writes, then reads the cache
        cached, y2, _ = load_image_folder(root, cache=tmp_path / "cache")
        np.testing.assert_array_equal(cached, X)
        assert y2.tolist() == y.tolist()
    by_row = {os.fsencode(p): row for row, p in enumerate(sorted(paths, key=lambda p: (os.path.dirname(p), p)))}
    np.testing.assert_array_equal(load_images(paths), np.asarray(X)[[by_row[os.fsencode(p)] for p in paths]])
    clf = CNNClassifier(layers=("conv2", "gap"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, np.array(class_names, dtype=object)[y])
    clf.save(tmp_path / "m.npz")
    expected = clf.predict(paths)
    np.testing.assert_array_equal(load_predictor(tmp_path / "m.npz").predict(paths), expected)
    code, out, err = run_cli("predict", "--model", tmp_path / "m.npz", *paths)
    assert code == 0, err
    rows = list(csv.reader(text_io.StringIO(out)))
    assert [row[0] for row in rows[1:]] == paths   # one row per file, keyed by the path as given
    assert [row[1] for row in rows[1:]] == [str(label) for label in expected]


# ---------------------------------------------------------------- paths mixed with other values
@pytest.mark.parametrize("other", [3, None, 1.5, b"x.png", np.zeros((4, 4))])
@pytest.mark.parametrize("container", [list, tuple, lambda v: np.array(v, dtype=object)])
def test_paths_mixed_with_other_values_are_refused_naming_the_first_one_on_every_face(tmp_path, other, container):
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4), 7).save(path)
    X, y, _ = load_image_folder([path, path, path, path], labels=[0, 1, 0, 1])
    clf = CNNClassifier(layers=("conv2", "gap"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    clf.save(tmp_path / "m.npz")
    values = [os.fspath(path), str(path), None]
    values[2] = other
    mixed = container(values) if not isinstance(other, np.ndarray) else container([*values[:2], 0])
    for model in (clf, load(tmp_path / "m.npz"), load_predictor(tmp_path / "m.npz")):
        with pytest.raises(ValueError, match=r"mixes image file paths with other values: X\[2\]="):
            model.predict(mixed)
        assert model.predict(container(values[:2])).shape == (2,)


# ---------------------------------------------------------------- image files named without an image extension
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
@pytest.mark.parametrize("name", ["photo", "photo.dat", "photo.jpg.bak"])
def test_the_command_knows_an_image_by_its_content_whatever_its_name(tmp_path, fmt, name):
    if fmt == "WEBP" and not __import__("PIL.features").features.check("webp"):
        pytest.skip("Pillow without WebP")
    Image.new("RGB", (4, 4), (10, 200, 30)).save(tmp_path / "a.png")
    X, y, _ = load_image_folder([tmp_path / "a.png"] * 4, labels=[0, 1, 0, 1])
    clf = CNNClassifier(layers=("conv2", "gap"), max_iter=1, backend="numpy", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    clf.save(tmp_path / "m.npz")
    odd = tmp_path / name
    Image.new("RGB", (4, 4), (10, 200, 30)).save(odd, format=fmt)
    code, out, err = run_cli("predict", "--model", tmp_path / "m.npz", odd, tmp_path / "a.png")
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == [os.fspath(odd), os.fspath(tmp_path / "a.png")]
    folder = tmp_path / "folder"   # in a folder too, beside a file that is no image
    folder.mkdir()
    os.replace(odd, folder / name)
    (folder / "notes.txt").write_text("BMW is not a bitmap")
    code, out, err = run_cli("predict", "--model", tmp_path / "m.npz", folder)
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == [os.fspath(folder / name)]
    np.save(tmp_path / "rows.npy", np.asarray(X))   # an array file still goes the array way
    code, out, err = run_cli("predict", "--model", tmp_path / "m.npz", tmp_path / "rows.npy")
    assert code == 0 and len(out.splitlines()) == 5, err


# ---------------------------------------------------------------- files of several frames, EXIF values out of range
@pytest.mark.parametrize("fmt", ["GIF", "PNG", "TIFF", "WEBP"])
@pytest.mark.parametrize("reading", [{}, {"image_size": (3, 3), "color": "rgb"}, {"color": "grayscale"}])
def test_a_file_of_several_frames_gives_its_first_frame(tmp_path, fmt, reading):
    if fmt == "WEBP" and not __import__("PIL.features").features.check("webp"):
        pytest.skip("Pillow without WebP")
    frames = [Image.new("RGB", (6, 5), (60, 60, 60)), Image.new("RGB", (6, 5), (250, 0, 0))]
    path = tmp_path / f"multi.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:],
                   **({"lossless": True} if fmt == "WEBP" else {}))
    assert getattr(Image.open(path), "n_frames", 1) == 2
    X = np.asarray(load_images([path], **reading))
    np.testing.assert_allclose(X, 60 / 255, atol=1 / 255)   # the gray first frame, never the red second one


@pytest.mark.parametrize("orientation", [0, 9, 65535])
@pytest.mark.parametrize("reading", [{}, {"image_size": (3, 3), "color": "rgb"}, {"image_size": (3, 3)}])
def test_an_exif_orientation_out_of_range_leaves_the_image_as_stored(tmp_path, orientation, reading):
    image = Image.new("RGB", (6, 4), (100, 0, 0))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.jpg", exif=exif)
    X = load_images([tmp_path / "o.jpg"], **reading)
    assert X.shape[1:3] == reading.get("image_size", (4, 6))


def test_a_cache_entry_of_files_changed_within_the_granularity_of_file_times_is_decoded_again(tmp_path,
                                                                                             monkeypatch):
    """Racy entries: a file rewritten within one tick of its time stamps, at the same size, keeps its stamp, so an
    entry read less than RACY_NS after a file changed is not trusted; one read later is."""
    root = _two_classes(tmp_path / "root", ext=".bmp")
    cache = tmp_path / "cache"
    decoded = []
    real = images_module.decode

    def counting(*args, **kwargs):
        decoded.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(images_module, "decode", counting)
    first, _, _ = load_image_folder(root, cache=cache)   # files just written: a racy entry
    assert len(decoded) == 4
    path = root / "b" / "0.bmp"
    stamp = os.stat(path)
    with open(path, "r+b") as f:   # the same size; the tick of the time stamps simulated by restoring them below
        f.seek(-1, os.SEEK_END)
        f.write(b"\x07")
    real_stat = os.stat

    def coarse_stat(name, *args, **kwargs):   # the rewritten file shows its old stamp, as within one tick
        return stamp if os.fspath(name) == os.fspath(path) else real_stat(name, *args, **kwargs)
    monkeypatch.setattr(images_module.os, "stat", coarse_stat)
    second, _, _ = load_image_folder(root, cache=cache)
    assert len(decoded) == 8   # decoded again: the entry was racy
    assert not np.array_equal(first, second)
    monkeypatch.setattr(images_module, "RACY_NS", -10 ** 12)   # as if the files had been written long ago
    load_image_folder(root, cache=cache)   # a fresh, trusted entry is written...
    load_image_folder(root, cache=cache)   # ...and reused
    assert len(decoded) == 12



# ---------------------------------------------------------------- the paths argument itself
PATH_FORMS = {"str": os.fspath, "Path": lambda p: p, "bytes": os.fsencode, "list": lambda p: [p],
              "tuple": lambda p: (os.fspath(p),), "array": lambda p: np.array([os.fspath(p)]),
              "generator": lambda p: (q for q in [p]), "list of bytes": lambda p: [os.fsencode(p)]}
NOT_PATHS = {"int": (5, "=5"), "None": (None, "=None"), "float": (1.5, "=1.5"),
             "list with None": ([None], r"\[0\]=None"), "list with an int": (["a.png", 5], r"\[1\]=5")}


@pytest.mark.parametrize("form", sorted(PATH_FORMS))
def test_every_form_of_paths_reads_the_same_images(tmp_path, form):
    path = tmp_path / "a.png"
    Image.new("RGB", (5, 4), (1, 2, 3)).save(path)
    expected = load_images([os.fspath(path)])
    np.testing.assert_array_equal(load_images(PATH_FORMS[form](path)), expected)
    if form not in ("str", "Path", "bytes"):   # a single path names a folder for load_image_folder
        np.testing.assert_array_equal(load_image_folder(PATH_FORMS[form](path))[0], expected)


@pytest.mark.parametrize("kind", sorted(NOT_PATHS))
def test_paths_that_are_not_paths_are_refused_naming_the_parameter_and_value(kind):
    value, shown = NOT_PATHS[kind]
    with pytest.raises(ValueError, match=r"paths.*received paths" + shown):
        load_images(value)
    with pytest.raises(ValueError, match=r"received directory" + shown):
        load_image_folder(value)


# ---------------------------------------------------------------- files and folders that cannot be opened
def _deny(monkeypatch, target, function_owner, name):
    real = getattr(function_owner, name)

    def denied(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(target):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(function_owner, name, denied)


@pytest.mark.parametrize("reading", [{}, {"image_size": (3, 3), "color": "grayscale"}])
def test_an_unreadable_file_is_one_error_naming_it_or_skipped_with_one_warning(tmp_path, monkeypatch, reading):
    """chmod 000 does not stop root (the test user in CI), so the permission error is raised where Pillow opens."""
    import PIL.Image

    root = _two_classes(tmp_path / "root")
    locked = root / "a" / "1.png"
    _deny(monkeypatch, locked, PIL.Image, "open")
    with pytest.raises(ImageFileError, match=r"1\.png.*PermissionError.*on_error='skip'"):
        load_image_folder(root, **reading)
    with pytest.warns(UserWarning, match=r"skipped 1 .*1\.png"):
        X, y, _ = load_image_folder(root, on_error="skip", **reading)
    assert y.tolist() == [0, 1, 1]
    with pytest.raises(ImageFileError, match=r"1\.png"):
        load_images([locked], **reading)


def test_an_unlistable_class_folder_is_one_error_naming_it(tmp_path, monkeypatch):
    root = _two_classes(tmp_path / "root")
    (root / "b" / "sub").mkdir()
    _deny(monkeypatch, root / "b" / "sub", images_module.os, "scandir")
    for on_error in ("raise", "skip"):
        with pytest.raises(ImageFileError, match=r"folder .*sub cannot be listed \(PermissionError"):
            load_image_folder(root, on_error=on_error)


# ---------------------------------------------------------------- wide (16-bit, float) images through every filter
def _wide_files(tmp_path):
    """One sharp-edged picture (black, white, mid-gray) at 8 bits and in every wide mode Pillow reads."""
    rng = np.random.default_rng(0)
    levels = rng.choice(np.array([0, 255, 128], np.uint8), size=(9, 7))
    files = {"8-bit": tmp_path / "p8.png", "16-bit PNG": tmp_path / "p16.png", "16-bit TIFF": tmp_path / "p16.tif",
             "float TIFF": tmp_path / "pf.tif", "32-bit TIFF": tmp_path / "pi.tif"}
    Image.fromarray(levels).save(files["8-bit"])
    Image.fromarray(levels.astype(np.uint16) * 257).save(files["16-bit PNG"])
    Image.fromarray(levels.astype(np.uint16) * 257).save(files["16-bit TIFF"])
    Image.fromarray(levels.astype(np.float32) / 255, mode="F").save(files["float TIFF"])
    Image.fromarray(levels.astype(np.int32) * 257, mode="I").save(files["32-bit TIFF"])
    return files


@pytest.mark.parametrize("interpolation", preprocessing.INTERPOLATIONS)
@pytest.mark.parametrize("policy", [{}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}])
def test_wide_images_resize_into_0_1_like_their_8_bit_twin_with_every_filter(tmp_path, interpolation, policy):
    """Bicubic and Lanczos overshoot at sharp edges: Pillow clips 8-bit results, and wide ones are clipped alike
    (they were refused as 'values outside [0, 1]')."""
    files = _wide_files(tmp_path)
    reading = dict(image_size=(5, 11), interpolation=interpolation, **policy)
    eight = np.asarray(load_images([files["8-bit"]], **reading))
    # Pillow's 8-bit filters also clip between their horizontal and vertical passes: where a ringing filter
    # overshoots at an edge the wide result differs from the 8-bit one by up to a few percent there
    atol = 0.1 if interpolation in ("bicubic", "lanczos") else 1.5 / 255
    for kind, path in files.items():
        X = np.asarray(load_images([path], **reading))
        assert X.min() >= 0.0 and X.max() <= 1.0, kind
        np.testing.assert_allclose(X, eight, atol=atol, err_msg=kind)


@pytest.mark.parametrize("value", [-0.5, 1.5, np.nan, np.inf])
def test_a_float_image_outside_0_1_is_refused_naming_the_file_and_its_range(tmp_path, value):
    pixels = np.full((4, 4), 0.5, np.float32)
    pixels[1, 2] = value
    Image.fromarray(pixels, mode="F").save(tmp_path / "f.tif")
    for reading in ({}, {"image_size": (3, 3), "interpolation": "bicubic"}):
        with pytest.raises(ImageFileError, match=r"f\.tif: F values in .*outside \[0, 1\]"):
            load_images([tmp_path / "f.tif"], **reading)


@pytest.mark.parametrize("where", ["root/cache", "root/a/cache", "root/a/deeper/cache"])
def test_a_cache_folder_kept_inside_the_image_folder_is_neither_a_class_nor_images(tmp_path, where):
    root = _two_classes(tmp_path / "root")
    cache = tmp_path / where
    first, y, names = load_image_folder(root, cache=cache)
    assert os.listdir(cache)   # written
    for _ in range(2):
        again, y2, names2 = load_image_folder(root, cache=cache)
        np.testing.assert_array_equal(again, first)
        assert names2 == names == ["a", "b"] and y2.tolist() == y.tolist()
