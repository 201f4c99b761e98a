"""The batch augmentation reference (the ground truth of its Numba and Cython twins).

Shape letters: B batch rows written, N rows of the source, H, W, C image height, width, channels (NHWC).

``augment_batch(out, x, index, key0, key1, shift, crop, flip)`` writes
``out[b] = T_b(x[index[b]])`` for every ``b < B``, where ``T_b`` is drawn from
``AUGMENT_DRAWS`` = 5 hashes of the counters ``5 * b + j`` (``j = 0..4``) with the keys of
:func:`minicnn.backend.hash_rng.dropout_key` (so the draw is a pure function
of ``(seed, step, b)``, identical on every backend and thread count)::

    sy, sx = h0 % (2*shift + 1) - shift, h1 % (2*shift + 1) - shift
    cy, cx = h2 % (2*crop + 1) - crop,   h3 % (2*crop + 1) - crop
    mirror = h4 >= 2**31 (only when flip)

    out[b, i, j] = 0                                    if (i + cy, j + cx) is outside H x W
                 = x[n, r(i + cy - sy, H), c]           else, with
    c = r(j + cx - sx, W), mirrored to W - 1 - c when ``mirror``;
    r(t, L) = symmetric reflection of t into [0, L) (period 2L: "d c b a | a b c d | d c b a").

So ``shift`` is a random translation by up to ``shift`` pixels filled by
reflection (Keras ``RandomTranslation``'s default ``fill_mode="reflect"``),
``crop`` a random ``H x W`` crop of the image zero-padded by ``crop`` pixels
(torchvision ``RandomCrop(padding=crop)``), ``flip`` a horizontal flip with
probability 1/2. Every element of ``out`` is written.
"""

import numpy as np

from ..hash_rng import AUGMENT_DRAWS, hash_reference

__all__ = ["augment_batch"]


def augment_draws(B, key0, key1, shift, crop, flip):
    """The per-row draws ``(sy, sx, cy, cx, mirror)`` as int64 arrays of shape (B,)."""
    h = hash_reference(np.arange(AUGMENT_DRAWS * B, dtype=np.uint64), key0, key1).reshape(B, AUGMENT_DRAWS)
    s, c = np.uint64(2 * shift + 1), np.uint64(2 * crop + 1)
    sy, sx = (h[:, 0] % s).astype(np.int64) - shift, (h[:, 1] % s).astype(np.int64) - shift
    cy, cx = (h[:, 2] % c).astype(np.int64) - crop, (h[:, 3] % c).astype(np.int64) - crop
    mirror = (h[:, 4] >= np.uint64(2**31)) & bool(flip)
    return sy, sx, cy, cx, mirror


def _reflect(t, L):
    t = np.mod(t, 2 * L)
    return np.where(t >= L, 2 * L - 1 - t, t)


def augment_batch(out, x, index, key0, key1, shift, crop, flip):
    """Gather rows ``index`` of ``x`` into ``out``, each randomly translated, cropped and flipped."""
    B, H, W, _ = out.shape
    sy, sx, cy, cx, mirror = augment_draws(B, key0, key1, shift, crop, flip)
    rows, cols = np.arange(H), np.arange(W)
    for b in range(B):
        i, j = rows + cy[b], cols + cx[b]
        inside = ((i >= 0) & (i < H))[:, None] & ((j >= 0) & (j < W))[None, :]
        src_i, src_j = _reflect(i - sy[b], H), _reflect(j - sx[b], W)
        if mirror[b]:
            src_j = W - 1 - src_j
        out[b] = np.where(inside[:, :, None], x[index[b]][src_i[:, None], src_j[None, :]], 0)
