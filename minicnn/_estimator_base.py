"""Shared machinery of CNNClassifier and CNNRegressor: validation, the fit loop, batched prediction.

The public classes in :mod:`minicnn.estimator` only add what differs (target
encoding, loss, output transform, score); everything else lives here.
"""

import copy
import functools
import math
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.callback import CallbackSupportMixin
from sklearn.callback._callback_support import callback_management_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from . import _predict, checkpoint, params, placement, preprocessing
from ._callbacks import FitHooks
from ._caller import warn
from ._predict import as_float64, batched_outputs, check_mc_samples, log_softmax, mc_offset  # noqa: F401
from ._targets import in_target_units, standardize, standardized_output
from .architecture import network_for, parse_layers
from .holdout import check_holdout, check_score_holdout, round_count
from .placement import plan
from .inputs import already_prepared, prepare_X
from .images import model_input
from .layers import BatchNorm
from ._progress import EpochReporter
from .optim import SGD, Adam
from .threads import thread_limits
from .training import train_epoch
from .augment import make_augmenter
from .convergence import no_improvement_reason, report_stop, warn_if_unstable
from .schedules import LRSchedule
from .weights import fit_weights

#: Samples per forward pass in predict (tests lower it to force several batches).
PREDICT_BATCH = _predict.PREDICT_BATCH


#: Parameters that shape the network: changing them between warm-started fits is an error, and until the next
#: fit every view of the model (predict, summary, save) uses the values of the last fit (``_built_with``).
ARCHITECTURE_PARAMS = ("layers", "kernel_size", "padding", "pool_size", "activation", "batch_norm", "dropout",
                       "dropout_rate", "dropout_kind", "dropout_scaling", "input_shape", "data_format")

#: An epoch whose mean loss exceeds this multiple of the loss at the start of the fit (or of the loss of a
#: constant prediction, if larger) diverged: cross-entropy at 100 x log(n_classes) means probabilities of
#: e^-230 on the true class, an MSE at 100 x var(y) predictions ten standard deviations off.
DIVERGENCE_GROWTH = 100.0


class _Interrupted(Exception):
    """A KeyboardInterrupt before any epoch of a call continuing a fitted model completed."""

    def __init__(self, epoch):
        super().__init__(epoch)
        self.epoch = epoch


def serialized(method):
    """Run ``method`` holding the estimator's lock (see :meth:`BaseCNN._lock`)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock():
            return method(self, *args, **kwargs)
    return locked


_D = params.DEFAULTS


#: Attributes that scikit-learn's callback API sets on an estimator (shared by copies, never deep-copied).
_CALLBACK_ATTRS = ("_skl_callbacks", "_callback_fit_ctx", "_skl_callbacks_to_teardown", "_parent_callback_ctx")


class BaseCNN(CallbackSupportMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator):
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
                 random_state=_D["random_state"], verbose=_D["verbose"], warm_start=_D["warm_start"],
                 checkpoint_path=_D["checkpoint_path"]):
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
        self.checkpoint_path = checkpoint_path

    @classmethod
    def _from_header(cls, reader, header, backend):
        """``(estimator, tokens, specs)`` of a checked model-file header (``make`` of :func:`minicnn.io.read_model`)."""
        from .io import header_params

        params = header_params(reader, header, cls().get_params(deep=False), backend)
        est = cls(**params)
        try:
            est._validate_params()
            tokens, specs = est._plan()
        except (InvalidParameterError, ValueError, TypeError) as exc:
            reader.fail(f"invalid params ({exc})")
        return est, tokens, specs

    def _validate_params(self):
        """Check every parameter against :mod:`minicnn.params` (stricter than scikit-learn: a bool is
        never a number, a number is never a placement), then scikit-learn's constraints."""
        for name, value in self.get_params(deep=False).items():
            problem = params.invalid(name, value)
            if problem is not None:
                raise InvalidParameterError(f"The {name!r} parameter of {type(self).__name__} must be {problem}. "
                                            f"Got {value!r} instead.")
        super()._validate_params()
        for name, value in self.get_params(deep=False).items():   # valid NumPy scalars act as their value
            as_python = params.python_value(value)
            if as_python is not value:
                setattr(self, name, as_python)

    # ------------------------------------------------------------------ planning
    def _plan(self):
        """Parse ``layers`` and place dropout (raises ValueError naming the bad parameter)."""
        return plan(self)

    def _architecture_key(self):
        params = self.get_params(deep=False)
        return {name: copy.deepcopy(params[name]) for name in ARCHITECTURE_PARAMS}

    def _fitted_params(self):
        """The constructor parameters that describe the fitted model.

        Parameters that shape the network (``ARCHITECTURE_PARAMS``) take
        effect at the next ``fit``, as in scikit-learn: until then this returns
        their values of the last fit; the others (training settings, backend,
        n_threads) are returned as they are now.
        """
        params = self.get_params(deep=False)
        params.update(copy.deepcopy(self.__dict__.get("_built_with", {})))
        return params

    def _lock(self):
        """The lock that serializes fit, partial_fit, predict, summary, save and pickling/copying (re-entrant)."""
        lock = self.__dict__.get("_fit_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_fit_lock", threading.RLock())   # atomic: one lock even if raced
        return lock

    def set_params(self, **params):
        """scikit-learn's ``set_params``, under the estimator's lock: it waits for a fit running in another
        thread, so a fit reads one set of parameters from start to end (and ``save`` then writes a loadable file)."""
        with self._lock():
            return super().set_params(**params)

    def __getstate__(self):
        # pickle, copy.deepcopy and joblib.dump read the state after this returns: copy it under the lock,
        # so a fit in another thread can neither tear the copy nor change it while it is written
        with self._lock():
            state = dict(super().__getstate__())
            state.pop("_fit_lock", None)   # a lock is not data: copies and unpickled estimators get their own
            # scikit-learn callbacks and their contexts are shared, not data (they hold listeners and threads)
            shared = {key: state.pop(key) for key in _CALLBACK_ATTRS if key in state}
            return {**copy.deepcopy(state), **shared}

    def _new_network(self, tokens, specs, n_outputs, rng):
        return network_for(self, tokens, specs, n_outputs, rng)

    def _new_optimizer(self):
        if self.optimizer == "sgd":
            return SGD(self.learning_rate, momentum=0.9, nesterov=True, weight_decay=self.weight_decay)
        return Adam(self.learning_rate, weight_decay=self.weight_decay)

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental, classes=None, sample_weight=None):
        """Worker of ``fit`` (``incremental=False``) and ``partial_fit`` (one epoch, ``incremental=True``).

        Atomic: if anything raises (bad input, MemoryError, KeyboardInterrupt
        before an epoch of this call completed, divergence, a bug), the
        estimator is restored exactly as it was before the call (attributes,
        weights, BatchNorm statistics, dropout steps, optimizer, RNG).
        """
        saved = self._save_state()
        try:
            with callback_management_context(self):   # callbacks' teardown runs before a restore
                hooks = FitHooks(self, X, y, sample_weight, 1 if incremental else self.max_iter)
                self._fit_worker(X, y, incremental, classes, sample_weight, hooks)
                hooks.end_fit()
                return self
        except _Diverged as exc:
            self._restore_state(saved)
            raise self._diverged(exc) from None
        except _Interrupted as exc:   # no epoch of this call completed: the call is undone, not the model
            self._restore_state(saved)
            self.interrupted_ = True
            warn(f"Training interrupted (KeyboardInterrupt) during epoch {exc.epoch}; kept the weights of epoch "
                 f"{self.n_iter_} (n_iter_={self.n_iter_}).", UserWarning)
            return self
        except BaseException:
            self._restore_state(saved)
            raise

    def _save_state(self):
        attrs = dict(self.__dict__)
        for key in ("loss_curve_", "validation_scores_", "validation_loss_curve_"):
            if isinstance(attrs.get(key), list):
                attrs[key] = list(attrs[key])
        network = attrs.get("network_")
        net = None
        if network is not None:
            net = (self._snapshot(), [(layer, layer.step) for layer in network.walk() if layer.stochastic],
                   network.backend)
        rng = attrs.get("_rng")
        return (attrs, net, copy.deepcopy(attrs.get("_optimizer")),
                None if rng is None else copy.deepcopy(rng.bit_generator.state))

    def _restore_state(self, saved):
        attrs, net, optimizer, rng_state = saved
        self.__dict__.clear()
        self.__dict__.update(attrs)
        if net is not None:
            (arrays, values), steps, backend = net
            for target, value in zip(arrays, values):
                target[...] = value
            for layer, step in steps:
                layer.step = step
            if self.network_.backend != backend:
                self.network_.set_backend(backend)
        if optimizer is not None:
            self._optimizer = optimizer
        if rng_state is not None:
            self._rng.bit_generator.state = rng_state

    def _fit_worker(self, X, y, incremental, classes, sample_weight=None, hooks=None):
        fitted = hasattr(self, "network_")
        first = not (fitted and (incremental or self.warm_start))
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        self.__dict__.pop("_data_record", None)   # the data 'minicnn fit' named described an earlier fit
        key = self._architecture_key()   # what the network is built from, read once
        tokens, specs = self._plan()
        if not first and key != self._built_with:
            changed = [k for k in ARCHITECTURE_PARAMS if self._built_with[k] != self._architecture_key()[k]]
            raise ValueError(f"Cannot continue training ({'partial_fit' if incremental else 'warm_start=True'}) "
                             f"after changing {changed}: the fitted network was built with "
                             f"{ {k: self._built_with[k] for k in changed} }. Call fit with warm_start=False.")
        images = prepare_X(self, X, reset=first)
        preprocessing.record_fit(self, X, first)   # images read from files: how, recorded in the model
        targets = self._prepare_y(y, first=first, classes=classes)
        if len(images) != len(targets):
            raise ValueError(f"X and y have inconsistent numbers of samples: X has {len(images)} (shape "
                             f"{images.shape}), y has {len(targets)} (shape {np.shape(y)})")
        weights = fit_weights(self, sample_weight, targets, incremental)
        ckpt = checkpoint.prepare(self, images, targets, weights, first, incremental)
        if not self._stratify:   # the regressor trains on standardized targets (see minicnn._targets)
            targets = standardize(self, targets, first, weights)
        if first or not incremental or not hasattr(self, "_rng"):
            seed = None if ckpt is None else ckpt.seed
            if seed is None:
                seed = check_random_state(self.random_state).randint(0, 2**32, size=4, dtype=np.uint64)
            if ckpt is not None:
                ckpt.seed = seed
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        if first:
            for message in placement.lint_placement(tokens, specs, self.batch_norm):
                warn(message, UserWarning)
            self.network_ = self._new_network(tokens, specs, self.n_outputs_, rng)
            self._built_with = key
            self.dropout_layers_ = tuple(specs)
            self.n_iter_, self.t_ = 0, 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
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
            if getattr(self, "validation_loss_curve_", None) is None:
                self.validation_loss_curve_ = [np.nan] * (len(self.validation_scores_))
            self.best_loss_ = None
        else:
            train_X, train_y, val_X, val_y = images, targets, None, None
            if self.best_loss_ is None:   # a previous fit used early stopping
                self.best_loss_ = np.inf
        min_batch = self._min_batch()
        if min_batch > min(self.batch_size, len(train_X)):
            source = (f"batch_size={self.batch_size}" if self.batch_size < min_batch
                      else f"{len(train_X)} training sample(s)")
            raise ValueError(f"Expected more than 1 value per channel when training: with batch_norm=True a BatchNorm "
                             f"normalizes one value per sample and channel (after a dense layer or a 1x1 map), so a "
                             f"batch needs at least 2 samples; received {source}. Use batch_size >= 2 and more "
                             f"samples, or batch_norm=False.")
        with thread_limits(self.n_threads, self.network_.training_work(min(self.batch_size, len(train_X)))), \
                standardized_output(self, first):
            if ckpt is not None:   # inside: a warm start's weights were just put in standardized units
                ckpt.restore(self, rng)
            self._train(train_X, train_y, val_X, val_y, rng, epochs=1 if incremental else self.max_iter,
                        first=first, min_batch=min_batch, weights=train_w, incremental=incremental,
                        augmenter=make_augmenter(self.augment, self.network_.kernels), ckpt=ckpt, hooks=hooks)
        return self

    def _min_batch(self):
        """2 if a BatchNorm sees one value per channel and sample (PyTorch refuses such one-value batches), else 1."""
        counts = [math.prod(layer.input_shape[:-1]) for layer in self.network_.walk()
                  if isinstance(layer, BatchNorm)]
        return 2 if counts and min(counts) == 1 else 1

    def _split(self, images, targets, rng, weights=None):
        n = len(images)
        n_val = max(1, int(round(self.validation_fraction * n)))
        setting = f"early_stopping=True with validation_fraction={self.validation_fraction!r}"
        if n_val >= n:
            raise ValueError(f"{setting} needs at least 2 samples to hold out a validation set; received {n} "
                             f"samples. Pass more samples or set early_stopping=False.")
        if self._stratify:
            counts = np.bincount(targets, minlength=self.n_outputs_)
            present = np.flatnonzero(counts)
            rare = present[np.argmin(counts[present])]
            if counts[rare] < 2:
                raise ValueError(f"{setting} holds out a stratified validation set, which needs at least 2 samples "
                                 f"of every class in y; class {self.classes_[rare].item()!r} has {counts[rare]}. "
                                 f"Pass more samples of it, or set early_stopping=False.")
            if n_val < len(present) or n - n_val < len(present):   # the message: minicnn.holdout
                check_holdout(self.classes_[targets], self.validation_fraction, parameter="validation_fraction",
                              count_of=round_count, stratify=True, other=", or set early_stopping=False",
                              context="early_stopping=True with ")
        else:   # the message and its remedies: minicnn.holdout, from the rule it checks
            check_score_holdout(n, self.validation_fraction, parameter="validation_fraction",
                                other=", or set early_stopping=False", context="early_stopping=True with ")
        stratify = targets if self._stratify else None
        arrays = (images, targets) if weights is None else (images, targets, weights)
        return train_test_split(*arrays, test_size=n_val, stratify=stratify,
                                random_state=int(rng.integers(0, 2**31 - 1)))

    def _snapshot(self):
        arrays = [p for p, _ in self.network_.params_and_grads()]
        arrays += [a for layer in self.network_.walk() for a in getattr(layer, "state", {}).values()]
        return arrays, [a.copy() for a in arrays]

    def _checkpoint(self, rng):
        """Everything one epoch changes: weights, BatchNorm statistics, dropout steps, optimizer, RNG."""
        steps = [(layer, layer.step) for layer in self.network_.walk() if layer.stochastic]
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

    def _epoch_records(self, best, no_improvement, completed):
        """What the bookkeeping of one epoch changes (curves, counters, schedule), for :meth:`_undo_epoch_records`."""
        lengths = [None if getattr(self, k, None) is None else len(getattr(self, k))
                   for k in ("loss_curve_", "validation_scores_", "validation_loss_curve_")]
        return (lengths, self.n_iter_, self.t_, self.best_validation_score_, self.best_loss_,
                copy.copy(self._lr_state), best, no_improvement, completed)

    def _undo_epoch_records(self, marks):
        """Return the records to :meth:`_epoch_records`; returns the loop's ``(best, no_improvement, completed)``."""
        lengths, self.n_iter_, self.t_, self.best_validation_score_, self.best_loss_, self._lr_state, *loop = marks
        for key, length in zip(("loss_curve_", "validation_scores_", "validation_loss_curve_"), lengths):
            if length is not None:
                del getattr(self, key)[length:]
        return tuple(loop)

    def _likely_causes(self, X, y):
        """What probably made training diverge, judged from the settings and the data seen."""
        lr, wd = self.learning_rate, self.weight_decay
        if lr * wd >= 1:
            return [f"weight_decay: every step multiplies the weights by 1 - learning_rate * weight_decay = "
                    f"{1 - lr * wd:.3g} (received learning_rate={lr!r}, weight_decay={wd!r}); keep "
                    f"learning_rate * weight_decay well below 1"]
        causes = []   # (the regressor trains on standardized targets: the scale of y is never a cause)
        largest = float(np.max(np.abs(X)))
        if largest > 1e3:
            causes.append(f"the scale of X: the inputs reach {largest:.3g}; scale them (e.g. divide 8-bit images "
                          f"by 255, or StandardScaler)")
        if not causes or lr > 0.1:
            causes.append(f"learning_rate: the learning rate is probably too high (received learning_rate={lr!r}); "
                          f"lower it")
        return causes

    def _diverged(self, exc):
        """The ValueError raised for a divergence, once the estimator is back at its state before the call."""
        outcome = (f"The estimator is left as it was before this call: the weights of epoch {self.n_iter_} were "
                   f"kept (n_iter_={self.n_iter_})." if hasattr(self, "network_")
                   else "The estimator is left unfitted, as it was before this call.")
        return ValueError(f"Training diverged in epoch {exc.epoch}: {exc.detail}. Likely cause: "
                          f"{'; also '.join(exc.causes)}. {outcome}")

    def _baseline_loss(self, y):
        """The loss of a constant prediction: log(n_classes) (uniform), or the variance of the targets."""
        if self._stratify:
            return math.log(self.n_outputs_)
        return float(np.mean(np.var(y, axis=0))) if len(y) > 1 else 0.0

    def _train(self, X, y, val_X, val_y, rng, epochs, first=False, min_batch=1, weights=None, incremental=True,
               augmenter=None, ckpt=None, hooks=None):
        """Run up to ``epochs`` epochs.

        Every epoch starts from a checkpoint. A ``KeyboardInterrupt`` during
        an epoch rolls back to it (the weights of the last complete epoch),
        warns and returns, leaving a usable estimator; if no epoch of a first
        fit completed, the interrupt is re-raised (and ``_fit`` restores the
        estimator). Divergence raises ``_Diverged``: a non-finite batch loss,
        non-finite weights, or an epoch loss grown past ``DIVERGENCE_GROWTH``
        times the loss at the start of the call (or of a constant prediction,
        if larger).
        """
        network = self.network_
        loss_fn = self._loss_function
        best, no_improvement, completed, stop = None, 0, 0, None
        start = [None]
        self.interrupted_ = False   # set when a KeyboardInterrupt ends this call (the completed epochs are kept)
        finished = False
        if ckpt is not None:   # a resumed fit continues its loop where the checkpoint left it
            best, no_improvement, completed, start[0], finished = ckpt.loop_state(self)
            ckpt.announce(self, completed, finished)
            epochs = 0 if finished or no_improvement >= self.n_iter_no_change else epochs - completed
            if no_improvement >= self.n_iter_no_change and not finished:
                stop = no_improvement_reason(self, val_X is not None)
        reporter = EpochReporter(self.verbose, n_samples=len(X), max_iter=self.n_iter_ + epochs,   # after a resume:
                                 score_name=self._score_name)                                 # the epochs left
        if hooks is not None:
            hooks.start(epochs)
        for _ in range(epochs):
            epoch = self.n_iter_ + 1
            if hooks is not None:
                hooks.begin_epoch()
            progress = reporter.start_epoch(epoch)
            checkpoint = self._checkpoint(rng)

            def on_batch(done, batch_loss, progress=progress, epoch=epoch):
                if not math.isfinite(batch_loss):
                    raise _Diverged(epoch, f"the loss of a batch became {batch_loss} after {done} samples",
                                    self._likely_causes(X, y))
                if start[0] is None:
                    start[0] = max(batch_loss, self._baseline_loss(y))
                if progress is not None:
                    progress(done, batch_loss)

            self._optimizer.learning_rate = self.learning_rate * self._lr_state.factor
            marks = self._epoch_records(best, no_improvement, completed)   # Ctrl-C at any point undoes the epoch
            try:
                loss = train_epoch(network, loss_fn, self._optimizer, X, y, self.batch_size, rng, on_batch=on_batch,
                                   min_batch=min_batch, sample_weight=weights, augmenter=augmenter)
                if not np.isfinite(loss):
                    raise _Diverged(epoch, f"the mean loss of the epoch is {loss}", self._likely_causes(X, y))
                if not all(np.isfinite(p).all() for p, _ in network.params_and_grads()):
                    raise _Diverged(epoch, "the weights became non-finite", self._likely_causes(X, y))
                if start[0] is not None and loss > DIVERGENCE_GROWTH * start[0]:
                    raise _Diverged(epoch, f"the mean loss of the epoch grew to {loss:.4g}, more than "
                                           f"{DIVERGENCE_GROWTH:g} times the loss at the start ({start[0]:.4g})",
                                    self._likely_causes(X, y))
                # the epoch's records: an interrupt here too rolls back to the previous epoch
                completed += 1
                self.n_iter_, self.t_ = epoch, self.t_ + len(X)
                self.loss_curve_.append(float(loss))
                score = None
                if val_X is not None:
                    score, val_loss = self._validation_metrics(val_X, val_y)
                    self.validation_scores_.append(score)
                    self.validation_loss_curve_.append(val_loss)
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
                if ckpt is not None:
                    ckpt.write(self, rng, best=best, no_improvement=no_improvement, completed=completed,
                               start=start[0], finished=False)
                if no_improvement >= self.n_iter_no_change:
                    stop = no_improvement_reason(self, val_X is not None)
                if hooks is not None:
                    with in_target_units(self):   # callbacks score the model in y's units, as predict will
                        asked = hooks.end_epoch()
                    if asked and stop is None:
                        stop = "a callback asked to stop (on_fit_task_end returned True)"
            except KeyboardInterrupt:
                reporter.close_bar()
                self._rollback(checkpoint, rng)
                best, no_improvement, completed = self._undo_epoch_records(marks)
                if completed == 0:
                    if first:
                        raise
                    raise _Interrupted(epoch) from None
                warn(f"Training interrupted (KeyboardInterrupt) during epoch {epoch}; kept the weights "
                     f"of epoch {epoch - 1} (n_iter_={self.n_iter_}).", UserWarning)
                stop = "interrupted (KeyboardInterrupt)"
                self.interrupted_ = True
                break
            except _Diverged:
                reporter.close_bar()
                raise
            if stop is not None:
                break
        if finished:   # the checkpoint holds the finished fit: its model, nothing left to train or report
            return
        report_stop(self, stop, incremental, self._baseline_loss(y))
        if not incremental:
            untrained = math.log(self.n_outputs_) if self._stratify else float(np.mean(np.square(y)))
            warn_if_unstable(self, self.loss_curve_[len(self.loss_curve_) - completed:], self._baseline_loss(y),
                             untrained, lambda: self._likely_causes(X, y))
        if best is not None:   # early stopping keeps the best weights seen
            for target, saved in zip(*best):
                target[...] = saved
        if ckpt is not None and stop != "interrupted (KeyboardInterrupt)":
            ckpt.write(self, rng, best=None, no_improvement=no_improvement, completed=completed, start=start[0],
                       finished=True)

    def _validation_metrics(self, images, targets):
        """``(score, loss)`` on the validation split from one forward pass (the loss in float64)."""
        outputs, _ = self._outputs(images, as_float64)
        if self._stratify:
            loss = -float(np.mean(log_softmax(outputs)[np.arange(len(targets)), targets]))
        else:
            loss = float(np.mean(np.square(outputs - targets)))
        return float(self._internal_score(images, targets, outputs)), loss

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
        ready = already_prepared(self, X)   # the usual float32 array of the fitted shape (never image files)
        return ready if ready is not None else prepare_X(self, model_input(self, X), reset=False)

    def _check_feature_names_in(self, X):
        """scikit-learn's feature-name check of a prediction input (its warnings attributed to the caller)."""
        if getattr(X, "columns", None) is None and not hasattr(self, "feature_names_in_"):
            return
        from sklearn.utils.validation import _check_feature_names

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_feature_names(self, X, reset=False)
        for w in caught:
            warn(str(w.message), w.category)

    def _outputs(self, images, transform, mc_samples=None, with_std=False):
        """Batched forward passes (see :func:`minicnn._predict.batched_outputs`).

        Monte-Carlo passes use fresh masks on every call when ``random_state``
        is None (or a RandomState instance, which is drawn from), and the same
        masks on every call for an int ``random_state``.
        """
        offset = 0 if mc_samples is None else mc_offset(params.python_value(self.random_state))
        n_threads = self.n_threads
        if n_threads is not None and type(n_threads) is not int:   # a NumPy integer (python_value: ~0.3 us)
            n_threads = params.python_value(n_threads)
        return batched_outputs(self.network_, images, transform, n_outputs=self.n_outputs_, backend=self.backend,
                               n_threads=n_threads, mc_samples=mc_samples, with_std=with_std,
                               batch_size=PREDICT_BATCH, mc_offset=offset)

    @serialized
    def predict_uncertainty(self, X, mc_samples=30):
        """Monte-Carlo dropout: mean and standard deviation over ``mc_samples`` stochastic passes.

        Dropout stays active at prediction (Gal & Ghahramani 2016). With an
        int ``random_state`` the masks are keyed by the fitted seed, so results
        are deterministic (for a fixed batch composition: masks are drawn per
        position in a prediction batch of up to 1024 samples); with
        ``random_state=None`` every call draws fresh masks.

        Parameters
        ----------
        X : array-like
            Inputs as for ``predict``.
        mc_samples : int, default=30
            Number of stochastic forward passes.

        Returns
        -------
        mean, std : ndarray of shape (n_samples, n_outputs), float64
            Mean and standard deviation over the passes of the class
            probabilities (classifier) or predictions (regressor; for a
            regressor fitted on 1-D ``y``, 1-D arrays). ``std`` is the spread
            of the passes (model uncertainty as dropout sees it), not a
            calibrated error bar.

        Notes
        -----
        When it helps is an empirical question: measure it on held-out data
        with :func:`minicnn.uncertainty.mc_report` (``minicnn mc-report``),
        which compares the MC mean with the deterministic prediction (log
        loss, Brier score, calibration error, accuracy) and says how well
        ``std`` ranks wrong predictions above right ones (AUROC). On digits
        with dropout 0.2 after each layer, 30 passes raised the log loss
        from 0.059 to 0.127; docs/UNCERTAINTY.md has MNIST and
        Fashion-MNIST numbers. For calibrated probabilities use
        ``CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")``.
        A model without dropout warns (every pass is the same).
        """
        mc_samples = check_mc_samples(mc_samples, allow_none=False)
        mean, std = self._outputs(self._images(X), self._output_transform, mc_samples, with_std=True)
        return self._shape_output(mean), self._shape_output(std)

    def _shape_output(self, values):
        return values

    @serialized
    def transform(self, X, layer=None, mc_samples=None):
        """Embeddings: the outputs of one layer of the fitted network, one flat row per sample.

        Makes the estimator a feature extractor in a Pipeline (e.g. CNN
        features -> LogisticRegression; see
        ``examples/cnn_features_pipeline.py``).

        Parameters
        ----------
        X : array-like
            Inputs as for ``predict``.
        layer : int, str or None, default=None
            None: the penultimate layer (the input of the output layer); an
            int: a network layer as numbered by :meth:`summary` (negative
            from the end); a str: a Keras-style layer name (``"dense"``,
            ``"max_pool2d"``, ``"conv2d_1"``; see
            :func:`minicnn.embedding.layer_names`).
        mc_samples : int or None, default=None
            With an int k, the mean embedding over k Monte-Carlo dropout
            passes (masks keyed as in :meth:`predict_uncertainty`).

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64
            ``n_features`` is the product of the layer's output shape
            (channels-last order).

        Raises
        ------
        ValueError
            Naming ``layer`` for a layer that does not exist, is inside a
            block, or is not the default one while ``set_output`` asks for
            a DataFrame; ``mc_samples`` for a value that is not a positive int.
        """
        from .embedding import check_output_container, embed, resolve_layer

        mc_samples = check_mc_samples(mc_samples)
        images = self._images(X)
        index = resolve_layer(self.network_, layer)
        check_output_container(self, self.network_, index, layer)
        offset = 0 if mc_samples is None else mc_offset(self.random_state)
        return embed(self.network_, images, index, backend=self.backend, n_threads=self.n_threads,
                     mc_samples=mc_samples, mc_offset=offset, batch_size=PREDICT_BATCH)

    @property
    def _n_features_out(self):
        """Width of :meth:`transform`'s default output (scikit-learn's feature-names protocol)."""
        if "network_" not in self.__dict__:
            raise AttributeError("_n_features_out")
        from .embedding import resolve_layer

        return int(math.prod(self.network_.layers[resolve_layer(self.network_, None)].output_shape))

    # ------------------------------------------------------------------ reporting and persistence
    @serialized
    def summary(self):
        """The fitted network as a text table, with dropout positions, rates and kinds.

        Describes the model of the last fit: parameters changed since take
        effect at the next fit.

        Returns
        -------
        str
            One row per engine layer (dropout rows marked ``<-- dropout``),
            followed by the dropout placement resolved from ``dropout``,
            ``dropout_rate`` and ``dropout_kind``.
        """
        check_is_fitted(self)
        fitted = self._fitted_params()
        tokens = parse_layers(fitted["layers"])
        lines = [f"{type(self).__name__}: dropout={fitted['dropout']!r}, dropout_rate={fitted['dropout_rate']!r}, "
                 f"dropout_kind={fitted['dropout_kind']!r}, dropout_scaling={fitted['dropout_scaling']!r}",
                 self.network_.summary(), "Dropout placement:"]
        stochastic = [i for i, layer in enumerate(self.network_.descendants()) if layer.stochastic]
        for spec, index in zip(self.dropout_layers_, stochastic):
            lines.append(f"  after layers[{spec.after}]={tokens[spec.after].text!r} (network layer {index}): "
                         f"rate={spec.rate}, kind={spec.kind}")
        if not self.dropout_layers_:
            lines.append("  none")
        return "\n".join(lines)

    @serialized
    def save(self, path):
        """Write the fitted estimator to one safe ``.npz`` file (see :func:`minicnn.io.save`).

        The file describes the model of the last fit (parameters that shape
        the network and were changed since are saved with their fitted values).
        """
        from ._record import model_record
        from .io import save

        save(model_record(self), path)

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
    """Raised inside the epoch loop when the loss or the weights become non-finite, or the loss grows."""

    def __init__(self, epoch, detail, causes):
        super().__init__(detail)
        self.epoch, self.detail, self.causes = epoch, detail, causes


def fit_context(method):
    """``sklearn.base._fit_context`` with nested validation skipped (our own calls are trusted), under the lock.

    fit and partial_fit hold the estimator's lock for the whole call, and
    predictions wait for it: another thread never sees half-trained weights.
    """
    return serialized(_fit_context(prefer_skip_nested_validation=True)(method))
