"""What a generic table's run reports (common.competition.Report): the nested CV and its
folds, a note saying which parts of the figure are nested and which are not, and the
decisions: the layout and families, each family's own figure, the combination, the
decision, the plan the budget made, the columns read.
"""
from __future__ import annotations

import time
from pathlib import Path

from common import io
from common.competition import OutOfFold, Report
from competitions.tabular import data as D
from competitions.tabular import model as M
from competitions.tabular import text as T
from competitions.tabular import transformer as TR
from competitions.tabular.combine import Combined
from competitions.tabular.prepare import Prepared


def note(prepared: Prepared, combined: Combined, repeats: int, options) -> str:
    text = (f"out-of-fold; the {'stack (level 2)' if combined.chosen == 'stack' else 'blend weights'} and the decision "
            f"for each fold fitted on the other folds; the level-1 out-of-fold predictions it learns from come from "
            f"fold models that saw the other folds (not nested)")
    if len(combined.tried) > 1:
        text += "; the choice of blend or stack made on both nested scores (not nested)"
    left_out = [n for n in combined.by_family if n not in combined.names]
    if any(n in M.OPTIONAL for n in combined.by_family) and len(combined.by_family) > 1:
        text += (f"; whether {', '.join(n for n in combined.by_family if n in M.OPTIONAL)} joins chosen on both nested "
                 f"scores (not nested){': left out' if left_out else ''}")
    if prepared.encoded and set(M.TARGET_ENCODED) & set(combined.names):
        text += "; target encoding fitted inside each fold on its training rows (nested)"
    if repeats > 1:
        text += f"; {repeats} repeats of the CV averaged per row, each prediction from a model that did not see the row"
    if prepared.vectors is not None:
        text += (f"; each logistic regression's C chosen by an inner {T.INNER_FOLDS}-fold CV on its outer fold's "
                 f"training rows (nested); TF-IDF vocabularies fitted on train + test text without labels (not nested)")
    if prepared.transformer is not None:
        text += TR.note(prepared.transformer)
    if prepared.row_weights is not None:
        text += f"; training rows weighted by {options.weights} (blend weights, decision and score unweighted)"
    return text


def report(data: D.TabularData, options, prepared: Prepared, combined: Combined, repeats: int,
           seconds: dict[str, float], out_of_fold: OutOfFold | None, started: float, cuts=()) -> Report:
    plan, decision, target = prepared.plan, combined.decision, data.target
    return Report(cv_score=combined.cv_score, fold_scores=combined.fold_scores, note=note(prepared, combined, repeats, options),
                  out_of_fold=out_of_fold, decisions=dict(
        task=target.task, layout=(prepared.layout.describe() if prepared.layout else "table"), models=prepared.families,
        cv_by_model={n: round(float(s), 6) for n, s in combined.by_family.items()},
        cv_by_model_note="each model alone, its decision fitted on all its out-of-fold rows (not nested)",
        fold_scores_by_model={n: [round(s, 6) for s in scores] for n, scores in combined.fold_scores_by_family.items()},
        blend_weights={n: round(w, 6) for n, w in combined.weights.items()},
        combiner=combined.chosen, cv_by_combiner={kind: round(score, 6) for kind, score in combined.cv_by_combiner.items()},
        stack_coefficients=combined.combiner.described() if combined.chosen == "stack" else None,
        repeats=repeats, target_encoded=prepared.encoded, boosted_rounds=plan.rounds,
        boosted_learning_rate=plan.boosted_learning_rate, final=options.final,
        decision={"kind": decision.kind, "temperature": round(decision.temperature, 6),
                  "threshold": round(float(decision.threshold), 6),
                  "per_class": [round(float(t), 6) for t in decision.per_class]},
        folds=plan.folds, catboost_iterations=plan.iterations, learning_rate=plan.learning_rate,
        time_budget=options.time_budget, rows=len(prepared.X), unlabelled_rows=data.train.attrs.get("unlabelled_rows", 0),
        id_column=data.id_column, targets=target.columns, sample=data.layout.source.name,
        sample_shape=data.layout.shape, test=data.layout.test.name, train=data.train_source.name,
        column_kinds=prepared.columns.kinds, budget_cuts=list(cuts), family_seconds={n: round(s, 2) for n, s in seconds.items()},
        train_seconds=round(time.perf_counter() - started, 2),
        **({"transformer": TR.described(prepared.transformer)} if prepared.transformer is not None else {}),
        **({"weights_file": str(Path(options.weights).resolve()), "weights_sha256": io.sha256(options.weights)}
           if prepared.row_weights is not None else {})))
