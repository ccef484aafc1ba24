"""uberct's final boosters: the validation block is the most recent data, so (unless
--fast) the booster trains again with it added, as many trees as validation chose plus
a tenth for the larger training set; a bag adds boosters on the same rows, each with its
own seed, whose log-odds predict averages (model.UberModel). The Poisson GLM beside the
trees (competitions.uberct.poisson) is refitted on the same rows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features
from competitions.uberct import model as uber_model
from competitions.uberct import panel, poisson
from competitions.uberct.blocks import BlockPlan


@dataclass
class Final:
    booster: object            # the booster predict uses: the refitted one, else the validated one
    bagged: list               # the bag's other boosters
    rows: pd.DataFrame         # the rows they trained on
    refit: bool
    poisson: object            # the GLM predict uses: refitted with the boosters, else the one given


def final_boosters(booster, iterations: int, rows: pd.DataFrame, context: uber_features.Context, data: uber_data.UberData,
                   plan: BlockPlan, categorical: list[str], params: dict, rng: np.random.Generator, options,
                   glm: poisson.PoissonModel | None = None) -> Final:
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    refit = (not options.fast) if options.refit is None else options.refit
    bagged = []
    if refit or options.bags > 1:
        with tqdm(total=options.bags, desc="refit", disable=options.quiet) as bar:
            if refit:
                rows = uber_features.concatenate([context.block_rows(data.events, plan.validation_span, plan.negative_rate, rng),
                                                  rows])
                params = {**params, "iterations": max(1, int(round(iterations * 1.1)))}
            else:
                params = {**params, "iterations": iterations}
            features = uber_features.trained_columns(panel.features(context, rows), options.segment_history)
            if refit:
                booster = uber_model.train(features, rows.label, plan.negative_rate, categorical, params)
                if glm is not None:
                    glm = poisson.fit(features, rows.label, poisson.row_weights(rows.label, plan.negative_rate))
            bar.update()
            for bag in range(1, options.bags):
                bagged.append(uber_model.train(features, rows.label, plan.negative_rate, categorical,
                                               {**params, "random_seed": params["random_seed"] + bag}))
                bar.update()
    return Final(booster, bagged, rows, bool(refit), glm)
