"""The transformer text family (`--set backbone=PATH`) through the real CLI, on a tiny BERT
the test builds from its own corpus (hidden size 32, 2 layers, a WordLevel tokenizer from
the `tokenizers` library): nothing is downloaded. The network starts from random weights,
hence `lr=3e-3` instead of the fine-tune default; what is tested is the plumbing (the
family in the blend on the same folds, its out-of-fold predictions, the model saved with
save_pretrained and read back by `compete predict` and by the Kaggle notebook, the plan
cut by the time budget, bad backbones refused), not a pretrained model's quality."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.metrics import roc_auc
from competitions.tabular import transformer as TR
from competitions.tabular import transformer_inference as TI
from tests.test_packaging_kaggle import run_as_kaggle

NAME = "kaggle:tiny-transformer"
# Each class has its own cue words among shared filler, a cue in nine rows of ten: easy
# to separate, not perfectly (the fifth row has the other class's cue).
CUES = {0: ["music", "party", "lunch", "garden", "holiday", "concert"],
        1: ["flood", "storm", "fire", "quake", "wreck", "evacuate"]}
FILLER = "the a today we my after with near city road people just saw this that very".split()


def corpus(folder: Path, rows: int, seed: int, classes: int = 2) -> Path:
    """train.csv (id, text, target), test.csv and sample_submission.csv of a text competition."""
    rng = np.random.default_rng(seed)
    cues = {**CUES, **({2: ["goal", "match", "team", "score", "league", "coach"]} if classes == 3 else {})}
    labels = rng.integers(0, classes, rows + rows // 2)
    texts = []
    for label in labels:
        cue = label if rng.random() < 0.9 else (label + 1) % classes
        words = list(rng.choice(FILLER, rng.integers(5, 12))) + list(rng.choice(cues[cue], 2))
        texts.append(" ".join(rng.permutation(words)))
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(texts)) + 1
    pd.DataFrame({"id": ids[:rows], "text": texts[:rows], "target": labels[:rows]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "text": texts[rows:]}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": ids[rows:], "target": 0.5}).to_csv(folder / "sample_submission.csv", index=False)
    return folder


def tiny_bert(folder: Path, texts: list[str], seed: int = 0, hidden_size: int = 32, positions: int = 128) -> Path:
    """A 2-layer BERT of `hidden_size` (weights drawn from `seed`) and a WordLevel
    tokenizer trained on `texts`, saved with save_pretrained: what a local backbone folder holds."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(token, tokenizer.token_to_id(token)) for token in ("[CLS]", "[SEP]")])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=positions).save_pretrained(folder)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden_size, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=positions)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a binary data folder, a three-class one, the backbone folder: its words theirs)."""
    root = tmp_path_factory.mktemp("transformer")
    data, three = corpus(root / "data", rows=300, seed=5), corpus(root / "three", rows=150, seed=7, classes=3)
    texts = pd.concat([pd.read_csv(folder / name)["text"] for folder in (data, three)
                       for name in ("train.csv", "test.csv")]).tolist()
    return data, three, tiny_bert(root / "tiny-bert", texts)


def test_the_transformer_joins_the_blend_and_its_saved_model_predicts_the_same(compete, tiny, tmp_path):
    data, _, backbone = tiny
    out, run_dir = tmp_path / "submission.csv", tmp_path / "run"
    result = compete.in_process("run", NAME, "--data", data, "--metric", "auc", "--fast", "--seed", 0, "--out", out,
                                "--run-dir", run_dir, "--set", f"backbone={backbone}", "--set", "lr=3e-3",
                                "--set", "epochs=6", check=True)
    assert "-> models tfidf, nbsvm, transformer" in result.output and "tiny-bert fine-tuned 6 epochs" in result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["models"] == ["tfidf", "nbsvm", "transformer"] and "transformer" in metrics["blend_weights"]
    assert metrics["transformer"]["max_length"] >= 16 and "fine-tuned once per fold" in metrics["cv_score_note"]
    # Its out-of-fold predictions, on the folds the other families used, separate the classes.
    oof = pd.read_csv(run_dir / "oof.csv")
    assert oof["oof_transformer"].between(0, 1).all() and oof["fold"].nunique() == 3
    assert roc_auc(oof["target"].to_numpy(), oof["oof_transformer"].to_numpy()) > 0.8   # 0.9 at best
    # The network lives in transformer/ (save_pretrained), not in the pickle.
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (run_dir / "transformer").iterdir()}
    final = pickle.loads((run_dir / "model.pkl").read_bytes()).ensemble.models["transformer"]
    assert isinstance(final, TI.Predictor) and final.network is None
    compete.in_process("predict", NAME, "--data", data, "--run-dir", run_dir, "--out", tmp_path / "predicted.csv",
                       check=True)
    assert (tmp_path / "predicted.csv").read_bytes() == out.read_bytes()
    # The Kaggle package carries the folder, and its notebook (torch and transformers from
    # the image) writes the same file.
    compete.in_process("package", NAME, "--run-dir", run_dir, "--profile", "kaggle-notebook", "--out",
                       tmp_path / "package", check=True)
    assert (tmp_path / "package" / "dataset" / "transformer" / "model.safetensors").is_file()
    assert run_as_kaggle(tmp_path / "package", data, tmp_path / "kaggle").read_bytes() == out.read_bytes()


def test_a_bad_backbone_is_one_line_and_exit_2(compete, tiny, tmp_path):
    data, _, backbone = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, words in ((tmp_path / "nowhere", "no such folder"), (empty, "holds no config.json"),
                       ("nobody/no-such-model", "not in the Hugging Face cache")):
        result = compete.in_process("run", NAME, "--data", data, "--metric", "auc", "--fast", "--out",
                                    tmp_path / "out.csv", "--run-dir", tmp_path / "run", "--set", f"backbone={bad}")
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert result.exit_code == 2 and len(errors) == 1 and words in errors[0] and str(bad) in errors[0]
        assert not (tmp_path / "out.csv").exists()


def _options(backbone: Path, **given):
    from competitions.tabular import TabularOptions
    return TabularOptions(backbone=str(backbone), lr=3e-3, **given)


def test_multiclass_and_label_columns_fine_tune_and_the_budget_cuts_the_epochs(tiny, caplog):
    _, data, backbone = tiny
    train, test = pd.read_csv(data / "train.csv"), pd.read_csv(data / "test.csv")
    y = train["target"].to_numpy()
    labels = np.column_stack([y == 1, y == 2]).astype(int)   # two 0/1 label columns
    for task, target, outputs in (("multiclass", y, 3), ("multilabel", labels, 2)):
        chosen = TR.plan(_options(backbone, epochs=10), task, outputs, ["text"], train, test, target, folds=3)
        predictor, trained = TR.finetune(chosen, train, target)
        predicted = predictor.predict(train)
        if task == "multiclass":
            assert predicted.shape == (150, 3) and np.allclose(predicted.sum(axis=1), 1)
            assert (predicted.argmax(axis=1) == y).mean() > 0.6   # a third by chance
        else:
            assert predicted.shape == (150, 2) and ((predicted >= 0) & (predicted <= 1)).all()
            assert min(roc_auc(labels[:, j], predicted[:, j]) for j in range(2)) > 0.75
    # A budget of a fraction of a second affords less than an epoch: the plan says so.
    with caplog.at_level("INFO", logger="compete"):
        chosen = TR.plan(_options(backbone, time_budget=0.05), "binary", 2, ["text"], train, test, (y == 1).astype(int), 3)
    assert chosen.epochs < chosen.wanted_epochs == TR.EPOCHS and "the budget" in caplog.text
