"""The fast JPEG path of minicnn.images (minicnn._image_jpeg) reads exactly what Pillow's general path reads.

Every format and kind of JPEG is decoded twice, with the fast path and with
it switched off, in every colour mode and resize policy: the arrays are
bit-identical. Files the fast path must leave alone (EXIF or XMP, CMYK,
multi-picture, truncated, not JPEG) are checked to take the general path,
and an EXIF-rotated JPEG is still rotated.
"""

import io
import os

import numpy as np
import pytest

PIL = pytest.importorskip("PIL", reason="reading image files needs Pillow")
from PIL import Image  # noqa: E402

from minicnn import _image_jpeg  # noqa: E402
from minicnn import images as images_module  # noqa: E402
from minicnn.datasets import load_image_folder, load_images  # noqa: E402
from minicnn.images import ImageFileError  # noqa: E402
from test_images import FORMATS, RGB, SMOOTH, write  # noqa: E402

RNG = np.random.default_rng(1)
PHOTO = np.clip(SMOOTH.astype(int) + RNG.integers(-20, 21, SMOOTH.shape), 0, 255).astype(np.uint8)   # 40x48


def _jpeg(path, array, **save):
    Image.fromarray(array).save(path, **save)
    return str(path)


# name -> writer(path) -> path: JPEG kinds, the fast path's own and those it leaves to Pillow
JPEGS = {
    "baseline-RGB": lambda p: _jpeg(p, PHOTO, quality=90),
    "baseline-L": lambda p: _jpeg(p, PHOTO[..., 1], quality=90),
    "progressive": lambda p: _jpeg(p, PHOTO, quality=80, progressive=True),
    "subsampling-444": lambda p: _jpeg(p, PHOTO, quality=90, subsampling=0),
    "odd-size": lambda p: _jpeg(p, PHOTO[:37, :45], quality=90),
    "optimized-huffman": lambda p: _jpeg(p, PHOTO, quality=70, optimize=True),
    "restart-markers": lambda p: _jpeg(p, PHOTO, quality=90, restart_marker_blocks=1),
    "icc-profile": lambda p: _jpeg(p, PHOTO, quality=90, icc_profile=b"\0" * 200),
    "comment": lambda p: _jpeg(p, PHOTO, quality=90, comment=b"a comment"),
    "exif-orientation": lambda p: _jpeg(p, PHOTO, quality=90, exif=_exif(6)),
    "exif-plain": lambda p: _jpeg(p, PHOTO, quality=90, exif=_exif(1)),
    "xmp-orientation": lambda p: _jpeg(p, PHOTO, quality=90, xmp=b'<x tiff:Orientation="3"/>'),
    "cmyk": lambda p: (Image.fromarray(PHOTO).convert("CMYK").save(p, "JPEG", quality=90), str(p))[1],
    "mpo": lambda p: _mpo(p),
}
FAST = {"baseline-RGB", "baseline-L", "progressive", "subsampling-444", "odd-size", "optimized-huffman",
        "restart-markers", "icc-profile", "comment"}
READINGS = [dict(image_size=None), dict(image_size=(16, 16)), dict(image_size=(9, 13)),
            dict(image_size=(12, 12), crop_to_aspect_ratio=True), dict(image_size=(12, 12), pad_to_aspect_ratio=True),
            dict(image_size=(20, 24), interpolation="bicubic"), dict(image_size=(7, 5), interpolation="lanczos"),
            dict(image_size=(16, 16), reducing_gap=1.0), dict(image_size=(9, 13), reducing_gap=1.0),
            dict(image_size=(5, 5), reducing_gap=1.0), dict(image_size=(8, 8), reducing_gap=2.0),
            dict(image_size=(10, 10), crop_to_aspect_ratio=True, reducing_gap=1.5),
            dict(image_size=(6, 12), pad_to_aspect_ratio=True, reducing_gap=1.0),
            dict(image_size=(30, 30), reducing_gap=2.0), dict(image_size=(64, 80), reducing_gap=1.0)]   # larger than 1/2


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _mpo(path):
    frames = [Image.fromarray(PHOTO), Image.fromarray(PHOTO[::-1])]
    frames[0].save(path, "MPO", save_all=True, append_images=frames[1:])
    return str(path)


def _decode(path, color, reading):
    return images_module.decode(path, reading.get("image_size"), color, reading.get("crop_to_aspect_ratio", False),
                                reading.get("pad_to_aspect_ratio", False), reading.get("interpolation", "bilinear"),
                                reducing_gap=reading.get("reducing_gap"))


def _both(monkeypatch, path, color, reading):
    """``decode`` with the fast path, then with it switched off."""
    fast = _decode(path, color, reading)
    with monkeypatch.context() as m:
        m.setattr(_image_jpeg, "read_plain", lambda *args: None)
        general = _decode(path, color, reading)
    return fast, general


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()))
@pytest.mark.parametrize("color", ["grayscale", "rgb"])
@pytest.mark.parametrize("kind", sorted(JPEGS))
def test_every_kind_of_jpeg_reads_bit_identically_on_both_paths(tmp_path, monkeypatch, kind, color, reading):
    path = JPEGS[kind](tmp_path / f"{kind}.jpg")
    assert (_image_jpeg.read_plain(path, Image, images_module.MAX_IMAGE_PIXELS) is not None) == (kind in FAST)
    fast, general = _both(monkeypatch, path, color, reading)
    assert fast.dtype == general.dtype == np.float32
    np.testing.assert_array_equal(fast, general)


@pytest.mark.parametrize("reading", READINGS[:4] + READINGS[-3:], ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()))
@pytest.mark.parametrize("color", ["grayscale", "rgb"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_reads_bit_identically_with_and_without_the_fast_path(tmp_path, monkeypatch, name, color,
                                                                          reading):
    path, _, _, _ = write(tmp_path, name)
    fast, general = _both(monkeypatch, path, color, reading)
    np.testing.assert_array_equal(fast, general)


def test_fast_path_matches_a_plain_pillow_reading(tmp_path):
    """An independent reading: Pillow's open, convert, resize, divide by 255."""
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    expected = np.asarray(Image.open(path).convert("RGB").resize((10, 8), Image.Resampling.BILINEAR))
    X = load_images([path, path], image_size=(8, 10), color="rgb")
    np.testing.assert_array_equal(X[1], expected.astype(np.float32) / np.float32(255))


def test_exif_rotated_jpeg_takes_the_general_path_and_is_rotated(tmp_path):
    path = JPEGS["exif-orientation"](tmp_path / "rotated.jpg")
    upright = np.asarray(Image.open(JPEGS["baseline-RGB"](tmp_path / "upright.jpg")))
    X = load_images([path], color="rgb")
    assert X.shape == (1, PHOTO.shape[1], PHOTO.shape[0], 3)   # orientation 6: a quarter turn
    np.testing.assert_array_equal(X[0], np.rot90(upright, -1) / np.float32(255))


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.9, -2])
def test_truncated_jpeg_is_still_an_error_naming_the_file(tmp_path, cut):
    data = open(JPEGS["baseline-RGB"](tmp_path / "whole.jpg"), "rb").read()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:int(len(data) * cut)] if cut > 0 else data[:cut])
    assert _image_jpeg.read_plain(str(path), Image, images_module.MAX_IMAGE_PIXELS) is None
    with pytest.raises(ImageFileError, match="cut.jpg"):
        load_images([path])


def test_header_reads_the_frame_and_refuses_what_it_does_not_know():
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, "JPEG")
    data = buffer.getvalue()
    assert _image_jpeg.header(data) == (12, 10, "RGB")
    assert _image_jpeg.header(data[:2] + b"\xff\xff" + data[2:]) == (12, 10, "RGB")   # fill bytes
    for bad in (b"", data[:3], data[:30], b"\x89PNG\r\n\x1a\n" + data[8:], data.replace(b"\xff\xc0", b"\xff\xc3")):
        assert _image_jpeg.header(bad) is None


def test_large_and_special_files_take_the_general_path(tmp_path, monkeypatch):
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 100)
    assert _image_jpeg.read_plain(path, Image, images_module.MAX_IMAGE_PIXELS) is None
    with pytest.raises(ImageFileError, match="more than the limit"):
        load_images([path])
    assert _image_jpeg.read_plain(str(tmp_path), Image, 10 ** 9) is None   # a folder
    assert _image_jpeg.read_plain(str(tmp_path / "missing.jpg"), Image, 10 ** 9) is None


@pytest.mark.parametrize("reading", [r for r in READINGS if not r.get("pad_to_aspect_ratio")
                                     and r.get("reducing_gap", 0) != 1.0],
                         ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()))
def test_plain_jpeg_needing_only_a_resize_skips_pillows_python_wrappers(tmp_path, monkeypatch, reading):
    """The fast path is taken (not silently left for the general one) whenever no wrapper step is needed."""
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    expected = _decode(path, "rgb", reading)

    def refused(*args, **kwargs):
        raise AssertionError("the general reading ran for a plain JPEG")
    monkeypatch.setattr(images_module, "_pixels", refused)
    monkeypatch.setattr(images_module, "_open", refused)
    np.testing.assert_array_equal(_decode(path, "rgb", reading), expected)


@pytest.mark.parametrize("broken", ["read_plain", "pixel_bytes"])
def test_a_pillow_whose_c_calls_differ_falls_back_to_the_general_path(tmp_path, monkeypatch, broken):
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    expected = _decode(path, "rgb", dict(image_size=(9, 13)))
    if broken == "read_plain":   # the decoder's arguments changed (the general path passes 3, the fast one 5)
        original = Image.core.jpeg_decoder

        def changed(*args):
            if len(args) == 5:
                raise TypeError("function takes at most 4 arguments")
            return original(*args)
        monkeypatch.setattr(Image.core, "jpeg_decoder", changed)
        assert _image_jpeg.read_plain(path, Image, images_module.MAX_IMAGE_PIXELS) is None
    else:
        monkeypatch.setattr(_image_jpeg, "pixel_bytes", lambda *args: (_ for _ in ()).throw(TypeError("changed")))
    np.testing.assert_array_equal(_decode(path, "rgb", dict(image_size=(9, 13))), expected)


def test_the_fast_path_checks_this_pillow_once_and_stands_aside_when_it_disagrees(tmp_path, monkeypatch):
    """A Pillow whose C calls decode differently (same names, other meaning) sends every file to the general path."""
    assert _image_jpeg.agrees_with_pillow(Image)   # the installed Pillow: the fast path is on
    path = JPEGS["baseline-RGB"](tmp_path / "a.jpg")
    expected = _decode(path, "rgb", dict(image_size=(16, 16)))
    real = _image_jpeg.pixel_bytes
    with monkeypatch.context() as m:   # a read-out that differs by one byte, as a changed Pillow might
        m.setattr(_image_jpeg, "pixel_bytes", lambda Image, im: bytes([real(Image, im)[0] ^ 1]) + real(Image, im)[1:])
        _image_jpeg.agrees_with_pillow.cache_clear()
        try:
            assert not _image_jpeg.agrees_with_pillow(Image)
            assert _image_jpeg.read_plain(path, Image, images_module.MAX_IMAGE_PIXELS) is None
            np.testing.assert_array_equal(_decode(path, "rgb", dict(image_size=(16, 16))), expected)
        finally:
            _image_jpeg.agrees_with_pillow.cache_clear()
    assert _image_jpeg.read_plain(path, Image, images_module.MAX_IMAGE_PIXELS) is not None


# ---------------------------------------------------------------- the batch route (_image_jpeg.read_rows)
def _no_fast_routes(m):
    m.setattr(_image_jpeg, "read_plain", lambda *args: None)
    m.setattr(_image_jpeg, "read_rows", lambda paths, *args, **kwargs: (None, list(range(len(paths)))))
    m.setattr(_image_jpeg, "read_header", lambda path: None)


def _files_of(tmp_path, kind):
    """A list mixing ``kind`` with the files a batch leaves to :func:`decode`, in one batch."""
    first = JPEGS[kind](tmp_path / "a.jpg")
    data = open(first, "rb").read()
    paths = [first]
    for name in ("b.JPEG", "c.png"):   # another JPEG extension, and a JPEG named otherwise (read file by file)
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    if kind not in ("odd-size", "exif-orientation"):   # the same (displayed) size: readable without image_size
        paths += [JPEGS["exif-plain"](tmp_path / "d.jpg"), JPEGS["baseline-L"](tmp_path / "e.jpg")]
    return paths + [first]


@pytest.mark.parametrize("reading", READINGS, ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()))
@pytest.mark.parametrize("color", ["auto", "grayscale", "rgb"])
@pytest.mark.parametrize("kind", sorted(JPEGS))
def test_a_batch_of_every_kind_of_jpeg_reads_bit_identically_to_the_general_path(tmp_path, monkeypatch, kind, color,
                                                                                  reading):
    paths = _files_of(tmp_path, kind)
    batch = load_images(paths, color=color, n_threads=2, **reading)
    with monkeypatch.context() as m:
        _no_fast_routes(m)
        general = load_images(paths, color=color, n_threads=2, **reading)
    assert batch.dtype == general.dtype == np.float32 and batch.preprocessing == general.preprocessing
    np.testing.assert_array_equal(batch, general)


@pytest.mark.parametrize("reading", [r for r in READINGS if not r.get("pad_to_aspect_ratio")
                                     and r.get("reducing_gap", 0) != 1.0],
                         ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()))
@pytest.mark.parametrize("kind", sorted(FAST))
def test_a_folder_of_plain_jpegs_is_read_in_batches_not_file_by_file(tmp_path, monkeypatch, kind, reading):
    """The batch route is taken (not silently left for decode) for every plain kind whose colour matches."""
    root = tmp_path / "root"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            JPEGS[kind](root / label / f"{i}.jpg")
    color = "grayscale" if kind == "baseline-L" else "rgb"
    with monkeypatch.context() as m:
        _no_fast_routes(m)
        expected, y, _ = load_image_folder(root, color=color, n_threads=2, **reading)
    monkeypatch.setattr(images_module, "decode", lambda *args, **kwargs: pytest.fail("a file read one by one"))
    X, y2, _ = load_image_folder(root, color=color, n_threads=2, **reading)
    np.testing.assert_array_equal(X, expected)
    assert y.tolist() == y2.tolist()


@pytest.mark.parametrize("strip_pixels", [None, 250], ids=["default-strips", "strips-of-2-images"])
def test_many_batches_on_threads_into_a_cache_equal_the_general_path(tmp_path, monkeypatch, strip_pixels):
    root = tmp_path / "root"
    rng = np.random.default_rng(2)
    for i in range(150):   # several tasks per thread; sizes and kinds mixed within each batch
        folder = root / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        array = np.clip(PHOTO[:30 + i % 11, :35 + i % 7].astype(int) + rng.integers(-9, 10, (1, 1, 3)), 0, 255)
        save = dict(exif=_exif(1)) if i % 17 == 0 else dict(progressive=True) if i % 5 == 0 else {}
        Image.fromarray(array.astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=85, **save)
    with monkeypatch.context() as m:
        _no_fast_routes(m)
        expected, y, _ = load_image_folder(root, image_size=(12, 10), color="rgb", n_threads=1)
    if strip_pixels is not None:
        monkeypatch.setattr(images_module, "_STRIP_PIXELS", strip_pixels)
    for n_threads in (1, 2, 3):
        X, y2, _ = load_image_folder(root, image_size=(12, 10), color="rgb", n_threads=n_threads,
                                     cache=tmp_path / f"cache{n_threads}")
        np.testing.assert_array_equal(X, expected)
        assert y2.tolist() == y.tolist()


def test_read_file_reads_small_and_large_jpegs_whole_and_nothing_else(tmp_path):
    buffer = bytearray(_image_jpeg._FIRST_READ)
    small = open(JPEGS["baseline-RGB"](tmp_path / "small.jpg"), "rb").read()
    assert bytes(_image_jpeg.read_file(str(tmp_path / "small.jpg"), buffer)) == small
    large = small[:-2] + bytes(3 * _image_jpeg._FIRST_READ) + small[-2:]   # padding before the end marker
    (tmp_path / "large.jpg").write_bytes(large)
    assert bytes(_image_jpeg.read_file(str(tmp_path / "large.jpg"), buffer)) == large
    exact = small[:-2] + bytes(_image_jpeg._FIRST_READ - len(small)) + small[-2:]   # fills the buffer exactly
    (tmp_path / "exact.jpg").write_bytes(exact)
    assert bytes(_image_jpeg.read_file(str(tmp_path / "exact.jpg"), buffer)) == exact
    Image.fromarray(PHOTO).save(tmp_path / "png.jpg", "PNG")
    for other in ("png.jpg", "missing.jpg", ""):   # another format, a missing file, a folder
        assert _image_jpeg.read_file(str(tmp_path / other), buffer) is None
    if hasattr(os, "mkfifo"):   # a pipe: nothing read from it (open for writing so the reader's open returns)
        os.mkfifo(tmp_path / "pipe.jpg")
        writer = os.open(tmp_path / "pipe.jpg", os.O_RDWR | os.O_NONBLOCK)   # a read of nothing raises
        try:
            os.write(writer, small)
            assert _image_jpeg.read_file(str(tmp_path / "pipe.jpg"), buffer) is None
            assert os.read(writer, len(small)) == small   # still there for the general path
        finally:
            os.close(writer)


def test_the_first_unreadable_file_stops_the_tasks_not_started(tmp_path, monkeypatch):
    """With on_error="raise", the tasks queued behind a failed one are dropped, not read to the end first."""
    import threading

    root = tmp_path / "root"
    for i in range(400):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(PHOTO[:8, :8]).save(root / f"c{i % 2}" / f"{i:03d}.jpg")
    (root / "c0" / "000.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")   # the first file of the first task
    real, started, gate = _image_jpeg.read_rows, [], threading.Event()

    def read_rows(paths, *args, **kwargs):
        if paths[0].startswith(str(root)):   # not agrees_with_pillow's own check
            started.append(paths[0])
        if paths[0].startswith(str(root)) and not paths[0].endswith("000.jpg"):
            gate.wait(timeout=1.0)   # the other tasks wait while the first one fails
        return real(paths, *args, **kwargs)
    monkeypatch.setattr(_image_jpeg, "read_rows", read_rows)
    with pytest.raises(ImageFileError, match="000.jpg"):
        load_image_folder(root, image_size=(8, 8), color="rgb", n_threads=2)
    gate.set()
    assert len(started) <= 3 < 400 // 32, started   # the failed task and the two already started at most


@pytest.mark.parametrize("kind", sorted(JPEGS))
def test_the_header_of_every_kind_of_jpeg_reads_as_pillows(tmp_path, monkeypatch, kind):
    """Size and colour from the frame header equal those of Image.open (or the file is left to it)."""
    path = JPEGS[kind](tmp_path / "a.jpg")
    fast = images_module._header(path)
    with monkeypatch.context() as m:
        _no_fast_routes(m)
        assert images_module._header(path) == fast
    assert (_image_jpeg.read_header(path) is not None) == (kind in FAST)
    data = open(path, "rb").read()
    big = data[:2] + b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes(65533) + data[2:]   # a header past 16 KiB
    (tmp_path / "big.jpg").write_bytes(big)
    assert _image_jpeg.read_header(str(tmp_path / "big.jpg")) is None
    if kind in FAST:
        assert images_module._header(str(tmp_path / "big.jpg")) == fast
