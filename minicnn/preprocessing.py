"""The preprocessing record: what an image went through before the model's first layer.

A model fitted on images read by :func:`minicnn.images.load_image_folder`
records how they were read (``preprocessing_``: size, colour mode, resize
policy, scaling); the model file stores it and every face (the estimator,
:func:`minicnn.load_predictor`, ``minicnn predict``) applies it to image files,
so training and serving read an image identically. This module holds the
record's one table of keys and checks; it imports neither Pillow nor a face.

The record is a plain dict::

    {"image_size": [h, w] or None,       # None: images are used at their own (common) size
     "color": "grayscale" | "rgb",       # 1 or 3 channels
     "crop_to_aspect_ratio": bool,       # centre crop to the target aspect ratio before resizing
     "pad_to_aspect_ratio": bool,        # or pad with black to it (Keras's two options)
     "interpolation": "bilinear", ...    # Pillow resampling filter of the resize
     "scale": "unit",                    # values / the largest value of the bit depth (255, 65535) -> [0, 1]
     "reducing_gap": 1.0}                # only when set: JPEGs decoded scaled down by libjpeg (Image.draft),
                                         # then a two-step resize (Pillow's reducing_gap, as Image.thumbnail)

An optional key is written only when it differs from its default (see
:data:`OPTIONAL`), so the records of default readings, and every model file
written before the key existed, read the images as they always did.
"""

import numbers
import os

import numpy as np

COLORS = ("grayscale", "rgb")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
SCALES = ("unit",)
CHANNELS = {"grayscale": 1, "rgb": 3}
KEYS = ("image_size", "color", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "interpolation", "scale")
#: Keys a record holds only when they differ from these defaults (older records lack them: the default applies).
OPTIONAL = {"reducing_gap": None}


def check_options(image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation, auto=True,
                  max_pixels=None, reducing_gap=None):
    """Validate the reading options once, at the edge; return ``image_size`` as a tuple (or None).

    ``max_pixels``: the largest ``height * width`` allowed (the reader passes
    :data:`minicnn.images.MAX_IMAGE_PIXELS`).

    Raises
    ------
    ValueError
        Naming the parameter and the value received.
    """
    if image_size is not None:
        ok = (isinstance(image_size, (tuple, list)) and len(image_size) == 2
              and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in image_size))
        if not ok:
            raise ValueError(f"image_size must be None or (height, width), two integers >= 1; received "
                             f"image_size={image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))
        if max_pixels is not None and image_size[0] * image_size[1] > max_pixels:
            raise ValueError(f"image_size={image_size} asks for {image_size[0] * image_size[1]} pixels per image, "
                             f"more than the limit of {max_pixels} (minicnn.images.MAX_IMAGE_PIXELS)")
    colors = (("auto",) if auto else ()) + COLORS
    if color not in colors:
        raise ValueError(f"color must be one of {colors}; received color={color!r}")
    for name, value in (("crop_to_aspect_ratio", crop_to_aspect_ratio), ("pad_to_aspect_ratio", pad_to_aspect_ratio)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; received {name}={value!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("crop_to_aspect_ratio and pad_to_aspect_ratio cannot both be True; received both True")
    if (crop_to_aspect_ratio or pad_to_aspect_ratio) and image_size is None:
        raise ValueError(f"{'crop' if crop_to_aspect_ratio else 'pad'}_to_aspect_ratio=True needs an image_size "
                         f"(height, width) to take the aspect ratio from; received image_size=None")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}")
    if auto and interpolation != "bilinear" and image_size is None:   # a reading asked for (a record may hold it)
        raise ValueError(f"interpolation={interpolation!r} needs an image_size (height, width) to resize to: "
                         f"without it no image is resized; received image_size=None")
    if reducing_gap is not None:
        if (isinstance(reducing_gap, (bool, np.bool_)) or not isinstance(reducing_gap, numbers.Real)
                or not reducing_gap >= 1.0 or not np.isfinite(reducing_gap)):
            raise ValueError(f"reducing_gap must be None or a finite number >= 1.0; received "
                             f"reducing_gap={reducing_gap!r}")
        if image_size is None:
            raise ValueError("reducing_gap needs an image_size (height, width) to reduce towards; received "
                             "image_size=None")
    return image_size


def make_record(image_size, color, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                interpolation="bilinear", reducing_gap=None):
    """The record of one reading (``color`` resolved to "grayscale" or "rgb"; optional keys only when set)."""
    record = {"image_size": None if image_size is None else [int(image_size[0]), int(image_size[1])],
              "color": color, "crop_to_aspect_ratio": bool(crop_to_aspect_ratio),
              "pad_to_aspect_ratio": bool(pad_to_aspect_ratio), "interpolation": interpolation, "scale": "unit"}
    if reducing_gap is not None:
        record["reducing_gap"] = float(reducing_gap)
    return record


def reading(record):
    """The reading options of a record, as keyword arguments of :func:`minicnn.images.load_images`."""
    options = {k: record[k] for k in KEYS if k != "scale"}
    options.update({k: record.get(k, default) for k, default in OPTIONAL.items()})
    if options["image_size"] is None:   # nothing is resized: an older record's filter is moot
        options["interpolation"] = "bilinear"
    return options


def problem(record, input_shape=None):
    """Why ``record`` is not a valid record (for a model of NHWC ``input_shape``), or None."""
    if not isinstance(record, dict) or not set(KEYS) <= set(record) or not set(record) <= set(KEYS) | set(OPTIONAL):
        return (f"expected a dict with keys {list(KEYS)} (and optionally {list(OPTIONAL)}), received "
                f"{record!r}")
    if any(k in record and record[k] == default for k, default in OPTIONAL.items()):
        return f"optional keys are written only when they differ from their defaults {OPTIONAL}; received {record!r}"
    try:
        check_options(record["image_size"], record["color"], record["crop_to_aspect_ratio"],
                      record["pad_to_aspect_ratio"], record["interpolation"], auto=False,
                      reducing_gap=record.get("reducing_gap"))
    except ValueError as exc:
        return str(exc)
    if record["scale"] not in SCALES:
        return f"scale must be one of {SCALES}; received scale={record['scale']!r}"
    if input_shape is not None:
        h, w, c = input_shape
        if CHANNELS[record["color"]] != c:
            return f"color={record['color']!r} does not match the model's {c} input channel(s)"
        if record["image_size"] is not None and list(record["image_size"]) != [h, w]:
            return f"image_size={record['image_size']} does not match the model's input size {[h, w]}"
    return None


def of(X):
    """The record an array of images carries (``X.preprocessing``), or None."""
    record = getattr(X, "preprocessing", None)
    return dict(record) if isinstance(record, dict) else None


def record_fit(estimator, X, first):
    """At fit: record (``first``) or check (``partial_fit``/warm start) the preprocessing ``X`` carries.

    Arrays without a record leave ``preprocessing_`` unset at the first fit and
    are accepted later (the user vouches for them); an array whose record
    differs from the fitted one is refused, naming both.
    """
    record = of(X)
    if first:
        estimator.__dict__.pop("preprocessing_", None)
        if record is not None:
            bad = problem(record, tuple(estimator.input_shape_))
            if bad is not None:
                raise ValueError(f"X.preprocessing does not describe X: {bad}")
            estimator.preprocessing_ = record
        return
    fitted = getattr(estimator, "preprocessing_", None)
    if record is not None and fitted is not None and record != fitted:
        raise ValueError(f"X was read with preprocessing {record}, but the model was fitted on images read with "
                         f"{fitted}: read them with the fitted options")


def for_model(model):
    """The record a fitted model applies to image files: its own, or one from its input shape.

    A model without a record (fitted on arrays, or saved before records
    existed) reads files at its exact input size in its channel count.
    """
    record = getattr(model, "preprocessing_", None)
    if record is not None:
        return record
    h, w, c = model.input_shape_
    if c not in (1, 3):
        raise ValueError(f"this model takes {c}-channel images; image files can be read as 1 (grayscale) or 3 "
                         f"(rgb) channels only: pass an array instead")
    return make_record(None, "grayscale" if c == 1 else "rgb")


def is_paths(X):
    """Whether ``X`` names image files: a str/path, or a list, tuple or 1-D array of them.

    Raises
    ------
    ValueError
        For a list (tuple, 1-D array) that mixes paths with other values,
        naming the first value that is not a path.
    """
    if isinstance(X, (str, os.PathLike)):
        return True
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype.kind not in "UO":
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    is_path = [isinstance(p, (str, os.PathLike)) for p in X]
    if any(is_path) and not all(is_path):
        i = is_path.index(False)
        raise ValueError(f"X mixes image file paths with other values: X[{i}]={X[i]!r} is not a path (str or "
                         f"os.PathLike); pass a list of paths or an array of images")
    return len(is_path) > 0 and all(is_path)
