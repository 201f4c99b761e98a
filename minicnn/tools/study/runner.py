"""Training the study's runs: one fit per (configuration, size, seed), in parallel, resumable.

Each run trains :class:`minicnn.CNNClassifier` on its training subset with
``early_stopping=True``: the estimator holds out ``VALIDATION_FRACTION`` of
the subset (stratified, drawn from ``random_state=seed`` after the weights,
so the split is the same for every placement of one model), stops when the
validation accuracy has not improved for ``n_iter_no_change`` epochs and keeps
the best epoch's weights. The run records that validation accuracy (which
later chooses rates) and, only then, the test accuracy.

Every finished run is appended to the CSV at once (with copies for the
configurations that share its network), so an interrupted study loses at most
the runs in flight; running it again skips every run already in the CSV. A
run that Ctrl-C cut short is never a finished run: the estimator keeps the
epochs it completed (``interrupted_``), and :func:`run_one` raises
``KeyboardInterrupt`` instead of returning its row, so the study stops
(``minicnn study`` exits 130) and a resume trains the run again.
"""

import contextlib
import csv
import math
import os
import sys
import time
import warnings
from pathlib import Path

CSV_FIELDS = ("data", "group", "layers", "batch_norm", "placement", "kind", "rate", "size", "n_train", "seed",
              "schedule", "max_epochs", "epochs", "stopped_early", "final_train_loss", "did_not_train",
              "val_accuracy", "test_accuracy", "train_time_s", "same_as")
NOT_TRAINED_FRACTION = 0.9   # final training loss above 0.9 * ln(n_classes): the run did not train


def did_not_train(final_loss, n_classes):
    """True when the final training loss is still near chance level: ``loss > 0.9 * ln(n_classes)``.

    A classifier that predicts the class frequencies has cross-entropy ``ln(n_classes)`` (2.303 for 10
    balanced classes); a model that learnt anything is well below it.
    """
    return bool(final_loss > NOT_TRAINED_FRACTION * math.log(max(2, n_classes)))


def run_one(data, test_size, config, size, seed, max_epochs, profile, schedule, n_threads):
    """Train one configuration on one training subset; score it on validation, then test data.

    Returns
    -------
    dict
        A row of the CSV (``same_as`` empty).
    """
    from minicnn import CNNClassifier

    from .data import load_split, training_subset
    from .grid import VALIDATION_FRACTION, schedule_params

    X_pool, y_pool, X_test, y_test = load_split(data, test_size)
    index = training_subset(y_pool, size, seed)
    extra = schedule_params(schedule)
    clf = CNNClassifier(**config.estimator_params(), **profile.estimator_params(), max_iter=max_epochs,
                        early_stopping=True,
                        validation_fraction=VALIDATION_FRACTION, n_iter_no_change=profile.n_iter_no_change,
                        n_threads=n_threads, random_state=seed, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # the variance-shift lint: studied on purpose
        start = time.perf_counter()
        clf.fit(X_pool[index], y_pool[index])
        elapsed = time.perf_counter() - start
    if clf.interrupted_:   # Ctrl-C: the estimator kept the epochs before it, but this run is not finished
        raise KeyboardInterrupt(f"run {config.label}, size {size}, seed {seed} interrupted in epoch {clf.n_iter_ + 1}")
    final_loss = float(clf.loss_curve_[-1])
    val_accuracy = float(clf.best_validation_score_)
    test_accuracy = float(clf.score(X_test, y_test))   # after the model is final: the test set chooses nothing
    return dict(data=data, group=config.group, layers=",".join(config.layers), batch_norm=config.batch_norm,
                placement=config.placement, kind=config.kind, rate=config.rate, size=str(size),
                n_train=len(index), seed=seed, schedule=extra.get("lr_schedule", "constant"),
                max_epochs=max_epochs, epochs=clf.n_iter_, stopped_early=clf.n_iter_ < max_epochs,
                final_train_loss=round(final_loss, 5), did_not_train=did_not_train(final_loss, len(clf.classes_)),
                val_accuracy=val_accuracy, test_accuracy=test_accuracy, train_time_s=round(elapsed, 3), same_as="")


def run_key(row):
    """What identifies a run in the CSV: data set, configuration, size, seed and epoch budget."""
    from .grid import rate_text

    label = (f"{row['group']}/none" if row["placement"] == "none"
             else f"{row['group']}/{row['placement']}/{row['kind']}/{rate_text(row['rate'])}")
    return (row["data"], label, str(row["size"]), int(row["seed"]), int(row["max_epochs"]))


def read_csv(path, advice="delete it or choose another --out directory"):
    """Rows of a study CSV as dicts of strings ([] when the file does not exist or is empty).

    Raises
    ------
    ValueError
        When the file is not a text CSV, has other columns than :data:`CSV_FIELDS` (another study, or another
        version), or a row with more or fewer fields than the header; the message names the file and ends in
        ``advice``.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != CSV_FIELDS:
                raise ValueError(f"{path}: not a runs.csv of this study version (columns {reader.fieldnames}); "
                                 f"{advice}")
            rows = []
            for row in reader:
                if None in row or None in row.values():
                    raise ValueError(f"{path}, line {reader.line_num}: {'more' if None in row else 'fewer'} fields "
                                     f"than the {len(CSV_FIELDS)} columns of the header (a damaged file); {advice}")
                rows.append(row)
            return rows
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text CSV file (byte {exc.start} is not UTF-8); {advice}") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc}); {advice}") from None


class _Appender:
    """Appends rows to the CSV, writing the header first when the file is new; flushed after every row."""

    def __init__(self, path):
        self.path = Path(path)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=CSV_FIELDS)
        if new:
            self.writer.writeheader()
            self.file.flush()

    def write(self, rows):
        for row in rows:
            self.writer.writerow({k: row.get(k, "") for k in CSV_FIELDS})
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self):
        self.file.close()


def _copies(plan, row):
    """The row under its own label and under every configuration that shares its network."""
    source = run_key(row)[1]
    out = [row]
    for config in plan.configs:
        if config.label != source and plan.shared[config.label] == source:
            out.append(dict(row, group=config.group, placement=config.placement, kind=config.kind,
                            rate=config.rate, same_as=source))
    return out


SCHEDULER_FORMAT = "tcp://HOST:PORT (or tls://, ws://, wss://, ucx://, inproc://, or HOST:PORT)"


def check_scheduler(scheduler):
    """Refuse a Dask scheduler address of the wrong form, or a missing ``distributed``, before anything is written."""
    import re

    text = str(scheduler).strip()
    if not re.fullmatch(r"(?:(?:tcp|tls|ws|wss|ucx)://)?\[?[A-Za-z0-9_.:-]+\]?:[0-9]{1,5}|inproc://\S+", text) or (
            ":" in text and not text.startswith("inproc") and not 0 < int(text.rsplit(":", 1)[1]) < 65536):
        raise ValueError(f"--scheduler: expected a Dask scheduler address {SCHEDULER_FORMAT}; received {scheduler!r}")
    try:
        import distributed   # noqa: F401
    except ImportError as exc:
        raise ValueError(f"--scheduler needs Dask's distributed scheduler, which is not installed ({exc}); install it "
                         f"with: pip install 'dask[distributed]' dask-ml (the distributed extra of minicnn-engine)"
                         ) from None


@contextlib.contextmanager
def _backend(scheduler):
    """joblib's default backend, or the Dask backend connected to ``scheduler``."""
    if scheduler is None:
        yield
        return
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(f"--scheduler needs Dask's distributed scheduler, which is not installed "
                          f"({exc}); install it with: pip install 'dask[distributed]' dask-ml "
                          f"(the distributed extra of minicnn-engine)") from None
    import joblib

    with Client(scheduler):
        with joblib.parallel_backend("dask"):
            yield


class _Progress:
    """tqdm when installed (``pip install tqdm``), else a line every 10% of the runs."""

    def __init__(self, total, done, verbose, stream, label):
        self.total, self.done, self.verbose, self.stream = total, done, verbose, stream
        self.start = time.perf_counter()
        self.bar = None
        if verbose and total:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=done, desc=f"study {label}", unit="run", file=stream,
                                dynamic_ncols=True)

    def update(self):
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.verbose and (self.done == self.total or self.done % max(1, self.total // 10) == 0):
            print(f"study: {self.done}/{self.total} runs, {time.perf_counter() - self.start:.0f} s",
                  file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_plan(plan, csv_path, n_jobs=-1, scheduler=None, verbose=1, stream=None):
    """Train every run of ``plan`` that ``csv_path`` does not hold yet; append each one as it finishes.

    Parameters
    ----------
    plan : StudyPlan
    csv_path : str or path-like
        The study's runs CSV (created if missing; runs already in it are skipped).
    n_jobs : int, default=-1
        joblib workers (-1: one per CPU); every estimator gets ``n_threads=1`` (runs side by side).
    scheduler : str or None, default=None
        Address of a Dask scheduler (``"tcp://host:8786"``): the runs go to that cluster through
        ``joblib.parallel_backend("dask")``.
    verbose : int, default=1
        Progress bar (tqdm) or progress lines on ``stream``.
    stream : file, default=sys.stderr

    Returns
    -------
    list of dict
        The plan's rows (as strings, as read back from the CSV), shared runs included.
    """
    from joblib import Parallel, delayed

    from .data import load_split

    stream = sys.stderr if stream is None else stream
    X_pool = load_split(plan.data, plan.profile.test_size)[0]
    runs = plan.runs(len(X_pool))
    wanted = {}
    for config, size, _, seed in runs:
        for c in plan.configs:
            if plan.shared[c.label] == config.label:
                wanted[(plan.data, c.label, str(size), seed, plan.max_epochs(size))] = None
    finished = {run_key(r) for r in read_csv(csv_path)}
    todo = [(c, size, seed) for c, size, _, seed in runs
            if (plan.data, c.label, str(size), seed, plan.max_epochs(size)) not in finished]
    tasks = (delayed(run_one)(plan.data, plan.profile.test_size, c, size, seed, plan.max_epochs(size),
                              plan.profile, plan.schedule, 1 if (n_jobs != 1 or scheduler) else None)
             for c, size, seed in todo)
    progress = _Progress(len(runs), len(runs) - len(todo), verbose, stream, plan.data)
    appender = _Appender(csv_path)
    try:
        with _backend(scheduler):
            for row in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
                appender.write(_copies(plan, row))
                progress.update()
    finally:
        appender.close()
        progress.close()
    return [r for r in read_csv(csv_path) if run_key(r) in wanted]
