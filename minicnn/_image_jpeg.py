"""A plain JPEG decoded from its bytes with Pillow's C calls, without its Python marker parser and wrappers.

``Image.open`` reads a JPEG's markers in Python, a few bytes at a time, and
``Image.frombytes``, ``Image.resize`` and ``Image.tobytes`` wrap their C calls
in Python that costs, for a small image, about as much as the decoding. For a
plain file -- 8-bit baseline, extended or progressive Huffman coding, 1 or 3
components, no APP1 block (EXIF or XMP: either may carry an orientation) and
no APP2 multi-picture index -- the frame header says everything the reader
needs, and :func:`read_plain` makes the C calls those wrappers make, with the
same arguments (after ``Image.draft``: its libjpeg scale), on the same bytes:
the pixels are identical (``tests/test_images_fast.py`` compares both paths on
every kind of file, colour mode and resize policy). Anything else -- EXIF,
CMYK, 12-bit, arithmetic or lossless coding, a damaged or truncated file, a
file that is not a regular file, or a Pillow whose C calls differ -- gives
None, and the caller takes Pillow's general path, which reads it or names the
error. The fast path is used only after :func:`agrees_with_pillow` has found,
once per process, that this Pillow's C calls read two small JPEGs exactly as
its public ``Image.open`` does.

A folder of JPEGs is read by :func:`read_rows`, a batch of files at a time:
each file is read in one call into a reused buffer, and the decoded (and
resized) images are pasted into one strip image that is read out once per
batch, so the Python work (which holds the GIL) and the number of calls that
release it per image are as few as can be: with two threads, each release
while the other thread waits for the GIL costs a hand-over of it.
"""

import functools
import io
import os
import stat

#: Start-of-frame markers Pillow reads the same way: baseline, extended sequential and progressive Huffman.
_SOF_PLAIN = frozenset((0xC0, 0xC1, 0xC2))
#: Other start-of-frame markers (lossless, hierarchical, arithmetic): the general path.
_SOF_OTHER = frozenset((0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_MODES = {1: "L", 3: "RGB"}
#: What :func:`header` does at each marker: skip its segment, read the frame, refuse the file, end at the start of
#: scan, step over a fill byte, look for a multi-picture index, or check the quantization tables as Pillow's parser
#: does. Refused: markers without a length, other frames, APP1, the reserved 0xFF02-0xFFBF (Pillow's parser:
#: "no marker found"), and the two Pillow reads otherwise than by its length: JPG (0xFFC8: scanned byte by byte)
#: and DHP (0xFFDE: read as a frame).
_SKIP, _FRAME, _REFUSE, _SCAN, _FILL, _DQT, _APP2, _APP = range(8)   # _APP2 and _APP: checked by _app_parses
_KINDS = bytes(_FRAME if m in _SOF_PLAIN else _REFUSE if m in _SOF_OTHER or m in (0x01, 0xC8, 0xDE, 0xE1)
               or 0xD0 <= m <= 0xD9 or 0x02 <= m <= 0xBF
               else _SCAN if m == 0xDA else _FILL if m == 0xFF else _APP2 if m == 0xE2 else _DQT if m == 0xDB
               else _APP if m in (0xE0, 0xED, 0xEE) else _SKIP for m in range(256))
_SIGNATURE = b"\xff\xd8\xff"
#: Files larger than this are left to the general path (which reads them in blocks).
_MAX_BYTES = 64 * 1024 * 1024
#: Pillow's formats whose ``Image.draft`` scales the decoding (the general path drafts them).
FORMATS = ("JPEG", "MPO")
#: Files named so are read whole by :func:`read_rows` (others take :func:`read_plain`, which reads 3 bytes first).
EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
#: Size of :func:`read_file`'s reused buffer: smaller files are read into it (larger ones into new bytes).
_FIRST_READ = 1 << 16
#: Bytes :func:`read_header` reads (a plain JPEG's header is a few hundred bytes; an ICC profile adds a few KiB).
_HEADER_READ = 1 << 14


def header(data):
    """``(width, height, mode)`` of a plain JPEG's bytes, or None when the general path must read it.

    Walks the marker segments up to the start of scan: exactly one plain
    start-of-frame with 8 bits, a nonzero size and 1 or 3 components, and
    no APP1 (EXIF, XMP) or APP2 multi-picture segment.
    """
    n, i, frame, kinds = len(data), 2, None, _KINDS
    if n < 3 or data[0] != 0xFF or data[1] != 0xD8 or data[2] != 0xFF:
        return None
    while i + 4 <= n:   # one table look-up per marker: this walk holds the GIL for every file
        if data[i] != 0xFF:
            return None
        kind = kinds[data[i + 1]]
        if kind == _FILL:   # a fill byte before a marker
            i += 1
            continue
        if kind == _SCAN:   # start of scan: the header is over
            return frame
        if kind == _REFUSE:
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2 or i + 2 + length > n:
            return None
        if kind == _FRAME:
            if frame is not None or length < 8:
                return None
            bits, height = data[i + 4], (data[i + 5] << 8) | data[i + 6]
            width, layers = (data[i + 7] << 8) | data[i + 8], data[i + 9]
            # the component specifications exactly (libjpeg's condition; Pillow's parser fails on a partial one)
            if bits != 8 or layers not in _MODES or not width or not height or length != 8 + 3 * layers:
                return None
            frame = (width, height, _MODES[layers])
        elif kind == _APP2 and data[i + 4:i + 8] == b"MPF\x00":
            return None
        elif kind >= _APP2 and not _app_parses(data, data[i + 1], i + 4, i + 2 + length):
            return None
        elif kind == _DQT:   # tables of 1 + 64 bytes (8-bit) or 1 + 128: Pillow refuses a segment they overrun
            j, end = i + 4, i + 2 + length
            while j < end:
                j += 65 if data[j] < 16 else 129
            if j > end:
                return None
        i += 2 + length
    return None


def _app_parses(data, marker, start, end):
    """Whether Pillow's parser reads the APP segment of marker ``0xFF<marker>`` whose payload is ``data[start:end]``
    without failing: the JFIF and Adobe blocks it reads a 16-bit field of at offset 5, the ICC profile chunk whose
    byte 13 it reads, the Photoshop resource list it walks (an ``IndexError`` there escapes its ``struct.error``
    guard). Reads only the bytes it checks (an ICC chunk may hold kilobytes)."""
    n = end - start
    if marker == 0xE0 and data[start:start + 4] == b"JFIF" or marker == 0xEE and data[start:start + 5] == b"Adobe":
        return n >= 7
    if marker == 0xE2 and data[start:start + 12] == b"ICC_PROFILE\x00":
        return n >= 14
    if marker == 0xED and data[start:start + 14] == b"Photoshop 3.0\x00":
        s = bytes(data[start:end])
        offset = 14
        while s[offset:offset + 4] == b"8BIM":   # PIL.JpegImagePlugin.APP's walk, to its first short read
            offset += 6
            if offset > n:
                return True   # the 16-bit code cut: struct.error, which Pillow catches
            if offset == n:
                return False   # the name's length byte missing: IndexError
            code = int.from_bytes(s[offset - 2:offset], "big")
            offset += 1 + s[offset]
            offset += offset & 1
            if offset + 4 > n:
                return True
            size = int.from_bytes(s[offset:offset + 4], "big")
            if code == 0x03ED and len(s[offset + 4:offset + 4 + size]) < 14:
                return True   # resolution info cut short: struct.error, caught, the walk ends
            offset += 4 + size
            offset += offset & 1
    return True


def draft_scale(width, height, request):
    """The libjpeg scale denominator (1, 2, 4, 8) of Pillow's ``JpegImageFile.draft(mode, request)``."""
    scale = min(width // request[0], height // request[1])
    return next((s for s in (8, 4, 2) if scale >= s), 1)   # a request larger than the image: full size


def read_plain(path, Image, max_pixels, request=None):
    """A plain JPEG file decoded into one of Pillow's C images (``ImagingCore``, mode "L" or "RGB"), or None.

    None: the general path must read the file. ``max_pixels``: larger images
    take the general path (which refuses them with its message); so do those
    over Pillow's own ``Image.MAX_IMAGE_PIXELS``. ``request``: ``(width,
    height)`` asked of ``Image.draft``: the image is decoded scaled down by
    libjpeg as Pillow's draft would (None: full size).

    The decoding is ``Image.frombytes(mode, size, data, "jpeg", args)``'s,
    with Pillow's C calls made directly: its Python wrappers (a zero-filled
    new image, the decoder lookup, an ``Image`` object) cost as much as the
    decoding of a small JPEG. A Pillow whose C calls differ raises here, and
    the file takes the general path.
    """
    if not agrees_with_pillow(Image):
        return None
    try:   # no buffered file object: a small file's reading costs a few microseconds
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES or os.read(fd, 3) != _SIGNATURE:
                return None   # another format is not read twice
            data = _SIGNATURE + os.read(fd, st.st_size)
        finally:
            os.close(fd)
    except OSError:
        return None
    return decode_plain(data, Image, max_pixels, request)


def decode_plain(data, Image, max_pixels, request=None):
    """:func:`read_plain` on a file's bytes ``data``: a C image, or None for the general path."""
    frame = header(data)
    if frame is None or not within_limits(frame, Image, max_pixels):
        return None
    width, height, mode = frame
    scale = 1 if request is None else draft_scale(width, height, request)
    size = ((width + scale - 1) // scale, (height + scale - 1) // scale)
    try:   # the decoder arguments of JpegImageFile.load (after draft: its decoderconfig (scale, 0))
        im = Image.core.new(mode, size)
        decoder = Image.core.jpeg_decoder(mode, mode, "", scale, 0)
        try:
            decoder.setimage(im, (0, 0) + size)
            consumed, error = decoder.decode(data)
        finally:
            decoder.cleanup()
    except Exception:   # noqa: BLE001 -- any failure (or another Pillow's C calls): the general path decides
        return None
    if consumed >= 0 or error != 0:   # Image.frombytes's checks: truncated or corrupt, the general path names it
        return None
    return im


def within_limits(frame, Image, max_pixels):
    """Whether a frame ``(width, height, mode)`` is within ``max_pixels`` and Pillow's ``Image.MAX_IMAGE_PIXELS``."""
    pixels, limit = frame[0] * frame[1], Image.MAX_IMAGE_PIXELS
    return pixels <= max_pixels and (limit is None or pixels <= limit)


def read_file(path, buffer):
    """The bytes of a regular file starting with the JPEG signature (a memoryview of ``buffer`` when they fit
    in it, else bytes), or None (any other file, or an error: the general path reads it or names the error).

    ``buffer``: a bytearray of :data:`_FIRST_READ` bytes, reused file after file: a small file is read in one
    call, with no buffered file object. Nothing is read from a file that is not a regular file (a pipe's
    bytes are left for the general path).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_BYTES:
                return None
            if st.st_size < len(buffer):
                data = memoryview(buffer)[:os.readv(fd, (buffer,))]
            else:
                data = os.read(fd, st.st_size)
        finally:
            os.close(fd)
    except OSError:
        return None
    return data if data[:3] == _SIGNATURE else None


def read_header(path):
    """``(width, height, mode)`` of a plain JPEG file from its first :data:`_HEADER_READ` bytes, or None (any
    other file, a header running past them, or an error: Pillow's ``Image.open`` reads it or names the error)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, _HEADER_READ)
        finally:
            os.close(fd)
    except OSError:
        return None
    return header(data)


def read_rows(paths, size, mode, plan_for, Image, max_pixels, read=read_file):
    """The plain JPEGs among ``paths`` decoded and resized to ``size`` ``(width, height)`` in ``mode``.

    Returns ``(pixels, left)``: the bytes of ``len(paths)`` images of
    ``size`` (row-major, ``mode``'s bands interleaved; ``Image.tobytes``'s
    layout; None when every file is left), and the indices of the files left
    to the general path (their bytes are undefined). ``plan_for(frame)``: for
    a header's ``(width, height, mode)``, ``(scale, box, resample)`` --
    libjpeg's scale, then the source box and filter of ``Image.resize``
    (``resample`` None: the decoded image is the result) -- or None for the
    general path. The calls are those of :func:`decode_plain` and
    ``Image.resize``, and each image is pasted into one strip read out once.
    """
    width, height = size
    core = Image.core
    new, jpeg_decoder = core.new, core.jpeg_decoder
    buffer, left, plans, strip = bytearray(_FIRST_READ), [], {}, None
    for k, path in enumerate(paths):
        data = read(path, buffer) if path.lower().endswith(EXTENSIONS) else None
        frame = None if data is None else header(data)
        if frame not in plans:   # a plan per header: (scale, decoded size, box, resample), or None
            plan = None if frame is None or frame[2] != mode or not within_limits(frame, Image, max_pixels) \
                else plan_for(frame)
            plans[frame] = plan and (plan[0], (-(-frame[0] // plan[0]), -(-frame[1] // plan[0]))) + plan[1:]
        plan = plans[frame]
        if plan is None:
            left.append(k)
            continue
        scale, decoded, box, resample = plan
        region = (0, k * height, width, (k + 1) * height)
        try:
            if strip is None:
                strip = new(mode, (width, height * len(paths)))
            target = strip if resample is None else new(mode, decoded)
            decoder = jpeg_decoder(mode, mode, "", scale, 0)
            try:
                decoder.setimage(target, region if resample is None else (0, 0) + decoded)
                consumed, error = decoder.decode(data)
            finally:
                decoder.cleanup()
            if consumed >= 0 or error != 0:
                left.append(k)
            elif resample is not None:
                strip.paste(target.resize(size, resample, box), region)
        except Exception:   # noqa: BLE001 -- any failure (or another Pillow's C calls): the general path decides
            left.append(k)
    return (None if strip is None else pixel_bytes(Image, strip)), left


def pixel_bytes(Image, im):
    """The pixels of a C image of mode "L" or "RGB" as bytes, band by band (``Image.tobytes``'s raw encoding)."""
    encoder = Image.core.raw_encoder(im.mode, im.mode)
    encoder.setimage(im, (0, 0) + im.size)
    chunks = []
    while True:
        _, error, chunk = encoder.encode(max(65536, min(im.size[0] * im.size[1] * 4 + 16, 1 << 24)))
        chunks.append(chunk)
        if error:
            break
    if error < 0:
        raise ValueError(f"encoder error {error} in tobytes")
    return b"".join(chunks)


@functools.lru_cache(maxsize=None)
def agrees_with_pillow(Image):
    """Whether this Pillow's C calls decode and read out a JPEG as its public ``Image.open`` path does.

    Checked once per process (about a millisecond) on two small JPEGs written
    with Pillow's own encoder, gray and RGB, at full size and drafted to half
    size, and through :func:`read_rows` as they are and resized: a Pillow whose internals changed meaning without changing their
    signatures gives False, and every file takes the general path.
    """
    try:
        for mode in ("L", "RGB"):
            ramp = bytes((7 * i + 13 * (i // 24)) % 256 for i in range(24 * 16 * len(mode)))
            buffer = io.BytesIO()
            Image.frombytes(mode, (24, 16), ramp).save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
            for request in (None, (12, 8)):
                with Image.open(io.BytesIO(data)) as image:
                    if request is not None:
                        image.draft(mode, request)
                    expected = image.tobytes()
                    fast = decode_plain(data, Image, 10 ** 6, request)
                    if fast is None or fast.size != image.size or pixel_bytes(Image, fast) != expected:
                        return False
            with Image.open(io.BytesIO(data)) as image:   # read_rows: into a strip, as it is and resized
                whole, half = image.tobytes(), image.resize((12, 8), Image.Resampling.BILINEAR).tobytes()
            for size, plan, expected in (((24, 16), (1, None, None), whole),
                                         ((12, 8), (1, (0, 0, 24, 16), Image.Resampling.BILINEAR), half)):
                rows = read_rows(["a.jpg", "b.jpg"], size, mode, lambda frame: plan, Image, 10 ** 6,
                                 read=lambda path, buffer: data)
                if rows != (expected * 2, []):
                    return False
    except Exception:   # noqa: BLE001 -- any failure: the general path
        return False
    return True
