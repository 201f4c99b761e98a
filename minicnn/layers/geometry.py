"""Output sizes and padding of sliding-window layers (conv and pooling), one definition."""

import numbers


def as_pair(value, name):
    """``3 -> (3, 3)``; ``(3, 2)`` stays; anything else is a ValueError naming ``name``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be a positive int or a pair of them; received {name}={value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them; received {name}={value!r}")
    return pair


def check_padding(padding):
    """Validate ``padding``: "valid", "same", a non-negative int or a pair of them."""
    if padding in ("valid", "same"):
        return padding
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool) and padding >= 0:
        return (int(padding), int(padding))
    if (isinstance(padding, (tuple, list)) and len(padding) == 2
            and all(isinstance(p, numbers.Integral) and not isinstance(p, bool) and p >= 0 for p in padding)):
        return (int(padding[0]), int(padding[1]))
    raise ValueError(f"padding must be 'valid', 'same', a non-negative int or a pair of them; "
                     f"received padding={padding!r}")


def window_geometry(size, kernel, stride, dilation, padding):
    """Output size and (before, after) padding of one spatial axis.

    ``"same"`` follows TensorFlow: output ``ceil(size / stride)``, the odd pad
    pixel going after. An int pads both sides equally.

    Returns
    -------
    out, pad_before, pad_after : int
    """
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        before = after = 0
    elif padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        before, after = total // 2, total - total // 2
    else:
        before = after = padding
    out = (size + before + after - span) // stride + 1
    return out, before, after
