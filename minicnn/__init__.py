"""minicnn: a small, fast, CPU-only CNN engine with scikit-learn estimators.

The estimators and the public submodules (``minicnn.uncertainty``,
``minicnn.datasets`` ...) are loaded lazily, on first use: ``import minicnn``
imports neither scikit-learn nor Numba, and nothing is compiled until a
kernel first runs.
:func:`load_predictor` loads a saved model for prediction without ever
importing scikit-learn (a fresh process predicts in a fraction of a second).

Examples
--------
>>> import minicnn
>>> minicnn.__version__
'0.1.0'
>>> minicnn.CNNClassifier(layers=("conv8", "maxpool", "dense16")).dropout
'after_last_pool'
"""

__version__ = "0.1.0"
__all__ = ["CNNClassifier", "CNNRegressor", "load", "load_predictor", "Predictor", "export_onnx", "__version__"]

_LAZY = {"CNNClassifier": "estimator", "CNNRegressor": "estimator", "load": "estimator",
         "load_predictor": "predictor", "Predictor": "predictor", "export_onnx": "onnx"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):   # a public submodule (minicnn.uncertainty, minicnn.datasets ...), imported on use
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
