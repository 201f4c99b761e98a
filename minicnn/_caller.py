"""Warnings attributed to the user's line, however many minicnn, scikit-learn and joblib frames lie in between."""

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Libraries whose frames lie between the user's call and minicnn: scikit-learn (Pipeline, model selection),
#: joblib (scikit-learn's parallel helpers run each fit through it, in the caller's thread with n_jobs=None).
_LIBRARIES = ("sklearn", "joblib")


def warn(message, category=UserWarning):
    """``warnings.warn`` with the ``stacklevel`` of the first frame outside minicnn, scikit-learn and joblib.

    A fixed ``stacklevel`` breaks whenever a wrapper is added (scikit-learn's
    ``_fit_context``, a lock, a public method calling a private worker); this
    walks the stack instead, so the warning names the caller's file and line.
    """
    skip = [_PACKAGE]
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip.append(os.path.dirname(os.path.abspath(module.__file__)) + os.sep)
    skip = tuple(skip)
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame, level = frame.f_back, level + 1   # a worker thread with no user frame: its outermost frame
    warnings.warn(message, category, stacklevel=level)
