"""Every marker a JPEG's header may carry, before its frame: the fast routes (header pass, file-by-file and batch
reads) give what Pillow's general path gives -- the same size and colour, the same pixels, or the same error
naming the file.

So is every APP block Pillow's parser reads (JFIF, Adobe, ICC profile chunk, Photoshop resources), whole and cut
short, and a frame segment of another length: the fast decoding read such files, which Pillow refuses.

A marker Pillow's parser does not know (0xFF02-0xFFBF) makes ``Image.open`` refuse the file; the frame-header
walk skipped such a segment and gave the file a size that Pillow refuses to give (the header pass of
``color="auto"`` or ``image_size=None``).
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

ARRAY = (np.random.default_rng(0).random((16, 20, 3)) * 255).astype(np.uint8)


def _plain_jpeg(mode):
    buffer = io.BytesIO()
    Image.fromarray(ARRAY if mode == "RGB" else ARRAY[..., 0]).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _outcome(call):
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = call()
    except Exception as exc:   # noqa: BLE001 -- the error itself is compared
        return type(exc).__name__, str(exc)
    return "ok", np.asarray(value).tobytes() if isinstance(value, np.ndarray) else value, [str(w.message) for w in caught]


def _readings(paths):
    readings = [lambda: [images_module._header(path) for path in paths]]
    for color in ("auto",):
        for image_size in (None, (8, 8)):
            readings.append(lambda color=color, image_size=image_size:
                            load_images(paths, color=color, image_size=image_size, n_threads=1))
            # a folder of the file and a plain one, the unreadable left out with a warning naming it
            readings.append(lambda color=color, image_size=image_size:
                            load_image_folder(os.path.dirname(os.path.dirname(paths[0])), color=color,
                                              image_size=image_size, n_threads=1, on_error="skip")[0])
    return [_outcome(reading) for reading in readings]


#: Segment payloads: too short for a table or frame, one 8-bit quantization table, one 16-bit table, an 8-bit
#: table then a cut one
PAYLOADS = {"short": b"ab", "table8": bytes(65), "table16": b"\x10" + bytes(128), "overrun": bytes(65) + b"\x01ab",
            # the APP blocks Pillow's parser reads: whole, and cut where it fails (or stops without failing)
            "jfif": b"JFIF\x00\x01\x02", "jfif-cut": b"JFIF\x00\x01", "adobe": b"Adobe\x00\x64\x00\x00\x00\x00\x01",
            "adobe-cut": b"Adobe\x00", "icc": b"ICC_PROFILE\x00\x01\x01abc", "icc-cut": b"ICC_PROFILE\x00\x01",
            "photoshop": b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00\x00\x00\x00\x02ab" + b"8BIM\x03",
            "photoshop-cut": b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00\x00\x00\x00\x02ab" + b"8BIM\x03\xed",
            "photoshop-odd-name": b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x01a\x00\x00\x00\x01b\x00" + b"8BIM\x03\xed",
            "photoshop-resolution-cut": b"Photoshop 3.0\x00" + b"8BIM\x03\xed\x00\x00\x00\x00\x04abcd" + b"8BIM\x03\xed"}
#: Markers the longer payloads are tried with (the short one: every marker): tables, frames, the ones Pillow reads
#: otherwise than by length, an APP and a comment segment, a reserved marker
TABLE_MARKERS = (0x02, 0xC0, 0xC2, 0xC4, 0xC8, 0xCC, 0xDB, 0xDD, 0xDE, 0xE0, 0xE2, 0xEC, 0xED, 0xEE, 0xFE)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_marker_before_the_frame_reads_as_on_the_general_path(tmp_path, monkeypatch, mode, payload):
    """Each file sits in a folder with plain files of the other colour: a header pass that gave the file its colour
    while Pillow refuses it would turn ``color="auto"`` the other way."""
    data, other = _plain_jpeg(mode), _plain_jpeg("L" if mode == "RGB" else "RGB")
    body = PAYLOADS[payload]
    paths = []
    markers = range(256) if payload == "short" else TABLE_MARKERS
    for marker in markers:   # a segment after the start of image, in a folder of its own
        folder = tmp_path / f"m{marker:02x}" / "a"
        (folder.parent / "b").mkdir(parents=True)
        folder.mkdir()
        (folder / "plain.jpg").write_bytes(other)
        (folder.parent / "b" / "plain.jpg").write_bytes(other)
        path = folder / "marked.jpg"
        path.write_bytes(data[:2] + bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body + data[2:])
        paths.append(str(path))
    fast = [_readings([path]) for path in paths]
    with monkeypatch.context() as m:   # Pillow's general path only
        m.setattr(_image_jpeg, "read_plain", lambda *args: None)
        m.setattr(_image_jpeg, "read_rows", lambda paths, *args, **kwargs: (None, list(range(len(paths)))))
        m.setattr(_image_jpeg, "read_header", lambda path: None)
        general = [_readings([path]) for path in paths]
    for marker, got, want in zip(markers, fast, general):
        assert got == want, f"marker 0xFF{marker:02X}: {[g[:2] if g[0] != 'ok' else 'ok' for g in got]} vs " \
                            f"{[w[:2] if w[0] != 'ok' else 'ok' for w in want]}"
    assert sum(outcome[0][0] == "ok" for outcome in general) >= (16 if payload == "short" else 3)   # APPn, COM read


@pytest.mark.parametrize("extra", [-2, -1, 1, 3])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_frame_segment_of_another_length_reads_as_on_the_general_path(tmp_path, monkeypatch, mode, extra):
    """A start-of-frame segment longer or shorter than its component specifications (Pillow's parser fails on a
    partial one, libjpeg refuses any other length)."""
    data = _plain_jpeg(mode)
    at = data.index(b"\xff\xc0")
    length = int.from_bytes(data[at + 2:at + 4], "big")
    body = data[at + 4:at + 2 + length]
    body = body[:extra] if extra < 0 else body + bytes(extra)
    path = tmp_path / "a" / "frame.jpg"
    (tmp_path / "b").mkdir(parents=True)
    path.parent.mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "plain.jpg").write_bytes(_plain_jpeg("L" if mode == "RGB" else "RGB"))
    path.write_bytes(data[:at + 2] + (len(body) + 2).to_bytes(2, "big") + body + data[at + 2 + length:])
    fast = _readings([str(path)])
    with monkeypatch.context() as m:
        m.setattr(_image_jpeg, "read_plain", lambda *args: None)
        m.setattr(_image_jpeg, "read_rows", lambda paths, *args, **kwargs: (None, list(range(len(paths)))))
        m.setattr(_image_jpeg, "read_header", lambda path: None)
        assert fast == _readings([str(path)])
