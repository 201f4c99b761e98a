"""What a fitted estimator hands :func:`minicnn.io.save`: a plain record of its fitted state (io reads no estimator)."""

from sklearn.utils.validation import check_is_fitted

from ._targets import fitted_fields as target_fields


def _fitted_fields(est):
    """The fitted attributes as JSON values."""
    return {"n_iter": int(est.n_iter_), "t": int(est.t_), "loss_curve": [float(v) for v in est.loss_curve_],
            "best_loss": None if est.best_loss_ is None else float(est.best_loss_),
            "validation_scores": (None if est.validation_scores_ is None
                                  else [float(v) for v in est.validation_scores_]),
            "best_validation_score": (None if est.best_validation_score_ is None
                                      else float(est.best_validation_score_)),
            "feature_names_in": (None if not hasattr(est, "feature_names_in_")
                                 else [str(v) for v in est.feature_names_in_]),
            "y_ndim": int(getattr(est, "_y_ndim", 1)),
            "rng_state": est._rng.bit_generator.state, **target_fields(est)}


def _layer_record(layer):
    entry = {"type": type(layer).__name__, "params": dict(layer.params), "state": dict(getattr(layer, "state", {}))}
    if layer.stochastic:
        entry.update(seed=int(layer.seed), layer_id=int(layer.layer_id), step=int(layer.step))
    return entry


def model_record(estimator):
    """The record :func:`minicnn.io.save` writes for a fitted CNNClassifier or CNNRegressor.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    """
    check_is_fitted(estimator)
    network = estimator.network_
    return {"estimator": type(estimator).__name__, "params": estimator._fitted_params(),
            "input_shape": tuple(int(d) for d in estimator.input_shape_),
            "n_features_in": int(estimator.n_features_in_), "n_outputs": int(estimator.n_outputs_),
            "dtype": str(network.dtype), "layers": [_layer_record(layer) for layer in network.descendants()],   # every layer of the tree
            "fitted": _fitted_fields(estimator), "classes": getattr(estimator, "classes_", None),
            "preprocessing": getattr(estimator, "preprocessing_", None),
            "data": getattr(estimator, "_data_record", None)}
