"""scikit-learn estimators: CNNClassifier and CNNRegressor, with dropout placement set by parameters."""

import textwrap

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import r2_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d

from ._caller import warn
from ._estimator_base import BaseCNN, fit_context, serialized
from ._predict import check_mc_samples
from ._predict import as_float64, log_softmax, softmax
from .architecture import TOKEN_DOCS
from .io import read_model
from .losses import mean_squared_error, softmax_cross_entropy

_PARAMETERS = """
    Parameters
    ----------
    layers : tuple of str, default=("conv32", "conv64", "maxpool", "dense128")
        Hidden layers in order; the output layer is added automatically.
        Tokens (``[...]`` optional; :data:`minicnn.architecture.LAYER_KINDS`):

{tokens}

        A Flatten is inserted before the first dense layer (and before the
        output layer when needed).
    kernel_size : int, default=3
        Kernel of ``conv<N>`` and ``sep<N>`` tokens written without ``x<K>``.
    padding : {"valid", "same"}, default="same"
        Padding of the conv and pooling layers (``"same"`` keeps
        ``ceil(size / stride)``). ``"same"`` since it takes any input,
        including the ``1 x n`` strips of tabular data (with ``"valid"``, the
        default 3x3 convs need images of at least 6 x 6), and scored a little
        higher on digits (default layers, 5 seeds: mean test accuracy 0.990
        against 0.988 with ``"valid"``) at about twice the fit time, since
        the 8 x 8 maps stay 8 x 8 instead of shrinking to 4 x 4
        (``benchmarks/bench_defaults.py``; benchmarks/RESULTS.md, "Defaults
        and example options on digits").
    pool_size : int, default=2
        Window and stride of ``maxpool`` and ``avgpool``.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "identity"}, default="relu"
        Activation of the conv and dense hidden layers.
    batch_norm : bool, default=False
        Insert a BatchNorm after every conv and dense hidden layer, before its
        activation (those layers then have no bias: BatchNorm's shift replaces
        it). A BatchNorm that normalizes one value per sample and channel
        (after a dense layer) needs batches of at least 2, like PyTorch's:
        ``batch_size=1`` raises ``ValueError``, and a trailing one-sample
        batch joins the batch before it.
    dropout : str or tuple of int, default="after_last_pool"
        Where dropout goes: ``"none"``; ``"after_last_pool"`` (after the last
        pooling token: ``maxpool``/``avgpool``/``gap``/``gmp``; an error if
        there is none);
        ``"after_each_layer"`` (after every conv and dense layer; inside
        a ``res`` block, between its two convolutions);
        ``"last:K"`` (after the last K hidden layers); ``"dense"`` (after each
        dense layer only); or strictly increasing indices into ``layers``
        (dropout after ``layers[i]``). "After" a conv/dense layer means after
        its activation (and its BatchNorm). Never on the output layer. See
        :mod:`minicnn.placement`; a ``UserWarning`` flags dropout that feeds a
        BatchNorm (variance shift).
    dropout_rate : float or tuple of float, default=0.25
        Drop probability in [0, 1), or one per placed dropout (network order);
        0 gives exactly the model without that dropout. 0.25 after the last
        pool was the best rate on Fashion-MNIST and within 0.3 points of the
        best on digits (0.1) and MNIST (0.5) in the placement study
        (docs/STUDY.md, base model, 10 seeds).
    dropout_kind : {"element", "spatial", "auto"}, default="element"
        ``"element"``: Dropout on every value; ``"spatial"``: whole channels
        of conv/pool maps (SpatialDropout2D); ``"auto"``: spatial after
        conv/pool maps, element-wise after dense/gap vectors. Element, since
        spatial dropout never beat it in the placement study (-0.8 to +0.7
        points, docs/STUDY.md).
    dropout_scaling : {"inverted", "test_time"}, default="inverted"
        ``"inverted"`` scales kept units by ``1 / (1 - rate)`` in training;
        ``"test_time"`` (the classic scheme) scales by the keep probability
        ``1 - rate`` at inference.
    optimizer : {"adam", "sgd"}, default="adam"
        ``"sgd"`` uses Nesterov momentum 0.9.
    learning_rate : float, default=3e-3
        Step size. Raised from Adam's usual 1e-3: on digits (5 seeds) the
        small conv16-maxpool-dense64 network scored 0.982 at 3e-3 against
        0.975 at 1e-3 (worst 0.973 against 0.964), the default layers 0.990
        at both; small networks trained for a few epochs are step-limited at
        1e-3 (``benchmarks/bench_defaults.py``; benchmarks/RESULTS.md,
        "Defaults and example options on digits").
    lr_schedule : {"constant", "cosine", "step", "adaptive"}, default="constant"
        Learning rate of each epoch, ``learning_rate * factor``:
        ``"cosine"`` from 1 towards 0 over ``max_iter`` epochs
        (``0.5 * (1 + cos(pi * e / max_iter))``, SGDR without restarts);
        ``"step"`` 0.1x from epoch ``max_iter // 2`` and 0.01x from
        ``3 * max_iter // 4`` (PyTorch ``MultiStepLR``); ``"adaptive"``
        divided by 5 each time 2 consecutive epochs fail to improve the
        monitored score by ``tol`` (MLPClassifier's ``adaptive``). Every
        ``fit`` (also with ``warm_start``) starts a new cycle at
        ``learning_rate``; ``partial_fit`` continues it one epoch per call
        (cosine and step restart every ``max_iter`` calls; adaptive keeps its
        reduced rate). See :mod:`minicnn.schedules`.
    batch_size : int, default=64
    augment : tuple of str, default=()
        Random augmentation of every training batch (never at predict nor of
        the early-stopping validation split): ``"shift<k>"`` (translation by
        up to k pixels, reflected border, Keras ``RandomTranslation``),
        ``"crop<k>"`` (zero-pad by k, random crop back, torchvision
        ``RandomCrop(padding=k)``), ``"hflip"`` (left-right flip with
        probability 1/2); e.g. ``("crop2", "hflip")``. Drawn per sample from
        the counter-based hash of the dropout masks, so identical on every
        backend and thread count, and continued by ``warm_start`` and
        ``partial_fit`` from the fit's generator. See :mod:`minicnn.augment`.
    class_weight : None, "balanced" or dict, default=None
        CNNClassifier only (the regressor raises ``ValueError`` unless None).
        Multiplies each sample's loss weight by the weight of its class:
        ``"balanced"`` is ``n_samples / (n_classes * count(class))`` over
        the labels given to ``fit`` (not supported by ``partial_fit``: pass
        ``compute_class_weight("balanced", ...)`` as a dict); a dict maps
        labels to weights (omitted classes weigh 1; a key that is not a class
        is an error). Combines with ``sample_weight`` multiplicatively.
    max_iter : int, default=20
        Maximum number of epochs.
    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW style).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        the classifier), stop when its score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best weights seen. Data too
        small to split raise a ``ValueError`` naming ``early_stopping`` and
        ``validation_fraction``: a class with one sample, fewer validation
        (or training) samples than classes, or, for the regressor, fewer than
        2 validation samples (scikit-learn's MLP rule).
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
        Epochs without improvement (of the validation score with early
        stopping, of the training loss otherwise) before stopping.
    tol : float, default=1e-4
    input_shape : tuple of int or None, default=None
        Per-sample image shape for 2-D ``X`` in ``data_format`` order
        (``(height, width, channels)`` or ``(channels, height, width)``;
        ``(height, width)`` means one channel). With None, a 2-D ``X`` whose
        width is a perfect square ``s*s`` holds ``s x s`` single-channel
        images; any other width is read as a ``1 x n_features`` strip (so
        tabular data works, e.g. with ``padding="same"``).
    data_format : {"channels_last", "channels_first"}, default="channels_last"
        Layout of 4-D ``X`` (and of flattened 2-D ``X``). 3-D ``X`` is
        ``(n, height, width)``. The engine runs channels-last inside.
    backend : {"auto", "numpy", "numba", "cython"}, default="auto"
        Kernel backend; may be changed on a fitted estimator.
    n_threads : int or None, default=None
        Most threads of the kernels during fit and predict (None: every CPU
        this process may use, less those other processes keep busy). A step
        with little work runs on fewer: one thread per
        :data:`minicnn.threads.MIN_WORK_PER_THREAD` operations, because a
        small model ran slower on more threads; see
        :func:`minicnn.threads.thread_limits`. Calls
        from several Python threads on one estimator are serialized: fit,
        partial_fit, predict*, summary and save hold the estimator's lock, so
        a prediction waits for a running fit and never sees half-trained
        weights.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, dropout masks, shuffling and the
        validation split. An int gives the same model on every run with the
        same backend (bit for bit, whatever ``n_threads``). Across backends
        the initial weights, dropout masks and shuffling are identical, but
        the float rounding of the kernels is not, so models trained on
        different backends differ slightly (after 10 epochs on digits,
        0.6-1.6% of predictions differed between numpy and cython). Also
        keys Monte-Carlo dropout masks: an int repeats them on every call,
        None draws fresh ones per call.
    verbose : int, default=0
        1 prints one line per epoch (epoch, loss, validation score, seconds,
        samples/s); 2 also shows a progress bar over the batches (tqdm when
        installed).
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit``.
    checkpoint_path : str, os.PathLike or None, default=None
        A file that ``fit`` writes at the end of every epoch (atomically, in
        the model-file format plus the optimizer, schedule, random-generator
        and early-stopping state; never pickle). A ``fit`` that finds a
        checkpoint of the same data and parameters (a fingerprint of ``X``,
        ``y``, ``sample_weight``, the parameters and, for ``warm_start``,
        the starting model) resumes from it and ends with exactly the weights
        of an uninterrupted fit (same backend); a checkpoint of other data or
        parameters, of a newer format, or truncated raises ``ValueError``
        naming ``checkpoint_path``, and a missing or read-only directory is
        refused before training. A finished fit's checkpoint holds the final
        model: fitting again returns it without training. ``partial_fit``
        refuses it. See :mod:`minicnn.checkpoint`.
""".replace("{tokens}", "\n".join(textwrap.fill(line, 110, initial_indent="        - ", subsequent_indent="          ")
                                  for line in TOKEN_DOCS)).strip("\n")

_SAMPLE_WEIGHT = """        sample_weight : array-like of shape (n,), default=None
            Non-negative finite weight of each sample's loss term. Each batch's
            loss is the weighted average ``sum(w_i * l_i) / sum(w_i)`` (as
            MLPClassifier since scikit-learn 1.7); all-ones weights give the
            same model as None, zero weights remove samples' influence.
            Multiplied by ``class_weight``. With early stopping the weights
            follow the training split; the validation score is unweighted."""


def _sample_weight_doc(method):
    """Insert the ``sample_weight`` entry (one text for every fit method) into ``method``'s docstring."""
    method.__doc__ = method.__doc__.replace("{_SAMPLE_WEIGHT}", _SAMPLE_WEIGHT)
    return method

_ATTRIBUTES = """
    n_features_in_ : int
        Values per sample (height * width * channels).
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a data frame with string column names.
    preprocessing_ : dict
        How the training images were read from files, when ``X`` came from
        :func:`minicnn.datasets.load_image_folder` (size, colour, resize
        policy, scaling; see :mod:`minicnn.preprocessing`). Saved in the model
        file; prediction methods given image paths instead of an array read
        them this way (without it: at the exact input size).
    input_shape_ : tuple of int
        Per-sample image shape ``(height, width, channels)`` used inside.
    n_outputs_ : int
    network_ : minicnn.network.Sequential
        The fitted network (its ``lock`` serializes concurrent predictions).
    dropout_layers_ : tuple of minicnn.placement.DropoutSpec
        The resolved dropout placement.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    validation_scores_ : list of float or None
        Validation score of every epoch (None without early stopping).
    validation_loss_curve_ : list of float or None
        Mean loss on the validation split of every epoch (the training
        loss, unweighted; None without early stopping), beside
        ``loss_curve_``: a validation loss rising while the training loss
        falls is over-fitting. NaN for epochs of an earlier fit of a model
        loaded from a file (model files keep ``validation_scores_`` only).
    best_validation_score_ : float or None
    best_loss_ : float or None
        Lowest training loss (None with early stopping).
    loss_ : float
        Mean training loss of the last epoch (``loss_curve_[-1]``).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
    interrupted_ : bool
        True when a ``KeyboardInterrupt`` (Ctrl-C) ended the last ``fit`` or
        ``partial_fit`` call, which then kept the weights of the last complete
        epoch (fewer epochs than asked: a caller that records results checks
        it); not saved in a model file.
""".strip("\n")


def _check_one_label_type(labels, name):
    """Refuse labels that mix strings with other types (they cannot be sorted into ``classes_``)."""
    if labels.dtype != object:
        return
    strings = [v for v in labels if isinstance(v, str)]
    if strings and len(strings) < len(labels):
        other = next(v for v in labels if not isinstance(v, str))
        raise ValueError(f"{name} mixes string labels with labels of other types (e.g. {strings[0]!r} and "
                         f"{other!r} of type {type(other).__name__}); convert them to one type, e.g. "
                         f"{name}.astype(str)")


def _storable_labels(labels, name):
    """``labels``, or a ValueError naming ``name`` when a model file could not store them (fit what save keeps)."""
    from .io import _classes_array

    try:
        _classes_array(labels)
    except ValueError as exc:
        raise ValueError(f"{name} holds labels of dtype {labels.dtype} that a model file cannot store ({exc}); "
                         f"convert them, e.g. {name}.astype(str)") from None
    return labels


class CNNClassifier(ClassifierMixin, BaseCNN):
    __doc__ = f"""Convolutional network classifier (softmax output, cross-entropy loss).

    Inputs are images: 4-D ``X`` in ``data_format``, 3-D ``(n, height, width)``
    or 2-D flat features with ``input_shape`` (so it works in a Pipeline
    after e.g. StandardScaler). uint8 and float64 inputs are converted to
    float32 once (values are not rescaled: fit warns about uint8 images in
    0..255, about 4-D shapes that look like the other ``data_format`` and
    about flat widths that are not a perfect square without
    ``input_shape``).

    Lifecycle: ``fit`` and ``partial_fit`` are atomic (if they raise, the
    estimator is exactly as before the call; a ``KeyboardInterrupt`` after a
    complete epoch keeps the complete epochs, with a warning). Parameters
    that shape the network take effect at the next ``fit``: until then
    ``predict``, ``summary`` and ``save`` describe the fitted model. Calls
    from several threads on one estimator are serialized by its lock.
    Training stops with a ``ValueError`` naming the likely cause
    (``learning_rate``, ``weight_decay``, or the scale of ``X``)
    when the loss becomes non-finite or grows past 100 times its start.

{_PARAMETERS}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in ``fit`` (or given to the first ``partial_fit``).
{_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn import CNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((60, 8, 8, 1), dtype=np.float32)
    >>> y = (X[:, :4].mean(axis=(1, 2, 3)) > X[:, 4:].mean(axis=(1, 2, 3))).astype(int)
    >>> clf = CNNClassifier(layers=("conv4", "maxpool", "dense8"), max_iter=3, batch_size=16, backend="numpy",
    ...                     random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> mean, std = clf.predict_uncertainty(X[:2], mc_samples=5)
    >>> mean.shape, bool((std >= 0).all())
    ((2, 2), True)
    """

    _stratify = True
    _score_name = "val_accuracy"
    _loss_function = staticmethod(softmax_cross_entropy)
    _output_transform = staticmethod(softmax)

    @fit_context
    @_sample_weight_doc
    def fit(self, X, y, sample_weight=None):
        """Train on images ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, c, h, w), (n, h, w) or (n, n_features)
        y : array-like of shape (n,)
            Labels (ints or strings).
{_SAMPLE_WEIGHT}

        Returns
        -------
        self

        Warns
        -----
        ConvergenceWarning
            When ``max_iter`` epochs ran and the monitored score was still
            improving (the ``n_iter_no_change`` rule did not stop the fit).
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @fit_context
    @_sample_weight_doc
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        X, y : as in :meth:`fit`
        classes : array-like of shape (n_classes,), default=None
            All labels that will ever appear; required on the first call.
{_SAMPLE_WEIGHT}

        Returns
        -------
        self
        """
        if not hasattr(self, "network_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit; received classes=None")
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    def _prepare_y(self, y, first, classes):
        try:
            y = check_array(y, ensure_2d=False, allow_nd=True, dtype=None, input_name="y")
        except ValueError as exc:   # scikit-learn leaves the name out for object labels holding NaN
            if not str(exc).startswith("Input contains"):
                raise
            raise ValueError(str(exc).replace("Input contains", "Input y contains", 1)) from None
        if y.ndim == 2 and y.shape[1] == 1:   # scikit-learn's warning, attributed to the caller's line
            warn("A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
                 "(n_samples, ), for example using ravel().", DataConversionWarning)
            y = y.ravel()
        y = column_or_1d(y)
        _check_one_label_type(y, "y")
        _storable_labels(y, "y")
        if classes is not None:
            _check_one_label_type(column_or_1d(classes), "classes")
            _storable_labels(column_or_1d(classes), "classes")
        check_classification_targets(y)
        if first:
            self.classes_ = np.unique(y if classes is None else column_or_1d(classes))
            self.n_outputs_ = len(self.classes_)
            if self.n_outputs_ < 2:
                source = f"y (shape {y.shape})" if classes is None else f"classes={classes!r}"
                raise ValueError(f"{type(self).__name__} needs at least 2 classes; {source} holds only one class: "
                                 f"{self.classes_.tolist()}")
        elif classes is not None and not np.array_equal(np.unique(column_or_1d(classes)), self.classes_):
            raise ValueError(f"classes={classes!r} differs from the classes of the first call: {self.classes_!r}")
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels {unseen.tolist()} not in classes_={self.classes_.tolist()}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _internal_score(self, images, labels, logits=None):
        if logits is None:
            logits, _ = self._outputs(images, as_float64)
        return float(np.mean(logits.argmax(axis=1) == labels))

    @serialized
    def predict(self, X):
        """Most likely class of each sample.

        Returns
        -------
        ndarray of shape (n,)
            Labels from ``classes_``.
        """
        logits, _ = self._outputs(self._images(X), as_float64)
        return self.classes_[logits.argmax(axis=1)]

    @serialized
    def predict_proba(self, X, mc_samples=None):
        """Class probabilities.

        Parameters
        ----------
        X : array-like
        mc_samples : int or None, default=None
            With an int k, Monte-Carlo dropout: dropout stays active for k
            passes and the probabilities are averaged. With an int
            ``random_state`` every call uses the same masks (deterministic);
            with ``random_state=None`` every call draws fresh masks, so a loop
            of calls with ``mc_samples=1`` gives independent samples.

        Returns
        -------
        ndarray of shape (n, n_classes), float64
        """
        mc_samples = check_mc_samples(mc_samples)
        proba, _ = self._outputs(self._images(X), softmax, mc_samples)
        return proba

    @serialized
    def predict_log_proba(self, X, mc_samples=None):
        """Log of :meth:`predict_proba` (computed stably from the logits without MC sampling).

        Returns
        -------
        ndarray of shape (n, n_classes), float64
        """
        mc_samples = check_mc_samples(mc_samples)
        if mc_samples is not None:
            with np.errstate(divide="ignore"):
                return np.log(self.predict_proba(X, mc_samples))
        log_proba, _ = self._outputs(self._images(X), log_softmax)
        return log_proba


class CNNRegressor(RegressorMixin, BaseCNN):
    __doc__ = f"""Convolutional network regressor (identity output with ``n_outputs_`` units, MSE loss).

    Same inputs, parameters and lifecycle as :class:`CNNClassifier`; ``y``
    may be 1-D or 2-D and ``predict`` returns the dimensionality ``y`` had in
    ``fit``. The targets are standardized inside (per output, with the mean
    and standard deviation of the first ``fit`` or ``partial_fit``; see
    :mod:`minicnn._targets`), so ``y`` far from 0 trains as well as ``y`` near
    it; ``loss_curve_`` is the mean squared error of the standardized targets,
    and ``predict`` answers in the units of ``y``.

{_PARAMETERS}

    Attributes
    ----------
{_ATTRIBUTES}

    Examples
    --------
    >>> import numpy as np
    >>> from minicnn import CNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 6, 6, 1), dtype=np.float32)
    >>> m = X.mean(axis=(1, 2, 3))
    >>> y = (m - m.mean()) / m.std()            # standardized targets, as regressors like them
    >>> reg = CNNRegressor(layers=("conv4", "gap"), dropout="none", max_iter=2, backend="numpy",
    ...                    random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _stratify = False
    _score_name = "val_r2"
    _loss_function = staticmethod(mean_squared_error)
    _output_transform = staticmethod(as_float64)

    @fit_context
    @_sample_weight_doc
    def fit(self, X, y, sample_weight=None):
        """Train on images ``X`` and targets ``y`` of shape (n,) or (n, n_outputs).

        Parameters
        ----------
        X : array-like of shape (n, h, w, c), (n, c, h, w), (n, h, w) or (n, n_features)
        y : array-like of shape (n,) or (n, n_outputs)
{_SAMPLE_WEIGHT}

        Returns
        -------
        self

        Warns
        -----
        ConvergenceWarning
            When ``max_iter`` epochs ran and the monitored score was still improving.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @fit_context
    @_sample_weight_doc
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch on ``(X, y)``, continuing from the current weights.

        Parameters
        ----------
        X, y : as in :meth:`fit`
{_SAMPLE_WEIGHT}

        Returns
        -------
        self
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _prepare_y(self, y, first, classes):
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=np.float32, input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"Expected y of shape (n,) or (n, n_outputs); received y with shape {y.shape}")
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_, self._y_ndim = n_outputs, y.ndim
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, but the fitted model has n_outputs_={self.n_outputs_}")
        return np.ascontiguousarray(y.reshape(len(y), n_outputs))

    def _internal_score(self, images, targets, predictions=None):
        if predictions is None:
            predictions, _ = self._outputs(images, as_float64)
        return r2_score(targets, predictions)

    def _shape_output(self, values):
        return values.ravel() if self._y_ndim == 1 else values

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @serialized
    def predict(self, X, mc_samples=None):
        """Predicted targets (averaged over ``mc_samples`` MC-dropout passes when given).

        Returns
        -------
        ndarray of shape (n,) or (n, n_outputs), float64
        """
        mc_samples = check_mc_samples(mc_samples)
        predictions, _ = self._outputs(self._images(X), as_float64, mc_samples)
        return self._shape_output(predictions)


def _make_estimator(reader, header, backend):
    """The estimator a checked model-file header describes (see :func:`minicnn.io.read_model`)."""
    cls = {"CNNClassifier": CNNClassifier, "CNNRegressor": CNNRegressor}[header["estimator"]]
    return cls._from_header(reader, header, backend)


def load(path, backend=None):
    """Load an estimator written by :func:`minicnn.io.save` (or ``est.save``).

    Parameters
    ----------
    path : str or os.PathLike
    backend : {"auto", "numpy", "numba", "cython"} or None, default=None
        Overrides the saved ``backend`` parameter (None keeps it).

    Returns
    -------
    CNNClassifier or CNNRegressor
        Predicts exactly like the saved estimator.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) If the file is not a zip, is truncated, has another
        format or version, declares more data than the limits allow, or any
        field or array is missing, malformed or inconsistent with the network
        rebuilt from the saved parameters. Nothing in the file is executed.
    OSError
        If ``path`` cannot be opened.

    Examples
    --------
    >>> import io, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.npz")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"not a zip")
    >>> load(path)
    Traceback (most recent call last):
    ...
    minicnn.io.ModelFileError: ... not a valid minicnn model file: not a zip archive (BadZipFile: ...)
    """
    est, specs = read_model(path, backend, _make_estimator)
    est._built_with = est._architecture_key()
    est.dropout_layers_ = tuple(specs)
    scores = est.validation_scores_   # model files keep no validation losses
    est.validation_loss_curve_ = None if scores is None else [float("nan")] * len(scores)
    return est
