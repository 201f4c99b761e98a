"""Integer codes of the activations fused into the bias+activation kernels.

Kernels take an ``int`` code (never a string) so that no hot loop branches on
text; layers translate a name to its code once, at construction.
"""

IDENTITY = 0
RELU = 1
LEAKY_RELU = 2
TANH = 3
SIGMOID = 4

CODES = {
    "identity": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "tanh": TANH,
    "sigmoid": SIGMOID,
}
