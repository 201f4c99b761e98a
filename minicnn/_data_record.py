"""The data record of a model written by ``minicnn fit``: which data it named, so ``minicnn evaluate`` and
``minicnn mc-report`` find the same held-out images without being told again (imports nothing heavy: the
Predictor's loader reads it)."""

#: The keys of the data record (how ``minicnn fit`` named its data): ``fit --data``, ``--test-data``,
#: ``--test-size`` and ``--seed``; a model file may hold it as the header key ``"data"``.
DATA_KEYS = ("data", "test_data", "test_size", "seed")


def data_record_problem(record):
    """What is wrong with a model file's data record (a sentence), or None."""
    if not (isinstance(record, dict) and set(record) == set(DATA_KEYS)):
        return f"expected an object with keys {list(DATA_KEYS)}, found {str(record)[:200]}"
    if not isinstance(record["data"], str) or not (record["test_data"] is None or isinstance(record["test_data"], str)):
        return "data must be a string and test_data a string or null"
    size, seed = record["test_size"], record["seed"]
    if not (isinstance(size, float) and 0 < size < 1 and isinstance(seed, int) and not isinstance(seed, bool)
            and 0 <= seed < 2**32):
        return f"test_size must be a float in (0, 1) and seed an int in [0, 2**32), found {size!r}, {seed!r}"
    return None


def recorded_data(model):
    """The data record of a loaded model (estimator or Predictor), or None."""
    return getattr(model, "_data_record", None)
