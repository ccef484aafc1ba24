"""Serengeti's validation stage: the trained model's probabilities for the held-out
sequences of the last season, as at test time (a sequence with no readable frame gets
the prior there too), their truth, and each label's score."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.metrics import MEAN_BINARY_LOG_LOSS
from competitions.serengeti.data import CLASSES, ID, SerengetiData
from competitions.serengeti.prepare import Prepared


@dataclass
class Validated:
    predicted: pd.DataFrame     # seq_id and a probability column per label, one row a validation sequence
    truth_frame: pd.DataFrame   # the same rows' labels
    truth: np.ndarray           # truth_frame's label columns as floats


def validate(model, prior: np.ndarray, data: SerengetiData, prepared: Prepared, quiet: bool = True) -> Validated:
    from common import loaders
    from competitions.serengeti import model as serengeti_model

    # every validation sequence on every process (rank 0 scores; under torchrun the others' copy is discarded)
    stream = loaders.ShardStream(prepared.shard_sets["valid"], shuffle=False, transform=serengeti_model.plain,
                                 with_keys=True, rank=0, world_size=1)
    keys = []

    def batches():
        for inputs, _, batch_keys in loaders.StreamLoader(stream, batch_size=64, num_workers=0):
            keys.extend(batch_keys)
            yield (inputs,)

    probabilities = serengeti_model.sequence_probabilities(model, batches(), quiet=quiet)
    valid_sequences = pd.unique(prepared.frames.loc[prepared.valid_mask, ID])
    predicted = serengeti_model.assemble(valid_sequences, dict(zip(keys, probabilities)), prior)
    truth_frame = data.labels.set_index(ID).loc[valid_sequences, list(CLASSES)].reset_index()
    return Validated(predicted, truth_frame, truth_frame[list(CLASSES)].to_numpy(dtype=float))


def label_log_losses(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Each label's binary log loss, by the metric itself (their mean is the cv score)."""
    return {label: MEAN_BINARY_LOG_LOSS(truth[:, [i]], predicted[:, [i]]) for i, label in enumerate(CLASSES)}
