"""What a convolution's window may ask of its input: checked once, when the layer is built.

Shape letters: H, W input height and width, C input channels, F output
channels (filters; ``C`` for a depthwise convolution), KH, KW kernel height and
width, Ho, Wo output height and width.

The *effective kernel* of an axis is ``(kernel_size - 1) * dilation + 1``
pixels. With ``padding="valid"`` (or explicit padding) it must fit the padded
input, which the output size already says (``Ho >= 1``). With
``padding="same"`` any kernel fits by construction, since the padding grows
with it: a dilation of a billion on an 8x8 image would pad a billion zeros on
each side, and every kernel but the centre tap would read nothing but padding.
Such a request is refused here: the padding ``"same"`` adds on each side may be
at most the input's size on that axis (:func:`same_padding_limit`), so at stride 1
the effective kernel is at most ``2 * size + 1`` (a 3x3 kernel on a 1x1 map
still fits, as deep nets on small images need). And the per-sample arrays a
layer keeps (its weights ``KH*KW*C*F`` and the im2col columns
``Ho*Wo*KH*KW*C``) must stay under :data:`MAX_ELEMENTS`, so a layer that cannot
run is refused with a ValueError naming its parameters, not a MemoryError in
the middle of a fit.
"""

#: Most elements of one per-sample array of a conv layer (its weights, one sample's im2col columns): 2**31,
#: 8 GiB in float32. A sanity bound, far above any net this engine trains (the MNIST model's largest is
#: 0.5 M); above it a layer is refused when it is built.
MAX_ELEMENTS = 2 ** 31


#: Largest kernel_size, strides or dilation the compiled kernels take (a C ``int``).
MAX_INT = 2 ** 31 - 1


class WindowLimitError(ValueError):
    """A conv layer's settings ask more than its input can take or than a layer may hold (:func:`check_window`)."""


def same_padding_limit(size, stride):
    """Largest effective kernel ``(kernel_size - 1) * dilation + 1`` that ``padding="same"`` accepts on an axis.

    "same" pads ``total = (ceil(size / stride) - 1) * stride + span - size`` pixels
    (TensorFlow's rule), the larger half after; the limit keeps that half at most
    ``size``.

    Examples
    --------
    >>> same_padding_limit(8, 1), same_padding_limit(1, 1), same_padding_limit(8, 2)
    (17, 3, 18)
    """
    out = -(-size // stride)
    return 3 * size - (out - 1) * stride


def check_window(layer, input_shape, output_size, filters):
    """Raise ValueError when ``layer``'s window asks more of ``input_shape`` than it can take (module docstring).

    Parameters
    ----------
    layer : Layer
        A conv layer with ``kernel_size``, ``strides``, ``dilation`` and ``padding`` (pairs, or a padding string).
    input_shape : tuple of int
        Per-sample ``(H, W, C)``.
    output_size : tuple of int
        ``(Ho, Wo)``.
    filters : int
        Output channels ``F``.

    Raises
    ------
    WindowLimitError
        A ValueError naming ``kernel_size`` and ``dilation`` (and their effective kernel) when ``padding="same"`` would pad
        more than the input on a side, or the layer's parameters when a per-sample array would exceed
        :data:`MAX_ELEMENTS`.
    """
    H, W, C = input_shape
    name = type(layer).__name__
    (KH, KW), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation
    for parameter in ("kernel_size", "strides", "dilation"):
        if max(getattr(layer, parameter)) > MAX_INT:
            raise WindowLimitError(
                f"{name} {parameter}={getattr(layer, parameter)} is larger than the kernels' integer range "
                f"(at most {MAX_INT:,}); use a {parameter} no larger than the input")
    if layer.padding == "same":
        for axis, size, k, s, d in (("height", H, KH, sh, dh), ("width", W, KW, sw, dw)):
            span, limit = (k - 1) * d + 1, same_padding_limit(size, s)
            if span > limit:
                raise WindowLimitError(
                    f"{name} kernel_size={layer.kernel_size} with dilation={layer.dilation} spans {span} pixels "
                    f"of {axis} ((kernel_size - 1) * dilation + 1), more than an input of {axis} {size} can take "
                    f"with padding='same' at strides={layer.strides} (at most {limit}: the padding on a side may "
                    f"not exceed the input); use a smaller kernel_size or dilation")
    Ho, Wo = output_size
    arrays = (("weights", KH * KW * C * filters), ("im2col columns per sample", Ho * Wo * KH * KW * C))
    for what, elements in arrays:
        if elements > MAX_ELEMENTS:
            raise WindowLimitError(
                f"{name} kernel_size={layer.kernel_size}, dilation={layer.dilation}, strides={layer.strides}, "
                f"padding={layer.padding!r} with {filters} output channels on inputs of shape {tuple(input_shape)} "
                f"needs {elements:,} elements of {what}, more than the {MAX_ELEMENTS:,} a layer may hold; "
                f"use a smaller kernel_size, padding or fewer filters")
