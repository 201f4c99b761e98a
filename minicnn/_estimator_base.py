"""Shared machinery of CNNClassifier and CNNRegressor: validation, the fit loop, batched prediction.

The public classes in :mod:`minicnn.estimator` only add what differs (target
encoding, loss, output transform, score); everything else lives here.
"""

import copy
import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from . import _predict, params, placement
from ._predict import batched_outputs, check_mc_samples  # noqa: F401 (check_mc_samples re-exported)
from ._architecture import network_for, plan
from ._inputs import prepare_X
from ._progress import EpochReporter
from .optim import SGD, Adam
from .threads import thread_limits
from .training import train_epoch
from .augment import make_augmenter
from .convergence import no_improvement_reason, report_stop
from .schedules import LRSchedule
from .weights import fit_weights

#: Samples per forward pass in predict (tests lower it to force several batches).
PREDICT_BATCH = _predict.PREDICT_BATCH


#: Parameters that shape the network: changing them between warm-started fits is an error.
ARCHITECTURE_PARAMS = ("layers", "kernel_size", "padding", "pool_size", "activation", "batch_norm", "dropout",
                       "dropout_rate", "dropout_kind", "dropout_scaling", "input_shape", "data_format")


_D = params.DEFAULTS


class BaseCNN(BaseEstimator):
    """Base class of the CNN estimators (see :class:`minicnn.CNNClassifier` for the parameters)."""

    _parameter_constraints = params.sklearn_constraints()

    def __init__(self, layers=_D["layers"], *, kernel_size=_D["kernel_size"], padding=_D["padding"],
                 pool_size=_D["pool_size"], activation=_D["activation"], batch_norm=_D["batch_norm"],
                 dropout=_D["dropout"], dropout_rate=_D["dropout_rate"], dropout_kind=_D["dropout_kind"],
                 dropout_scaling=_D["dropout_scaling"], optimizer=_D["optimizer"], learning_rate=_D["learning_rate"],
                 lr_schedule=_D["lr_schedule"], batch_size=_D["batch_size"], augment=_D["augment"],
                 class_weight=_D["class_weight"], max_iter=_D["max_iter"], weight_decay=_D["weight_decay"],
                 early_stopping=_D["early_stopping"], validation_fraction=_D["validation_fraction"],
                 n_iter_no_change=_D["n_iter_no_change"], tol=_D["tol"], input_shape=_D["input_shape"],
                 data_format=_D["data_format"], backend=_D["backend"], n_threads=_D["n_threads"],
                 random_state=_D["random_state"], verbose=_D["verbose"], warm_start=_D["warm_start"]):
        self.layers = layers
        self.kernel_size = kernel_size
        self.padding = padding
        self.pool_size = pool_size
        self.activation = activation
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.dropout_rate = dropout_rate
        self.dropout_kind = dropout_kind
        self.dropout_scaling = dropout_scaling
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.augment = augment
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.input_shape = input_shape
        self.data_format = data_format
        self.backend = backend
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def _validate_params(self):
        """Check every parameter against :mod:`minicnn.params` (stricter than scikit-learn: a bool is
        never a number, a number is never a placement), then scikit-learn's constraints."""
        for name, value in self.get_params(deep=False).items():
            problem = params.invalid(name, value)
            if problem is not None:
                raise InvalidParameterError(f"The {name!r} parameter of {type(self).__name__} must be {problem}. "
                                            f"Got {value!r} instead.")
        super()._validate_params()

    # ------------------------------------------------------------------ planning
    def _plan(self):
        """Parse ``layers`` and place dropout (raises ValueError naming the bad parameter)."""
        return plan(self)

    def _architecture_key(self):
        params = self.get_params(deep=False)
        return {name: copy.deepcopy(params[name]) for name in ARCHITECTURE_PARAMS}

    def _new_network(self, tokens, specs, n_outputs, rng):
        return network_for(self, tokens, specs, n_outputs, rng)

    def _new_optimizer(self):
        if self.optimizer == "sgd":
            return SGD(self.learning_rate, momentum=0.9, nesterov=True, weight_decay=self.weight_decay)
        return Adam(self.learning_rate, weight_decay=self.weight_decay)

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        """Worker of ``fit`` (``incremental=False``) and ``partial_fit`` (one epoch, ``incremental=True``)."""
        fitted = hasattr(self, "network_")
        first = not (fitted and (incremental or self.warm_start))
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        tokens, specs = self._plan()
        if not first and self._architecture_key() != self._built_with:
            changed = [k for k in ARCHITECTURE_PARAMS if self._built_with[k] != self._architecture_key()[k]]
            raise ValueError(f"Cannot continue training ({'partial_fit' if incremental else 'warm_start=True'}) "
                             f"after changing {changed}: the fitted network was built with "
                             f"{ {k: self._built_with[k] for k in changed} }. Call fit with warm_start=False.")
        images = prepare_X(self, X, reset=first)
        targets = self._prepare_y(y, first=first, classes=classes)
        if len(images) != len(targets):
            raise ValueError(f"X and y have inconsistent numbers of samples: X has {len(images)} (shape "
                             f"{images.shape}), y has {len(targets)} (shape {np.shape(y)})")
        weights = fit_weights(self, sample_weight, targets, incremental)
        if first or not incremental or not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(
                check_random_state(self.random_state).randint(0, 2**32, size=4, dtype=np.uint64))
        rng = self._rng
        if first:
            for message in placement.lint_placement(tokens, specs, self.batch_norm):
                warnings.warn(message, UserWarning, stacklevel=3)
            self.network_ = self._new_network(tokens, specs, self.n_outputs_, rng)
            self._built_with = self._architecture_key()
            self.dropout_layers_ = tuple(specs)
            self.n_iter_, self.t_ = 0, 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        optimizer_key = (self.optimizer, self.learning_rate, self.weight_decay)
        if first or getattr(self, "_optimizer_key", None) != optimizer_key:
            self._optimizer, self._optimizer_key = self._new_optimizer(), optimizer_key
        if first or not incremental or getattr(self, "_lr_state", None) is None or (
                self._lr_state.schedule, self._lr_state.max_iter) != (self.lr_schedule, self.max_iter):
            self._lr_state = LRSchedule(self.lr_schedule, self.max_iter)   # a fit starts a new cycle
        if self.network_.backend != self.backend:
            self.network_.set_backend(self.backend)
        early = self.early_stopping and not incremental
        train_w = weights
        if early:
            train_X, val_X, train_y, val_y, *split_w = self._split(images, targets, rng, weights)
            train_w = split_w[0] if split_w else None
            if self.validation_scores_ is None:
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            train_X, train_y, val_X, val_y = images, targets, None, None
            if self.best_loss_ is None:   # a previous fit used early stopping
                self.best_loss_ = np.inf
        with thread_limits(self.n_threads):
            self._train(train_X, train_y, val_X, val_y, rng, epochs=1 if incremental else self.max_iter,
                        first=first, weights=train_w, incremental=incremental,
                        augmenter=make_augmenter(self.augment, self.network_._kernels()))
        return self

    def _split(self, images, targets, rng, weights=None):
        n_val = max(1, int(round(self.validation_fraction * len(images))))
        if n_val >= len(images):
            raise ValueError(f"early_stopping=True needs at least 2 samples to hold out a validation set; "
                             f"received {len(images)} samples with validation_fraction={self.validation_fraction}")
        stratify = targets if self._stratify else None
        arrays = (images, targets) if weights is None else (images, targets, weights)
        return train_test_split(*arrays, test_size=n_val, stratify=stratify,
                                random_state=int(rng.integers(0, 2**31 - 1)))

    def _snapshot(self):
        arrays = [p for p, _ in self.network_.params_and_grads()]
        arrays += [a for layer in self.network_.layers for a in getattr(layer, "state", {}).values()]
        return arrays, [a.copy() for a in arrays]

    def _checkpoint(self, rng):
        """Everything one epoch changes: weights, BatchNorm statistics, dropout steps, optimizer, RNG."""
        steps = [(layer, layer.step) for layer in self.network_.layers if layer.stochastic]
        return self._snapshot(), steps, copy.deepcopy(self._optimizer), copy.deepcopy(rng.bit_generator.state)

    def _rollback(self, checkpoint, rng):
        """Return to a :meth:`_checkpoint` (the state at the start of the interrupted or diverged epoch)."""
        (arrays, saved), steps, optimizer, rng_state = checkpoint
        for target, values in zip(arrays, saved):
            target[...] = values
        for layer, step in steps:
            layer.step = step
        self._optimizer = optimizer
        rng.bit_generator.state = rng_state

    def _forget_fit(self):
        """Undo a first fit that trained no complete epoch: the estimator is unfitted again."""
        for name in ("network_", "dropout_layers_", "_built_with", "_optimizer", "_optimizer_key"):
            self.__dict__.pop(name, None)

    def _diverged(self, epoch, detail, kept):
        outcome = (f"The weights of epoch {epoch - 1} were kept (n_iter_={self.n_iter_})." if kept
                   else "No epoch completed: the estimator is left unfitted.")
        return ValueError(
            f"Training diverged in epoch {epoch}: {detail}. The learning rate is probably too high (received "
            f"learning_rate={self.learning_rate!r}): lower it, or scale the inputs (e.g. StandardScaler). "
            f"{outcome}")

    def _train(self, X, y, val_X, val_y, rng, epochs, first=False, weights=None, incremental=True,
               augmenter=None):
        """Run up to ``epochs`` epochs.

        Every epoch starts from a checkpoint. A ``KeyboardInterrupt`` during
        an epoch rolls back to it (the weights of the last complete epoch),
        warns and returns, leaving a usable estimator; if no epoch of a first
        fit completed, the estimator is left unfitted and the interrupt is
        re-raised. A non-finite batch loss or non-finite weights roll back the
        same way and raise ``ValueError`` (learning rate too high).
        """
        network = self.network_
        loss_fn = self._loss_function
        reporter = EpochReporter(self.verbose, n_samples=len(X), max_iter=self.n_iter_ + epochs,
                                 score_name=self._score_name)
        best, no_improvement, completed, stop = None, 0, 0, None
        for _ in range(epochs):
            epoch = self.n_iter_ + 1
            progress = reporter.start_epoch(epoch)
            checkpoint = self._checkpoint(rng)

            def on_batch(done, batch_loss, progress=progress, epoch=epoch):
                if not math.isfinite(batch_loss):
                    raise _Diverged(f"the loss of a batch became {batch_loss} after {done} samples")
                if progress is not None:
                    progress(done, batch_loss)

            self._optimizer.learning_rate = self.learning_rate * self._lr_state.factor
            try:
                loss = train_epoch(network, loss_fn, self._optimizer, X, y, self.batch_size, rng, on_batch=on_batch,
                                   sample_weight=weights, augmenter=augmenter)
                if not np.isfinite(loss):
                    raise _Diverged(f"the mean loss of the epoch is {loss}")
                if not all(np.isfinite(p).all() for p, _ in network.params_and_grads()):
                    raise _Diverged("the weights became non-finite")
            except KeyboardInterrupt:
                reporter.close_bar()
                self._rollback(checkpoint, rng)
                if first and completed == 0:
                    self._forget_fit()
                    raise
                warnings.warn(f"Training interrupted (KeyboardInterrupt) during epoch {epoch}; kept the weights "
                              f"of epoch {epoch - 1} (n_iter_={self.n_iter_}).", UserWarning, stacklevel=4)
                stop = "interrupted (KeyboardInterrupt)"
                break
            except _Diverged as exc:
                reporter.close_bar()
                self._rollback(checkpoint, rng)
                kept = not (first and completed == 0)
                if not kept:
                    self._forget_fit()
                raise self._diverged(epoch, exc, kept) from None
            completed += 1
            self.n_iter_, self.t_ = epoch, self.t_ + len(X)
            self.loss_curve_.append(float(loss))
            score = None
            if val_X is not None:
                score = float(self._internal_score(val_X, val_y))
                self.validation_scores_.append(score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best = self._snapshot()
            else:
                improved = loss < self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, float(loss))
            reporter.end_epoch(epoch, loss, score)
            self._lr_state.end_epoch(improved)
            no_improvement = 0 if improved else no_improvement + 1
            if no_improvement >= self.n_iter_no_change:
                stop = no_improvement_reason(self, val_X is not None)
                break
        report_stop(self, stop, incremental)
        if best is not None:   # early stopping keeps the best weights seen
            for target, saved in zip(*best):
                target[...] = saved

    @property
    def loss_(self):
        """Mean training loss of the last epoch (``loss_curve_[-1]``), as scikit-learn's MLP; fitted only."""
        if not getattr(self, "loss_curve_", None):
            raise AttributeError(f"This {type(self).__name__} has no loss_: it has not completed an epoch")
        return self.loss_curve_[-1]

    # ------------------------------------------------------------------ prediction
    def _images(self, X):
        if "network_" not in self.__dict__:
            # what check_is_fitted does, without its tag lookups (~4 us of a ~30 us one-sample predict)
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 f"appropriate arguments before using this estimator.")
        return prepare_X(self, X, reset=False)

    def _outputs(self, images, transform, mc_samples=None, with_std=False):
        """Batched forward passes (see :func:`minicnn._predict.batched_outputs`)."""
        return batched_outputs(self.network_, images, transform, n_outputs=self.n_outputs_, backend=self.backend,
                               n_threads=self.n_threads, mc_samples=mc_samples, with_std=with_std,
                               batch_size=PREDICT_BATCH)

    def predict_uncertainty(self, X, mc_samples=30):
        """Monte-Carlo dropout: mean and standard deviation over ``mc_samples`` stochastic passes.

        Dropout stays active at prediction (Gal & Ghahramani 2016), with masks
        keyed by the fitted seed, so results are deterministic for a fixed
        ``random_state`` (and a fixed batch composition: masks are drawn per
        position in a prediction batch of up to 1024 samples).

        Parameters
        ----------
        X : array-like
            Inputs as for ``predict``.
        mc_samples : int, default=30
            Number of stochastic forward passes.

        Returns
        -------
        mean, std : ndarray of shape (n_samples, n_outputs)
            Class probabilities (classifier) or predictions (regressor); for a
            regressor fitted on 1-D ``y``, 1-D arrays.
        """
        mc_samples = check_mc_samples(mc_samples, allow_none=False)
        mean, std = self._outputs(self._images(X), self._output_transform, mc_samples, with_std=True)
        return self._shape_output(mean), self._shape_output(std)

    def _shape_output(self, values):
        return values

    # ------------------------------------------------------------------ reporting and persistence
    def summary(self):
        """The fitted network as a text table, with dropout positions, rates and kinds.

        Returns
        -------
        str
            One row per engine layer (dropout rows marked ``<-- dropout``),
            followed by the dropout placement resolved from ``dropout``,
            ``dropout_rate`` and ``dropout_kind``.
        """
        check_is_fitted(self)
        tokens = placement.parse_layers(self.layers)
        lines = [f"{type(self).__name__}: dropout={self.dropout!r}, dropout_rate={self.dropout_rate!r}, "
                 f"dropout_kind={self.dropout_kind!r}, dropout_scaling={self.dropout_scaling!r}",
                 self.network_.summary(), "Dropout placement:"]
        stochastic = [i for i, layer in enumerate(self.network_.layers) if layer.stochastic]
        for spec, index in zip(self.dropout_layers_, stochastic):
            lines.append(f"  after layers[{spec.after}]={tokens[spec.after].text!r} (network layer {index}): "
                         f"rate={spec.rate}, kind={spec.kind}")
        if not self.dropout_layers_:
            lines.append("  none")
        return "\n".join(lines)

    def save(self, path):
        """Write the fitted estimator to one safe ``.npz`` file (see :func:`minicnn.io.save`)."""
        from .io import save

        save(self, path)

    def __sklearn_is_fitted__(self):
        # Fitted means "has a network": a fit that failed after validating X (which sets n_features_in_)
        # must not leave an estimator that check_is_fitted accepts and predict then crashes on.
        return hasattr(self, "network_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags


class _Diverged(Exception):
    """Raised inside the epoch loop when the loss or the weights become non-finite."""


def fit_context(method):
    """``sklearn.base._fit_context`` with nested validation skipped (our own calls are trusted)."""
    return _fit_context(prefer_skip_nested_validation=True)(method)
