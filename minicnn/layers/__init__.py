"""Layers: each holds its parameters and pairs a forward with a backward that call backend kernels."""

from .activation import Activation
from .base import Layer
from .composite import Chain, Composite, Residual
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout, SpatialDropout2D
from .normalization import BatchNorm
from .depthwise import DepthwiseConv2D
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D

__all__ = ["Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten", "Dense",
           "Activation", "BatchNorm", "Dropout", "SpatialDropout2D", "Composite", "Chain", "Residual",
           "DepthwiseConv2D", "GlobalMaxPool2D"]
