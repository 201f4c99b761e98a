"""Training progress: one line per epoch (``verbose=1``) and a live bar over batches (``verbose=2``)."""

import sys
import time


class _TextBar:
    """A minimal progress bar rewritten in place with ``\\r`` (used when tqdm is not installed)."""

    def __init__(self, total, desc, stream):
        self.total, self.desc, self.stream, self.n = total, desc, stream, 0

    def update(self, done):
        self.n = done
        width = 30
        filled = int(width * done / max(self.total, 1))
        self.stream.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
        self.stream.flush()

    def close(self):
        self.stream.write("\r" + " " * (len(self.desc) + 50) + "\r")
        self.stream.flush()


class _TqdmBar:
    def __init__(self, tqdm, total, desc, stream):
        self.bar = tqdm(total=total, desc=desc, unit="sample", leave=False, file=stream)
        self.n = 0

    def update(self, done):
        self.bar.update(done - self.n)
        self.n = done

    def close(self):
        self.bar.close()


def _make_bar(total, desc, stream):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, desc, stream)
    return _TqdmBar(tqdm, total, desc, stream)


class EpochReporter:
    """Reports training progress of one ``fit``.

    Parameters
    ----------
    verbose : int
        0 silent, 1 one line per epoch, 2 also a bar over the batches.
    n_samples : int
        Training samples per epoch.
    max_iter : int
    score_name : str
        Label of the validation score (e.g. ``"val_accuracy"``).
    stream : file-like, default=sys.stdout

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> reporter = EpochReporter(1, n_samples=100, max_iter=3, score_name="val_accuracy", stream=out)
    >>> on_batch = reporter.start_epoch(1)
    >>> reporter.end_epoch(1, 0.5, 0.9)
    >>> out.getvalue().startswith("Epoch 1/3 - loss: 0.500000 - val_accuracy: 0.9000 - ")
    True
    """

    def __init__(self, verbose, *, n_samples, max_iter, score_name, stream=None):
        self.verbose, self.n_samples, self.max_iter = int(verbose), n_samples, max_iter
        self.score_name = score_name
        self.stream = sys.stdout if stream is None else stream
        self._bar = None
        self._start = None

    def start_epoch(self, epoch):
        """Start timing ``epoch``; returns the ``on_batch(done, loss)`` callback (or None)."""
        self._start = time.perf_counter()
        if self.verbose < 2:
            return None
        self._bar = _make_bar(self.n_samples, f"Epoch {epoch}/{self.max_iter}", self.stream)
        return lambda done, loss: self._bar.update(done)

    def close_bar(self):
        """Remove the live bar, if any (also called when an epoch is interrupted)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def end_epoch(self, epoch, loss, score=None):
        """Print the epoch line (epoch, loss, validation score, seconds, samples/s)."""
        seconds = time.perf_counter() - self._start
        self.close_bar()
        if self.verbose < 1:
            return
        parts = [f"Epoch {epoch}/{self.max_iter}", f"loss: {loss:.6f}"]
        if score is not None:
            parts.append(f"{self.score_name}: {score:.4f}")
        parts += [f"{seconds:.2f}s", f"{self.n_samples / max(seconds, 1e-9):,.0f} samples/s"]
        print(" - ".join(parts), file=self.stream, flush=True)
