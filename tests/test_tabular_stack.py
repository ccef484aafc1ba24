"""The generic tabular path's families, stack, target encoding and plan: LightGBM and
XGBoost selectable, a level-2 stack whose nested CV is no worse than any family alone,
out-of-fold target encoding that cannot leak a noise id, a plan from the data's shape."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from competitions.tabular import model as M

QUICK = ("--fast", "--quiet", "--set", "folds=3", "--set", "bags=1")


def _folder(out: Path, train: pd.DataFrame, test: pd.DataFrame, target: str, sample_value) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=target).to_csv(out / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], target: sample_value}).to_csv(out / "sample_submission.csv", index=False)
    return out


def _run(compete, data: Path, metric: str, work: Path, label: str, *settings) -> tuple[dict, Path]:
    run_dir, out = work / f"run-{label}", work / f"{label}.csv"
    extra = [part for setting in settings for part in ("--set", setting)]
    result = compete.in_process("run", "kaggle:demo", "--data", data, "--metric", metric, *QUICK, *extra,
                                "--run-dir", run_dir, "--out", out)
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "metrics.json").read_text()), out


@pytest.fixture(scope="module")
def additive(tmp_path_factory) -> Path:
    """A number that is a linear sum of five columns (a linear model's) plus a step in a
    sixth (a tree's): each family alone misses a part the other has."""
    rng = np.random.default_rng(3)
    rows = 480
    x = rng.normal(size=(rows, 6))
    y = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4]) + 2.0 * (x[:, 5] > 0.3) + 0.2 * rng.normal(size=rows)
    frame = pd.DataFrame(x.round(4), columns=[f"x{i}" for i in range(6)]).assign(id=[f"a{i}" for i in range(rows)], y=y)
    return _folder(tmp_path_factory.mktemp("additive"), frame.iloc[:360], frame.iloc[360:], "y", 0.0)


def test_the_stack_is_used_and_its_nested_cv_is_no_worse_than_any_family(compete, additive, tmp_path):
    metrics, _ = _run(compete, additive, "rmse", tmp_path, "stack", "models=lightgbm,linear", "combiner=stack")
    assert metrics["combiner"] == "stack" and set(metrics["stack_coefficients"]) == {"lightgbm", "linear"}
    assert metrics["cv_score"] <= min(metrics["cv_by_model"].values()), metrics["cv_by_model"]
    assert "stack (level 2)" in metrics["cv_score_note"] and "(not nested)" in metrics["cv_score_note"]
    # the out-of-fold file keeps every family for `compete blend`, and the nested figure is its oof_final's
    oof = pd.read_csv(tmp_path / "run-stack" / "oof.csv")
    assert {"oof_lightgbm", "oof_linear", "oof_final"} <= set(oof.columns)
    assert np.sqrt(np.mean((oof["oof_final"] - oof["y"]) ** 2)) == pytest.approx(metrics["cv_score"], abs=1e-4)
    # auto scores the blend and the stack in nested CV and keeps the better
    metrics, _ = _run(compete, additive, "rmse", tmp_path, "auto", "models=lightgbm,linear")
    scores = metrics["cv_by_combiner"]
    assert set(scores) == {"blend", "stack"} and metrics["cv_score"] == pytest.approx(min(scores.values()), abs=1e-6)
    # both runs keep out_of_fold.csv in submission shape: `compete blend` combines them
    kept = pd.read_csv(tmp_path / "run-auto" / "out_of_fold.csv")
    assert list(kept.columns) == ["id", "fold", "y", "truth:y"]
    blended = compete.in_process("blend", "kaggle:demo", tmp_path / "run-stack", tmp_path / "run-auto", "--data", additive,
                                 "--metric", "rmse")
    assert blended.exit_code == 0 and "cv rmse: " in blended.output, blended.output


def test_target_encoding_is_out_of_fold_a_noise_id_does_not_leak(compete, tmp_path):
    """An account id of 150 values over 450 rows and a label that is a coin toss: encoded
    with labels from outside the fold the CV would read the labels back (AUC near 1)."""
    rng = np.random.default_rng(5)
    rows = 450
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "account": [f"u{k:03d}" for k in rng.integers(0, 150, rows)],
                          "noise": rng.normal(size=rows).round(3), "label": rng.integers(0, 2, rows)})
    data = _folder(tmp_path / "noise", frame.iloc[:360], frame.iloc[360:], "label", 0.5)
    for family in ("lightgbm", "linear"):
        metrics, _ = _run(compete, data, "auc", tmp_path, family, f"models={family}")
        assert metrics["target_encoded"] == ["account"]
        assert 0.38 < metrics["cv_score"] < 0.62, (family, metrics["cv_score"])


def test_target_encoding_of_training_rows_is_cross_fitted():
    """Inside a fold too, a training row's encoding never holds its own label."""
    from competitions.tabular.encoding import TargetEncoding
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"account": [f"u{i}" for i in range(300)], "other": rng.normal(size=300)})  # every id once
    y = rng.integers(0, 2, 300)
    encoded = TargetEncoding(["account"], "binary", seed=0).fit_transform(X, y)
    assert list(encoded.columns) == ["other", "account__target"]
    assert abs(np.corrcoef(encoded["account__target"], y)[0, 1]) < 0.2  # in-sample means would give 1.0


def test_models_lightgbm_and_xgboost_run_alone_and_same_seed_gives_same_bytes(compete, tmp_path):
    from competitions.tabular.synth import CLASSES, make
    data = make(tmp_path / "grades", "multiclass", rows=300, seed=2)
    truth = pd.read_csv(data / "answers" / "solution.csv").set_index("row_id")
    for family in ("lightgbm", "xgboost"):
        metrics, out = _run(compete, data, "logloss", tmp_path, family, f"models={family}")
        assert metrics["models"] == [family] and metrics["cv_by_model"].keys() == {family}
        submission = pd.read_csv(out).set_index("row_id").loc[truth.index, list(CLASSES)].to_numpy()
        loss = -np.mean(np.log(np.clip((submission * truth[list(CLASSES)].to_numpy()).sum(axis=1), 1e-15, 1)))
        assert loss < 0.9 * np.log(len(CLASSES)), (family, loss)  # under the uniform guess
    _, again = _run(compete, data, "logloss", tmp_path, "xgboost-again", "models=xgboost")
    assert again.read_bytes() == (tmp_path / "xgboost.csv").read_bytes()


def test_the_plan_spends_the_budget_by_the_data_shape():
    small = M.plan(800, 10, 3, "binary", 1, 600.0, False, None)
    assert small.families == tuple(f for f in M.TABLE_FAMILIES if f != "spline") and small.repeats > 3
    large = M.plan(300_000, 40, 10, "binary", 1, 600.0, False, None)
    assert large.families == ("lightgbm", "linear") and large.repeats == 1
    assert small.rounds > large.rounds and small.iterations > large.iterations
    assert M.plan(800, 10, 3, "binary", 1, 600.0, False, None) == small  # nothing but the shape and budget goes in
    chosen = M.plan(800, 10, 3, "binary", 1, 600.0, False, None, families=("xgboost",), repeats=2)
    assert chosen.families == ("xgboost",) and chosen.repeats == 2


def test_a_tune_pruner_hears_each_fold_the_mean_of_the_families_on_the_rows_done(compete, additive, tmp_path):
    from common import callbacks

    heard = []
    with callbacks.listening(lambda step, value: heard.append((step, value))):   # as tune's pruner listens
        _run(compete, additive, "rmse", tmp_path, "heard", "models=lightgbm,linear", "combiner=blend")
    assert [step for step, _ in heard] == [0, 1, 2]        # once a fold (folds=3), the first split only
    oof = pd.read_csv(tmp_path / "run-heard" / "oof.csv")
    # after the last fold every row is done: the figure is the plain mean of the two families' oof
    mean = (oof["oof_lightgbm"] + oof["oof_linear"]) / 2
    assert heard[-1][1] == pytest.approx(np.sqrt(np.mean((mean - oof["y"]) ** 2)), rel=1e-6)
    assert 0 < heard[0][1] < 1.5                            # the first fold's rows alone, on the metric's scale


def _sites(rows: int, seed: int) -> pd.DataFrame:
    """Two classes, a measurement `x` that separates them sharply (the class boundary at
    0) and a site where each class mostly lives (class 1 at site B four times in five)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    site = np.where(rng.random(rows) < 0.8, np.where(label == 1, "B", "A"), np.where(label == 1, "A", "B"))
    x = np.where(label == 1, 1.0, -1.0) * rng.uniform(0.05, 2.0, rows)
    return pd.DataFrame({"x": x, "site": site, "label": label})


def test_the_linear_model_learns_no_indicator_from_one_missing_row_and_chooses_its_c():
    train, test = _sites(240, 0), _sites(400, 1)
    train.loc[0, ["x", "label", "site"]] = [np.nan, 0, "A"]  # the one training row missing x: class 0
    X, y = train[["x", "site"]], train["label"].to_numpy()
    chosen = M.LinearModel("binary", ["x"], ["site"], [], 0, tune=True).fit(X, y)
    assert chosen.flagged_ == []
    # a row missing x at site B: class 1 by its site, not class 0 by the one row that missed x too
    assert chosen.predict(pd.DataFrame({"x": [np.nan], "site": ["B"]}))[0] > 0.5

    def loss(model):
        p = np.clip(model.predict(test[["x", "site"]]), 1e-15, 1 - 1e-15)
        return -np.mean(test["label"] * np.log(p) + (1 - test["label"]) * np.log(1 - p))
    # a boundary this sharp wants less shrinkage than the fixed C: the chosen one loses less on new rows
    assert float(chosen.summary().removeprefix("C ").split(" ")[0]) > M.LINEAR_C
    assert M.plan(len(train), 1, 1, "binary", 1, 600.0, False, None).tune_linear  # not when fast, nor on many rows
    assert not M.plan(len(train), 1, 1, "binary", 1, 600.0, True, None).tune_linear
    assert not M.plan(M.LINEAR_TUNED_ROWS + 1, 1, 1, "binary", 1, 600.0, False, None).tune_linear
    fixed = M.LinearModel("binary", ["x"], ["site"], [], 0).fit(X, y)
    assert fixed.summary() == "" and loss(chosen) < 0.8 * loss(fixed)
    many = train.copy()
    many.loc[:M.MISSING_FLAG_ROWS, "x"] = np.nan  # enough rows missing x: its indicator joins
    assert M.LinearModel("binary", ["x"], ["site"], [], 0).fit(many[["x", "site"]], y).flagged_ == ["x"]


def test_a_round_costs_by_the_columns_distinct_values_and_a_class_less_than_an_output():
    # digits' shape: 64 pixels of 17 values each (881 bins), ten classes
    pixels = M.round_seconds(1327, 64, 0, "multiclass", 10, bins=881)
    continuous = M.round_seconds(1327, 64, 0, "multiclass", 10)
    assert all(pixels[f] < continuous[f] / 3 for f in M.BOOSTED)   # the split search over bins dominates
    one = M.round_seconds(1327, 64, 0, "binary", 1, bins=881)
    assert 5 < pixels["catboost"] / one["catboost"] < 10 and pixels["lightgbm"] / one["lightgbm"] == pytest.approx(10)
    # the plan the budget then affords digits: every family, past the rounds' ceiling at the lowest rate
    # (with every value continuous: ~500 rounds at a larger step)
    digits = M.plan(1327, 64, 0, "multiclass", 10, 600.0, False, None, bins=881)
    assert digits.families == tuple(f for f in M.TABLE_FAMILIES if f != "spline")   # the spline: numbers only
    assert digits.iterations > 2000 and digits.learning_rate == 0.06 and digits.leaves == 31
    assert M.plan(1327, 64, 0, "multiclass", 10, 600.0, False, None).iterations < 2000
    # NYC flights' shape (245k rows, 13 numeric and 5 categorical columns) keeps the plan it had
    flights = M.plan(245_224, 13, 5, "binary", 1, 600.0, False, None, bins=13 * 180)
    assert flights.families == ("lightgbm", "linear") and flights.repeats == 1 and 700 < flights.rounds < 1000
    assert flights.leaves == 127   # many rows: larger trees (model.leaves_for)


@pytest.mark.parametrize("family", [M.ExtraTreesModel, M.SupportVectorModel, M.NeighboursModel])
def test_extra_trees_the_svm_and_the_neighbours_fit_each_task_and_every_class_has_its_column(family):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=120), "site": rng.choice(list("ABC"), 120)})
    X.loc[::7, "x"] = np.nan
    plan = M.plan(120, 1, 1, "binary", 1, 60.0, True, 3)
    y = (X["x"].fillna(0) > 0).astype(int).to_numpy()
    binary = family("binary", ["x", "site"], ["site"], [], plan, 0, 1).fit(X, y)
    assert binary.predict(X).shape == (120,) and np.corrcoef(binary.predict(X), y)[0, 1] > 0.8
    classes = np.where(y == 1, 3, rng.integers(0, 2, 120))  # class 2 never in the training rows
    multi = family("multiclass", ["x", "site"], ["site"], [], plan, 0, 4).fit(X, classes).predict(X)
    assert multi.shape == (120, 4) and np.allclose(multi.sum(axis=1), 1) and (multi[:, 2] == 0).all()
    number = family("regression", ["x", "site"], ["site"], [], plan, 0, 1).fit(X, X["x"].fillna(0).to_numpy())
    assert np.corrcoef(number.predict(X), X["x"].fillna(0))[0, 1] > 0.9
    if family is M.ExtraTreesModel:
        labels = np.column_stack([y, np.zeros(120, dtype=int)])  # a label with one value
        assert family("multilabel", ["x", "site"], ["site"], [], plan, 0, 2).fit(X, labels).predict(X).shape == (120, 2)
    elif family is M.SupportVectorModel:  # offered on few rows of one target only
        assert "svm" in M.plan(120, 1, 1, "regression", 1, 600.0, False, None).families
        assert "svm" not in M.plan(120, 1, 1, "multilabel", 2, 600.0, False, None).families
        assert "svm" not in M.plan(M.SVM_ROWS + 1, 1, 1, "binary", 1, 600.0, False, None).families
    else:  # offered on few rows of any one target; k and the weighting chosen by the inner CV
        assert "knn" in M.plan(120, 1, 1, "regression", 1, 600.0, False, None).families
        assert "knn" not in M.plan(M.KNN_ROWS + 1, 1, 1, "binary", 1, 600.0, False, None).families
        x = rng.uniform(-3, 3, 300)
        smooth = family("regression", ["x"], [], [], plan, 0, 1).fit(pd.DataFrame({"x": x}), np.sin(x))
        assert smooth.chosen_[0] <= 8    # a noiseless curve: the fewest neighbours follow it closest
        noisy = family("regression", ["x"], [], [], plan, 0, 1).fit(pd.DataFrame({"x": x}), rng.normal(size=300))
        assert noisy.chosen_ == (50, "uniform")   # pure noise: the widest plain average


def test_an_optional_family_joins_the_combination_only_when_its_nested_cv_helps():
    from common import metrics
    from competitions.tabular import combine as C
    from competitions.tabular import data as D
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    fold_of = np.arange(300) % 5
    good = {"linear": y + rng.normal(scale=0.5, size=300), "catboost": y + rng.normal(scale=0.5, size=300)}
    target = D.Target("regression", ["y"], ["y"])
    rmse = metrics.resolve("rmse", "regression")
    # a copy of a family adds nothing (a zero-mean noise would: with weights summing to one it shrinks the blend)
    noise = C.combine({**good, "extratrees": good["linear"].copy()}, fold_of, y, y, target, rmse, False, "blend", 0)
    assert noise.names == ["linear", "catboost"] and "extratrees" not in noise.weights
    assert set(noise.by_family) == {"linear", "catboost", "extratrees"}   # its own figure still reported
    helps = C.combine({**good, "extratrees": y + rng.normal(scale=0.5, size=300)}, fold_of, y, y, target, rmse,
                      False, "blend", 0)
    assert helps.names == ["linear", "catboost", "extratrees"] and helps.cv_score < noise.cv_score
    # each optional family judged on its own: one that adds nothing does not keep out one that helps
    both = C.combine({**good, "extratrees": good["linear"].copy(), "knn": y + rng.normal(scale=0.5, size=300)},
                     fold_of, y, y, target, rmse, False, "blend", 0)
    assert both.names == ["linear", "catboost", "knn"] and both.cv_score < noise.cv_score


def test_the_linear_model_chooses_its_numbers_scaling_by_its_inner_cv():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 400)
    X = pd.DataFrame({"x": x, "site": rng.choice(list("AB"), 400)})
    straight = 3 * x + rng.normal(scale=0.1, size=400)   # linear in x: quantiles to a normal bend it
    assert M.LinearModel("regression", ["x"], ["site"], [], 0, tune=True).fit(X, straight).scaling_ == "standard"
    skewed = X.assign(x=np.exp(4 * x))                   # the same effect through a heavy tail: quantiles undo it
    assert M.LinearModel("regression", ["x"], ["site"], [], 0, tune=True).fit(skewed, straight).scaling_ == "quantile"
    assert M.LinearModel("regression", ["x"], ["site"], [], 0).fit(X, straight).scaling_ == "quantile"  # untuned
    curved = np.abs(3 * x) + rng.normal(scale=0.1, size=400)   # a bend no slope draws: the spline family's
    ridge = M.LinearModel("regression", ["x"], ["site"], [], 0, tune=True).fit(X, curved)
    spline = M.SplineModel("regression", ["x"], ["site"], [], 0).fit(X, curved)
    assert np.sqrt(np.mean((spline.predict(X) - curved) ** 2)) < 0.2 < np.sqrt(np.mean((ridge.predict(X) - curved) ** 2))
    assert "spline" in M.plan(400, 1, 1, "regression", 1, 600.0, False, None).families
    assert "spline" not in M.plan(400, 1, 1, "binary", 1, 600.0, False, None).families
