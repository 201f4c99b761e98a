"""Your own images as arrays: :func:`load_image_folder` and :func:`load_images` (decoding with Pillow).

A folder of class subfolders (``root/cat/001.jpg``, ``root/dog/xyz.png``), or
a list of files with their labels, becomes NHWC float32 images in [0, 1],
integer labels and the sorted class names: plain arrays that
``train_test_split``, ``GridSearchCV`` and ``cross_val_score`` take as they are
(Keras's ``image_dataset_from_directory`` and torchvision's ``ImageFolder``
are the references for the options).

Pillow decodes every format it knows (PNG 8/16-bit, JPEG, BMP, GIF, WebP,
TIFF, ...). The images returned carry their preprocessing record
(``X.preprocessing``, see :mod:`minicnn.preprocessing`): an estimator fitted on
them stores it in its model file and applies it to image files at
prediction, so a file is read the same way at training and serving time.

Decoding runs on threads (Pillow releases the GIL while decoding and
resizing); ``cache=DIR`` stores the decoded array beside a fingerprint of the
files and options, so the next load maps it instead of decoding, and
``mmap_mode="r"`` returns that memory-mapped array for folders larger than
memory (train with ``partial_fit`` on chunks of it).
"""

import contextlib
import hashlib
import json
import os
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from . import _image_jpeg, preprocessing

PILLOW_INSTALL = ("pip install pillow (from a source checkout, the images extra: pip install -e \".[images]\"; "
                  "from a wheel: pip install 'minicnn-engine[images]')")
#: Largest image read (pixels): larger files are refused from their header, before decoding (decompression bombs).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
ON_ERROR = ("raise", "skip")
CACHE_VERSION = 1
#: A cache entry is not trusted when a file changed less than this before the entry's reading began (ns): file
#: times have a granularity (2 s on FAT, 1 s on some network file systems, a clock tick elsewhere), so a file
#: rewritten within the same tick, at the same size, would keep its stamp ("racy git"). It is decoded again.
RACY_NS = 2_000_000_000
#: Modes whose bands are gray levels (a palette image is gray when every palette entry is).
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")   # more than 8 bits: resized as floats
_TASK = 32   # most images in one task of the thread pool (a future per image cost ~20% of a small JPEG's time)
_BYTE_BANDS = {"L": 1, "RGB": 3}   # 8-bit modes whose tobytes() are the pixels, band by band
_STRIP_PIXELS = 1 << 22   # pixels of the images read into one strip by _image_jpeg.read_rows (16 MiB in RGB)


class ImageArray(np.ndarray):
    """NHWC float32 images that carry the preprocessing that produced them (``.preprocessing``).

    An ndarray in every other way: slicing, indexing (``train_test_split``,
    cross-validation), copies and reshapes keep the record (each view its own
    copy of it); ``np.asarray(X)`` drops it, and so does arithmetic (``X * 2 - 1``,
    ``X -= X.mean()``, ``np.clip``: any ufunc), whose values the record no
    longer describes, so a model fitted on them records no preprocessing
    rather than a wrong one.
    """

    def __array_finalize__(self, obj):
        record = getattr(obj, "preprocessing", None)
        self.preprocessing = dict(record) if isinstance(record, dict) else record

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """Ufuncs compute on plain arrays: results carry no record, and an array written in place loses its own."""
        def plain(value):
            return value.view(np.ndarray) if isinstance(value, ImageArray) else value

        if method == "at" and isinstance(inputs[0], ImageArray):   # ufunc.at writes into its first input
            inputs[0].preprocessing = None
        out = kwargs.get("out")
        if out is not None:
            for array in out:
                if isinstance(array, ImageArray):
                    array.preprocessing = None
            kwargs["out"] = tuple(plain(array) for array in out)
        result = getattr(ufunc, method)(*(plain(value) for value in inputs), **kwargs)
        if out is not None and method != "at":   # in place: hand back the arrays passed as out
            return out[0] if len(out) == 1 else out
        return result

    def __reduce__(self):
        rebuild, args, state = super().__reduce__()
        return rebuild, args, (state, self.preprocessing)

    def __setstate__(self, state):
        base, self.preprocessing = state
        super().__setstate__(base)


class ImageFileError(ValueError):
    """An image file or folder cannot be read as asked (names the file and the parameter)."""


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError(f"reading image files needs Pillow: {PILLOW_INSTALL}") from None
    return Image, ImageOps


def image_extensions():
    """The file extensions Pillow can open (lower case, with the dot)."""
    Image, _ = _pil()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


# --------------------------------------------------------------------------- listing


def _walk(folder, follow_links, seen, skip=frozenset()):
    """Files under ``folder``, recursively, sorted; refuses a symbolic-link loop (naming it).

    ``skip``: ``(st_dev, st_ino)`` of folders left out (a cache folder kept inside the image folder).
    """
    files = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise ImageFileError(f"folder {folder} cannot be listed ({type(exc).__name__}: {exc})") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue   # hidden files (.DS_Store, ._x) are never images
        path = os.path.join(folder, entry.name)
        if entry.is_dir(follow_symlinks=follow_links):
            key = (os.stat(path).st_dev, os.stat(path).st_ino)
            if key in skip:
                continue
            if key in seen:
                raise ImageFileError(f"symbolic link loop: {path} leads back to a folder already listed "
                                     f"({seen[key]}); remove the link or pass follow_links=False")
            seen[key] = path
            files += _walk(path, follow_links, seen, skip)
            del seen[key]
        elif entry.is_dir(follow_symlinks=True):
            continue   # a link to a folder, not followed (follow_links=False)
        elif entry.is_file(follow_symlinks=True) or entry.is_symlink():
            files.append(path)
    return files


def _folder_key(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def list_folder(directory, follow_links=True, cache=None):
    """``(paths, labels, class_names)`` of a folder of class subfolders (every file, images or not).

    A ``cache`` folder kept inside ``directory`` is not a class and holds no images: it is left out.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ImageFileError(f"directory={os.fspath(directory)!r} is not a folder")
    skip = frozenset([_folder_key(cache)] if cache is not None and os.path.isdir(cache) else [])
    classes = sorted(e.name for e in os.scandir(root) if not e.name.startswith(".")
                     and e.is_dir(follow_symlinks=follow_links) and _folder_key(e.path) not in skip)
    if not classes:
        raise ImageFileError(f"directory {root} has no class subfolders: expected root/CLASS/IMAGE files "
                             f"(or pass a list of image paths with labels)")
    paths, labels = [], []
    for index, name in enumerate(classes):
        folder = os.path.join(root, name)
        seen = {(os.stat(root).st_dev, os.stat(root).st_ino): str(root),
                (os.stat(folder).st_dev, os.stat(folder).st_ino): folder}
        found = _walk(folder, follow_links, seen, skip)
        paths += found
        labels += [index] * len(found)
    return paths, labels, classes


#: File signatures of the common image formats: a file starting with one is an image whatever its name.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")


def has_image_signature(path):
    """Whether the file starts with the signature of a common image format (PNG, JPEG, GIF, BMP, TIFF, WebP)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[:2] == b"BM" and head[6:10] == b"\0\0\0\0"))   # BMP: "BM", size, 4 reserved zero bytes


def expand(inputs, follow_links=True):
    """Files and folders as given -> image paths: a folder becomes its images (sorted, recursively) joined to it.

    A folder's images are its files with an extension Pillow opens, and its
    files named otherwise whose content starts with an image signature.
    """
    extensions = image_extensions()
    paths = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = [p for p in _walk(item, follow_links, {(os.stat(item).st_dev, os.stat(item).st_ino): item})
                     if os.path.splitext(p)[1].lower() in extensions or has_image_signature(p)]
            if not found:
                raise ImageFileError(f"{item} is a directory holding no image files (files with an extension "
                                     f"Pillow opens: .png, .jpg, .bmp, .gif, .webp, .tif, ...)")
            paths += found
        else:
            paths.append(item)
    return paths


# --------------------------------------------------------------------------- decoding


def _raw_mode(tile):
    """The raw (stored) mode of one of Pillow's tiles, or None."""
    args = tile[-1] if isinstance(tile, tuple) else None
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else None


def _colour_of(image):
    """"grayscale" or "rgb": the colour of an opened (not decoded) image, from its mode and palette.

    The stored colour counts, not the mode Pillow widens it to: a 16-bit
    gray+alpha PNG opens as "RGBA" but its raw mode (``LA;16B``) is gray.
    """
    if image.mode in _GRAY_MODES:
        return "grayscale"
    if image.mode in ("RGB", "RGBA"):
        raw = [_raw_mode(tile) for tile in (getattr(image, "tile", None) or ())]
        if raw and all(mode is not None and mode.split(";")[0] in _GRAY_MODES for mode in raw):
            return "grayscale"
    if image.mode in ("P", "PA"):
        palette = image.getpalette() or []
        rgb = np.asarray(palette[:len(palette) // 3 * 3]).reshape(-1, 3)
        return "grayscale" if (rgb == rgb[:, :1]).all() else "rgb"
    return "rgb"


def _open(path, Image):
    """The opened image (header read only), its size checked; errors name the file."""
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise ImageFileError(f"image file not found: {path}") from None
    except IsADirectoryError:
        raise ImageFileError(f"{path} is a folder, not an image file") from None
    except Image.UnidentifiedImageError:
        raise ImageFileError(f"{path} is not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:   # Pillow's own limit, checked while opening
        raise ImageFileError(f"image {path} is larger than Pillow's decompression-bomb limit ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageFileError(f"image file {path} cannot be read ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageFileError(f"image {path} is {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS} "
                             f"(minicnn.images.MAX_IMAGE_PIXELS; a decompression bomb?)")
    return image


def _target_box(width, height, image_size, crop, pad):
    """``(box, canvas)``: the source region to resize (crop) or the padded canvas size (pad)."""
    th, tw = image_size
    if crop:   # the largest centred box of the target aspect ratio (Keras crop_to_aspect_ratio)
        cw, ch = min(width, round(height * tw / th)), min(height, round(width * th / tw))
        left, top = (width - cw) // 2, (height - ch) // 2
        return (left, top, left + cw, top + ch), None
    if pad:    # the smallest centred canvas of the target aspect ratio holding the image (black borders)
        pw, ph = max(width, round(height * tw / th)), max(height, round(width * th / tw))
        return None, (pw, ph)
    return None, None


def _array(image):
    """The pixels of a decoded L/RGB/F image as an ``(h, w, bands)`` array (uint8, or float32 for "F")."""
    if image.mode in _BYTE_BANDS:   # the bytes as they are: no __array_interface__ round trip (a few us an image)
        return np.frombuffer(image.tobytes(), np.uint8).reshape(image.height, image.width, _BYTE_BANDS[image.mode])
    pixels = np.asarray(image)
    return pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels


def _to_unit(pixels, color, out=None):
    """``(h, w, bands)`` pixels as float32 in [0, 1] in ``color``'s channels (written into ``out`` when it fits).

    uint8 is divided by 255. Float pixels (an "F" image, values checked to lie
    in [0, 1] before resizing) are clipped: bicubic and Lanczos filters
    overshoot near edges, which Pillow clips for 8-bit images. Gray pixels
    read as "rgb" repeat the gray level in the three channels.
    """
    repeat = color == "rgb" and pixels.shape[2] == 1
    fits = out is not None and out.shape == pixels.shape[:2] + ((3,) if repeat else pixels.shape[2:])
    unit = out if fits and not repeat else np.empty(pixels.shape, np.float32)
    if pixels.dtype == np.uint8:   # the same float32 division as astype then divide, with no temporary
        np.divide(pixels, np.float32(255.0), out=unit, dtype=np.float32)
    else:
        np.clip(pixels, np.float32(0.0), np.float32(1.0), out=unit, dtype=np.float32)
    if not repeat:
        return unit
    if fits:
        out[...] = unit
        return out
    return np.repeat(unit, 3, axis=2)


def _wide_to_float(image, path):
    """A 16-bit (or 32-bit int / float) gray image as an "F" image in [0, 1]: 65535 is white, as 255 is."""
    pixels = np.asarray(image)
    if pixels.dtype.kind == "f":
        values = pixels.astype(np.float32)
        if values.size and not (values.min() >= 0.0 and values.max() <= 1.0):   # NaN fails too
            raise ImageFileError(f"image {path}: {image.mode} values in [{values.min()}, {values.max()}], outside "
                                 f"[0, 1] (floating-point images are read as they are)")
    else:
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
            raise ImageFileError(f"image {path}: {image.mode} values in [{pixels.min()}, {pixels.max()}], outside "
                                 f"the 16-bit range [0, 65535]")
        values = pixels.astype(np.float32) / np.float32(65535.0)
    Image, _ = _pil()
    return Image.fromarray(np.ascontiguousarray(values), mode="F")


def decode(path, image_size, color, crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
           interpolation="bilinear", out=None, reducing_gap=None):
    """One image file as float32 ``(height, width, channels)`` in [0, 1], ``color`` "grayscale" or "rgb".

    EXIF orientation is applied; alpha is dropped (as Keras and torchvision
    do); palette images take their palette's colours; 16-bit images are
    scaled by 65535; RGB becomes gray with ITU-R 601-2 luma (Pillow's
    ``convert("L")``, TensorFlow's ``rgb_to_grayscale``); gray becomes RGB by
    repeating the gray level. Errors are :class:`ImageFileError` naming the file.
    ``out``: a float32 array of the result's shape to write it into (returned).
    ``reducing_gap`` (with ``image_size``): as Pillow's ``Image.thumbnail``,
    a JPEG is decoded scaled down by libjpeg (1/2, 1/4 or 1/8, keeping at
    least ``reducing_gap`` times ``image_size``; ``Image.draft``) and the resize
    first reduces by an integer factor (``Image.resize(reducing_gap=)``).
    """
    Image, ImageOps = _pil()
    gap = reducing_gap if image_size is not None else None
    request = None if gap is None else (int(image_size[1] * gap), int(image_size[0] * gap))   # (width, height)
    im = _image_jpeg.read_plain(path, Image, MAX_IMAGE_PIXELS, request)   # most JPEGs: no Python marker parser
    if im is not None:
        try:
            pixels = _plain_pixels(im, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation,
                                   gap, Image)
        except Exception:   # noqa: BLE001 -- another Pillow's C calls: the general path reads the file
            pixels = False
        if pixels is None:   # a step for Pillow's Python wrappers, on the decoded image
            return _pixels(Image.Image()._new(im), "grayscale" if im.mode == "L" else "rgb", path, image_size,
                           color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation, out, gap, Image)
        if pixels is not False:
            return _to_unit(pixels, color, out)
    with _open(path, Image) as image:
        try:
            native = _colour_of(image)   # before load(), which forgets the raw mode
            if request is not None and image.format in _image_jpeg.FORMATS:   # Image.draft: before load()
                turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)   # the stored image is displayed turned
                image.draft(None, request[::-1] if turned else request)
            image.load()
            if image.getexif().get(0x0112, 1) != 1:
                image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise _undecodable(path, exc) from None
        return _pixels(image, native, path, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio,
                       interpolation, out, gap, Image)


def _undecodable(path, exc):
    return ImageFileError(f"image file {path} cannot be decoded ({type(exc).__name__}: {exc}); it may be "
                          f"truncated or corrupt")


def _pixels(image, native, path, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation,
            out, reducing_gap, Image):
    """A decoded (and oriented) image of colour ``native`` as float32 pixels: colour, crop/pad, resize, scale."""
    try:
        if image.mode in _WIDE_MODES:
            image = _wide_to_float(image, path)
        elif native == "grayscale":
            image = image if image.mode == "L" else image.convert("L")
        else:
            image = image if image.mode == "RGB" else image.convert("RGB")
            if color == "grayscale":
                image = image.convert("L")
        if image_size is not None:
            box, canvas = _target_box(image.width, image.height, image_size, crop_to_aspect_ratio,
                                      pad_to_aspect_ratio)
            if canvas is not None and canvas != image.size:
                padded = Image.new(image.mode, canvas, 0)
                padded.paste(image, ((canvas[0] - image.width) // 2, (canvas[1] - image.height) // 2))
                image = padded
            if box is not None or image.size != (image_size[1], image_size[0]):
                resample = Image.Resampling[interpolation.upper()]
                image = image.resize((image_size[1], image_size[0]), resample, box=box, reducing_gap=reducing_gap)
        pixels = _array(image)
    except ImageFileError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise _undecodable(path, exc) from None
    return _to_unit(pixels, color, out)


def _plain_pixels(im, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation, reducing_gap,
                  Image):
    """uint8 ``(h, w, bands)`` of a decoded C image (mode "L" or "RGB") that needs at most a resize, else None.

    The resize of ``Image.resize`` (same C call, same box) without its Python
    wrapper; None when a step needs the wrappers: a colour conversion, padding,
    or the integer reduction ``reducing_gap`` asks for (then ``_pixels`` runs).
    """
    if pad_to_aspect_ratio or (color == "grayscale" and im.mode != "L"):
        return None
    resize = _plain_resize(im.size, image_size, crop_to_aspect_ratio, interpolation, reducing_gap, Image)
    if resize is None:
        return None
    if resize[1] is not None:
        im = im.resize((image_size[1], image_size[0]), resize[1], resize[0])
    pixels = np.frombuffer(_image_jpeg.pixel_bytes(Image, im), np.uint8)
    return pixels.reshape(im.size[1], im.size[0], _BYTE_BANDS[im.mode])


def _plain_resize(decoded, image_size, crop_to_aspect_ratio, interpolation, reducing_gap, Image):
    """``(box, resample)`` of ``Image.resize`` for a decoded plain JPEG of size ``decoded`` (``resample`` None: no
    resize), or None when the integer reduction ``reducing_gap`` asks for needs Pillow's Python wrapper."""
    width, height = decoded
    if image_size is None:
        return None, None
    box, _ = _target_box(width, height, image_size, crop_to_aspect_ratio, False)
    box = (0, 0, width, height) if box is None else box
    size = (image_size[1], image_size[0])
    if size == (width, height) and box == (0, 0, width, height):
        return None, None
    if reducing_gap is not None and interpolation != "nearest" and (
            int((box[2] - box[0]) / size[0] / reducing_gap) > 1 or int((box[3] - box[1]) / size[1] / reducing_gap) > 1):
        return None
    return box, Image.Resampling[interpolation.upper()]


def _row_reader(paths, options, X, Image):
    """``rows(positions)``: reads the plain JPEGs among ``paths[positions]`` into those rows of ``X`` (a range of
    consecutive rows) in one batch (``_image_jpeg.read_rows``) and returns the positions left to :func:`decode`;
    None when no file can take that route (padding, or a Pillow whose C calls differ)."""
    if options["pad_to_aspect_ratio"] or not _image_jpeg.agrees_with_pillow(Image):
        return None
    image_size, gap = options["image_size"], options["reducing_gap"]
    gap = gap if image_size is not None else None
    request = None if gap is None else (int(image_size[1] * gap), int(image_size[0] * gap))
    _, height, width, channels = X.shape
    mode = "L" if channels == 1 else "RGB"
    plans = {}

    def plan_for(frame):   # one plan per header size (a folder has few)
        if frame not in plans:
            scale = 1 if request is None else _image_jpeg.draft_scale(frame[0], frame[1], request)
            decoded = (-(-frame[0] // scale), -(-frame[1] // scale))
            resize = _plain_resize(decoded, image_size, options["crop_to_aspect_ratio"], options["interpolation"],
                                   gap, Image)
            plans[frame] = None if resize is None or (resize[1] is None and decoded != (width, height)) \
                else (scale, resize[0], resize[1])
        return plans[frame]

    per_strip = max(1, _STRIP_PIXELS // (width * height))

    def rows(positions):
        left = []
        for start in range(positions.start, positions.stop, per_strip):   # strips of bounded memory
            stop = min(start + per_strip, positions.stop)
            pixels, missed = _image_jpeg.read_rows(paths[start:stop], (width, height), mode, plan_for, Image,
                                                   MAX_IMAGE_PIXELS)
            if pixels is not None:
                block = X[start:stop]
                np.divide(np.frombuffer(pixels, np.uint8).reshape(block.shape), np.float32(255.0), out=block,
                          dtype=np.float32)
            left += [start + k for k in missed]
        return left
    return rows


def _header(path):
    """``(width, height, colour)`` from the header, or an :class:`ImageFileError`.

    A plain JPEG's (no EXIF or XMP block, so never turned) comes from its frame header, walked over its first bytes
    without Pillow's Python parser: 1 component is gray, 3 are colour, as :func:`_colour_of` reads them.
    """
    Image, _ = _pil()
    frame = _image_jpeg.read_header(path)
    if frame is not None and _image_jpeg.within_limits(frame, Image, MAX_IMAGE_PIXELS):
        return frame[0], frame[1], "grayscale" if frame[2] == "L" else "rgb"
    with _open(path, Image) as image:
        try:
            width, height = image.size
            colour = _colour_of(image)   # before getexif(), which may load the image and forget its raw mode
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):   # a quarter turn swaps width and height
                width, height = height, width
            return width, height, colour
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageFileError(f"image file {path} cannot be read ({type(exc).__name__}: {exc}); it may be "
                                 f"truncated or corrupt") from None


def _threads(n_threads):
    if n_threads is None:
        return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be None or an integer >= 1; received n_threads={n_threads!r}")
    return n_threads


def _map(function, items, n_threads, on_error, batch=None):
    """``function`` over ``items`` on threads, in order; ``(results, failures)`` where failures are skipped.

    ``batch(indices)``: first called on each task's range of indices; it returns those ``function`` must still
    run on (its own results are its to store).
    """
    from concurrent.futures import ThreadPoolExecutor

    results, failures = [None] * len(items), []

    def guarded(index):
        try:
            results[index] = function(items[index])
        except ImageFileError as exc:
            if on_error == "raise":
                exc.file_error = True   # one file is unreadable: load_image_folder says how to skip such files
                raise
            failures.append((index, str(exc)))
    def run(indices):
        for index in (indices if batch is None else batch(indices)):
            guarded(index)
    step = max(1, min(_TASK, -(-len(items) // (4 * n_threads))))   # at least 4 tasks a thread: uneven files balance
    tasks = [range(i, min(i + step, len(items))) for i in range(0, len(items), step)]
    if n_threads == 1:   # no pool: the calling thread reads
        for task in tasks:
            run(task)
        return results, sorted(failures)
    with ThreadPoolExecutor(n_threads) as pool:   # every task at once: no round waits for its slowest task
        futures = [pool.submit(run, task) for task in tasks]
        try:
            for future in futures:
                future.result()
        except BaseException:   # the first error (or an interrupt): the tasks not started are dropped
            for future in futures:
                future.cancel()
            raise
    return results, sorted(failures)


# --------------------------------------------------------------------------- the loaders


def _fingerprint(paths, labels, options):
    """``(key, newest)``: the hash of the files' paths, stats and the options; the newest modification time."""
    digest, newest = hashlib.sha256(), 0
    import PIL

    digest.update(json.dumps([CACHE_VERSION, PIL.__version__, options, labels]).encode())
    for path in paths:
        try:   # ctime: a rewrite that keeps the size and puts the old mtime back still changes it
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:   # a missing file: reading it reports it
            stamp = (-1,)
        digest.update(os.fsencode(os.path.abspath(path)) + f"\0{stamp}\n".encode())   # any bytes a name holds
    return digest.hexdigest()[:32], newest


def _temporary(path):
    """A name beside ``path`` that no other process or thread writing the same cache entry uses."""
    return f"{path}.{os.getpid()}-{uuid.uuid4().hex}.tmp"


@contextlib.contextmanager
def _cache_errors(cache):
    """An OSError while creating or writing the cache folder, as an error naming ``cache``."""
    try:
        yield
    except OSError as exc:
        raise ImageFileError(f"cache={cache!r} cannot be used as a cache folder ({type(exc).__name__}: "
                             f"{exc.strerror or exc}); pass a writable folder or cache=None") from None


def _read_cache(cache, key, mmap_mode):
    meta_path, data_path = os.path.join(cache, key + ".json"), os.path.join(cache, key + ".npy")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        X = np.load(data_path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or not {"shape", "record", "kept", "skipped"} <= set(meta)
            or list(X.shape) != meta["shape"] or X.dtype != np.float32):
        return None   # an entry from another version or a damaged one: decoded again
    return X, meta


def _write_cache_meta(cache, key, meta):
    path = os.path.join(cache, key + ".json")
    from .files import write_text

    write_text(path, json.dumps(meta))


def _decode_all(paths, options, n_threads, on_error, out_for):
    """Decode ``paths`` into the array ``out_for(shape)`` returns.

    Returns ``(X, kept, color, failures, dropped_rows)``: indices of the paths read, the resolved colour,
    ``(index, message)`` of skipped files, and rows of ``X`` whose file failed after its header was read.
    """
    image_size = options["image_size"]
    if image_size is not None and options["color"] != "auto":   # nothing to learn from the headers first
        headers, failures = [None] * len(paths), []
        keep = list(range(len(paths)))
    else:
        headers, failures = _map(_header, paths, n_threads, on_error)
        keep = [i for i in range(len(paths)) if headers[i] is not None]
    color = options["color"]
    if color == "auto":
        color = "rgb" if any(headers[i][2] == "rgb" for i in keep) else "grayscale"
    if image_size is None:
        sizes = {}
        for i in keep:
            sizes.setdefault(headers[i][:2], []).append(paths[i])
        if len(sizes) > 1:
            shown = "; ".join(f"{w}x{h}: {files[0]}" + (f" and {len(files) - 1} more" if len(files) > 1 else "")
                              for (w, h), files in sorted(sizes.items(), key=lambda kv: -len(kv[1]))[:4])
            error = ImageFileError(f"images of different sizes (width x height: {shown}) and image_size=None: "
                                   f"pass image_size=(height, width) to resize them (with crop_to_aspect_ratio or "
                                   f"pad_to_aspect_ratio to keep their aspect ratio)")
            error.sizes = shown
            raise error
        width, height = next(iter(sizes)) if sizes else (1, 1)
        image_size_out = (height, width)
    else:
        image_size_out = image_size
    shape = (len(keep), image_size_out[0], image_size_out[1], preprocessing.CHANNELS[color])
    X = out_for(shape)
    kept_paths = [paths[i] for i in keep]

    def one(row):   # the file of X[row]
        target = X[row]
        path = kept_paths[row]
        pixels = decode(path, image_size, color, options["crop_to_aspect_ratio"],
                        options["pad_to_aspect_ratio"], options["interpolation"], out=target,
                        reducing_gap=options["reducing_gap"])
        if pixels.shape != shape[1:]:   # the header promised another size
            raise ImageFileError(f"image file {path} decodes to {pixels.shape[1]}x{pixels.shape[0]} pixels, "
                                 f"its header says {shape[2]}x{shape[1]}: a corrupt file")
        if pixels is not target:
            target[...] = pixels
        return True
    batch = _row_reader(kept_paths, options, X, _pil()[0])
    _, failed = _map(one, range(len(keep)), n_threads, on_error, batch)
    dropped = {row for row, _ in failed}
    failures = failures + [(keep[row], message) for row, message in failed]
    return (X, [i for row, i in enumerate(keep) if row not in dropped], color, sorted(failures), sorted(dropped))


def load_images(paths, *, image_size=None, color="auto", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                interpolation="bilinear", reducing_gap=None, n_threads=None):
    """Read image files into NHWC float32 images in [0, 1] (every file must be readable).

    Parameters
    ----------
    paths : list of str or path-like, or one of them
        Image files of any format Pillow reads, in the order of the rows
        (bytes names are decoded as the file system does).
    image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation, reducing_gap, n_threads
        As in :func:`load_image_folder`.

    Returns
    -------
    X : ImageArray of shape (n, height, width, channels), dtype float32
        With ``X.preprocessing``, the record of how the files were read.

    Raises
    ------
    ImageFileError
        A ``ValueError`` naming the file (missing, not an image, truncated or
        corrupt, too large) or the parameter (mixed sizes without image_size).
    ImportError
        When Pillow is not installed (with the install command).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from minicnn.images import load_images
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.fromarray(np.full((6, 4), 255, np.uint8)).save(path)
    >>> X = load_images([path], image_size=(3, 2))
    >>> X.shape, X.dtype, float(X.max()), X.preprocessing["color"]
    ((1, 3, 2, 1), dtype('float32'), 1.0, 'grayscale')
    """
    X, _, _ = _load(_as_paths(paths, "paths"), None, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio,
                    interpolation, n_threads, "raise", None, None, reducing_gap)
    return X


def _as_paths(values, name, single=True):
    """``values`` as a list of str paths: one path (when ``single``) or an iterable of them, bytes decoded."""
    def path(value):
        return os.fsdecode(value) if isinstance(value, bytes) else os.fspath(value)

    if single and isinstance(values, (str, bytes, os.PathLike)):
        return [path(values)]
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be {'a path or ' if single else 'a folder or '}a list of image file paths; "
                         f"received {name}={values!r}") from None
    for i, value in enumerate(values):
        if not isinstance(value, (str, bytes, os.PathLike)):
            raise ValueError(f"{name} must hold image file paths (str, bytes or os.PathLike); received "
                             f"{name}[{i}]={value!r}")
    return [path(value) for value in values]


def _load(paths, labels, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation, n_threads,
          on_error, cache, mmap_mode, reducing_gap=None):
    image_size = preprocessing.check_options(image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio,
                                             interpolation, max_pixels=MAX_IMAGE_PIXELS, reducing_gap=reducing_gap)
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; received on_error={on_error!r}")
    if mmap_mode not in (None, "r", "c"):
        raise ValueError(f"mmap_mode must be None, 'r' or 'c'; received mmap_mode={mmap_mode!r}")
    if mmap_mode is not None and cache is None:
        raise ValueError(f"mmap_mode={mmap_mode!r} maps the cache file: pass cache=FOLDER too")
    n_threads = _threads(n_threads)
    if not paths:
        raise ImageFileError("no image files to read (received an empty list of paths)")
    options = {"image_size": image_size, "color": color, "crop_to_aspect_ratio": bool(crop_to_aspect_ratio),
               "pad_to_aspect_ratio": bool(pad_to_aspect_ratio), "interpolation": interpolation,
               "on_error": on_error, "reducing_gap": None if reducing_gap is None else float(reducing_gap)}
    key = None
    if cache is not None:
        cache = os.fspath(cache)
        with _cache_errors(cache):
            os.makedirs(cache, exist_ok=True)
        started = time.time_ns()
        key, newest = _fingerprint(paths, labels, options)
        found = _read_cache(cache, key, mmap_mode)
        if found is not None and found[1].get("racy", True):   # see RACY_NS
            found = None
        if found is not None:
            X, meta = found
            if meta["skipped"]:
                _warn_skipped(meta["skipped"])
            return _tagged(X, meta["record"]), meta["kept"], meta["record"]
        data_path = os.path.join(cache, key + ".npy")
        tmp = _temporary(data_path)

        def out_for(shape):
            with _cache_errors(cache):
                return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    else:
        def out_for(shape):
            return np.empty(shape, dtype=np.float32)
    try:
        with warnings.catch_warnings():   # once, around the thread pool: sizes are checked against our own limit
            warnings.simplefilter("ignore", _pil()[0].DecompressionBombWarning)
            X, kept, color, failures, dropped_rows = _decode_all(paths, options, n_threads, on_error, out_for)
        if dropped_rows:
            X = np.delete(X, dropped_rows, axis=0) if cache is None else X
        record = preprocessing.make_record(X.shape[1:3] if image_size is not None else None, color,
                                           crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation,
                                           options["reducing_gap"])
        if not kept:
            raise ImageFileError(f"none of the {len(paths)} files could be read as an image (on_error='skip')")
        skipped = [message for _, message in failures]
        if cache is not None:
            with _cache_errors(cache):
                if dropped_rows:   # rare: a file failed after its header was read; rewrite without its row
                    full = np.delete(np.asarray(X), dropped_rows, axis=0)
                    del X
                    with open(tmp, "wb") as f:
                        np.save(f, full)
                    del full
                else:
                    X.flush()
                    del X
                os.replace(tmp, data_path)
                X = np.load(data_path, mmap_mode=mmap_mode, allow_pickle=False)
                _write_cache_meta(cache, key, {"shape": list(X.shape), "record": record, "kept": kept,
                                               "skipped": skipped, "racy": newest > started - RACY_NS})
    except BaseException:
        if cache is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if skipped:
        _warn_skipped(skipped)
    return _tagged(X, record), kept, record


def _warn_skipped(messages):
    warnings.warn(f"skipped {len(messages)} unreadable file(s) (on_error='skip'): " + "; ".join(messages),
                  UserWarning, stacklevel=4)


def _tagged(X, record):
    tagged = X.view(ImageArray)
    tagged.preprocessing = dict(record)
    return tagged


def load_image_folder(directory, labels=None, *, image_size=None, color="auto", crop_to_aspect_ratio=False,
                      pad_to_aspect_ratio=False, interpolation="bilinear", reducing_gap=None, follow_links=True,
                      on_error="raise", cache=None, mmap_mode=None, n_threads=None):
    """Read a folder of class subfolders (or a list of image files with labels) as NHWC images.

    Parameters
    ----------
    directory : str or path-like, or list of them
        A folder whose subfolders are the classes (``root/CLASS/...``, read
        recursively; class names sorted; hidden files skipped), or a list of
        image files (then ``labels`` gives their labels).
    labels : array-like of shape (n_files,), default=None
        With a list of files: their labels (class names are their sorted
        unique values). None with a list: ``y`` is None.
    image_size : (height, width) or None, default=None
        Resize every image to this size. None: images are used at their own
        size, which must be the same for all (else an error naming sizes).
    color : {"auto", "grayscale", "rgb"}, default="auto"
        Channels of the result: 1 or 3. ``"auto"`` gives RGB when any image
        is stored with colour (an RGB file or a coloured palette), else
        grayscale. Alpha is dropped; palettes give their colours. A file
        of several frames (animated GIF, PNG or WebP, multi-page TIFF)
        gives its first frame, as Keras does.
    crop_to_aspect_ratio : bool, default=False
        Before resizing, take the largest centred box of the target aspect
        ratio (Keras's option), so the image is not distorted.
    pad_to_aspect_ratio : bool, default=False
        Before resizing, pad with black to the target aspect ratio (Keras's
        option). At most one of the two; both need ``image_size``.
    interpolation : {"bilinear", "nearest", "bicubic", "lanczos", "box", "hamming"}, default="bilinear"
        Pillow resampling filter of the resize (a filter other than bilinear needs ``image_size``).
    reducing_gap : float >= 1.0 or None, default=None
        None: every image is decoded at full size, then resized (what Keras
        and torchvision do). A number (needs ``image_size``): resize as
        Pillow's ``Image.thumbnail`` does -- a JPEG is decoded scaled down by
        libjpeg (1/2, 1/4 or 1/8, in the DCT domain; ``Image.draft``) while it
        stays at least ``reducing_gap`` times ``image_size``, and the resize
        first reduces by an integer factor (box averaging) while the image
        stays that large (``Image.resize(reducing_gap=)``). Faster for images
        larger than ``image_size`` (1.0: the fastest), with slightly different
        pixels (64x64 JPEGs to 32x32: 0.006 on average, measured by
        ``benchmarks/bench_image_loaders.py``): recorded in ``X.preprocessing``,
        so a model fitted on them reads files the same way.
    follow_links : bool, default=True
        Descend into symbolic links to folders (a loop is an error naming
        the link); False skips them.
    on_error : {"raise", "skip"}, default="raise"
        "raise": the first unreadable file (not an image, truncated, corrupt,
        too large) raises, naming it. "skip": such files are left out, with
        one warning listing them all.
    cache : str or path-like, default=None
        A folder for the decoded array (``FINGERPRINT.npy`` + ``.json``): the
        fingerprint covers every file's path, size, modification and
        status-change times and inode, and the options, so a changed folder
        is decoded again (also a file rewritten with its size and
        modification time kept: its status-change time moves; file contents
        are not hashed). Written atomically;
        entries of earlier versions of the folder stay until the folder is
        deleted. Files modified less than 2 s before a load (within the
        granularity of file times) are decoded again at the next load.
    mmap_mode : {None, "r", "c"}, default=None
        With ``cache``: return the cached array memory-mapped (for folders
        larger than memory; train with ``partial_fit`` on chunks of rows).
    n_threads : int, default=None
        Decoding threads (None: the available cores, at most 8).

    Returns
    -------
    X : ImageArray of shape (n, height, width, channels), dtype float32
        Values in [0, 1], in the order of the files (classes sorted, files
        sorted by name). ``X.preprocessing`` records how they were read; a
        model fitted on ``X`` stores it and reads image files the same way.
    y : ndarray of shape (n,), dtype int64, or None
        Index of each image's class in ``class_names``.
    class_names : list of str
        Sorted class names (folder names, or the sorted labels).

    Raises
    ------
    ImageFileError
        A ``ValueError`` naming the file or folder and the parameter: a
        missing, unreadable, truncated or non-image file (with
        ``on_error="raise"``), an empty class folder, a single class, a
        symbolic-link loop, mixed sizes without ``image_size``. Nothing is
        returned half-loaded.
    ValueError
        For an invalid option, naming it and the value received.
    ImportError
        When Pillow is not installed (with the install command).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from minicnn.datasets import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name, level in (("dark", 20), ("light", 230)):
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(3):
    ...         Image.fromarray(np.full((10, 12, 3), level + i, np.uint8)).save(os.path.join(root, name, f"{i}.png"))
    >>> X, y, class_names = load_image_folder(root, image_size=(8, 8))
    >>> X.shape, X.dtype, y.tolist(), class_names
    ((6, 8, 8, 3), dtype('float32'), [0, 0, 0, 1, 1, 1], ['dark', 'light'])
    """
    if isinstance(directory, bytes):
        directory = os.fsdecode(directory)
    if isinstance(directory, (str, os.PathLike)):
        if labels is not None:
            raise ValueError("labels are given by the class subfolders of a directory; pass labels only with a "
                             "list of image files")
        paths, y, class_names = list_folder(directory, follow_links, cache)
        counts = np.bincount(y, minlength=len(class_names)) if y else np.zeros(len(class_names), int)
        empty = [os.path.join(os.fspath(directory), c) for c, n in zip(class_names, counts) if n == 0]
        if empty:
            raise ImageFileError(f"empty class folder(s) in directory {os.fspath(directory)}: {', '.join(empty)}; "
                                 f"remove them or add images")
        if len(class_names) < 2:
            raise ImageFileError(f"directory {os.fspath(directory)} has one class subfolder ({class_names[0]!r}); "
                                 f"a classifier needs at least 2 (pass a list of files to read images without "
                                 f"classes)")
    else:
        paths = _as_paths(directory, "directory", single=False)
        if labels is None:
            y, class_names = None, []
        else:
            values = np.asarray(labels)
            if values.shape != (len(paths),):
                raise ValueError(f"labels must have one value per path ({len(paths)}); received shape "
                                 f"{values.shape}")
            class_names_arr, codes = np.unique(values, return_inverse=True)
            y, class_names = codes.tolist(), [str(c) for c in class_names_arr.tolist()]
    try:
        X, kept, _ = _load(paths, y, image_size, color, crop_to_aspect_ratio, pad_to_aspect_ratio, interpolation,
                           n_threads, on_error, cache, mmap_mode, reducing_gap)
    except ImageFileError as exc:
        if not getattr(exc, "file_error", False):
            raise
        raise ImageFileError(f"{exc} (on_error='skip' leaves unreadable files out, with one warning)") from None
    if y is None:
        return X, None, class_names
    y = np.asarray(y, dtype=np.int64)[kept]
    if isinstance(directory, (str, os.PathLike)):
        lost = [c for i, c in enumerate(class_names) if not (y == i).any()]
        if lost:
            raise ImageFileError(f"class folder(s) {lost} of directory {os.fspath(directory)} hold no readable "
                                 f"image after on_error='skip'")
    return X, y, class_names


def model_input(model, X):
    """``X`` as the model's input: image files read with the model's record (in its ``data_format``)."""
    if not preprocessing.is_paths(X):
        return X
    paths = [X] if isinstance(X, (str, os.PathLike)) else list(X)
    record = preprocessing.for_model(model)
    h, w, _ = model.input_shape_
    try:
        images = load_images(paths, **preprocessing.reading(record))
    except ImageFileError as exc:
        if not hasattr(exc, "sizes"):
            raise
        raise ImageFileError(f"image files of different sizes (width x height: {exc.sizes}); the model takes "
                             f"{w}x{h} and records no image_size to resize to: resize the files or refit with "
                             f"image_size=({h}, {w})") from None
    if images.shape[1:3] != (h, w):
        raise ValueError(f"image files of {images.shape[2]}x{images.shape[1]} pixels (width x height), e.g. "
                         f"{os.fspath(paths[0])}; the model takes {w}x{h}: it records no image_size to resize to, "
                         f"so resize the files or refit with image_size=({h}, {w})")
    if getattr(model, "data_format", "channels_last") == "channels_first":
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return np.asarray(images)
