"""``minicnn study`` on bad or suspicious input: one sweep per kind of input, each refused (or warned about) up
front with one line naming the option (and the file), before anything trains or is written to --out."""

import json
import shutil

import numpy as np
import pytest

from minicnn.tools.study import grid, report, stats

from helpers import run_cli

LAYERS = "conv8,maxpool,dense16"
QUICK = ("--quick", "--seeds", "2", "--n-jobs", "1", "--quiet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ok.npz (300 digits, (300, 8, 8, 1) in [0, 1]) and one .npz (or other file) per kind of damage."""
    from minicnn.datasets import load_digits_images

    folder = tmp_path_factory.mktemp("data")
    X, y = load_digits_images()
    X, y = X[:300], y[:300]
    arrays = {
        "ok": dict(X=X, y=y), "empty": dict(X=X[:0], y=y[:0]), "mismatch": dict(X=X, y=y[:250]),
        "small": dict(X=X[:30], y=y[:30]), "floatlab": dict(X=X, y=np.where(np.arange(300) % 7, y, 1.5)),
        "onehot": dict(X=X, y=np.eye(10)[y]), "Xscalar": dict(X=np.float32(3), y=y), "yscalar": dict(X=X, y=3),
        "nan": dict(X=np.where(np.arange(300)[:, None, None, None] == 7, np.nan, X), y=y),
        "inf": dict(X=np.where(np.arange(300)[:, None, None, None] == 7, np.inf, X), y=y),
        "oneclass": dict(X=X, y=np.zeros(300, int)), "onlyX": dict(X=X),
        "chfirst": dict(X=X.transpose(0, 3, 1, 2), y=y), "u8": dict(X=(X * 255).round().astype(np.uint8), y=y),
        "flat60": dict(X=X.reshape(300, 64)[:, :60], y=y), "ycolumn": dict(X=X, y=y[:, None]),
        "single": dict(X=X[(y != 9) | (np.cumsum(y == 9) == 1)], y=y[(y != 9) | (np.cumsum(y == 9) == 1)]),
        "f255": dict(X=(X * 255).astype(np.float64), y=y), "const": dict(X=np.ones_like(X), y=y),
    }
    for name, content in arrays.items():
        np.savez(folder / f"{name}.npz", **content)
    objects = np.empty(300, dtype=object)
    objects[:] = list(X)
    with open(folder / "object.npz", "wb") as f:   # np.savez pickles object arrays; np.load refuses them
        np.savez(f, X=objects, y=y)
    np.save(folder / "plain.npy", X)
    (folder / "plain.npy").rename(folder / "npy.npz")
    (folder / "text.npz").write_text("X,y\n1,2\n")
    raw = (folder / "ok.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(raw[:len(raw) // 2])
    (folder / "dir.npz").mkdir()
    return folder


def study(files, tmp_path, *args):
    """Run ``minicnn study`` on ok.npz with LAYERS (unless --data, --layers are given) into tmp_path/out; (code, stdout, stderr, out)."""
    out = tmp_path / "out"
    data = () if "--data" in args else ("--data", files / "ok.npz")
    layers = () if "--layers" in args else ("--layers", LAYERS)
    code, stdout, stderr = run_cli("study", *data, *layers, *QUICK, "--out", out, *args)
    return code, stdout, stderr, out


def one_error_line(stderr, code, expected_code):
    lines = stderr.strip().splitlines()
    assert code == expected_code, stderr
    assert len(lines) == 1 and lines[0].startswith("minicnn study: error: "), stderr
    assert "Traceback" not in stderr and "ZeroDivisionError" not in stderr
    return lines[0]


# --------------------------------------------------------------------------- B: duplicates


@pytest.mark.parametrize("option, value, repeated", [
    ("--sizes", "full,full", "full"), ("--sizes", "100,100", "100"), ("--sizes", "100, 100,full", "100"),
    ("--data", "digits,digits", "digits"), ("--seeds", "3,1,3", "3"), ("--rates", "0.5,0.25,0.5", "0.5"),
    ("--rates", "0.5,0.50", "0.5"),
])
def test_a_repeated_value_is_refused_naming_the_option(files, tmp_path, option, value, repeated):
    code, _, err, out = study(files, tmp_path, option, value)
    line = one_error_line(err, code, 2)
    assert f"argument {option}" in line and repeated in line and "twice" in line
    assert not out.exists()


# --------------------------------------------------------------------------- E: bad arguments, exit 2


@pytest.mark.parametrize("option, value", [
    ("--layers", "conv8,foo,dense16"), ("--layers", "conv0"), ("--layers", "conv-3"),
    ("--layers", "CONV8,MaxPool,Dense16"), ("--layers", "conv8,dropout,dense16"), ("--layers", "dense16,conv8"),
    ("--layers", ""), ("--seeds", "-1,-2"), ("--seeds", "0,4294967296"), ("--seeds", "0"), ("--seeds", "1"),
    ("--seeds", "-3"), ("--seeds", "a,b"), ("--schedule", "foo"), ("--schedule", ""), ("--schedule", "Cosine"),
    ("--n-jobs", "0"), ("--n-jobs", "-2"), ("--n-jobs", "two"), ("--sizes", "100²"), ("--sizes", "0"),
    ("--sizes", "-100"), ("--sizes", "1e3"), ("--sizes", ""), ("--rates", "0"), ("--rates", "1"),
    ("--rates", "nan"), ("--budget", "0m"), ("--budget", "-5m"), ("--budget", "abc"), ("--budget", "30m 2h"),
    ("--budget", "30m2h"), ("--budget", "1h1h"), ("--data", "digits,ok.npz"), ("--data", "ok.npz,digits"),
    ("--data", "mnist,foo"), ("--data", "idx:a.idx"), ("--n-jobs", "1025"),
])
def test_a_bad_argument_exits_2_naming_the_option(files, tmp_path, option, value):
    code, _, err, out = study(files, tmp_path, f"{option}={value}")
    line = one_error_line(err, code, 2)
    assert f"argument {option}" in line and "invalid _" not in line
    assert not out.exists()


@pytest.mark.parametrize("option", ["--data=digits", f"--layers={LAYERS}", "--padding=valid", "--sizes=100",
                                    "--seeds=3", "--rates=0.5", "--schedule=constant", "--budget=1h", "--quick",
                                    "--n-jobs=1", "--scheduler=tcp://x:1", "--lay=conv8"])
def test_from_csv_refuses_the_options_that_train(tmp_path, option):
    code, _, err = run_cli("study", "--from-csv", tmp_path / "runs.csv", option, "--out", tmp_path / "out")
    line = one_error_line(err, code, 2)
    assert option.split("=")[0].replace("--lay", "--layers").replace("--layersers", "--layers") in line
    assert "--from-csv only re-analyses" in line and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- E: the data, before training


@pytest.mark.parametrize("name, what", [
    ("npy", ".npy format"), ("text", "not a readable .npz"), ("truncated", "not a readable .npz"),
    ("dir", "directory"), ("missing", "no such file"), ("empty", "0 samples"), ("mismatch", "250 labels"),
    ("small", "samples per class"), ("floatlab", "non-integer labels such as 1.5"), ("onehot", "one-hot"),
    ("Xscalar", "X has shape ()"), ("yscalar", "y is a scalar"), ("object", "Object arrays"), ("nan", "NaN"),
    ("inf", "infinity"), ("oneclass", "at least 2 classes"), ("onlyX", "expected arrays ['X', 'y']"),
    ("single", "class 9 has 1 sample(s); the study needs at least {need} samples per class"),
])
def test_a_bad_data_file_is_refused_before_training(files, tmp_path, name, what):
    from minicnn.tools.study.data import min_per_class

    path = files / f"{name}.npz"
    what = what.format(need=min_per_class(0.2, len(np.unique(np.load(path)["y"]))) if name == "single" else 0)
    code, _, err, out = study(files, tmp_path, "--data", path)
    line = one_error_line(err, code, 1)
    assert f"--data {path}" in line and what in line
    assert not out.exists()


@pytest.mark.parametrize("name, warning", [
    ("chfirst", "looks channels-first"), ("u8", "unscaled 8-bit gray levels"), ("flat60", "1 x 60"),
    ("ycolumn", "column-vector y"), ("f255", "X values reach 255"), ("const", "300 of 300 images have all pixels equal"),
])
def test_suspicious_data_gets_the_estimators_warning_once_before_training(files, tmp_path, monkeypatch, name,
                                                                          warning):
    import minicnn.tools.study as study_module

    def no_training(*args, **kwargs):
        raise RuntimeError("training started")

    monkeypatch.setattr(study_module, "run_plan", no_training)
    code, _, err, _ = study(files, tmp_path, "--data", files / f"{name}.npz")
    lines = err.strip().splitlines()
    assert code == 1 and lines[-1].endswith("training started")   # the warning came before any training
    assert [line for line in lines if "warning" in line and warning in line] == lines[:-1] and len(lines) == 2


@pytest.mark.parametrize("sizes, what", [
    ("100,5000,full", "5000 is not below the training pool of"), ("240", "240 is not below"),
    ("20", "sizes of"), ("25,full", "25 is too small"), ("47", "start at 48"),
])
def test_sizes_the_data_cannot_give_are_refused(files, tmp_path, sizes, what):
    code, _, err, out = study(files, tmp_path, "--sizes", sizes)
    line = one_error_line(err, code, 1)
    assert "--sizes" in line and what in line and ("240 images" in line or "10 classes" in line)
    assert not out.exists()


@pytest.mark.parametrize("args, option", [
    (("--data", "ok.npz", "--data", "ok.npz"), "--data"), (("--layers", "conv8", "--layers", "dense8"), "--layers"),
    (("--seeds=2",), "--seeds"), (("--quiet",), "--quiet"), (("--out", "elsewhere"), "--out"),
])
def test_a_repeated_option_is_refused(files, tmp_path, args, option):
    code, _, err, out = study(files, tmp_path, *args)
    line = one_error_line(err, code, 2)
    assert f"argument {option}: given twice" in line and not out.exists()


def test_padding_without_layers_is_refused(tmp_path):
    code, _, err = run_cli("study", "--data", "digits", "--padding", "valid", *QUICK, "--out", tmp_path / "out")
    line = one_error_line(err, code, 2)
    assert "argument --padding" in line and "--layers" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("data, layers, padding", [
    ("ok.npz", "conv8,conv8,conv8,conv8,dense8", "valid"), ("digits", "conv8,conv8,conv8,conv8,dense8", "valid"),
])
def test_layers_that_do_not_fit_the_images_are_refused_up_front(files, tmp_path, data, layers, padding):
    data = files / data if data.endswith(".npz") else data
    code, _, err = run_cli("study", "--data", data, "--layers", layers, "--padding", padding, *QUICK,
                           "--out", tmp_path / "out")
    line = one_error_line(err, code, 1)
    assert f"--layers {layers} with --padding {padding} does not fit the images of --data {data}" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, what", [
    (("--scheduler", "bogus"), "--scheduler: expected a Dask scheduler address"),
    (("--scheduler", "tcp://host"), "--scheduler: expected a Dask scheduler address"),
    (("--n-jobs", "1024"), "--n-jobs 1024: more workers than the"),
])
def test_bad_values_are_refused_before_anything_is_written(files, tmp_path, args, what):
    quick = [a for a in QUICK if a not in ("--n-jobs", "1")] if "--n-jobs" in args else QUICK
    code, _, err = run_cli("study", "--data", files / "ok.npz", "--layers", LAYERS, *quick, *args,
                           "--out", tmp_path / "out")
    assert what in one_error_line(err, code, 1) and not (tmp_path / "out").exists()


def test_out_under_a_file_and_a_missing_from_csv_are_named(files, tmp_path):
    code, _, err = run_cli("study", "--data", files / "ok.npz", "--layers", LAYERS, *QUICK, "--out",
                           files / "ok.npz" / "sub")
    assert f"--out {files / 'ok.npz' / 'sub'}: " in one_error_line(err, code, 1)
    code, _, err = run_cli("study", "--from-csv", tmp_path / "missing.csv", "--out", tmp_path / "out")
    assert f"--from-csv {tmp_path / 'missing.csv'}: no such file" in one_error_line(err, code, 1)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(files, tmp_path):
    (tmp_path / "out").write_text("mine")
    code, _, err, _ = study(files, tmp_path)
    assert "--out" in one_error_line(err, code, 1) and (tmp_path / "out").read_text() == "mine"


# --------------------------------------------------------------------------- A: resume only what matches


@pytest.fixture(scope="module")
def finished(files, tmp_path_factory):
    """A finished quick study of ok.npz (with an absurdly large budget: no cuts, not over budget)."""
    import os

    folder = tmp_path_factory.mktemp("finished")
    shutil.copy(files / "ok.npz", folder / "data.npz")
    cwd = os.getcwd()
    os.chdir(folder)   # relative paths: the CSV names the data as given, and the copies resume it
    try:
        code, stdout, err = run_cli("study", "--data", "data.npz", "--layers", LAYERS, *QUICK, "--out", "out",
                                    "--budget", "99999999999999999999h")
    finally:
        os.chdir(cwd)
    assert code == 0, err
    return folder, stdout


def _resume(finished, tmp_path, monkeypatch, layers=LAYERS, padding="same", schedule="cosine", quick=True,
            data=None, meta=None):
    """Run the finished study again (on a copy) with these settings; (code, stdout, stderr, CSV before, after)."""
    folder, _ = finished
    shutil.copytree(folder, tmp_path / "f")
    if data is not None:
        np.savez(tmp_path / "f" / "data.npz", **data)
    if meta is not None:
        meta(tmp_path / "f" / "out" / "study.json")
    csv = tmp_path / "f" / "out" / "runs.csv"
    before = csv.read_text()
    monkeypatch.chdir(tmp_path / "f")
    code, stdout, err = run_cli("study", "--data", "data.npz", "--layers", layers, "--padding", padding,
                                "--schedule", schedule, *(QUICK if quick else QUICK[1:]), "--out", "out")
    return code, stdout, err, before, csv.read_text()


def _legacy(meta_path):
    """The meta JSON as the previous version wrote it (no settings fingerprint)."""
    meta = json.loads(meta_path.read_text())
    del meta["settings"]
    meta_path.write_text(json.dumps(meta))


_CHANGES = [(dict(layers="conv4,maxpool,dense16"), "conv4,maxpool,dense16"), (dict(padding="valid"), "valid"),
            (dict(schedule="constant"), "constant"), (dict(quick=False), "max_epochs"), (dict(data=True), "contents")]


# older metas (no fingerprint) do not record padding or the data's contents: those resume with a warning (below)
@pytest.mark.parametrize("change, what, legacy",
                         [(c, w, False) for c, w in _CHANGES]
                         + [(c, w, True) for c, w in _CHANGES if "padding" not in c and "data" not in c],
                         ids=lambda v: "older meta" if v is True else ("fingerprint" if v is False else None))
def test_resume_refuses_runs_trained_with_other_settings(finished, tmp_path, monkeypatch, change, what, legacy):
    from minicnn.datasets import load_digits_images

    change = dict(change)
    if change.pop("data", None):
        X, y = load_digits_images()
        change["data"] = dict(X=X[300:600], y=y[300:600])
    code, _, err, before, after = _resume(finished, tmp_path, monkeypatch, meta=_legacy if legacy else None, **change)
    line = one_error_line(err, code, 1)
    assert "--out" in line and "other settings" in line and what in line
    assert after == before


def test_resume_with_the_same_settings_trains_nothing_and_older_files_are_resumed_with_a_warning(
        finished, tmp_path, monkeypatch):
    import minicnn.tools.study.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_one", lambda *a: calls.append(a))
    code, _, err, before, after = _resume(finished, tmp_path, monkeypatch)
    assert code == 0 and err == "" and after == before and calls == [], err
    shutil.rmtree(tmp_path / "f")
    code, _, err, before, after = _resume(finished, tmp_path, monkeypatch, meta=_legacy)
    assert code == 0 and after == before and calls == []
    assert len(err.strip().splitlines()) == 1 and "no settings fingerprint" in err and "warning" in err


def test_a_huge_budget_is_not_over_budget(finished):
    folder, stdout = finished
    meta = json.loads((folder / "out" / "study.json").read_text())
    assert meta["over_budget"] is False and meta["cuts"] == [] and "over-budget" not in stdout


# --------------------------------------------------------------------------- E/B/D: --from-csv


def _csv_cases(folder):
    text = (folder / "out" / "runs.csv").read_text()
    header, *rows = text.splitlines(keepends=True)
    other = "".join(r.replace(",2,", ",3,", 1) for r in rows)   # a second run: other max_epochs ... hopefully
    return {
        "binary": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
        "empty": "", "header only": header,
        "short row": header + rows[0].rsplit(",", 3)[0] + "\n",
        "bad number": header + rows[0].replace(rows[0].split(",")[-3], "abc", 1),
        "bad bool": header + rows[0].replace(",True,", ",yes,").replace(",False,", ",no,"),
        "other columns": "group,placement\nbase,none\n",
        "two runs": text + other,
    }


@pytest.mark.parametrize("case", ["binary", "empty", "header only", "short row", "bad number", "bad bool",
                                  "other columns", "two runs", "bad meta", "list meta"])
def test_a_damaged_or_mixed_csv_is_refused_naming_the_file(finished, tmp_path, case):
    folder, _ = finished
    path = tmp_path / "runs.csv"
    if case in ("bad meta", "list meta"):
        shutil.copy(folder / "out" / "runs.csv", path)
        (tmp_path / "study.json").write_text("{not json" if case == "bad meta" else "[1, 2]")
        named = tmp_path / "study.json"
    else:
        content = _csv_cases(folder)[case]
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        named = path
    code, _, err = run_cli("study", "--from-csv", path, "--out", tmp_path / "out")
    line = one_error_line(err, code, 1)
    assert str(named) in line and "--out directory" not in line


def test_from_csv_without_meta_says_not_meaningful(finished, tmp_path):
    folder, _ = finished
    shutil.copy(folder / "out" / "runs.csv", tmp_path / "runs.csv")
    code, stdout, err = run_cli("study", "--from-csv", tmp_path / "runs.csv", "--out", tmp_path / "out")
    assert code == 0, err
    assert "NOT MEANINGFUL" in stdout and "settings-unknown" in stdout and "fewer-than-10-seeds (2)" in stdout


# --------------------------------------------------------------------------- C/D: what the study computes


def test_quick_trains_the_rates_given_and_labels_are_exact():
    plan = grid.make_plan("digits", quick=True, rates=(0.1234561, 0.1234564))
    rates = {c.rate for c in plan.configs if c.placement != "none"}
    assert rates == {0.1234561, 0.1234564}
    assert len({c.label for c in plan.configs}) == len(plan.configs)
    assert {c.rate for c in grid.make_plan("digits", quick=True).configs if c.placement != "none"} == {0.5}


def test_arms_that_build_the_same_networks_are_not_applicable(files, tmp_path):
    code, stdout, err, out = study(files, tmp_path, "--layers", "dense16")
    assert code == 0, err
    rows = report.read_runs(out / "runs.csv")
    verdicts = {r["key"]: r["verdict"] for r in stats.analyse(rows)}
    assert verdicts["spatial_conv_maps"] == verdicts["last_layers_small_data"] == "not applicable"
    assert "not applicable: Spatial" in stdout and "+0.00 pp" not in stdout


def test_the_recommendation_interval_stays_within_0_and_100():
    rec = dict(placement="none", kind="-", rate=0.0, size="full", group="user", test_mean=0.3,
               test_ci=(-0.7589, 1.3589), n_seeds=2, vs_none=dict(n=0))
    line = report.recommendation_lines(rec, "ok.npz")[0]
    assert "[0.00, 100.00]" in line and "uninformative" in line and "-75.89" not in line


# --------------------------------------------------------------------------- A: resume checks the rows too


def _edit_rows(csv_path, change, seeds=None, duplicate=False):
    """Append to ``csv_path`` copies of its rows with ``change`` applied (and seeds renumbered from 7)."""
    import csv

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    extra = []
    for row in rows:
        new = dict(row, **change)
        if not duplicate:
            new["seed"] = str(int(row["seed"]) + 7)
        extra.append(new)
    with open(csv_path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerows(extra)


@pytest.mark.parametrize("change, duplicate, what", [
    (dict(schedule="constant"), False, "schedule"), (dict(layers="conv4,maxpool,dense16"), False, "layers"),
    (dict(max_epochs="7", epochs="7"), False, "max_epochs"), ({}, True, "twice"),
])
def test_resume_refuses_rows_of_other_runs_in_the_csv(finished, tmp_path, monkeypatch, change, duplicate, what):
    code, _, err, before, after = _resume(finished, tmp_path, monkeypatch, meta=lambda meta_path: _edit_rows(
        meta_path.with_name("runs.csv"), change, duplicate=duplicate))
    line = one_error_line(err, code, 1)
    assert "--out out" in line and what in line and after == before


def test_resume_refuses_runs_of_the_same_file_under_an_older_spelling(finished, tmp_path, monkeypatch):
    def respell(meta_path):
        csv = meta_path.with_name("runs.csv")
        csv.write_text(csv.read_text().replace("\ndata.npz,", "\n./data.npz,"))

    code, _, err, before, after = _resume(finished, tmp_path, monkeypatch, meta=respell)
    line = one_error_line(err, code, 1)
    assert "--out out" in line and "under the name ./data.npz" in line and after == before


def test_resume_without_meta_never_records_a_fingerprint_and_says_settings_unknown(finished, tmp_path,
                                                                                   monkeypatch):
    import minicnn.tools.study.runner as runner

    monkeypatch.setattr(runner, "run_one", lambda *a: pytest.fail("trained"))
    code, stdout, err, before, after = _resume(finished, tmp_path, monkeypatch, meta=lambda path: path.unlink())
    assert code == 0 and after == before and "there is no study.json" in err, err
    meta = json.loads((tmp_path / "f" / "out" / "study.json").read_text())
    assert "data.npz" not in meta["settings"] and "settings-unknown" in stdout and "NOT MEANINGFUL" in stdout
    code, stdout, err = run_cli("study", "--data", "data.npz", "--layers", LAYERS, *QUICK, "--out", "out")
    assert code == 0 and "settings-unknown" in stdout, err   # still unknown on the next resume


@pytest.mark.parametrize("spelling", ["./data.npz", "lnk.npz", "ABS"])
def test_one_data_file_under_other_spellings_is_resumed_not_retrained(finished, tmp_path, monkeypatch, spelling):
    import minicnn.tools.study.runner as runner

    monkeypatch.setattr(runner, "run_one", lambda *a: pytest.fail("trained"))
    folder = tmp_path / "f"
    shutil.copytree(finished[0], folder)
    (folder / "lnk.npz").symlink_to(folder / "data.npz")
    monkeypatch.chdir(folder)
    data = str(folder / "data.npz") if spelling == "ABS" else spelling
    code, _, err = run_cli("study", "--data", data, "--layers", LAYERS, *QUICK, "--out", "out")
    assert code == 0 and err == "", err


# --------------------------------------------------------------------------- --from-csv: its own meta, valid rows


@pytest.mark.parametrize("csv_name, meta_name, unknown", [
    ("study_runs.csv", "study_meta.json", False), ("study_runs.csv", "study.json", True),
    ("runs.csv", "study.json", False), ("runs.csv", "study_meta.json", True),
])
def test_from_csv_reads_the_meta_of_its_own_name_only(finished, tmp_path, csv_name, meta_name, unknown):
    folder, _ = finished
    shutil.copy(folder / "out" / "runs.csv", tmp_path / csv_name)
    _legacy_copy = json.loads((folder / "out" / "study.json").read_text())
    del _legacy_copy["settings"]   # as the previous version wrote it: still a known run
    (tmp_path / meta_name).write_text(json.dumps(_legacy_copy))
    code, stdout, err = run_cli("study", "--from-csv", tmp_path / csv_name, "--out", tmp_path / "out")
    assert code == 0, err
    assert ("settings-unknown" in stdout) == unknown


@pytest.mark.parametrize("column, value, what", [
    ("test_accuracy", "5.0", "an accuracy in [0, 1]"), ("test_accuracy", "inf", "an accuracy in [0, 1]"),
    ("val_accuracy", "nan", "an accuracy in [0, 1]"), ("rate", "1.5", "a dropout rate in (0, 1)"),
    ("rate", "0.0", "a dropout rate in (0, 1)"), ("placement", "everywhere", "one of none"),
    ("kind", "gaussian", "element or spatial"), ("group", "mine", "one of base"),
    ("epochs", "999", "epochs trained in [1, max_epochs"), ("final_train_loss", "-1", "a loss >= 0"),
    ("train_time_s", "inf", "a finite number"),
])
def test_from_csv_refuses_values_a_study_never_writes(finished, tmp_path, column, value, what):
    import csv

    folder, _ = finished
    with open(folder / "out" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    target = next(i for i, r in enumerate(rows) if r["placement"] != "none")
    rows[target][column] = value
    path = tmp_path / "runs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, _, err = run_cli("study", "--from-csv", path, "--out", tmp_path / "out")
    line = one_error_line(err, code, 1)
    assert f"{path}, line {target + 2}: column {column}: expected {what}" in line, line
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- C: statistics and budget cuts


def test_equal_nonzero_differences_are_not_testable_and_intervals_stay_within_100_pp():
    r = stats.paired_test([0.02, 0.02])
    assert np.isnan(r["p_t"]) and np.isnan(r["ci_low"]) and np.isnan(r["ci_high"])
    assert stats.paired_test([0.0, 0.0])["p_t"] == 1.0   # the same score on every seed: no difference
    assert report._ci_text(-1.3089, 0.8089) == "[-100.00, +80.89] (clipped: uninformative)"
    assert report._ci_text(float("nan"), float("nan")) == "n/a"


def test_a_budget_cut_keeps_the_users_own_rates_and_every_dropout_arm():
    plan = grid.make_plan("ok.npz", layers=tuple(LAYERS.split(",")), rates=(0.1, 0.2, 0.3))
    cut, _ = grid.fit_budget(plan, 2.0, 240, 2)
    assert cut.cuts[0] == "rates 0.1, 0.2, 0.3 -> 0.2, 0.3" and not cut.meaningful
    assert {c.rate for c in cut.configs if c.placement != "none"} == {0.2, 0.3}
    assert {c.placement for c in cut.configs} == {c.placement for c in plan.configs}


# --------------------------------------------------------------------------- estimator options


def test_the_study_options_are_the_estimator_s_minus_what_the_study_sets():
    """Every CNNClassifier parameter the arms and design leave alone is a study option, with fit's spelling."""
    import argparse

    from minicnn import params
    from minicnn.cli import _param_option
    from minicnn.tools.study import cli as study_cli

    parser = argparse.ArgumentParser()
    study_cli.add_arguments(parser, _param_option)
    dests = {a.dest for a in parser._actions}
    assert set(params.TABLE) - set(grid.STUDY_OWNS) <= dests
    assert not set(grid.STUDY_OWNS) & dests
    assert {p.name for p in grid.estimator_options()} == set(params.TABLE) - set(grid.STUDY_OWNS)


def test_your_data_trains_with_the_estimator_s_defaults():
    from minicnn import params

    shared = grid.profile_for_user(("conv8", "maxpool", "dense16")).estimator_params()
    for name, value in shared.items():
        assert value == params.DEFAULTS[name], name


def test_options_reach_every_run_and_the_meta(files, tmp_path):
    code, stdout, stderr, out = study(files, tmp_path, "--learning-rate", "0.01", "--batch-size", "16",
                                      "--batch-norm", "--epochs", "3", "--optimizer", "sgd")
    assert code == 0, stderr
    meta = json.loads((out / "study.json").read_text())
    assert meta["estimator_options"] == {"learning_rate": 0.01, "batch_size": 16, "batch_norm": True,
                                         "max_iter": 3, "optimizer": "sgd"}
    assert meta["learning_rate"] == 0.01 and meta["batch_size"] == 16
    settings = next(iter(meta["settings"].values()))
    assert settings["estimator"] == {"optimizer": "sgd"} and settings["models"]["user"]["batch_norm"] is True
    runs = (out / "runs.csv").read_text().splitlines()
    assert all(",True," in line for line in runs[1:])   # batch_norm column


def test_batch_norm_on_the_built_in_study_is_refused(tmp_path):
    code, _, stderr = run_cli("study", "--data", "digits", *QUICK, "--batch-norm", "--out", tmp_path / "o")
    assert code == 1 and "--batch-norm applies to your model" in stderr, stderr


# --------------------------------------------------------------------------- the report reads right


def _published(data):
    from pathlib import Path

    rows = report.read_runs(Path(__file__).resolve().parent.parent / "docs" / "study_runs.csv")
    return [r for r in rows if r["data"] in data]


def test_the_recommendation_says_how_sure_it_is_in_one_sentence():
    rows = _published(("digits",))
    results = stats.analyse(rows)
    rec = stats.recommend(rows, "digits", "base")
    line = report.recommendation_lines(rec, "digits", results)[0]
    assert "How sure: not sure. None of the" in line and "tie" in line   # every digits test: not significant
    fake = dict(rec, best_test=dict(placement="none", kind="-", rate=0.0, mean=rec["test_mean"] + 0.01))
    line = report.recommendation_lines(fake, "digits", results)[0]
    assert f"the best test mean in the table, {100 * fake['best_test']['mean']:.2f}% (no dropout)" in line
    found = [dict(r, verdict="holds") if i == 0 else r for i, r in enumerate(results)]
    assert "found a real difference" in report.recommendation_lines(rec, results[0]["data"], found)[0]


@pytest.mark.parametrize("data, caveat", [(("digits",), False), (("digits", "mnist"), True)])
def test_the_mnist_caveat_appears_only_with_mnist(data, caveat):
    rows = _published(data)
    results = stats.analyse(rows)
    text = report.render(rows, results, {d: stats.recommend(rows, d, "base") for d in data}, {})
    assert ("1000 MNIST images are not Srivastava" in text) == caveat


@pytest.mark.parametrize("width", [5, 10, 15])
def test_the_plot_title_fits_its_figure(width):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, _ = plt.subplots(figsize=(width, 3.6))
    title = report._suptitle(fig, "test accuracy vs training-set size, rate chosen on validation per seed (± s.e.)")
    fig.canvas.draw()
    box, frame = title.get_window_extent(), fig.bbox
    plt.close(fig)
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1


def test_the_estimate_says_what_load_does_to_it():
    assert grid.load_note(2, load=0.0, cpus=2) == ""
    assert "expect about 3x as long" in grid.load_note(2, load=4.0, cpus=2)


@pytest.mark.parametrize("option", [("--learning-rate", "0.01"), ("--epochs", "3"), ("--no-batch-norm",)])
def test_from_csv_refuses_the_estimator_options_too(tmp_path, option):
    (tmp_path / "runs.csv").write_text("x\n")
    code, _, stderr = run_cli("study", "--from-csv", tmp_path / "runs.csv", *option, "--out", tmp_path / "o")
    assert code == 2 and option[0] in stderr and "--from-csv only re-analyses" in stderr, stderr

