"""Row weights from `compete check-split --weights`: a run's `weights` option reads the
file, checks its ids against the training rows, and weights every model's fit; the CV
score stays unweighted, a weighted figure beside it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common import io
from common.adversarial import read_weights
from common.metrics import RMSE_OF_LOGS as RMSLE   # House Prices' own: RMSE of log prices
from competitions.house_prices import HouseOptions, HousePrices

PLANTED = 2.5   # the planted rows sell for this many times their price: another market


def _planted(house_data, folder):
    """600 real training rows, 40% of them (the planted ones) priced x2.5, and 200 other
    real rows as the test (their true prices kept aside); weights.csv gives the planted
    rows 0 and the others 1, as check-split's file would give rows unlike the test."""
    rows = pd.read_csv(house_data / "train.csv", keep_default_na=False, dtype=str).sample(800, random_state=1)
    train, test = rows.iloc[:600].copy(), rows.iloc[600:]
    planted = np.random.default_rng(0).random(len(train)) < 0.4
    train.loc[planted, "SalePrice"] = (train.loc[planted, "SalePrice"].astype(float) * PLANTED).round().astype(int).astype(str)
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=["SalePrice"]).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"Id": test["Id"], "SalePrice": 180000.0}).to_csv(folder / "sample_submission.csv", index=False)
    weights = folder / "weights.csv"
    pd.DataFrame({"Id": train["Id"], "weight": np.where(planted, 0.0, 1.0)}).to_csv(weights, index=False)
    return folder, weights, test.set_index("Id")["SalePrice"].astype(float)


def test_weighted_rows_move_the_model_and_the_cv_stays_unweighted(house_data, tmp_path):
    folder, weights, truth = _planted(house_data, tmp_path / "data")
    competition = HousePrices()
    data = competition.load(folder)
    options = dict(models="lasso", folds=2, fast=True, quiet=True, trim_sigmas=50.0)  # no trimming: weights alone act
    plain_model, plain = competition.fit(data, HouseOptions(**options), tmp_path / "plain")
    weighted_model, weighted = competition.fit(data, HouseOptions(**options, weights=weights), tmp_path / "weighted")

    prices = {name: competition.predict(model, data).set_index("Id")["SalePrice"]
              for name, model in (("plain", plain_model), ("weighted", weighted_model))}
    # the planted rows pull the unweighted model up (~2.5^0.4 = 1.44x); with weight 0 they pull nothing
    ratio = np.median(prices["plain"] / prices["weighted"])
    assert ratio > 1.25, ratio
    test_truth = truth.loc[prices["plain"].index.astype(str)].to_numpy()
    assert RMSLE(test_truth, prices["weighted"].to_numpy()) < RMSLE(test_truth, prices["plain"].to_numpy()) - 0.1

    # the CV score is the platform's, over every row unweighted; the weighted figure counts the unplanted rows only
    assert "weighted by" in weighted.note and "score unweighted" in weighted.note and "weighted" not in plain.note
    decisions = weighted.decisions
    assert decisions["weights_sha256"] == io.sha256(weights) and "cv_score_weighted" not in plain.decisions
    oof = weighted.out_of_fold
    unplanted = pd.read_csv(weights)["weight"].to_numpy() > 0
    predicted, actual = oof.predictions["SalePrice"].to_numpy(), oof.truth["SalePrice"].astype(float).to_numpy()
    assert weighted.cv_score == pytest.approx(RMSLE(actual, predicted), abs=1e-9)
    assert decisions["cv_score_weighted"] == pytest.approx(RMSLE(actual[unplanted], predicted[unplanted]), abs=1e-6)
    assert decisions["cv_score_weighted"] < weighted.cv_score


def test_a_weights_file_that_does_not_match_the_training_rows_is_one_line(tmp_path):
    ids = pd.Series(["1", "2", "3"])
    path = tmp_path / "weights.csv"
    path.write_text("Id,weight\n1,0.5\n2,1.5\n3,1\n")
    assert read_weights(path, pd.Series(["3", "1", "2"])).tolist() == [1.0, 0.5, 1.5]   # in the training rows' order
    for text, words in (("Id,weight\n1,1\n2,1\n", "no weight for training row Id '3'"),
                        ("Id,weight\n1,1\n2,1\n3,1\n9,1\n", "row 5: Id '9' is not a training row"),
                        ("Id,weight\n1,1\n2,1\n2,1\n3,1\n", "row 4: Id '2' is listed twice"),
                        ("Id,weight\n1,1\n2,-1\n3,1\n", "row 3: Id '2': weight '-1' is not a number >= 0"),
                        ("Id,weight\n1,1\n2,x\n3,1\n", "row 3: Id '2': weight 'x' is not a number >= 0"),
                        ("Id,w\n1,1\n2,1\n3,1\n", "expected an id column then 'weight'"),
                        ("Id,weight\n1,0\n2,0\n3,0\n", "every weight is 0")):
        path.write_text(text)
        with pytest.raises(io.InputError) as error:
            read_weights(path, ids)
        assert str(error.value).startswith(f"{path}: ") and words in str(error.value), str(error.value)
    with pytest.raises(io.InputError, match="weights=.*gone.csv: no such file; write one with `compete check-split"):
        read_weights(tmp_path / "gone.csv", ids)


def test_the_option_is_declared_and_a_mismatch_is_one_line_from_the_command(compete, house_data, tmp_path):
    listed = compete.in_process("options", "house-prices", check=True).stdout
    assert [line for line in listed.splitlines() if line.startswith("weights ")][0].split()[1:4] == ["Path", "|", "None"]
    folder, weights, _ = _planted(house_data, tmp_path / "data")
    frame = pd.read_csv(weights)
    frame.iloc[:-1].to_csv(weights, index=False)   # the last training row has no weight
    result = compete.in_process("fit", "house-prices", "--data", folder, "--fast", "--quiet", "--set", "models=lasso",
                                "--set", f"weights={weights}", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {weights}: no weight for training row Id '{frame['Id'].iloc[-1]}' (1 training rows have none)"
    assert not (tmp_path / "run").exists()


def test_the_generic_tabular_package_weights_its_rows_too(tmp_path):
    """A PLATFORM:SLUG table: the planted rows (40%, the target shifted by +10) weighted 0
    leave the linear model on the clean relation; ignored, they pull every prediction up ~4."""
    from competitions import REGISTRY
    from competitions.tabular import prepare
    generator = np.random.default_rng(0)
    x = generator.normal(size=500)
    price = 3.0 * x + generator.normal(0, 0.3, 500)
    planted = np.r_[generator.random(400) < 0.4, np.zeros(100, bool)]
    train = pd.DataFrame({"row_id": np.arange(400), "x": x[:400], "price": price[:400] + 10.0 * planted[:400]})
    test = pd.DataFrame({"row_id": np.arange(400, 500), "x": x[400:]})
    folder = tmp_path / "data"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"row_id": test["row_id"], "price": 0.0}).to_csv(folder / "sample_submission.csv", index=False)
    weights = tmp_path / "weights.csv"
    pd.DataFrame({"row_id": train["row_id"], "weight": np.where(planted[:400], 0.0, 1.0)}).to_csv(weights, index=False)

    competition = REGISTRY.competition("kaggle:planted", metric="rmse")
    data = competition.load(folder)
    options = dict(models="linear", folds=2, fast=True, quiet=True)
    predicted = {}
    for name, extra in (("plain", {}), ("weighted", {"weights": weights})):
        model, report = competition.fit(data, competition.options(**options, **extra), tmp_path / name)
        predicted[name] = competition.predict(model, data)["price"].to_numpy()
    clean = price[400:]
    assert np.median(predicted["plain"] - predicted["weighted"]) > 2.5
    assert np.sqrt(np.mean((predicted["weighted"] - clean) ** 2)) < 1.0 < np.sqrt(np.mean((predicted["plain"] - clean) ** 2))
    assert "training rows weighted by" in report.note and report.decisions["weights_sha256"] == io.sha256(weights)
    with pytest.raises(io.InputError, match="the tfidf family takes no row weights; use models=catboost,lightgbm,xgboost,linear"):
        prepare.row_weights(data, competition.options(weights=weights), ["linear", "tfidf"])
