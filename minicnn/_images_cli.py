"""The ``minicnn`` command's image options: ``fit --data folder:PATH --image-size H,W --color rgb`` and
``predict`` on image files and folders (the logic lives in :mod:`minicnn.images`)."""

import argparse
import os

import numpy as np

from . import images, preprocessing

#: Extensions recognised as images when Pillow is missing (reading them then says how to install it).
_COMMON_EXTENSIONS = frozenset((".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"))
_OPTIONS = ("image_size", "color", "crop_to_aspect_ratio", "pad_to_aspect_ratio", "interpolation", "reducing_gap")


def _image_size(text):
    try:
        size = tuple(int(p) for p in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH (two positive integers, e.g. 64,64); received "
                                         f"{text!r}")
    try:   # the library's own checks (e.g. the size limit), said of the option
        preprocessing.check_options(size, "auto", False, False, "bilinear", max_pixels=images.MAX_IMAGE_PIXELS)
    except ValueError as exc:   # said of the option, as typed (not the library's image_size=)
        from ._cli_words import cli_spelling

        raise argparse.ArgumentTypeError(cli_spelling(str(exc), {"image_size": "--image-size"})) from None
    return size


def _reducing_gap(text):
    """``--reducing-gap G``: a finite number >= 1.0 (checked by the library's own rule)."""
    try:
        gap = float(text)
        preprocessing.check_options((1, 1), "auto", False, False, "bilinear", reducing_gap=gap)
    except ValueError:   # the library's rule, in the option's words (its message names reducing_gap=)
        raise argparse.ArgumentTypeError(f"expected a finite number >= 1.0; received {text!r}") from None
    return gap


def add_cli_options(group):
    """``fit``'s options for ``folder:`` data."""
    group.add_argument("--image-size", type=_image_size, default=None, metavar="H,W",
                       help="with folder: data, resize every image to H,W (default: none, i.e. images must all "
                            "have one size)")
    group.add_argument("--color", choices=("auto",) + preprocessing.COLORS, default="auto",
                       help="with folder: data, channels: auto (rgb if any image has colour), grayscale or rgb")
    group.add_argument("--crop-to-aspect-ratio", action="store_true",
                       help="with --image-size, centre-crop to its aspect ratio before resizing")
    group.add_argument("--pad-to-aspect-ratio", action="store_true",
                       help="with --image-size, pad with black to its aspect ratio before resizing")
    group.add_argument("--interpolation", choices=preprocessing.INTERPOLATIONS, default="bilinear",
                       help="with --image-size, the resize filter (Pillow's; default: bilinear)")
    group.add_argument("--reducing-gap", type=_reducing_gap, default=None, metavar="G",
                       help="with --image-size, read as Pillow's Image.thumbnail: JPEGs decoded scaled down by "
                            "libjpeg, then a two-step resize (a number >= 1.0; faster, other pixels; default: off, "
                            "the full decode)")


def cli_reading(args):
    """The reading options of parsed ``fit`` arguments; refused when no data is a folder."""
    reading = {name: getattr(args, name) for name in _OPTIONS}
    given = [name for name in _OPTIONS if reading[name] not in (None, "auto", False, "bilinear")]
    folders = [s for s in (args.data, args.test_data) if s is not None and s.startswith("folder:")]
    if given and not folders:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags}: only for folder:PATH data (--data or --test-data); received --data {args.data}")
    if reading["image_size"] is None and "interpolation" in given:   # the library cannot tell it was chosen
        raise ValueError(f"--interpolation {reading['interpolation']}: the filter of the resize to --image-size; "
                         f"received no --image-size, so nothing is resized (give --image-size H,W or leave "
                         f"--interpolation out)")
    preprocessing.check_options(reading["image_size"], reading["color"], reading["crop_to_aspect_ratio"],
                                reading["pad_to_aspect_ratio"], reading["interpolation"],
                                reducing_gap=reading["reducing_gap"])
    check_test_split(args.data, args.test_size, args.test_data)
    return reading


def _labels_of(data):
    """The labels of ``--data`` read cheaply (a folder's listing, a .npz's ``y``, an idx labels file), or None."""
    from . import datasets

    try:
        if data.startswith("folder:"):
            _, labels, classes = images.list_folder(data[7:])
            if len(classes) < 2 or len(set(labels)) < len(classes):   # reading it says what is wrong with it
                return None
            return np.asarray(labels)
        if data.startswith("idx:") and len(data[4:].split(",")) == 2:
            return datasets._read_idx(data[4:].split(",")[1], datasets._IDX_LABELS_MAGIC)
        if data.endswith(".npz"):
            with np.load(data, allow_pickle=False) as archive:
                return np.asarray(archive["y"]).reshape(-1)
    except Exception:   # unreadable data: reading it for the fit says what is wrong, in its own words
        return None
    return None


def check_test_split(data, test_size, test_data):
    """Refuse a ``--test-size`` split of ``--data`` that cannot hold out every class, before any image is decoded.

    Raises
    ------
    ValueError
        From :func:`minicnn.holdout.check_holdout`: the images per class, the
        held-out count and what would be enough (more images per class, a
        ``--test-size`` that fits, or ``--test-data``).
    """
    from .holdout import check_holdout

    if test_data is not None or data is None or not data.startswith(("folder:", "idx:")) and \
            not data.endswith(".npz"):
        return
    y = _labels_of(data)
    if y is not None and len(y):
        check_holdout(y, test_size, parameter="--test-size", unit="images",
                      other=f", or pass --test-data (--data {data})")


def read_labeled_folder(path, option, reading):
    """``(X, y)`` of ``folder:PATH``: labels are the class folder names."""
    if not path:
        raise ValueError(f"{option} folder:PATH needs a folder; received {'folder:' + path!r}")
    try:
        X, y, class_names = images.load_image_folder(path, **reading)
    except images.ImageFileError as exc:
        raise images.ImageFileError(f"{option} folder:{path}: {exc}") from None
    return X, np.asarray(class_names, dtype=object)[y]


def model_reading(model):
    """The reading options that give a saved model's ``folder:`` data its own preprocessing (every option of its
    record: size, colour, crop or pad, interpolation, reducing_gap), as ``minicnn predict`` reads files for it:
    evaluate and mc-report score a folder as the fit read it."""
    if getattr(model, "preprocessing_", None) is None and model.input_shape_[2] not in (1, 3):
        return {}   # no image files fit it: its data are arrays, read without these options
    record = preprocessing.for_model(model)   # without a record: the images as they are, in its channel count
    options = preprocessing.reading(record)   # every reading option the record holds (interpolation, reducing_gap)
    options["image_size"] = None if options["image_size"] is None else tuple(options["image_size"])
    return options


def reading_like(X_train, reading):
    """A test folder is read as the training images were (same colour and size)."""
    record = preprocessing.of(X_train)
    if record is None:
        return reading
    return dict(reading or {}, color=record["color"],
                image_size=record["image_size"] or tuple(X_train.shape[1:3]))


def are_image_inputs(paths):
    """Whether ``predict``'s inputs are image files and folders (else one array file).

    An image is known by its extension, or, for a file named otherwise
    (``photo`` with no extension), by its content's signature.
    """
    try:
        extensions = images.image_extensions()
    except ImportError:
        extensions = _COMMON_EXTENSIONS
    return all(os.path.isdir(p) or os.path.splitext(p)[1].lower() in extensions or images.has_image_signature(p)
               for p in paths)


#: What ``minicnn predict`` does with a file its arguments reach twice (said in its help; one place).
ONE_ROW_PER_FILE = ("one row per file: a file reached again by a later spelling (repeated, ./a.jpg beside a.jpg, "
                    "an absolute path, a symlink or hard link, or inside a folder also given) adds no row, and a "
                    "warning names the spellings dropped")


def expand(paths):
    """Image files of ``predict``'s inputs: files as given, each folder's images as FOLDER/RELATIVE/PATH, sorted;
    one entry per file (see :data:`ONE_ROW_PER_FILE`).

    A file is known by its device and inode (``os.stat``, following links), so every spelling of it counts as
    the same file; the first spelling in argument order keys its row and the later ones are dropped with one
    UserWarning listing each (``later -> first``).
    """
    first, kept, dropped = {}, [], []
    for path in images.expand(paths):
        try:
            stat = os.stat(path)
            key = (stat.st_dev, stat.st_ino)
        except OSError:   # unreadable: reading it says so, in its own words
            key = ("path", path)
        if key in first:
            dropped.append(f"{path} -> {first[key]}" if path != first[key] else
                           f"{path} (named again, or inside a folder also given)")
            continue
        first[key] = path
        kept.append(path)
    if dropped:
        import warnings

        shown = "; ".join(dropped[:10]) + (f"; and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        warnings.warn(f"INPUT reaches {len(dropped)} file(s) a second time, each predicted once, in the row of its "
                      f"first spelling: {shown}", UserWarning, stacklevel=2)
    return kept


def read_for_model(model, files):
    """The files as ``model`` reads them (its preprocessing record)."""
    return images.model_input(model, files)
