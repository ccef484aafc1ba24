"""Free-text PLATFORM:SLUG competitions through the real CLI: the layouts Kaggle ships
(nlp-getting-started scored by F1, spooky-author-identification by multi-class log loss)
made by `compete data synth`, recognised from the files, trained by the text models,
validated and scored; bad text input is one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.metrics import roc_auc
from competitions.tabular import features as F
from competitions.tabular import text as T
from competitions.tabular.model import blend
from competitions.tabular.synth import make, make_text

TWEETS, AUTHORS = "kaggle:nlp-getting-started", "kaggle:spooky-author-identification"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text")
    return {"tweets": make_text(root / "tweets", "nlp-getting-started", rows=500, seed=11),
            "authors": make_text(root / "authors", "spooky-author-identification", rows=500, seed=12)}


def _run(compete, name: str, data: Path, metric: str, work: Path) -> tuple[str, Path, Path]:
    out, run_dir = work / "submission.csv", work / "run"
    result = compete("run", name, "--data", data, "--metric", metric, "--fast", "--out", out, "--run-dir", run_dir, cwd=work)
    return result.stdout + result.stderr, out, run_dir


def test_synth_writes_the_real_layouts(compete, tmp_path):
    tweets, authors = tmp_path / "tweets", tmp_path / "authors"
    compete("data", "synth", TWEETS, "--out", tweets, "--seed", 3)
    compete("data", "synth", AUTHORS, "--out", authors, "--seed", 3)
    train = pd.read_csv(tweets / "train.csv", keep_default_na=False)
    assert list(train.columns) == ["id", "keyword", "location", "text", "target"]
    assert list(pd.read_csv(tweets / "test.csv").columns) == ["id", "keyword", "location", "text"]
    assert list(pd.read_csv(tweets / "sample_submission.csv").columns) == ["id", "target"]
    assert train["id"].is_monotonic_increasing and 0.3 < train["target"].mean() < 0.55
    assert train["text"].str.len().max() <= 157 and 8 < train["text"].str.split().str.len().mean() < 25
    assert (train["location"] == "").mean() > 0.2 and train["keyword"].str.contains("%20").any()
    sample = pd.read_csv(authors / "sample_submission.csv")
    assert list(sample.columns) == ["id", "EAP", "HPL", "MWS"] and np.allclose(sample.iloc[:, 1:].sum(axis=1), 1.0)
    assert (authors / "train.csv").read_text().startswith('"id","text","author"\n')
    answers = pd.read_csv(authors / "answers" / "solution.csv")
    assert list(answers["id"]) == list(sample["id"]) and (answers.iloc[:, 1:].sum(axis=1) == 1).all()
    # Zipf: the most frequent word is far commoner than the hundredth.
    counts = pd.read_csv(authors / "train.csv")["text"].str.lower().str.findall(r"[a-z]+").explode().value_counts()
    assert counts.iloc[0] > 20 * counts.iloc[99]


def test_a_table_with_a_review_column_stays_a_table(tmp_path):
    data = make(tmp_path / "table", "binary", rows=200, seed=0)
    train, test = pd.read_csv(data / "train.csv", dtype=str), pd.read_csv(data / "test.csv", dtype=str)
    features = [c for c in test.columns if c != "row_id"]
    kinds = F.describe(train, test, features).kinds
    assert kinds["review"] == "text" and T.recognise(train, test, kinds, "train.csv", "test.csv") is None


def test_tweets_f1_run_recognises_the_layout_and_beats_all_positive(compete, corpora, tmp_path):
    data = corpora["tweets"]
    printed, out, run_dir = _run(compete, TWEETS, data, "f1", tmp_path)
    assert ("layout free-text CSV: text column 'text' holds" in printed
            and "other columns: keyword (categorical), location (categorical) -> models tfidf, nbsvm" in printed)
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["id", "target"] and set(submission["target"]) <= {0, 1}
    assert compete("validate", TWEETS, out, "--data", data).returncode == 0
    score = float(compete("score", TWEETS, out, "--answers", data / "answers", "--metric", "f1").stdout.split(":")[-1])
    positive = pd.read_csv(data / "answers" / "solution.csv")["target"].mean()
    assert score > 2 * positive / (1 + positive) + 0.1  # F1 of flagging every tweet, plus a margin
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["models"] == ["tfidf", "nbsvm"] and set(metrics["blend_weights"]) == {"tfidf", "nbsvm"}
    assert metrics["decision"]["kind"] == "threshold" and "inner 3-fold CV" in metrics["cv_score_note"]
    assert metrics["layout"].startswith("free-text CSV") and metrics["mlflow_run_id"]
    assert (run_dir / "confusion_matrix.png").stat().st_size > 1000


def test_authors_log_loss_run_writes_calibrated_probabilities(compete, corpora, tmp_path):
    data = corpora["authors"]
    printed, out, run_dir = _run(compete, AUTHORS, data, "LogLoss", tmp_path)
    assert "layout free-text CSV: text column 'text' holds 100%" in printed and "cv log_loss:" in printed
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["id", "EAP", "HPL", "MWS"]
    assert np.allclose(submission[["EAP", "HPL", "MWS"]].sum(axis=1), 1.0, atol=1e-6)
    assert compete("validate", AUTHORS, out, "--data", data).returncode == 0
    score = float(compete("score", AUTHORS, out, "--answers", data / "answers", "--metric", "logloss").stdout.split(":")[-1])
    shares = pd.read_csv(data / "sample_submission.csv").iloc[0, 1:].astype(float).to_numpy()
    prior = float(-(shares * np.log(shares)).sum())  # the log loss of submitting the class shares
    assert score < 0.8 * prior
    assert json.loads((run_dir / "metrics.json").read_text())["decision"]["kind"] == "temperature"


def test_constant_target_and_empty_text_are_one_line(compete, corpora, tmp_path):
    source = corpora["tweets"]
    for case, change in (("constant", lambda frame: frame.assign(target=1)),
                         ("empty", lambda frame: frame.assign(text=""))):
        folder = tmp_path / case
        folder.mkdir()
        for name in ("test.csv", "sample_submission.csv"):
            (folder / name).write_bytes((source / name).read_bytes())
        change(pd.read_csv(source / "train.csv", keep_default_na=False)).to_csv(folder / "train.csv", index=False)
        result = compete("run", TWEETS, "--data", folder, "--metric", "f1", "--fast", check=False, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        expected = "'target' (the target) holds one value only" if case == "constant" else \
            "column 'text' (free text) is empty in every row"
        assert "train.csv" in result.stderr and expected in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_jigsaw_labels_auc_blend_is_chosen_by_the_metric(compete, tmp_path):
    data = make_text(tmp_path / "comments", "jigsaw-toxic-comment-classification-challenge", rows=1200, seed=13)
    printed, out, run_dir = _run(compete, "kaggle:jigsaw-toxic-comment-classification-challenge", data, "auc", tmp_path)
    assert "layout free-text CSV: text column 'comment_text' holds 100%" in printed
    labels = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["id", *labels] and submission[labels].stack().between(0, 1).all()
    # AUC scores the order: the blend's weights are the ones its out-of-fold AUC prefers,
    # so the blend ranks at least as well as the better family alone.
    oof = pd.read_csv(run_dir / "oof.csv")
    truth = oof[labels].to_numpy()
    weights = json.loads((run_dir / "metrics.json").read_text())["blend_weights"]
    blended = blend("multilabel", list(weights.values()), [oof[[f"oof_{n}_{c}" for c in labels]].to_numpy() for n in weights])
    assert roc_auc(truth, blended) >= max(roc_auc(truth, oof[[f"oof_{n}_{c}" for c in labels]].to_numpy()) for n in weights) - 1e-9
    assert (run_dir / "per_label_auc.png").stat().st_size > 1000
