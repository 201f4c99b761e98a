"""Nothing a small untrusted file says makes a loader allocate or read without bound: every face that reads a
model (minicnn.load, load_predictor, ``minicnn predict/summary/export``) x hostile sources (devices, FIFOs, pipes,
headers declaring huge activations or weights, oversized archives), and memory named as memory."""

import json
import os
import threading
import zipfile

import numpy as np
import pytest

import minicnn
from minicnn.architecture import parse_layers
from minicnn.io import ACTIVATION_SLACK_BYTES, MAX_ACTIVATION_EXPANSION, ModelFileError, activation_bytes
from minicnn.predictor import load_predictor

from helpers import run_cli


def _cli(*argv):
    code, out, err = run_cli(*argv)
    assert code != 0 and len(err.strip().splitlines()) == 1, (code, out, err)   # a one-line error
    return err


#: face -> load(path, tmp_path) raising, or returning the CLI's one-line error as ``Refused(message)``.
FACES = {
    "load": lambda path, tmp: minicnn.load(path),
    "load_predictor": lambda path, tmp: load_predictor(path),
    "cli_predict": lambda path, tmp: _raise(_cli("predict", "--model", path, tmp / "X.npy")),
    "cli_summary": lambda path, tmp: _raise(_cli("summary", "--model", path)),
    "cli_export": lambda path, tmp: _raise(_cli("export", "--model", path, "--out", tmp / "m.onnx")),
}


class Refused(Exception):
    """A CLI's one-line error."""


def _raise(message):
    raise Refused(message)


@pytest.fixture(params=sorted(FACES))
def face(request, tmp_path):
    if request.param == "cli_export":
        pytest.importorskip("onnx")
    np.save(tmp_path / "X.npy", np.zeros((2, 8, 8, 1), np.float32))
    return request.param, lambda path: FACES[request.param](path, tmp_path)


def _fit(**params):
    import warnings

    X = np.random.default_rng(0).random((12, 8, 8, 1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minicnn.CNNClassifier(max_iter=1, backend="numpy", batch_size=4, random_state=0,
                                     **params).fit(X, np.arange(12) % 2)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "m.npz"
    _fit(layers=("conv4", "maxpool", "gap"), padding="same").save(path)
    return path


def _edited(good, out, **params):
    """``good`` with header params changed (a small file that passes every weight check)."""
    with np.load(good, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    header = json.loads(members["header"].tobytes())
    header["params"].update(params)
    members["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(out, **members)
    return out


# ------------------------------------------------------------ not a regular file
def _expect_refused(face, path, kind):
    name, load = face
    with pytest.raises((ModelFileError, Refused)) as info:
        load(path)
    assert f"it is a {kind}" in str(info.value) and "not a regular file" in str(info.value)
    assert "not a zip archive" not in str(info.value)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_a_device_is_refused_unread(face, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    _expect_refused(face, device, "character device")


def test_a_fifo_without_a_writer_is_refused_without_hanging(face, tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    errors = []
    t = threading.Thread(target=lambda: errors.append(_catch(face[1], fifo)), daemon=True)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "loading from a FIFO with no writer hung"
    assert "FIFO" in str(errors[0]) and "not a regular file" in str(errors[0])


def _catch(load, path):
    try:
        load(path)
    except Exception as exc:
        return exc
    return None


def test_a_valid_model_streamed_through_a_pipe_is_refused_as_not_a_regular_file(face, good):
    """Piped (``--model /dev/stdin``, ``/proc/self/fd/N``), even a valid model is not called "not a zip archive"."""
    data = good.read_bytes()
    assert len(data) < 65536   # fits the pipe's buffer: written whole before the reader opens it
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        _expect_refused(face, f"/proc/self/fd/{r}", "FIFO (named pipe)")
    finally:
        os.close(r)


# ------------------------------------------------------------ what a small header declares
HOSTILE_HEADERS = {
    "maxpool_3000_same_gap": (("conv4", "maxpool", "gap"), dict(pool_size=3000, padding="same")),
    "avgpool_3000_same_gap": (("conv4", "avgpool", "gap"), dict(pool_size=3000, padding="same")),
    "two_pools_1000_same": (("conv4", "maxpool", "avgpool", "gap"), dict(pool_size=1000, padding="same")),
    "pool_then_conv_same": (("maxpool", "conv4", "gap"), dict(pool_size=4000, padding="same")),
    "kernel_2999_same": (("conv4", "gap"), dict(kernel_size=2999, padding="same")),
    "conv_after_huge_pool": (("conv8", "maxpool", "conv8", "gap"), dict(pool_size=1500)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_a_small_file_declaring_huge_activations_or_weights_is_refused(face, good, tmp_path, case):
    layers, params = HOSTILE_HEADERS[case]
    valid = tmp_path / "valid.npz"   # fitted with the same layers and small windows, then the header edited
    _fit(layers=layers, padding="same", pool_size=2, kernel_size=3).save(valid)
    path = _edited(valid, tmp_path / "hostile.npz", **params)
    assert path.stat().st_size < 10_000
    with pytest.raises((ModelFileError, Refused)) as info:
        face[1](path)
    assert "per sample" in str(info.value) or "weights" in str(info.value)
    assert str(path) in str(info.value)


def test_the_reported_file_names_the_activation_limit(good, tmp_path):
    path = _edited(good, tmp_path / "hostile.npz", pool_size=3000)
    with pytest.raises(ModelFileError, match=r"forward pass needs about \d+ bytes per sample.*pool_size=3000"):
        load_predictor(path)


def test_an_estimator_whose_network_a_file_may_not_describe_is_not_saved(tmp_path):
    """save refuses what load would refuse (nothing written), so a saved file always loads."""
    est = _fit(layers=("conv4", "maxpool", "gap"), padding="same", pool_size=2)
    est._built_with["pool_size"] = 3000   # as if fitted with it (fitting would need gigabytes)
    with pytest.raises(ValueError, match="per sample.*nothing was written"):
        est.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


LEGIT = [(("conv4", "maxpool"), (8, 8, 1), {}),
         (("conv4", "maxpool", "gap"), (9, 9, 1), dict(padding="same", pool_size=7)),
         (("conv8x5", "avgpool", "dense16"), (12, 12, 3), dict(padding="same", pool_size=3)),
         (("conv8", "conv8", "maxpool", "dense8"), (16, 16, 1), dict(batch_norm=True)),
         (("avgpool", "gap"), (10, 10, 2), dict(padding="same", pool_size=9))]


@pytest.mark.parametrize("layers, shape, params", LEGIT)
def test_the_activation_estimate_follows_what_predict_allocates_per_sample(layers, shape, params):
    """The estimate the limit uses is within a small factor of the memory one more sample costs (NumPy reference,
    the hungriest backend), so the limit bounds real memory."""
    import tracemalloc
    import warnings

    X = np.random.default_rng(0).random((6, *shape), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = minicnn.CNNClassifier(layers=layers, max_iter=1, backend="numpy", random_state=0,
                                    **params).fit(X, np.arange(6) % 2)
    peaks = []
    for n in (1, 5):
        est.predict(X[:n])
        tracemalloc.start()
        est.predict(X[:n])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_sample = (peaks[1] - peaks[0]) / 4
    estimate = activation_bytes(parse_layers(layers), shape, **params)
    assert per_sample <= 4 * estimate, (per_sample, estimate)


def test_the_limit_admits_common_networks():
    """A VGG-like block on 224x224 RGB images and a wide conv on grey digits are well inside the limit."""
    for layers, shape, params in [
            (("conv64", "conv64", "maxpool", "conv128", "conv128", "maxpool", "dense512"), (224, 224, 3),
             dict(padding="same")),
            (("conv512", "maxpool", "conv512", "gap"), (28, 28, 1), dict(padding="same", batch_norm=True))]:
        needed = activation_bytes(parse_layers(layers), shape, **params)
        assert needed <= MAX_ACTIVATION_EXPANSION * 4 * np.prod(shape) + ACTIVATION_SLACK_BYTES


# ------------------------------------------------------------ oversized archives
def test_an_archive_declaring_more_than_the_cap_is_refused_unread(face, good, tmp_path):
    """A small zip whose directory declares a 4 GiB member: refused before anything is read."""
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as out, zipfile.ZipFile(good) as archive:
        for i in archive.infolist():
            out.writestr(i, archive.read(i))
        out.writestr("padding.bin", b"\0" * 16)
    raw = bytearray(path.read_bytes())
    at = raw.rfind(b"padding.bin") - 46   # its central-directory record: patch the uncompressed size field
    assert raw[at:at + 4] == b"PK\x01\x02"
    raw[at + 24:at + 28] = (2**32 - 1).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises((ModelFileError, Refused)) as info:
        face[1](path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------ memory named as memory
def test_running_out_of_memory_on_a_valid_file_is_a_memory_error_not_a_bad_file(face, good, monkeypatch):
    real = np.frombuffer

    def frombuffer(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.2 GiB")
    monkeypatch.setattr(np, "frombuffer", frombuffer)
    name, load = face
    with pytest.raises((MemoryError, Refused)) as info:
        load(good)
    monkeypatch.setattr(np, "frombuffer", real)
    assert not isinstance(info.value, ModelFileError) and "not a valid" not in str(info.value)
    assert "out of memory" in str(info.value) and str(good) in str(info.value)
    assert minicnn.load(good).predict(np.zeros((1, 8, 8, 1), np.float32)).shape == (1,)
