"""The study's grid: which models, placements, rates and kinds are trained, and at what budget.

A :class:`StudyPlan` lists *configurations* (:class:`Config`); each one is
trained once per (training-set size, seed). Configurations whose dropout
resolves to exactly the same layers (e.g. ``"dense"`` and ``"last:1"`` when
the model has a single dense layer, or ``"spatial"`` on a placement that only
touches flat vectors) are trained once and reported under every name, with
``same_as`` naming the run that was shared.

The study's "spatial" kind means the estimator's ``dropout_kind="auto"``:
channel-wise dropout on conv/pool maps and element-wise dropout on flat
vectors (channel dropout is undefined for vectors).
"""

import math
from dataclasses import dataclass, field

from .. import architecture, placement

PLACEMENTS = ("none", "after_last_pool", "after_each_layer", "last:1", "last:2", "dense")
RATES = (0.1, 0.25, 0.5)
KINDS = ("element", "spatial")
_ESTIMATOR_KIND = {"element": "element", "spatial": "auto"}


@dataclass(frozen=True)
class Profile:
    """Per-data-set defaults: models, sizes and the training budget.

    Attributes
    ----------
    base_layers, deep_layers : tuple of str
        Layer tokens of the main model and of the deeper variant.
    sizes : tuple
        Training-set sizes (ints, or ``"full"`` for the whole training pool).
    steps : int
        Gradient steps per run: ``epochs = max(min_epochs, ceil(steps / batches per epoch))``,
        so small training sets are not starved of updates.
    test_size : float or None
        Held-out fraction for data without a fixed test split (digits).
    n_threads : int or None
        Kernel threads of a run when runs go one at a time (``n_jobs=1``);
        runs side by side always get 1. Digits uses 1: its 8x8 images are
        too small for threads to pay (measured: 0.023 s per epoch on one
        thread, seconds per epoch on two threads when the CPUs are busy).
    """

    base_layers: tuple
    deep_layers: tuple
    sizes: tuple
    steps: int
    test_size: float = None
    batch_size: int = 32
    learning_rate: float = 3e-3
    min_epochs: int = 10
    padding: str = "same"
    n_threads: int = None


PROFILES = {
    "digits": Profile(base_layers=("conv8", "maxpool", "conv16", "maxpool", "dense32"),
                      deep_layers=("conv8", "conv8", "maxpool", "conv16", "conv16", "maxpool", "dense32", "dense32"),
                      sizes=(100, 300, "full"), steps=600, test_size=0.3, n_threads=1),
    "mnist": Profile(base_layers=("conv16", "maxpool", "conv32", "maxpool", "dense64"),
                     deep_layers=("conv16", "conv16", "maxpool", "conv32", "conv32", "maxpool", "dense64", "dense64"),
                     sizes=(1000, 5000, 20000), steps=2000),
}


@dataclass(frozen=True)
class Config:
    """One trained configuration.

    Attributes
    ----------
    group : {"main", "batch_norm", "deep"}
        Which part of the study it belongs to.
    model : {"base", "deep"}
    layers : tuple of str
    batch_norm : bool
    placement : str
        A dropout policy of :mod:`minicnn.placement`.
    rate : float
        Drop probability (0.0 for ``placement="none"``).
    kind : {"element", "spatial", "-"}
    """

    group: str
    model: str
    layers: tuple
    batch_norm: bool
    placement: str
    rate: float
    kind: str

    @property
    def label(self):
        """Short unique name, e.g. ``"main/after_last_pool/spatial/0.25"``."""
        if self.placement == "none":
            return f"{self.group}/none"
        return f"{self.group}/{self.placement}/{self.kind}/{self.rate:g}"

    def estimator_params(self):
        """Dropout and architecture parameters of :class:`minicnn.CNNClassifier`."""
        kind = _ESTIMATOR_KIND.get(self.kind, "element")
        return dict(layers=self.layers, batch_norm=self.batch_norm, dropout=self.placement,
                    dropout_rate=self.rate if self.placement != "none" else 0.5, dropout_kind=kind)

    def resolved(self):
        """Hashable description of the network actually built (for sharing identical runs)."""
        params = self.estimator_params()
        tokens = architecture.parse_layers(params["layers"])
        specs = placement.resolve_dropout(tokens, params["dropout"], params["dropout_rate"], params["dropout_kind"])
        return (self.layers, self.batch_norm, tuple((s.after, s.rate, s.kind) for s in specs))


def _placed(group, model, layers, batch_norm, placements, rates, kinds):
    configs = []
    for policy in placements:
        if policy == "none":
            configs.append(Config(group, model, tuple(layers), batch_norm, "none", 0.0, "-"))
            continue
        for kind in kinds:
            for rate in rates:
                configs.append(Config(group, model, tuple(layers), batch_norm, policy, float(rate), kind))
    return configs


@dataclass
class StudyPlan:
    """Everything that defines a study run.

    Attributes
    ----------
    data : {"digits", "mnist"}
    sizes : tuple
        Training-set sizes; ``"full"`` is the whole training pool.
    seeds : tuple of int
    configs : list of Config
    profile : Profile
    steps : int
        Gradient steps per run (see :class:`Profile`).
    """

    data: str
    sizes: tuple
    seeds: tuple
    configs: list
    profile: Profile
    steps: int
    quick: bool = False
    shared: dict = field(default_factory=dict)

    def __post_init__(self):
        # label -> label of the configuration whose runs it reuses (identical network)
        first = {}
        for config in self.configs:
            key = config.resolved()
            self.shared[config.label] = first.setdefault(key, config.label)

    @property
    def unique_configs(self):
        """Configurations that are actually trained (one per distinct network)."""
        return [c for c in self.configs if self.shared[c.label] == c.label]

    def epochs(self, n_train):
        """Epochs for a training set of ``n_train`` samples (a fixed budget of gradient steps)."""
        per_epoch = math.ceil(n_train / self.profile.batch_size)
        return max(self.profile.min_epochs, math.ceil(self.steps / per_epoch))

    @property
    def n_runs(self):
        return len(self.unique_configs) * len(self.sizes) * len(self.seeds)


def make_plan(data="digits", sizes=None, seeds=None, quick=False, steps=None):
    """Build the study grid.

    Parameters
    ----------
    data : {"digits", "mnist"}, default="digits"
    sizes : sequence of int or "full", default=None
        Training-set sizes; None uses the data set's defaults (digits:
        100, 300, full).
    seeds : int or sequence of int, default=None
        An int ``k`` means seeds ``0..k-1``; None means 5 (3 with ``quick``).
    quick : bool, default=False
        A tiny grid for tests: one rate (0.5), one size (the smallest), three
        seeds unless given, a sixth of the step budget.
    steps : int, default=None
        Gradient steps per run; None uses the data set's default.

    Returns
    -------
    StudyPlan

    Examples
    --------
    >>> plan = make_plan(quick=True)
    >>> plan.sizes, plan.seeds, len(plan.configs) > len(plan.unique_configs)
    ((100,), (0, 1, 2), True)
    """
    if data not in PROFILES:
        raise ValueError(f"Expected data to be one of {tuple(PROFILES)}. Received: data={data!r}")
    profile = PROFILES[data]
    if seeds is None:
        seeds = 3 if quick else 5
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 2:
            raise ValueError(f"Expected seeds >= 2 (paired tests need at least two seeds). Received: seeds={seeds}")
        seeds = tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"Expected at least two distinct seeds. Received: seeds={seeds}")
    rates = RATES
    if quick:
        sizes = sizes or (min(s for s in profile.sizes if s != "full"),)
        rates = (0.5,)
        steps = steps or max(30, profile.steps // 6)
    sizes = tuple(profile.sizes if sizes is None else sizes)
    for size in sizes:
        if size != "full" and not (isinstance(size, int) and size >= 20):
            raise ValueError(f"Expected every size to be an int >= 20 or 'full'. Received: sizes={sizes}")
    steps = profile.steps if steps is None else steps
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"Expected steps to be a positive int. Received: steps={steps!r}")
    configs = (_placed("main", "base", profile.base_layers, False, PLACEMENTS, rates, KINDS)
               + _placed("batch_norm", "base", profile.base_layers, True,
                         ("none", "after_each_layer", "last:1"), rates, ("element",))
               + _placed("deep", "deep", profile.deep_layers, False,
                         ("none", "after_last_pool", "after_each_layer"), rates, ("element",)))
    return StudyPlan(data=data, sizes=sizes, seeds=seeds, configs=configs, profile=profile, steps=steps,
                     quick=quick)
