"""Which days train and which validate: uberct's history cut into blocks before the test
period (the last one validates, the ones before it train), and how densely the negative
cells of the training blocks are sampled."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from common import io
from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features

log = logging.getLogger("compete")


@dataclass
class BlockPlan:
    """Which days train and which validate, and how densely negatives are sampled."""
    validation_span: tuple[int, int]        # the last block before the test period
    training_spans: list[tuple[int, int]]   # the blocks before it, most recent first
    negative_rate: float                    # share of the negative cells sampled into the panel


def plan_blocks(context: uber_features.Context, data: uber_data.UberData, options) -> BlockPlan:
    blocks = context.blocks()
    if len(blocks) < 2:
        raise io.InputError(f"{uber_data.TRAIN_FILE}: incidents cover {context.test_day} days before the test period; "
                            f"need at least {3 * context.block_days} (history, training and validation blocks)")
    validation_span, training_spans = blocks[0], blocks[1:(options.max_blocks or len(blocks)) + 1]
    per_positive = options.negatives_per_positive
    per_positive = (5 if options.fast else 15) if per_positive is None else per_positive
    segments, block_hours = len(context.ids), context.block_days * 24
    _, positive_offset = context.positive_cells(data.events)
    in_training = (positive_offset >= training_spans[-1][0] * 24) & (positive_offset < training_spans[0][1] * 24)
    positives = int(in_training.sum())
    cells = segments * block_hours * len(training_spans)
    negative_rate = float(min(1.0, per_positive * max(positives, 1) / max(cells - positives, 1)))
    log.info("uberct: %d segments, blocks of %d days: %d for training, 1 for validation; %d positive cells of %d; "
             "negatives sampled at %.4f", segments, context.block_days, len(training_spans), positives, cells, negative_rate)
    return BlockPlan(validation_span, training_spans, negative_rate)


def validation_panel(context: uber_features.Context, data: uber_data.UberData, plan: BlockPlan, rng) -> uber_features.Rows:
    """Every cell of the validation block (no sampling) on the segments the test scores."""
    scored = np.isin(np.arange(len(context.ids)), context.position.reindex(np.unique(data.test_segments)).to_numpy())
    rows = context.block_rows(data.events, plan.validation_span, 1.0, rng)
    return subset(rows, scored[rows.segment])


def subset(rows: uber_features.Rows, keep: np.ndarray) -> uber_features.Rows:
    return uber_features.Rows(rows.segment[keep], rows.hour[keep], rows.as_of[keep], None if rows.label is None else rows.label[keep])
