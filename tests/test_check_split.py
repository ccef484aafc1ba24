"""compete check-split: adversarial validation finds a planted shift and none in a random split."""
from __future__ import annotations

import json

import pandas as pd
import pytest


def _competition(house_data, folder, shift: bool):
    """800 real house-prices rows split at random into train and test; with `shift`, the
    test's LotArea is tripled (a column that drifted)."""
    rows = pd.read_csv(house_data / "train.csv", keep_default_na=False, dtype=str).sample(800, random_state=0)
    train, test = rows.iloc[:500], rows.iloc[500:].drop(columns=["SalePrice"])
    if shift:
        test = test.assign(LotArea=(test["LotArea"].astype(float) * 3).round().astype(int).astype(str))
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"Id": test["Id"], "SalePrice": 180000.0}).to_csv(folder / "sample_submission.csv", index=False)
    return folder


@pytest.mark.slow
def test_check_split_finds_a_drifted_column_and_nothing_in_a_random_split(compete, house_data, tmp_path):
    shifted = compete("check-split", "house-prices", "--data", _competition(house_data, tmp_path / "shifted", True),
                      "--out", tmp_path / "out-shifted", "--weights", tmp_path / "weights.csv", cwd=tmp_path)
    lines = shifted.stdout.strip().splitlines()
    assert lines[-1].startswith("AUC: ") and float(lines[-1][5:]) > 0.9
    top = lines[1].split()[0]
    assert top == "LotArea", shifted.stdout       # the drifted column gives the test away first
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert len(weights) == 500 and weights["weight"].mean() == pytest.approx(1, abs=1e-3)
    table = pd.read_csv(tmp_path / "out-shifted" / "test_like_rows.csv")
    # the most test-like training rows are the big lots, where the tripled test lots live
    lots = pd.read_csv(tmp_path / "shifted" / "train.csv").set_index("Id")["LotArea"]
    assert lots.loc[table["Id"].head(50)].median() > lots.median() * 1.3
    assert (tmp_path / "out-shifted" / "check_split.png").stat().st_size > 0
    # the file a run reads back: its ids are the training rows', each row weighted as check-split rated it
    fitted = compete("fit", "house-prices", "--data", tmp_path / "shifted", "--fast", "--quiet", "--set", "models=lasso",
                     "--set", "folds=2", "--set", f"weights={tmp_path / 'weights.csv'}", "--run-dir", tmp_path / "weighted",
                     cwd=tmp_path)
    assert fitted.stdout.startswith("cv rmsle: ")
    recorded = json.loads((tmp_path / "weighted" / "metrics.json").read_text())
    assert recorded["weights_file"] == str((tmp_path / "weights.csv").resolve()) and recorded["cv_score_weighted"] > 0
    assert "training rows weighted by" in recorded["cv_score_note"]

    random = compete("check-split", "house-prices", "--data", _competition(house_data, tmp_path / "random", False),
                     "--out", tmp_path / "out-random", cwd=tmp_path)
    auc = float(random.stdout.strip().splitlines()[-1][5:])
    assert 0.35 < auc < 0.65, random.stdout

