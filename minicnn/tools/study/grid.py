"""The study's grid: data sets, models, dropout *arms*, rates, sizes, seeds and training budgets.

A claim compares two *arms*. An arm is a set of configurations (placement,
kind and rate of one model); in every block (data set, training-set size,
seed) the arm is represented by its configuration with the best
**validation** accuracy (the rate, and for some arms the placement, is chosen
on a validation split carved from the training subset; the test set never
chooses anything, see :mod:`minicnn.tools.study.stats`).

The default study (:data:`PROFILES`), sized with the measured per-epoch costs of :data:`EPOCH_COST_S` to
about 2 h 45 min of wall time on 2 cores (``make_plan(d).estimated_cost_s(pool) / 2`` summed over the data
sets; the residual deep model adds about 40 min to the two hours of the others):

=============  ====================  ============================================================
data           sizes                 models (configurations: arms x rates), 10 seeds each
=============  ====================  ============================================================
digits         100, 300, 1257        base (19), bn (7), deep (7), resdeep (7); rates 0.1, 0.25, 0.5
                                     (~17 min)
mnist,         1000, 10000           base (13) at both sizes; bn (5), deep (5), resdeep (5) and the
fashion-mnist                        Keras CNN (7) at 1000 only; rates 0.25, 0.5 (~73 min each)
=============  ====================  ============================================================

``resdeep`` is the deep model's residual twin (blocks of He et al. 2016 with ``batch_norm=True``, the same
widths, pools and dense head): the claim "in a deep net, dropout after every layer" is tested on it too, on a
deep net that trains at every rate (the plain deep model does not train at rate 0.5 after every layer).

What each profile leaves out to fit is its ``cut`` (printed in the report's setup).
Every profile trains 10 seeds with Adam, early stopping on the validation
split (``validation_fraction=0.2``, patience ``n_iter_no_change``) and the
learning-rate schedule :data:`SCHEDULE` when the estimator has the
``lr_schedule`` parameter ("constant" otherwise; see :func:`schedule_params`).
"""

import math
from dataclasses import dataclass, field, replace

from minicnn import architecture, placement
from minicnn.params import DEFAULTS, PARAMS, invalid

RATES = (0.1, 0.25, 0.5)
SCHEDULE = "cosine"
VALIDATION_FRACTION = 0.2
MIN_SEEDS = 10   # fewer seeds than this: the report says its verdicts are not meaningful
_ESTIMATOR_KIND = {"element": "element", "spatial": "auto"}

# Arms: name -> (placements, kind). "spatial" = dropout_kind="auto" (channel dropout on maps, element on vectors).
ARMS = {
    "none": (("none",), "-"),
    "after_last_pool": (("after_last_pool",), "element"),
    "after_each_layer": (("after_each_layer",), "element"),
    "last_layers": (("last:1", "last:2"), "element"),
    "last:1": (("last:1",), "element"),
    "conv_maps_element": (("after_last_pool", "after_each_layer"), "element"),
    "conv_maps_spatial": (("after_last_pool", "after_each_layer"), "spatial"),
    "after_last_pool_spatial": (("after_last_pool",), "spatial"),
}
ANY_DROPOUT = "any_dropout"   # the union of a group's dropout arms (Srivastava et al.'s "with dropout")


def rate_text(rate):
    """A rate as text, exact (the shortest form that reads back as the same float): ``0.25`` -> ``"0.25"``.

    Labels and CSV keys use it, so two rates never share a label (``:g`` would merge 0.1234561 and 0.1234564).
    """
    return repr(float(rate))


def min_size(n_classes):
    """The smallest training-set size whose validation split (:data:`VALIDATION_FRACTION`, stratified) holds one
    image of each of ``n_classes`` classes, and the training part too (the estimator's early-stopping split)."""
    size = 2
    while not (round(VALIDATION_FRACTION * size) >= n_classes and size - round(VALIDATION_FRACTION * size) >= n_classes):
        size += 1
    return size


@dataclass(frozen=True)
class Model:
    """One model of a profile and the placements it is trained with.

    Attributes
    ----------
    group : str
        Name in the report and the CSV ("base", "deep", "resdeep", "bn", "keras", "user").
    layers : tuple of str
    padding : {"same", "valid"}
    batch_norm : bool
    arms : tuple of str
        Keys of :data:`ARMS` trained for this model.
    max_size : int or None
        Largest training-set size the model is trained at (None: every size).
    """

    group: str
    layers: tuple
    padding: str = "same"
    batch_norm: bool = False
    arms: tuple = ("none", "after_last_pool", "after_each_layer", "last_layers", "conv_maps_spatial")
    max_size: int = None


_DIGITS_BASE = ("conv8", "maxpool", "conv16", "maxpool", "dense32")
_MNIST_BASE = ("conv16", "maxpool", "conv32", "maxpool", "dense64")
KERAS_MNIST = ("conv32", "conv64", "maxpool", "dense128")   # keras.io/examples/vision/mnist_convnet (1.2M weights)


def _models(base, deep, keras_size, resdeep):
    models = [Model("base", base),
              Model("bn", base, batch_norm=True, arms=("none", "after_each_layer", "last:1"), max_size=keras_size),
              Model("deep", deep, arms=("none", "after_last_pool", "after_each_layer"), max_size=keras_size),
              Model("resdeep", resdeep, batch_norm=True, arms=("none", "after_last_pool", "after_each_layer"),
                    max_size=keras_size)]
    if keras_size:
        models.append(Model("keras", KERAS_MNIST, padding="valid", max_size=keras_size,
                            arms=("none", "after_last_pool", "after_each_layer", "after_last_pool_spatial")))
    return tuple(models)


@dataclass(frozen=True)
class Profile:
    """Per-data-set defaults.

    Attributes
    ----------
    models : tuple of Model
    sizes : tuple
        Training-set sizes (ints, or ``"full"`` for the whole training pool); the validation split is carved
        from each subset, so a model fits on ``(1 - VALIDATION_FRACTION) * size`` images.
    rates : tuple of float
    max_epochs : dict
        Upper bound on epochs per size (early stopping usually ends sooner); sizes not listed use ``default``.
    n_iter_no_change : int
        Early-stopping patience (epochs without a better validation accuracy).
    test_size : float or None
        Held-out fraction for data without a fixed test split.
    cut : str
        What was left out of the default grid to fit the time budget (said in the report).
    """

    models: tuple
    sizes: tuple
    rates: tuple = RATES
    max_epochs: dict = field(default_factory=dict)
    default_epochs: int = 30
    n_iter_no_change: int = 6
    test_size: float = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    cut: str = ""
    estimator: tuple = ()

    def epochs(self, size):
        return self.max_epochs.get(size, self.default_epochs)

    def estimator_params(self):
        """The estimator parameters every run of this profile shares (besides the arms', the design's)."""
        return dict(batch_size=self.batch_size, learning_rate=self.learning_rate, **dict(self.estimator))


_CUT_28 = ("rate 0.1; the batch-norm, deep and Keras models at 10000 images; the full 60000-image training set "
           "(to fit about two hours on 2 cores)")
_DEEP_MNIST = ("conv16", "conv16", "maxpool", "conv32", "conv32", "maxpool", "dense64", "dense64")
# The deep models' residual twins (He et al. 2016 blocks, batch_norm=True): the same widths and pools, one more
# weight layer (the first block's 1x1 projection aside), and deep nets that train at every rate of the grid.
_RESDEEP_DIGITS = ("conv8", "res8", "maxpool", "res16", "maxpool", "dense32", "dense32")
_RESDEEP_MNIST = ("conv16", "res16", "maxpool", "res32", "maxpool", "dense64", "dense64")
PROFILES = {
    "digits": Profile(models=_models(_DIGITS_BASE, ("conv8", "conv8", "maxpool", "conv16", "conv16", "maxpool",
                                                    "dense32", "dense32"), None, _RESDEEP_DIGITS),
                      sizes=(100, 300, "full"), max_epochs={100: 200, 300: 150}, default_epochs=100,
                      n_iter_no_change=15, test_size=0.3, learning_rate=3e-3),
    "mnist": Profile(models=_models(_MNIST_BASE, _DEEP_MNIST, 1000, _RESDEEP_MNIST), sizes=(1000, 10000),
                     rates=(0.25, 0.5), max_epochs={1000: 40, 10000: 20}, cut=_CUT_28),
    "fashion-mnist": Profile(models=_models(_MNIST_BASE, _DEEP_MNIST, 1000, _RESDEEP_MNIST), sizes=(1000, 10000),
                             rates=(0.25, 0.5), max_epochs={1000: 40, 10000: 20}, cut=_CUT_28),
}
DEFAULT_DATA = ("digits", "mnist", "fashion-mnist")

# The planner's cost model: CPU seconds of one epoch per 1000 images of the training subset, validation pass
# and the run's share of scoring the test set included (one thread; process time, so that the load of a shared
# machine does not inflate it). Measured with one run per model at size 1000 (digits: 100 to 1257), AMD EPYC
# (AVX2), numba backend, while the machine was loaded (wall time was 4-6x the CPU time).
EPOCH_COST_S = {
    "digits": {"base": 0.02, "bn": 0.04, "deep": 0.03, "resdeep": 0.09},
    "mnist": {"base": 0.175, "bn": 0.45, "deep": 0.45, "keras": 0.8, "resdeep": 1.35},
}
EPOCH_COST_S["fashion-mnist"] = EPOCH_COST_S["mnist"]   # same image size and models
OVERHEAD = 1.1   # joblib dispatch, data loading per worker, the summed-up rounding of the table
# Early stopping ends runs before max_epochs: the measured runs trained 0.28-1.0 of it (mean 0.6).
EPOCH_FRACTION = 0.65


def profile_for_user(layers, padding="same", sizes=("full",), test_size=0.2):
    """A profile for the user's own data: one model (``layers``), every dropout arm, rates 0.1/0.25/0.5.

    It trains with the estimator's defaults (``batch_size``, ``learning_rate``, ...), so that the study's model
    is the user's model; :func:`with_options` sets any of them.
    """
    arms = ("none", "after_last_pool", "after_each_layer", "last_layers", "conv_maps_spatial")
    return Profile(models=(Model("user", tuple(layers), padding=padding, arms=arms),), sizes=tuple(sizes),
                   default_epochs=40, test_size=test_size, batch_size=DEFAULTS["batch_size"],
                   learning_rate=DEFAULTS["learning_rate"])


#: Estimator parameters the study sets itself, and how (every other one is a ``minicnn study`` option, generated
#: from :mod:`minicnn.params` as ``minicnn fit``'s are; see :func:`estimator_options`).
STUDY_OWNS = {
    "dropout": "the arms", "dropout_rate": "--rates", "dropout_kind": "the arms",
    "early_stopping": "always on: the validation split chooses the rates",
    "validation_fraction": f"{VALIDATION_FRACTION} of each training subset",
    "lr_schedule": "--schedule", "random_state": "--seeds", "verbose": "--quiet", "warm_start": "a new fit per run",
    "n_threads": "one thread per worker (--n-jobs)",
    "checkpoint_path": "the study's own resume (runs CSV + meta): one checkpoint file cannot serve many fits",
}


def estimator_options():
    """The :mod:`minicnn.params` parameters that ``minicnn study`` takes as options (all but :data:`STUDY_OWNS`)."""
    return [p for p in PARAMS if p.name not in STUDY_OWNS]


def with_options(plan, options):
    """``plan`` with the estimator ``options`` (name -> value) set in every run; ``plan`` itself when empty.

    ``max_iter`` is every size's epoch budget, ``n_iter_no_change`` the early-stopping patience; ``layers`` and
    ``padding`` are the user model's (see :func:`make_plan`) and ``batch_norm`` too, so the built-in study, which
    varies ``batch_norm`` itself, refuses it.

    Raises
    ------
    ValueError
        Naming the option and the value received.
    """
    options = {k: v for k, v in (options or {}).items() if k not in ("layers", "padding")}
    if not options:
        return plan
    for name, value in options.items():
        problem = "not an option of the study" if name in STUDY_OWNS or name not in DEFAULTS else invalid(name, value)
        if problem:
            raise ValueError(f"--{name.replace('_', '-')}: expected {problem}; received {value!r}")
    profile, configs = plan.profile, plan.configs
    if "batch_norm" in options:
        if any(m.group != "user" for m in profile.models):
            raise ValueError("--batch-norm applies to your model (--data FILE --layers ...); the built-in study "
                             "compares models with and without batch norm itself")
        profile = replace(profile, models=tuple(replace(m, batch_norm=options["batch_norm"]) for m in profile.models))
        configs = [replace(c, batch_norm=options["batch_norm"]) for c in configs]
    changes = {name: options[name] for name in ("batch_size", "learning_rate", "n_iter_no_change") if name in options}
    if "max_iter" in options:
        changes.update(default_epochs=options["max_iter"], max_epochs={})
    rest = {k: v for k, v in options.items()
            if k not in changes and k not in ("batch_norm", "max_iter")}
    profile = replace(profile, estimator=tuple(sorted(dict(profile.estimator, **rest).items())), **changes)
    return replace(plan, profile=profile, configs=configs, shared={})


def schedule_params(schedule=SCHEDULE):
    """Estimator keyword for the learning-rate schedule: ``{"lr_schedule": schedule}``, or ``{}`` (constant).

    The ``lr_schedule`` parameter is new in :class:`minicnn.CNNClassifier`; with an estimator that lacks it
    the study trains with a constant learning rate and its report says so.
    """
    from minicnn import CNNClassifier

    if schedule in (None, "constant") or "lr_schedule" not in CNNClassifier().get_params():
        return {}
    return {"lr_schedule": schedule}


@dataclass(frozen=True)
class Config:
    """One trained configuration (a model with one placement, kind and rate).

    Attributes
    ----------
    group : str
    layers : tuple of str
    padding : str
    batch_norm : bool
    placement : str
    rate : float
        Drop probability (0.0 for ``placement="none"``).
    kind : {"element", "spatial", "-"}
    max_size : int or None
    """

    group: str
    layers: tuple
    padding: str
    batch_norm: bool
    placement: str
    rate: float
    kind: str
    max_size: int = None

    @property
    def label(self):
        """Short unique name, e.g. ``"base/after_last_pool/spatial/0.25"``."""
        if self.placement == "none":
            return f"{self.group}/none"
        return f"{self.group}/{self.placement}/{self.kind}/{rate_text(self.rate)}"

    def estimator_params(self):
        """Architecture and dropout parameters of :class:`minicnn.CNNClassifier`."""
        return dict(layers=self.layers, padding=self.padding, batch_norm=self.batch_norm, dropout=self.placement,
                    dropout_rate=self.rate if self.placement != "none" else 0.5,
                    dropout_kind=_ESTIMATOR_KIND.get(self.kind, "element"))

    def resolved(self):
        """Hashable description of the network actually built (for sharing identical runs)."""
        params = self.estimator_params()
        tokens = architecture.parse_layers(params["layers"])
        specs = placement.resolve_dropout(tokens, params["dropout"], params["dropout_rate"], params["dropout_kind"])
        return (self.layers, self.padding, self.batch_norm, tuple((s.after, s.rate, s.kind) for s in specs))

    def trains_at(self, n_train):
        return self.max_size is None or n_train <= self.max_size


def configs_for(model, rates):
    """Every configuration of ``model``'s arms (one per placement, kind and rate; "none" once).

    Placements the model's layers cannot take (``after_last_pool`` without a pooling layer) are left out.
    """
    out = {}
    for arm in model.arms:
        placements, kind = ARMS[arm]
        for policy in placements:
            for rate in ((0.0,) if policy == "none" else rates):
                c = Config(model.group, model.layers, model.padding, model.batch_norm, policy, float(rate), kind,
                           model.max_size)
                try:
                    c.resolved()
                except ValueError:   # e.g. after_last_pool on layers without pooling: not a placement of this model
                    continue
                out.setdefault(c.label, c)
    return list(out.values())


@dataclass
class StudyPlan:
    """Everything that defines a study run on one data set.

    Attributes
    ----------
    data : str
        "digits", "mnist", "fashion-mnist", ``"idx:IMAGES,LABELS"`` or a ``.npz`` path.
    sizes : tuple
    seeds : tuple of int
    configs : list of Config
    profile : Profile
    quick : bool
        A smoke-test plan: the report says its verdicts are not meaningful.
    cuts : list of str
        What a wall-time budget removed (said in the report).
    schedule : str
    """

    data: str
    sizes: tuple
    seeds: tuple
    configs: list
    profile: Profile
    quick: bool = False
    cuts: list = field(default_factory=list)
    schedule: str = SCHEDULE
    epochs_scale: float = 1.0
    shared: dict = field(default_factory=dict)

    def __post_init__(self):
        first = {}
        for config in self.configs:   # label -> label of the configuration whose runs it reuses
            self.shared[config.label] = first.setdefault(config.resolved(), config.label)

    @property
    def unique_configs(self):
        """Configurations that are actually trained (one per distinct network)."""
        return [c for c in self.configs if self.shared[c.label] == c.label]

    def max_epochs(self, size):
        return max(2, int(round(self.profile.epochs(size) * self.epochs_scale)))

    @property
    def meaningful(self):
        """False for quick plans and plans with fewer than :data:`MIN_SEEDS` seeds."""
        return not self.quick and len(self.seeds) >= MIN_SEEDS

    def runs(self, n_pool):
        """``(config, size, n_train, seed)`` of every run to train (shared configurations once)."""
        out = []
        for size in self.sizes:
            n_train = n_pool if size == "full" else min(size, n_pool)
            for config in self.unique_configs:
                if config.trains_at(n_train):
                    out.extend((config, size, n_train, seed) for seed in self.seeds)
        return out

    def estimated_cost_s(self, n_pool, epoch_cost_s=None):
        """Estimated CPU seconds of the whole plan (one worker), from :data:`EPOCH_COST_S` or ``epoch_cost_s``.

        Data the table does not know (the user's) is costed as 28x28 images (the ``"mnist"`` row); a wall-time
        budget measures the cost instead (:func:`minicnn.tools.study.measure_epoch_cost`).
        """
        costs = EPOCH_COST_S.get(self.data, EPOCH_COST_S["mnist"]) if epoch_cost_s is None else epoch_cost_s
        total = 0.0
        for size in self.sizes:   # every seed of a (configuration, size) costs the same: no loop over seeds
            n_train = n_pool if size == "full" else min(size, n_pool)
            epochs = self.max_epochs(size) * EPOCH_FRACTION
            for config in self.unique_configs:
                if config.trains_at(n_train):
                    total += costs.get(config.group, max(costs.values())) * n_train / 1000 * epochs * OVERHEAD
        return total * len(self.seeds)


#: Smallest training-set size of a run (the estimator's validation split needs a few samples of every class).
MIN_SIZE = 20


def _seed_tuple(seeds):
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 2:
            raise ValueError(f"Expected seeds >= 2 (paired tests need at least two seeds). Received: seeds={seeds}")
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"Expected at least two distinct seeds. Received: seeds={seeds}")
    return seeds


def make_plan(data="digits", sizes=None, seeds=None, quick=False, layers=None, padding="same", rates=None,
              schedule=SCHEDULE, epochs_scale=1.0):
    """Build the study grid for one data set.

    Parameters
    ----------
    data : str, default="digits"
        "digits", "mnist", "fashion-mnist", or user data (``"idx:IMAGES,LABELS"``, a ``.npz`` file).
    sizes : sequence of int or "full", default=None
        Training-set sizes (validation split included); None: the profile's.
    seeds : int or sequence of int, default=None
        An int ``k`` means seeds ``0..k-1``; None means :data:`MIN_SEEDS` (2 with ``quick``).
    quick : bool, default=False
        Smoke-test grid: smallest size, rate 0.5 only (or ``rates`` when given), two seeds, 30% of the epochs.
    layers : sequence of str, default=None
        The user's model; required for user data, replaces the profile's models otherwise.
    padding : {"same", "valid"}, default="same"
        Padding of a ``layers`` model.
    rates : sequence of float, default=None
        Candidate rates (None: the profile's).
    schedule : str, default="cosine"
        Learning-rate schedule (see :func:`schedule_params`).
    epochs_scale : float, default=1.0
        Multiplies the profile's epoch budgets (a wall-time budget shrinks it last).

    Returns
    -------
    StudyPlan

    Examples
    --------
    >>> plan = make_plan(quick=True)
    >>> plan.sizes, plan.seeds, plan.meaningful
    ((100,), (0, 1), False)
    >>> make_plan().meaningful
    True
    """
    if data in PROFILES:
        profile = PROFILES[data]
        if layers is not None:
            profile = replace(profile, models=(Model("user", tuple(layers), padding=padding),))
    elif isinstance(data, str) and (data.startswith("idx:") or data.endswith(".npz")):
        if layers is None:
            raise ValueError(f"Expected layers for user data (e.g. --layers conv16,maxpool,dense64). Received: "
                             f"data={data!r}, layers=None")
        profile = profile_for_user(layers, padding)
    else:
        raise ValueError(f"Expected data to be one of {tuple(PROFILES)}, 'idx:IMAGES,LABELS' or a .npz file. "
                         f"Received: data={data!r}")
    seeds = _seed_tuple((2 if quick else MIN_SEEDS) if seeds is None else seeds)
    given_rates = rates
    rates = tuple(profile.rates if rates is None else rates)
    if not rates or not all(0.0 < float(r) < 1.0 for r in rates):
        raise ValueError(f"Expected rates in (0, 1). Received: rates={rates}")
    if len({rate_text(r) for r in rates}) != len(rates):
        raise ValueError(f"Expected distinct rates. Received: rates={rates}")
    if quick:
        sizes = sizes or (min((s for s in profile.sizes if s != "full"), default="full"),)
        rates = (0.5,) if given_rates is None else rates
        epochs_scale = epochs_scale * 0.3
    sizes = tuple(profile.sizes if sizes is None else sizes)
    for size in sizes:
        if size != "full" and not (isinstance(size, int) and not isinstance(size, bool) and size >= MIN_SIZE):
            raise ValueError(f"Expected every size to be an int >= {MIN_SIZE} or 'full'. Received: sizes={sizes}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"Expected distinct sizes. Received: sizes={sizes}")
    if not (epochs_scale > 0 and math.isfinite(epochs_scale)):
        raise ValueError(f"Expected epochs_scale > 0. Received: epochs_scale={epochs_scale!r}")
    configs = [c for model in profile.models for c in configs_for(model, rates)]
    return StudyPlan(data=data, sizes=sizes, seeds=seeds, configs=configs, profile=profile, quick=quick,
                     schedule=schedule, epochs_scale=epochs_scale)


def fit_budget(plan, budget_s, n_pool, n_workers, epoch_cost_s=None):
    """Shrink ``plan`` until its estimated wall time fits ``budget_s`` seconds; record each cut in ``plan.cuts``.

    Order of cuts (least damaging first): rates down to the two largest (0.25 and 0.5 by default); the largest sizes; seeds down to
    :data:`MIN_SEEDS`; then seeds down to 3 and epochs down to half (both make the verdicts not meaningful).

    Returns
    -------
    plan : StudyPlan
    estimate_s : float
        Estimated wall time of the returned plan.
    """
    def wall(p):
        return p.estimated_cost_s(n_pool, epoch_cost_s) / max(1, n_workers)

    def rebuild(p, **changes):
        new = replace(p, shared={}, **changes)
        new.__post_init__()
        return new

    steps = []
    rates = sorted({c.rate for c in plan.configs if c.placement != "none"})
    if len(rates) > 2:
        keep = tuple(rates[-2:])   # the two largest of the plan's own rates (every dropout arm keeps its configs)
        steps.append((f"rates {', '.join(f'{r:g}' for r in rates)} -> {', '.join(f'{r:g}' for r in keep)}",
                      lambda p: rebuild(p, configs=[c for c in p.configs if c.placement == "none"
                                                    or c.rate in keep])))
    for size in sorted(plan.sizes, key=lambda s: math.inf if s == "full" else s, reverse=True)[:-1]:
        steps.append((f"size {size} dropped", lambda p, s=size: rebuild(p, sizes=tuple(x for x in p.sizes if x != s))))
    if len(plan.seeds) > 3:   # the cost is linear in the seeds: one step to the most seeds that fit (at least 3)
        def fewer_seeds(p):
            n = min(len(p.seeds) - 1, max(3, int(budget_s / max(wall(p) / len(p.seeds), 1e-12))))
            p = rebuild(p, seeds=p.seeds[:n])
            p.cuts.append(f"seeds -> {n}{'' if n >= MIN_SEEDS else ' (below 10: verdicts not meaningful)'}")
            return p
        steps.append((None, fewer_seeds))
    steps.append(("epochs halved (models may not converge)",
                  lambda p: rebuild(p, epochs_scale=p.epochs_scale / 2)))
    for what, step in steps:
        if wall(plan) <= budget_s:
            break
        plan = step(plan)
        if what is not None:
            plan.cuts.append(what)
    return plan, wall(plan)


def load_note(n_workers, load=None, cpus=None):
    """What the machine's load does to an estimate made from CPU seconds ("" on a machine with CPUs to spare).

    The cost table and :func:`minicnn.tools.study.measure_epoch_cost` count CPU time, so an estimate assumes the
    workers get whole CPUs; with ``load`` runnable processes already on ``cpus`` CPUs each worker gets about
    ``cpus / (load + n_workers)`` of one.

    Examples
    --------
    >>> load_note(2, load=4.0, cpus=2)
    '; assumes free CPUs: with the load now (4.0 on 2 CPUs) expect about 3x as long'
    >>> load_note(2, load=0.1, cpus=2)
    ''
    """
    import os

    if load is None:
        if not hasattr(os, "getloadavg"):
            return ""
        load = os.getloadavg()[0]
    cpus = cpus or os.cpu_count() or 1
    factor = (load + n_workers) / max(cpus, n_workers)
    if factor < 1.25:
        return ""
    return f"; assumes free CPUs: with the load now ({load:.1f} on {cpus} CPUs) expect about {factor:.0f}x as long"

