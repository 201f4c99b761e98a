"""Warnings attributed to the user's line, however many minicnn, scikit-learn and joblib frames lie in between.

In a worker (a joblib/loky process, a thread or a ``multiprocessing``/``concurrent.futures`` pool) there is
no user's line on the stack: the walk ends in the standard library's process or thread runner, a location that
says nothing. There the warning is attributed to the outermost minicnn frame (the estimator method the worker
ran) and its message ends naming the estimator with the parameters it was given (scikit-learn's repr, e.g.
``CNNClassifier(dropout_rate=0.1, max_iter=3)``), so a warning from ``GridSearchCV(n_jobs=2)`` says which
candidate produced it.
"""

import os
import sys
import sysconfig
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Libraries whose frames lie between the user's call and minicnn: scikit-learn (Pipeline, model selection),
#: joblib (scikit-learn's parallel helpers run each fit through it, in the caller's thread with n_jobs=None).
_LIBRARIES = ("sklearn", "joblib")
#: The standard library (not its site-packages): a walk that ends there ended in a process or thread runner.
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_SITE = tuple(os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("purelib", "platlib"))


def _in_runner(filename):
    """Whether ``filename`` is the standard library's (a worker's runner, never a user's script)."""
    return filename.startswith(_STDLIB) and not filename.startswith(_SITE)


def _is_method_of(owner, code):
    """Whether ``code`` is the body of ``owner``'s method of that name (under any decorators)."""
    method = getattr(type(owner), code.co_name, None)
    while method is not None and getattr(method, "__code__", None) is not code:
        method = getattr(method, "__wrapped__", None)
    return method is not None


def worker_note(estimator):
    """The end of a message issued in a worker: which estimator (and parameters) produced it."""
    return f" [in a worker process or thread: {' '.join(repr(estimator).split())}]"


def warn(message, category=UserWarning):
    """``warnings.warn`` with the ``stacklevel`` of the first frame outside minicnn, scikit-learn and joblib.

    A fixed ``stacklevel`` breaks whenever a wrapper is added (scikit-learn's
    ``_fit_context``, a lock, a public method calling a private worker); this
    walks the stack instead, so the warning names the caller's file and line.
    Where no caller's line exists (a worker), see the module docstring.
    """
    skip = [_PACKAGE]
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            skip.append(os.path.dirname(os.path.abspath(module.__file__)) + os.sep)
    skip = tuple(skip)
    frame, level = sys._getframe(1), 2
    outermost = method = estimator = None   # levels of the outermost minicnn frame and estimator method
    while True:
        filename = os.path.abspath(frame.f_code.co_filename)
        if filename.startswith(_PACKAGE):
            outermost = level
            owner = frame.f_locals.get("self")
            if hasattr(owner, "get_params") and hasattr(owner, "_fit"):
                estimator = owner
                if _is_method_of(owner, frame.f_code):   # the estimator's own method, not a decorator's wrapper
                    method = level
        if frame.f_back is None or not filename.startswith(skip):
            break
        frame, level = frame.f_back, level + 1
    if outermost is not None and (filename.startswith(skip) or _in_runner(filename)):   # a worker: no user's line
        level = method or outermost
        if estimator is not None:
            message = str(message) + worker_note(estimator)
    warnings.warn(message, category, stacklevel=level)
