"""The generic table's CV kept to its time budget as it runs (competitions/tabular/schedule.py):
a fake clock for the schedule's decisions, real (tiny) fits for the deadline each library obeys."""
from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest

from competitions.tabular import model as M
from competitions.tabular import schedule as S


ROUNDS = 100


def run(schedule: S.Schedule, now: list, slowdown: dict[str, float], fixed: float = 0.2) -> list[tuple]:
    """Drive `schedule` as model.cross_validate does, each fit taking its planned seconds
    times its family's slowdown: for a boosted family `fixed` of them whatever its rounds,
    the rest spread over its ROUNDS, of which it grows the share it is given (at least
    20, as model.shrunk gives) up to its deadline (at least one). What was fitted: (fit,
    share of the rounds given, rounds grown)."""
    fitted = []
    while True:
        fit, deadline, share = schedule.next()
        if fit is None:
            return fitted
        seconds = schedule.planned[fit.family] * slowdown[fit.family]
        if fit.family not in schedule.cuttable:
            now[0] += seconds
            schedule.done(fit, seconds)
            fitted.append((fit, share, None))
            continue
        setup, a_round = fixed * seconds, (1 - fixed) * seconds / ROUNDS
        rounds = ROUNDS if share >= 1 else max(20, int(ROUNDS * share))
        if deadline is not None:
            rounds = int(np.clip((deadline - now[0] - setup) // a_round + 1, 1, rounds))
        now[0] += setup + rounds * a_round
        schedule.done(fit, setup + rounds * a_round, rounds, (rounds - 1) * a_round)
        fitted.append((fit, share, rounds))


def todo(repeats: int, folds: int, families: tuple) -> list[S.Fit]:
    return [S.Fit(r, k, f) for r in range(repeats) for k in range(folds) for f in families]


def test_a_cv_slowed_by_load_is_cut_to_end_in_its_budget_and_one_on_plan_is_left_whole(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(S.Schedule, "clock", staticmethod(lambda: now[0]))
    planned = {"lightgbm": 10.0, "xgboost": 10.0, "linear": 2.0}
    families, boosted = tuple(planned), dict.fromkeys(("lightgbm", "xgboost"), ROUNDS)
    # on plan: 3 repeats x 5 folds = 330 s of fits within 400 s: every fit, none stopped
    whole = run(S.Schedule(todo(3, 5, families), planned, 400.0, boosted, ("linear",), 20.0), now, dict.fromkeys(families, 1.0))
    assert len(whole) == 45 and all(share == 1 and grown in (None, ROUNDS) for _, share, grown in whole)
    assert now[0] == pytest.approx(330)
    # three times slower with the budget far from spent: still every fit whole (the bytes do not hang on the load)
    now[0] = 0.0
    slow = run(S.Schedule(todo(3, 5, families), planned, 4000.0, boosted, ("linear",), 200.0), now, dict.fromkeys(families, 3.0))
    assert len(slow) == 45 and all(share == 1 and grown in (None, ROUNDS) for _, share, grown in slow)

    # four times slower than planned: the later repeats go, the trees are cut, the first repeat stays whole
    now[0] = 0.0
    schedule = S.Schedule(todo(3, 5, families), planned, 400.0, boosted, ("linear",), 20.0)
    fitted = run(schedule, now, dict.fromkeys(families, 4.0))
    first = [fit for fit, _, _ in fitted if fit.repeat == 0]
    assert sorted(first, key=lambda f: (f.fold, f.family)) == sorted(todo(1, 5, families), key=lambda f: (f.fold, f.family))
    assert len(fitted) < 45 and schedule.cut_repeats and not schedule.dropped
    assert any(share < 1 for _, share, _ in fitted) and all(share >= S.SHORTEST for _, share, _ in fitted)
    assert now[0] + S.REFIT_FITS * 2.0 * 4.0 <= 400.0 + 20.0   # the linear model's refit on every row, within the slack

    # thirty times slower: two boosted families cannot both fit at 15% of their rounds; one goes
    # (once measured), the other is cut as far as it takes, the linear model stays, the run ends in time
    now[0] = 0.0
    schedule = S.Schedule(todo(1, 5, families), planned, 400.0, boosted, ("linear",), 20.0)
    fitted = run(schedule, now, {"lightgbm": 30.0, "xgboost": 30.0, "linear": 4.0}, fixed=0.05)
    assert len(schedule.dropped) == 1 and schedule.dropped[0] in ("lightgbm", "xgboost")
    for family in set(families) - set(schedule.dropped):   # each family kept has every fold's predictions
        assert sorted(fit.fold for fit, _, _ in fitted if fit.family == family) == list(range(5))
    assert min(share for _, share, _ in fitted) < S.SHORTEST
    assert now[0] + S.REFIT_FITS * 8.0 <= 400.0 + 20.0


def test_fewer_rounds_take_larger_steps():
    plan = M.Plan(folds=5, iterations=800, learning_rate=0.1, early_stopping=80, rounds=1000, boosted_learning_rate=0.05)
    cut = M.shrunk(plan, 0.25)
    assert (cut.iterations, cut.rounds) == (200, 250)
    assert (cut.learning_rate, cut.boosted_learning_rate) == pytest.approx((0.2, 0.1))
    assert M.shrunk(plan, 1.0) == plan and M.shrunk(plan, 0.01).rounds == 20


def frame(rows: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "c": rng.normal(size=rows)})
    return X, (X["a"] + 0.5 * X["b"] + rng.normal(scale=0.5, size=rows) > 0).astype(int).to_numpy()


def test_each_boosted_family_stops_growing_trees_at_its_deadline_and_keeps_its_best_so_far():
    X, y = frame()
    plan = M.Plan(folds=3, iterations=50, learning_rate=0.1, early_stopping=50, rounds=50, boosted_learning_rate=0.1)
    for make in (lambda: M.CatBoostModel("binary", list(X.columns), [], plan, 0),
                 lambda: M.LightGBMModel("binary", list(X.columns), [], [], plan, 0, 1),
                 lambda: M.XGBoostModel("binary", list(X.columns), [], [], plan, 0, 1)):
        free = make().fit(X, y)
        assert free.cut_ is None   # no deadline: its rounds and early stopping decide
        stopped = make()
        stopped.deadline = time.perf_counter() - 1.0   # already due: one round, then it stops
        stopped.fit(X, y)
        assert stopped.cut_ == pytest.approx(1 / 50), stopped.name
        assert stopped.best_iterations_[0] <= 1 < free.best_iterations_[0], stopped.name
        p = pickle.loads(pickle.dumps(stopped)).predict(X)   # saved with the run: nothing of the callback kept
        assert p.shape == (len(X),) and np.all((p > 0) & (p < 1))


def test_cv_repeats_the_budget_cannot_afford_are_left_out_of_the_means():
    X, y = frame(120)
    linear = {"linear": lambda: M.LinearModel("binary", list(X.columns), [], [], 0)}
    once = M.cross_validate(X, y, linear, "binary", 3, 0)
    cut = M.cross_validate(X, y, linear, "binary", 3, 0, repeats=3,
                           schedule=lambda fits: S.Schedule(fits, {"linear": 1.0}, time.perf_counter()))
    assert len(cut[2]["linear"]) == 3                # the first repeat's 3 fold models, no more
    np.testing.assert_allclose(cut[0]["linear"], once[0]["linear"])   # each row's one prediction, not a third of it
