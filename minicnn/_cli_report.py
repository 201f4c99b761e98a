"""The one line a ``minicnn`` command prints for each file it wrote: the path, its size, what it holds and what
checked it, e.g. ``wrote model.npz (1.3 MB; CNNClassifier, 10 classes; checked: reloaded, predicts as fitted)``."""

import os


def is_regular(path):
    """Whether ``path`` is a regular file (not a FIFO, a device such as ``/dev/stdout``, a socket)."""
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def size_text(path):
    """The size of the file at ``path`` in the usual units (``532 B``, ``12.4 kB``, ``1.3 MB``); ``streamed``
    for a FIFO or a device, whose size says nothing."""
    if not is_regular(path):
        return "streamed"
    size = os.path.getsize(path)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def wrote(path, what, checked, verb="wrote"):
    """``wrote PATH (SIZE; WHAT; checked: CHECKED)`` for the file just written at ``path``."""
    return f"{verb} {os.fsdecode(os.fspath(path))} ({size_text(path)}; {what}; checked: {checked})"


def check_model_file(path, model, X):
    """Reload the model file ``path`` as ``minicnn predict`` will and compare its predictions on ``X`` with
    ``model``'s; returns what was checked (a phrase) or raises ValueError naming the file. A FIFO or device
    (``--out /dev/stdout``) cannot be read back: said so."""
    import numpy as np

    if not is_regular(path):
        return "not read back (not a regular file)"

    from .predictor import load_predictor

    reloaded = load_predictor(path)
    if not np.array_equal(reloaded.predict(X), model.predict(X)):
        raise ValueError(f"{path}: the written model predicts differently from the fitted one on {len(X)} images")
    return f"reloaded, predicts as the fitted model on {len(X)} test images"


def check_onnx_file(path, predictor, input_ndim=None, n=8):
    """Check a written ONNX file: ``onnx.checker``, then (when ONNX Runtime is installed) its outputs on ``n``
    seeded random images against ``predictor``'s. Returns what was checked (a phrase); ValueError when the
    outputs differ."""
    import numpy as np
    import onnx

    onnx.checker.check_model(os.fspath(path))
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnx.checker (install onnxruntime to compare its outputs with the model's)"
    h, w, c = predictor.input_shape_
    images = np.random.default_rng(0).random((n, h, w, c), dtype=np.float32)
    if predictor.params.get("data_format") == "channels_first":
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    X = {2: images.reshape(n, -1), 3: images.reshape(n, h, w) if c == 1 else None}.get(input_ndim or 4, images)
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": X})))
    if "probabilities" in outputs:
        expected, got, name = predictor.predict_proba(images), outputs["probabilities"], "predict_proba"
    else:
        expected, got, name = predictor.predict(images), outputs["variable"], "predict"
    error = float(np.max(np.abs(np.asarray(got, dtype=np.float64).reshape(expected.shape) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not error <= 1e-4 * scale:
        raise ValueError(f"{path}: ONNX Runtime's outputs differ from the model's {name} by {error:.3g}")
    return f"onnx.checker, and ONNX Runtime matches {name} within {error:.1e} on {n} random images"


def wrote_folder(folder, since, checked):
    """``wrote FOLDER/: NAME (SIZE), ... (checked: CHECKED)`` for the files of ``folder`` written at or after
    ``since`` (a ``time.time()`` taken before the command wrote them)."""
    folder = os.fsdecode(os.fspath(folder))
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and e.stat().st_mtime >= since - 1)
    listed = ", ".join(f"{name} ({size_text(os.path.join(folder, name))})" for name in names)
    return f"wrote {os.path.join(folder, '')}: {listed or 'no file'} (checked: {checked})"
