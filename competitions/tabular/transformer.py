"""The `transformer` text family: a Hugging Face sequence classifier fine-tuned on the text
columns, when `--set backbone=PATH_OR_HF_NAME` names a local model folder or a model
already in the user's Hugging Face cache (read offline: nothing is ever downloaded).

It joins TF-IDF and NB-SVM (text.py) in the tabular package's K-fold CV on the same folds:
one fine-tune per fold from the pretrained weights predicts that fold's rows, so the blend
or stack weighs it on honest out-of-fold predictions, and the final model is fine-tuned
once more on every row (the fold networks are let go first). Binary and multi-class
targets train with cross-entropy, 0/1 label columns with one sigmoid each
(problem_type multi_label_classification).

The schedule: AdamW (weight decay on the weights, not on biases and norms), a linear
warm-up over the first tenth of the steps then a linear decay to zero, gradients clipped
at 1, batches of BATCH rows padded to their longest; the maximum length is the 95th
percentile of the texts' token counts (train and test, no labels), rounded up to a
multiple of 8, within the model's positions. Epochs: `--set epochs=` (3 by default, 2
with --fast), fewer when the time budget cannot afford them: the speed of a few steps is
measured first, and the K + 1 fine-tunes share BUDGET_SHARE of `time_budget`, the log
saying so when the budget binds (only then does the plan depend on the machine).

A plain loop rather than transformers' Trainer: it needs no `accelerate`, reports nowhere,
and stops exactly where the budget says. Seeded: the same seed gives the same bytes on CPU.
Runs on cuda, else mps, else cpu (common/trainers.py's device).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from competitions.tabular import transformer_inference as TI

log = logging.getLogger("compete")

FAMILY = "transformer"
NOT_SET = ("", "small")          # backbone values that mean no transformer (media's default is its small CNN)
LEARNING_RATE = 3e-5             # the middle of BERT's fine-tune range (2e-5..5e-5)
EPOCHS, FAST_EPOCHS = 3, 2
BATCH = 16
WARMUP_SHARE = 0.1
WEIGHT_DECAY = 0.01
CLIP = 1.0
LENGTH_QUANTILE = 0.95
MIN_LENGTH, MAX_LENGTH = 16, 512
BUDGET_SHARE = 0.8               # of time_budget for the fine-tunes; TF-IDF and NB-SVM take seconds
PREDICT_COST = 0.35              # a prediction batch against a training step (no backward, no optimiser)
TIMED_STEPS = 2                  # steps timed, after one untimed (allocations, kernels chosen)


def joins(backbone: str | None) -> bool:
    """Whether `backbone` names a transformer for the text families."""
    return (backbone or "").strip() not in NOT_SET


def resolve(backbone: str) -> Path:
    """The local folder of `backbone`: a folder holding config.json, or the snapshot of a
    repository name in the Hugging Face cache, found offline; else one line."""
    from common.backbones import hub_cache

    path = Path(backbone).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise io.InputError(f"backbone={backbone}: the folder holds no config.json; a Hugging Face model folder "
                                f"(save_pretrained's) is needed")
        return path.resolve()
    if backbone.count("/") > 1 or backbone.startswith((".", "/", "~")):
        raise io.InputError(f"backbone={backbone}: no such folder (a Hugging Face model folder, save_pretrained's, "
                            f"or a model name in the Hugging Face cache)")
    TI.quiet_transformers()
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(backbone, "config.json", cache_dir=hub_cache())
    except Exception:  # not a valid repository name
        found = None
    if not isinstance(found, str):
        raise io.InputError(f"backbone={backbone}: no such folder, and not in the Hugging Face cache ({hub_cache()}); "
                            f"nothing is downloaded at run time: pass a save_pretrained folder, or fetch the model once "
                            f"with `hf download {backbone}`")
    return Path(found).parent


@dataclass(frozen=True)
class Plan:
    backbone: str        # as given
    source: str          # the folder read
    task: str
    outputs: int         # the network's logits: classes (2 for binary) or labels
    columns: tuple
    max_length: int
    epochs: float        # may be a fraction of an epoch when the budget binds
    learning_rate: float
    batch: int
    seed: int
    step_seconds: float  # measured, for the log
    step_budget: float   # seconds of the budget a planned step may take: each fit stops when its share is spent
    wanted_epochs: int

    def words(self) -> str:
        return (f"{Path(self.source).name} fine-tuned {self.epochs:g} epoch{'s' if self.epochs != 1 else ''} a fit "
                f"(lr {self.learning_rate:g}, warm-up {WARMUP_SHARE:.0%} then linear decay, batches of {self.batch}, "
                f"max length {self.max_length})")


def load(source: str, task: str, outputs: int, seed: int):
    """The tokenizer and the sequence classifier of `source` with a new head of `outputs`,
    on the device; its head drawn from `seed`."""
    import torch

    from common.trainers import device

    TI.quiet_transformers()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    torch.manual_seed(seed)
    network = AutoModelForSequenceClassification.from_pretrained(
        source, local_files_only=True, num_labels=outputs, ignore_mismatched_sizes=True,
        problem_type="multi_label_classification" if task == "multilabel" else "single_label_classification")
    if tokenizer.pad_token is None:  # GPT-style tokenizers: pad with the end token, masked out
        tokenizer.pad_token = tokenizer.eos_token
        network.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, network.to(device())


def _optimiser(network, learning_rate: float, steps: int):
    import torch
    from transformers import get_linear_schedule_with_warmup

    decayed, plain = [], []
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            (plain if parameter.ndim < 2 or "norm" in name.lower() else decayed).append(parameter)
    optimiser = torch.optim.AdamW([{"params": decayed, "weight_decay": WEIGHT_DECAY},
                                   {"params": plain, "weight_decay": 0.0}], lr=learning_rate)
    return optimiser, get_linear_schedule_with_warmup(optimiser, math.ceil(WARMUP_SHARE * steps), steps)


def _labels(y: np.ndarray, task: str):
    import torch
    return torch.tensor(y, dtype=torch.float32) if task == "multilabel" else torch.tensor(y, dtype=torch.long)


def _step(network, optimiser, schedule, tokenizer, encoded: list[dict], labels, rows: np.ndarray) -> float:
    import torch

    batch = tokenizer.pad([encoded[i] for i in rows], return_tensors="pt")
    target = next(network.parameters()).device
    out = network(**{k: v.to(target) for k, v in batch.items()}, labels=labels[torch.as_tensor(rows)].to(target))
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), CLIP)
    optimiser.step()
    schedule.step()
    optimiser.zero_grad(set_to_none=True)
    return float(out.loss.detach())


def plan(options, task: str, outputs: int, columns: list[str], train: pd.DataFrame, test: pd.DataFrame, y: np.ndarray,
         folds: int) -> Plan:
    """Where the backbone is, the maximum length from the texts, and the epochs the time
    budget affords K fold fine-tunes and a final one, from the speed of a few steps."""
    if task == "regression":
        raise io.InputError(f"backbone={options.backbone}: the transformer family classifies; this target is a "
                            f"regression target")
    if not joins(options.backbone):
        raise io.InputError(f"models={options.models}: the transformer family needs --set backbone=PATH_OR_HF_NAME "
                            f"(a local Hugging Face model folder, or a model in the Hugging Face cache)")
    source = str(resolve(options.backbone))
    outputs = 2 if task == "binary" else outputs
    tokenizer, network = load(source, task, outputs, options.seed)
    sep = TI.separator(tokenizer)
    every = TI.texts(train, columns, sep) + TI.texts(test, columns, sep)
    counts = np.array([len(ids) for ids in tokenizer(every, add_special_tokens=True, truncation=False)["input_ids"]])
    limit = min(MAX_LENGTH, int(getattr(network.config, "max_position_embeddings", MAX_LENGTH) or MAX_LENGTH),
                int(min(tokenizer.model_max_length, 10**6)))
    max_length = int(np.clip(8 * math.ceil(np.quantile(counts, LENGTH_QUANTILE) / 8), MIN_LENGTH, limit))
    learning_rate = options.lr or LEARNING_RATE
    wanted = options.epochs or (FAST_EPOCHS if options.fast else EPOCHS)

    # The speed of a training step on the longest rows, on this load of the backbone (thrown away after).
    rows = len(train)
    longest = np.argsort(-counts[:rows], kind="stable")[:BATCH]
    encoded = tokenizer([every[i] for i in longest], truncation=True, max_length=max_length)
    encoded = [{k: v[i] for k, v in encoded.items()} for i in range(len(longest))]
    labels = _labels(y[longest], task)
    optimiser, schedule = _optimiser(network, learning_rate, 1 + TIMED_STEPS)
    network.train()
    with TI.threads_for(network):
        for step in range(1 + TIMED_STEPS):
            if step == 1:
                started = time.perf_counter()
            _step(network, optimiser, schedule, tokenizer, encoded, labels, np.arange(len(encoded)))
    step_seconds = (time.perf_counter() - started) / TIMED_STEPS
    where = next(network.parameters()).device.type
    del network, optimiser

    # K fold fits of (K-1)/K of the rows, a final one on all of them, and the predictions.
    steps_an_epoch = folds * math.ceil(rows * (folds - 1) / folds / BATCH) + math.ceil(rows / BATCH)
    predicting = PREDICT_COST * math.ceil(rows / BATCH) * step_seconds
    share = BUDGET_SHARE * options.time_budget
    affordable = max(share - predicting, 0) / (steps_an_epoch * step_seconds)
    epochs = float(wanted)
    if affordable < wanted:
        epochs = max(math.floor(affordable * 10) / 10, 1 / math.ceil(rows / BATCH))
        log.info("transformer: %d epochs a fit would take %.0f s (%.2f s a step of %d rows, %d folds + a final fit); "
                 "the budget (%.0f%% of time_budget %.0f s) affords %.2g: %g epochs a fit", wanted,
                 wanted * steps_an_epoch * step_seconds + predicting, step_seconds, BATCH, folds, BUDGET_SHARE * 100,
                 options.time_budget, affordable, epochs)
    step_budget = max(share - predicting, 0) / (epochs * steps_an_epoch)
    chosen = Plan(options.backbone, source, task, outputs, tuple(columns), max_length, round(epochs, 4), learning_rate,
                  BATCH, options.seed, round(step_seconds, 4), step_budget, wanted)
    log.info("transformer: %s on %s; %.3g s a step measured, about %.0f s for %d fold fits and the final one",
             chosen.words(), where, step_seconds, chosen.epochs * steps_an_epoch * step_seconds + predicting, folds)
    return chosen


def note(chosen: Plan) -> str:
    """What the CV note says of the transformer."""
    return (f"; the transformer ({chosen.backbone}) fine-tuned once per fold on that fold's training rows (nested), "
            f"{chosen.epochs:g} epochs, max length {chosen.max_length} from train + test token counts without labels "
            f"(not nested), the final model fine-tuned on all rows")


def described(chosen: Plan) -> dict:
    """What metrics.json records of the transformer's plan."""
    return {"backbone": chosen.backbone, "source": chosen.source, "epochs": chosen.epochs,
            "wanted_epochs": chosen.wanted_epochs, "max_length": chosen.max_length,
            "learning_rate": chosen.learning_rate, "batch": chosen.batch, "step_seconds": chosen.step_seconds}


def finetune(chosen: Plan, X: pd.DataFrame, y: np.ndarray) -> tuple[TI.Predictor, dict]:
    """One fine-tune of the plan's backbone on the rows of `X`: the predictor and a summary."""
    import torch

    started = time.perf_counter()
    tokenizer, network = load(chosen.source, chosen.task, chosen.outputs, chosen.seed)
    rows = TI.texts(X, list(chosen.columns), TI.separator(tokenizer))
    tokens = tokenizer(rows, truncation=True, max_length=chosen.max_length)
    encoded = [{k: v[i] for k, v in tokens.items()} for i in range(len(rows))]
    labels = _labels(y, chosen.task)
    batches = math.ceil(len(rows) / chosen.batch)
    steps = max(1, round(chosen.epochs * batches))
    optimiser, schedule = _optimiser(network, chosen.learning_rate, steps)
    # A fit's share of the budget is the most it may take: where the budget binds, a
    # slower (or busier) machine than measured stops early, said in the summary.
    deadline = time.perf_counter() + steps * chosen.step_budget
    shuffle = np.random.default_rng(chosen.seed)
    torch.manual_seed(chosen.seed)
    network.train()
    losses, done = [], 0
    with TI.threads_for(network):
        while done < steps and time.perf_counter() <= deadline:
            order = shuffle.permutation(len(rows))
            for start in range(0, len(rows), chosen.batch):
                losses.append(_step(network, optimiser, schedule, tokenizer, encoded, labels,
                                    order[start:start + chosen.batch]))
                done += 1
                if done >= steps or time.perf_counter() > deadline:
                    break
    network.eval()
    tail = losses[-max(1, batches):]
    words = (f"{done}/{steps} steps ({done / batches:.2g} epochs{', stopped at the deadline' if done < steps else ''}), "
             f"max length {chosen.max_length}, lr {chosen.learning_rate:g}, last epoch's loss {np.mean(tail):.4f}")
    return TI.Predictor(chosen.task, list(chosen.columns), chosen.max_length, network, tokenizer, words), \
        {"steps": done, "planned": steps, "seconds": time.perf_counter() - started}


class Transformer:
    """The family the CV fits per fold: `fit` fine-tunes, `predict` gives probabilities,
    `refit` the final model on every row (a Predictor, saved with save_pretrained)."""

    name = FAMILY

    def __init__(self, chosen: Plan):
        self.plan = chosen

    def fit(self, X: pd.DataFrame, y: np.ndarray):
        self.predictor_, self.trained_ = finetune(self.plan, X, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predictor_.predict(X)

    def summary(self) -> str:
        return self.predictor_.summary()

    def refit(self, X: pd.DataFrame, y: np.ndarray, folds: list, sample_weight=None) -> TI.Predictor:
        for fold in folds:
            fold.predictor_.release()
        import gc
        gc.collect()
        return finetune(self.plan, X, y)[0]
