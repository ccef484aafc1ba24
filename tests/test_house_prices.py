"""house-prices end to end on the real Kaggle files, fetched offline."""
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from common import io
from competitions.house_prices import data as house_prices_data
from competitions.house_prices import features as house_prices_features


def test_fetch_writes_the_real_files(house_data):
    assert io.sha256(house_data / "train.csv") == house_prices_data.MEMBERS["train.csv"][1]
    assert io.sha256(house_data / "test.csv") == house_prices_data.MEMBERS["test.csv"][1]
    train = pd.read_csv(house_data / "train.csv")
    test = pd.read_csv(house_data / "test.csv")
    sample = pd.read_csv(house_data / "sample_submission.csv")
    assert train.shape == (1460, 81) and test.shape == (1459, 80)
    assert test["Id"].min() == 1461 and test["Id"].max() == 2919
    assert list(sample.columns) == ["Id", "SalePrice"]
    assert sample["Id"].tolist() == test["Id"].tolist() and (sample["SalePrice"] > 0).all()


def test_fetch_from_a_kaggle_zip(compete, house_data, tmp_path):
    archive = tmp_path / "house-prices-advanced-regression-techniques.zip"
    with zipfile.ZipFile(archive, "w") as opened:
        for name in ("train.csv", "test.csv", "sample_submission.csv"):
            opened.write(house_data / name, name)
        opened.writestr("data_description.txt", "MSSubClass: Identifies the type of dwelling\n")
    out = tmp_path / "data"
    compete("data", "fetch", "house-prices", "--out", out, "--from", archive)
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        assert (out / name).read_bytes() == (house_data / name).read_bytes()
    assert (out / "data_description.txt").exists()
    # A zip left as downloaded is read in place by every command.
    zipped_only = tmp_path / "zipped"
    zipped_only.mkdir()
    archive.rename(zipped_only / archive.name)
    loaded = house_prices_data.load(zipped_only)
    assert len(loaded.train) == 1460 and len(loaded.test) == 1459


def test_load_keeps_na_as_none_and_types_numbers(house_data):
    data = house_prices_data.load(house_data)
    clean = house_prices_features.clean(data.train)
    assert (clean["PoolQC"] == "None").sum() == 1453         # "NA" = no pool, not missing
    assert clean["PoolQC"].isna().sum() == 0
    assert data.train["LotFrontage"].isna().sum() == 259     # truly missing stays missing
    engineered = house_prices_features.engineer(clean)
    row = engineered.iloc[0]
    assert row["TotalSF"] == row["TotalBsmtSF"] + row["1stFlrSF"] + row["2ndFlrSF"]
    assert row["ExterQualScore"] == 4                        # "Gd" on the ordinal scale
    assert data.train.loc[house_prices_features.is_outlier(data.train), "Id"].tolist() == [524, 1299]
    test_clean = house_prices_features.clean(data.test)
    assert test_clean.loc[test_clean["Id"] == 2121, "TotalBsmtSF"].item() == 0  # NA: no basement
    assert test_clean["MSZoning"].isna().sum() == 4                              # NA: truly missing


def test_bad_cell_names_file_row_and_column(compete, house_data, tmp_path):
    lines = (house_data / "train.csv").read_text().splitlines()
    fields = lines[5].split(",")
    fields[4] = "lots"  # LotArea
    lines[5] = ",".join(fields)
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    for name in ("test.csv", "sample_submission.csv"):
        (tmp_path / name).write_bytes((house_data / name).read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    result = compete("run", "house-prices", "--data", tmp_path, "--fast", check=False, cwd=work)
    assert result.returncode == 2
    assert not (work / "runs").exists()  # bad input leaves no empty run directory behind
    assert result.stderr.strip() == f"error: {tmp_path / 'train.csv'}: row 6 (Id 5): LotArea='lots' is not a number"


@pytest.mark.slow
def test_fast_run_blends_its_models_and_keeps_its_figures(fast_run):
    run = fast_run("house-prices")   # run, validate and same bytes are the contract suite's (tests/test_contract.py)
    run_dir = run.run_dir
    cv = float(re.search(r"cv rmsle: ([0-9.]+)", run.stdout).group(1))
    assert cv < 0.14
    submission = pd.read_csv(run.submission)
    assert len(submission) == 1459 and submission["SalePrice"].between(20_000, 1_000_000).all()

    metrics = json.loads((run_dir / "metrics.json").read_text())
    oof = pd.read_csv(run_dir / "oof.csv")
    error = np.log(oof["oof_blend"]) - np.log(oof["SalePrice"])
    # The headline is every row out of fold; the figure without the outliers says so.
    assert cv == pytest.approx(np.sqrt(np.mean(error ** 2)), abs=2e-4)
    assert metrics["cv_score_without_outliers"] == pytest.approx(np.sqrt(np.mean(error[~oof["outlier"]] ** 2)), abs=2e-4)
    assert metrics["cv_score_without_outliers"] < cv and "left out" in metrics["cv_score_without_outliers_note"]
    assert set(metrics["blend_weights"]) == {"lasso", "elastic_net", "svr", "catboost"}
    assert sum(metrics["blend_weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(metrics["fold_scores"]) == 5
    assert all(len(scores) == 5 for scores in metrics["fold_scores_by_model"].values())
    assert (run_dir / "predicted_vs_actual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    with Image.open(run_dir / "predicted_vs_actual.png") as plot:  # the plot claims the score the run printed
        assert f"cv rmsle {cv:.5f}" in plot.text["Title"]
    assert len(oof) == 1460 and oof["fold"].nunique() == 5
    assert "cv rmsle" in (run_dir / "log.txt").read_text()


@pytest.mark.slow
def test_score_against_known_answers(compete, fast_run, tmp_path):
    out = fast_run("house-prices").submission
    truth = pd.read_csv(out)
    truth["SalePrice"] = truth["SalePrice"] * np.exp(0.1)  # every price off by exactly 0.1 in log
    answers = tmp_path / "answers"
    answers.mkdir()
    truth.to_csv(answers / "solution.csv", index=False)
    result = compete("score", "house-prices", out, "--answers", answers)
    assert result.stdout.strip() == "rmsle: 0.100000"


def test_trimmed_refits_without_the_rows_it_cannot_explain():
    from sklearn.linear_model import LinearRegression
    from competitions.house_prices import model as house_prices_model
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=300)
    y[:3] += 25  # three sales far from any market price
    trimmed = house_prices_model.Trimmed(LinearRegression()).fit(X, y)
    assert not trimmed.inliers_[:3].any() and trimmed.inliers_[3:].mean() > 0.97
    assert np.allclose(trimmed.model_.coef_, [1.0, -2.0, 0.5], atol=0.03)
    assert not np.allclose(LinearRegression().fit(X, y).coef_, [1.0, -2.0, 0.5], atol=0.03)


def test_winsorize_bounds_extrapolation_to_the_training_tails():
    train = np.arange(1000, dtype=float).reshape(-1, 1)
    clip = house_prices_features.Winsorize(0.99).fit(train)
    assert clip.transform(np.array([[-50.0], [500.0], [10_000.0]]))[:, 0].tolist() == pytest.approx(
        [np.quantile(train, 0.01), 500.0, np.quantile(train, 0.99)])


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_boosted_trees_learn_prices_on_coded_categories_and_pickle_to_the_same_predictions(house_data, library):
    import pickle

    from competitions.house_prices import model as house_prices_model
    data = house_prices_data.load(house_data)
    X = house_prices_features.features(data.train)
    y = np.log(data.train["SalePrice"].to_numpy(dtype=float))
    fit_rows, held_out = np.arange(1000), np.arange(1000, 1460)
    trees = lambda: house_prices_model.CodedTrees(library, trees=150, learning_rate=0.1, seed=3)  # noqa: E731
    fitted = trees().fit(X.iloc[fit_rows], y[fit_rows])
    predicted = fitted.predict(X.iloc[held_out])
    # Far better than the mean price: the trees see the numbers and the coded categories.
    assert house_prices_model.rmse(predicted, y[held_out]) < 0.45 * np.std(y[held_out])
    # A level the fit never saw (or a blank) is a missing code, not an error.
    unseen = X.iloc[held_out[:5]].copy()
    unseen["Neighborhood"] = ["Atlantis", None, "Atlantis", "Edwards", "Atlantis"]
    assert np.isfinite(fitted.predict(unseen)).all()
    assert np.array_equal(pickle.loads(pickle.dumps(fitted)).predict(X.iloc[held_out]), predicted)
    assert np.array_equal(trees().fit(X.iloc[fit_rows], y[fit_rows]).predict(X.iloc[held_out]), predicted)  # same seed
