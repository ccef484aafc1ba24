"""A free-text run's fine-tuned transformer at prediction time (transformer.py trains it).

The run saves the network and its tokenizer with Hugging Face's `save_pretrained` in the
run folder's `transformer/` (safetensors weights, config.json, tokenizer.json, ...), and
model.pkl holds a `Predictor` without them: `attach` points it at the folder a run or a
package was loaded from, and the network is read from there, offline, on first use.

Light on import (torch and transformers inside functions): `compete list` imports the
package, and a Kaggle package vendors this module with inference.py. Kaggle's image has
both: torch from the Colab base it is built on (Kaggle/docker-python Dockerfile.tmpl
@b4fdbdad, its `pip freeze | grep -E 'tensorflow|keras|torch|jax|lightgbm'` kept) and
`transformers>=4.51.0` in Kaggle/docker-python kaggle_requirements.txt
@01d659bb3e2b2b048752d1670cfd7f51b9dc6d92 (common/runtimes/kaggle_notebook.py lists both).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

FOLDER = "transformer"
PREDICT_BATCH = 64
# Below this many parameters a network runs on one CPU thread: a second one's
# synchronisation costs more than it gives (a 0.4M-parameter BERT, 50 steps of 16 rows at
# load 9 on 2 cores: 10 s on one thread, 27 s on two; predicting 1,500 rows 0.6 s, 6.6 s).
SMALL_NETWORK = 5_000_000


def device():
    """cuda, else mps, else cpu: common.trainers.device's order, not imported from there
    because a Kaggle package would then ship the training stack (MLflow) with this module."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def threads_for(network):
    """One CPU thread for a small network (SMALL_NETWORK), torch's own count otherwise;
    the count restored after. Decided by the network's size, not the machine's."""
    import torch

    before = torch.get_num_threads()
    small = sum(p.numel() for p in network.parameters()) < SMALL_NETWORK
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(before)


def quiet_transformers() -> None:
    """Hugging Face's load reports (a new classifier head is the point of a fine-tune) and
    no hub access, whatever happens next."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def texts(frame: pd.DataFrame, columns: list[str], separator: str) -> list[str]:
    """Each row's text: its text columns' non-empty cells joined by the tokenizer's separator."""
    cells = frame[columns].fillna("").astype(str)
    if len(columns) == 1:
        return cells.iloc[:, 0].tolist()
    joined = f" {separator} "
    return [joined.join(cell for cell in row if cell.strip()) for row in cells.itertuples(index=False)]


def separator(tokenizer) -> str:
    return tokenizer.sep_token or tokenizer.eos_token or "|"


def probabilities(network, tokenizer, rows: list[str], task: str, max_length: int, batch: int = PREDICT_BATCH) -> np.ndarray:
    """The network's probabilities for `rows`, in their order: binary the second class's,
    multi-class one column per class, multi-label one sigmoid per label. Rows are batched
    by length (less padding), the same batches whatever called, so the same bytes."""
    import torch

    lengths = np.array([len(row) for row in rows])
    order = np.argsort(-lengths, kind="stable")
    target = next(network.parameters()).device
    network.eval()
    out = []
    with torch.no_grad(), threads_for(network):
        for start in range(0, len(rows), batch):
            chosen = [rows[i] for i in order[start:start + batch]]
            encoded = tokenizer(chosen, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = network(**{k: v.to(target) for k, v in encoded.items()}).logits.float()
            probability = torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=-1)
            out.append(probability.cpu().numpy().astype(np.float64))
    width = out[0].shape[1] if out else (1 if task == "binary" else 0)
    result = np.zeros((len(rows), width))
    if out:
        result[order] = np.concatenate(out)
    return result[:, 1] if task == "binary" else result


class Predictor:
    """A fine-tuned sequence classifier: `predict(X)` on a frame holding the text columns.
    Pickled without its network and tokenizer (they live in the run's transformer/)."""

    def __init__(self, task: str, columns: list[str], max_length: int, network=None, tokenizer=None,
                 described: str = ""):
        self.task, self.columns, self.max_length = task, list(columns), int(max_length)
        self.network, self.tokenizer, self.folder, self.described = network, tokenizer, None, described

    def __getstate__(self):
        return {**self.__dict__, "network": None, "tokenizer": None, "folder": None}

    def _loaded(self):
        if self.network is None:
            if self.folder is None or not (Path(self.folder) / "config.json").is_file():
                raise FileNotFoundError(f"{self.folder or FOLDER}: the fine-tuned transformer's folder is missing "
                                        f"(config.json, weights, tokenizer)")
            quiet_transformers()
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self.network = AutoModelForSequenceClassification.from_pretrained(self.folder, local_files_only=True)
            self.network.to(device()).eval()
        return self.network, self.tokenizer

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        network, tokenizer = self._loaded()
        return probabilities(network, tokenizer, texts(X, self.columns, separator(tokenizer)), self.task, self.max_length)

    def release(self) -> None:
        """Let the network go (a fold's, once its rows are predicted)."""
        self.network = self.tokenizer = None

    def summary(self) -> str:
        return self.described

    def save(self, folder: Path) -> None:
        """save_pretrained of the network and tokenizer into `folder`, whole or not at all."""
        network, tokenizer = self._loaded()
        folder = Path(folder)
        from common import io  # training only: a Kaggle package predicts without common.io

        with io.atomic_folder(folder) as building:
            network.save_pretrained(building, safe_serialization=True)
            tokenizer.save_pretrained(building)
            _readable_by_older(building / "tokenizer_config.json")


def _readable_by_older(path: Path) -> None:
    """transformers 5 names a plain fast tokenizer's class TokenizersBackend, which 4.x (the
    Kaggle image's floor is 4.51) does not know; PreTrainedTokenizerFast, its name in both,
    loads the same tokenizer.json (checked: a run's predictions equal under 4.51.3 and 5.25)."""
    if path.is_file():
        config = json.loads(path.read_text())
        if config.get("tokenizer_class") == "TokenizersBackend":
            config["tokenizer_class"] = "PreTrainedTokenizerFast"
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _predictors(model) -> list[Predictor]:
    ensemble = getattr(model, "ensemble", None)
    return [m for m in getattr(ensemble, "models", {}).values() if isinstance(m, Predictor)]


def attach(model, folder: Path):
    """Point the model's transformer (if any) at `folder`/transformer, where its run saved it."""
    for predictor in _predictors(model):
        if predictor.network is None:
            predictor.folder = Path(folder) / FOLDER
    return model


def save(model, run_dir: Path) -> None:
    """Write the model's transformer (if any) into `run_dir`/transformer."""
    for predictor in _predictors(model):
        predictor.save(Path(run_dir) / FOLDER)


def files(run_dir: Path) -> tuple[str, ...]:
    """The run's transformer files, relative to it (what a code package carries)."""
    folder = Path(run_dir) / FOLDER
    return tuple(str(path.relative_to(run_dir)) for path in sorted(folder.rglob("*")) if path.is_file()) \
        if folder.is_dir() else ()
