"""Warnings attributed to the user's line, however many minicnn and scikit-learn frames lie in between."""

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message, category=UserWarning):
    """``warnings.warn`` with the ``stacklevel`` of the first frame outside minicnn and scikit-learn.

    A fixed ``stacklevel`` breaks whenever a wrapper is added (scikit-learn's
    ``_fit_context``, a lock, a public method calling a private worker); this
    walks the stack instead, so the warning names the caller's file and line.
    """
    skip = [_PACKAGE]
    sklearn = sys.modules.get("sklearn")
    if sklearn is not None and getattr(sklearn, "__file__", None):
        skip.append(os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)
    skip = tuple(skip)
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
