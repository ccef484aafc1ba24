"""uberct's ceiling: how close to the oracle F1 any model can come on the synthetic data,
measured on the generator's own factors (synth.Factors), not on a copy of its code.

For each seed the full-scale generator is rebuilt in memory (no files): its rates must
give process.json's oracle_f1 exactly (checked when --runs holds the data folder). Then
each figure is a rate matrix for the test rows, scored three ways, each as a ratio to
the oracle F1 (the true probabilities with the best threshold in hindsight, the named
baseline):
  hindsight   F1 with the best threshold on the test labels (what the ranking allows);
  label-free  F1 of the expected-F1 count (common.thresholds.expected_f1_count, the
              rule model.decide applies by default), which needs no labels;
  expected    the label-free flags' mean ratio over --draws redraws of the test labels
              from the true probabilities (the test period's rates, day factors and all,
              stay; only its Poisson draw changes), each against the oracle's hindsight
              F1 on the same draw: what the figure expects, free of the one draw the
              data happened to get.
The figures, each knowing less than the one before:
  (a) the true rate, with the day factors no input shows replaced by their expectation:
      the city's day, and the road's day on roads without SANRAL counts (national "N"
      roads have SANRAL counts over the test period, so theirs stays);
  (b) (a), with each segment's drift over the test months replaced by its forecast from
      the true drift of the last training month, and roadworks starting in the test
      period unknown;
  (c) (b)'s known structure (exposure), with each segment's own level (log risk +
      drift) estimated from its training counts against that exposure, generously: the
      training exposure keeps the true day factors and roadworks. Estimators:
        half-life h, shrink a   (counts + a) / (exposure + a / city rate), weighted by age;
        state-space, <prior>    the exact Bayes filter of the level on a grid (log risk
                                x drift, the drift a monthly AR(1) with the synth's
                                coefficients), monthly counts vs exposure; its forecast
                                is the posterior mean of exp(level) in each test month.
                                Priors for the log risk: `wide` (one city-wide normal),
                                `attributes+neighbours` (empirical Bayes: a regression
                                on road class, lanes, condition, junctions, and a kernel
                                average of the other segments' residuals), `true place`
                                (the risk's true attribute and hotspot part, with the
                                noise's sd: no model can know more).
      The best (c) is the tight bound: no model that learns from the training counts can
      expect more, as it knows less than the filter with the true-place prior.
With --runs DIR (a `bench/uberct_full.py --work DIR` folder: data-seed{N}/,
run-seed{N}/test_probabilities.parquet, submission-seed{N}.csv) the model's figures are
printed beside them.

Noise of the ratio, for the best (c)'s and the model's label-free flags: a block
bootstrap over test days (whole days resampled) of F1(flags) / F1(the oracle's flags at
its fixed threshold), and the label redraws above; their 5-95% intervals say how far one
test period moves a ratio, so whether ">= 0.90 on every seed" is judgeable at all. The
oracle F1's own spread over the redraws, and where the data's one draw falls in it, are
printed too.

Usage: python bench/uberct_ceiling.py [--seeds 0 1 2] [--runs DIR] [--draws 500]
One thread, about 30 s and 1 GB per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")       # one thread: the machine is shared
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _command import ROOT  # noqa: E402 (bench/ is the script's folder)
sys.path.insert(0, str(ROOT))

from common.thresholds import best_threshold, expected_f1_count, top_k  # noqa: E402
from competitions.uberct import synth  # noqa: E402
from common import metrics  # noqa: E402

HALF_LIVES = (None, 365, 180, 90)  # days; None: all history equally
SHRINKS = (0, 5, 20)               # incidents' worth of the city-wide rate
RISK_GRID, DRIFT_GRID = 121, 81    # points of the state-space filter's grid
DRIFT_SPAN = 5 * synth.DRIFT_SD / np.sqrt(1 - synth.DRIFT_AR ** 2)  # the grid's half-width: 5 stationary sd


def simulate(seed: int, scale: str):
    generator = synth.Generator(synth.SCALES[scale], seed)
    _, rates, counts = generator.simulate()
    if not np.array_equal(generator.factors.rates(), rates):
        raise SystemExit(f"seed {seed}: the kept factors do not recompose the generator's rates")
    return generator, rates, counts


def rows(generator, matrix: np.ndarray, test: np.ndarray) -> np.ndarray:
    """A segment x hour array's values at the test rows, in the sample's order."""
    return matrix[: generator.known, test].T.ravel()


def probability(rate_rows: np.ndarray) -> np.ndarray:
    return 1 - np.exp(-rate_rows.astype(np.float64))


def scored(labels: np.ndarray, p: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Hindsight F1, label-free F1 and the label-free flags of probabilities p."""
    flags = top_k(p, expected_f1_count(p))
    return best_threshold(labels, p).f1, metrics.f1(labels, flags), flags


# --- what a model could know, as factors -------------------------------------------------
def without_day_factors(generator) -> synth.Factors:
    """(a): the city's day and the road's day on roads without SANRAL counts replaced by
    their expectation (the road day is raised to 1.5 in the rate, so its stored level is
    the 1.5th root of E[level^1.5])."""
    f = generator.factors
    road_variance = synth.ROAD_DAY_SD ** 2 / (1 - synth.ROAD_DAY_AR ** 2)  # stationary, in log
    road_day = f.road_day.copy()
    uncounted = ~np.isin(generator.road_names, generator.national_roads())
    road_day[uncounted] = np.exp(1.5 * road_variance / 2)
    return replace(f, city_day=np.full_like(f.city_day, np.exp(synth.CITY_DAY_SD ** 2 / 2)), road_day=road_day)


def test_months(generator) -> tuple[int, np.ndarray]:
    """The last training month and the months of the test period."""
    f = generator.factors
    last = int(f.month_of_hour[generator.train_mask].max())
    return last, np.arange(last + 1, f.drift.shape[1])


def drift_forecast(generator, drift_last: np.ndarray) -> np.ndarray:
    """log E[exp(drift)] in each test month given the drift in the last training month."""
    last, months = test_months(generator)
    horizon = months - last
    variance = synth.DRIFT_SD ** 2 * (1 - synth.DRIFT_AR ** (2 * horizon)) / (1 - synth.DRIFT_AR ** 2)
    return synth.DRIFT_AR ** horizon[None, :] * drift_last[:, None] + variance[None, :] / 2


def forecast(generator, known: synth.Factors) -> synth.Factors:
    """(b): `known` with the test months' drift forecast and only the roadworks that had
    started before the test period."""
    f = generator.factors
    last, months = test_months(generator)
    drift = f.drift.copy()
    drift[:, months] = drift_forecast(generator, f.drift[:, last])
    first_test_day = int(np.searchsorted(generator.days, synth.TEST_START))
    started = [tuple(e) for e in f.roadwork_episodes if e[1] < first_test_day]
    roadworks = synth.roadworks_multiplier(started, len(f.log_risk), len(generator.days), generator.neighbours_along_road)
    return replace(known, drift=drift, roadworks=roadworks)


def exposure(factors: synth.Factors) -> np.ndarray:
    """The rate without the segment's own level (log risk + drift): what it multiplies."""
    return replace(factors, log_risk=np.zeros_like(factors.log_risk), drift=np.zeros_like(factors.drift)).rates()


# --- (c): the segment's level from its training counts ----------------------------------
def half_life_levels(daily_counts, daily_exposure, half_life, shrink) -> np.ndarray:
    age = daily_counts.shape[1] - 1 - np.arange(daily_counts.shape[1])
    weight = np.ones(len(age)) if half_life is None else 0.5 ** (age / half_life)
    c, e = daily_counts @ weight, daily_exposure @ weight
    city = c.sum() / e.sum()
    return (c + shrink) / (e + shrink / city)


def filtered_levels(monthly_counts, monthly_exposure, prior_mean, prior_sd, horizons: int):
    """The exact Bayes filter of each segment's level exp(risk + drift_m), on a grid.

    Monthly counts are sufficient: in a month the rate is exp(level) x exposure per hour,
    so the Poisson likelihood is exp(level x count - exp(level) x exposure). The risk is
    fixed with a normal prior; the drift starts at 0 and is an AR(1) by month. Returns
    the posterior mean of exp(level) `horizons` months ahead (segments x horizons) and the
    risk's posterior mean and variance after the last month."""
    segments = len(monthly_counts)
    total_counts, total_exposure = monthly_counts.sum(axis=1), monthly_exposure.sum(axis=1)
    centre = np.log((total_counts + 0.5) / total_exposure)
    half_width = 5 * np.sqrt(1 / (total_counts + 1) + DRIFT_SPAN ** 2 / 25) + 0.2  # per segment, wide enough for the prior too
    risk = centre[:, None] + half_width[:, None] * np.linspace(-1, 1, RISK_GRID)[None, :]       # segments x risk grid
    drift = np.linspace(-DRIFT_SPAN, DRIFT_SPAN, DRIFT_GRID)
    step = np.exp(-0.5 * ((drift[None, :] - synth.DRIFT_AR * drift[:, None]) / synth.DRIFT_SD) ** 2)
    step /= step.sum(axis=1, keepdims=True)                                                   # from drift (row) to drift (column)
    log_prior = -0.5 * ((risk - prior_mean[:, None]) / prior_sd[:, None]) ** 2
    belief = np.zeros((segments, RISK_GRID, DRIFT_GRID))
    belief[:, :, DRIFT_GRID // 2] = np.exp(log_prior - log_prior.max(axis=1, keepdims=True))  # drift 0 in month 0
    level = risk[:, :, None] + drift[None, None, :]
    for month in range(monthly_counts.shape[1]):
        if month:
            belief = belief @ step
        log_like = level * monthly_counts[:, month, None, None] - np.exp(level) * monthly_exposure[:, month, None, None]
        log_like -= log_like.max(axis=(1, 2), keepdims=True)
        belief *= np.exp(log_like)
        belief /= belief.sum(axis=(1, 2), keepdims=True)
    risk_marginal = belief.sum(axis=2)
    risk_mean = (risk_marginal * risk).sum(axis=1)
    risk_variance = (risk_marginal * (risk - risk_mean[:, None]) ** 2).sum(axis=1)
    ahead = []
    for _ in range(horizons):
        belief = belief @ step
        ahead.append((belief * np.exp(level)).sum(axis=(1, 2)))
    return np.column_stack(ahead), risk_mean, risk_variance


def place_features(generator) -> np.ndarray:
    """What the shapefile tells of a segment: road class, lanes, condition, and whether
    another road passes within 0.4 km (a junction)."""
    g, k = generator, generator.known
    distance = np.hypot(*(g.centroids[:k, None, :] - g.centroids[None, :k, :]).transpose(2, 0, 1))
    junction = np.where(g.road_of[:k, None] != g.road_of[None, :k], distance, np.inf).min(axis=1) < 0.4
    columns = [np.ones(k), g.lanes[:k], junction]
    columns += [g.class_of[:k] == c for c in np.unique(g.class_of[:k])[1:]]
    columns += [g.condition[:k] == c for c in np.unique(g.condition[:k])[1:]]
    return np.column_stack(columns).astype(float), distance


def neighbours_prior(generator, risk_mean, risk_variance) -> tuple[np.ndarray, np.ndarray]:
    """Empirical Bayes prior of each segment's log risk from the others: a weighted
    regression of the filtered risks on the shapefile's attributes, plus a kernel
    average (1.5 km) of the other segments' residuals; its sd is what the data leave."""
    features, distance = place_features(generator)
    weight = 1 / (risk_variance + 0.1)
    coefficients = np.linalg.lstsq(features * np.sqrt(weight)[:, None], risk_mean * np.sqrt(weight), rcond=None)[0]
    residual = risk_mean - features @ coefficients
    kernel = np.exp(-0.5 * (distance / 1.5) ** 2) * weight[None, :]
    np.fill_diagonal(kernel, 0)  # the others only: a segment's own counts are in its likelihood
    spatial = kernel @ residual / kernel.sum(axis=1)
    slope = float(np.sum(weight * spatial * residual) / np.sum(weight * spatial ** 2))
    mean = features @ coefficients + slope * spatial
    variance = max(float(np.average((risk_mean - mean) ** 2 - risk_variance, weights=weight)), 0.01)
    return mean, np.full(len(mean), np.sqrt(variance))


def summed_by(matrix: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Segment x hour -> sums over each run of equal keys (a day, a month: hours in time order)."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.add.reduceat(matrix, starts, axis=1, dtype=np.float64)


def level_estimates(generator, counts, test_exposure, test):
    """(c): every estimator's rates at the test rows, by name."""
    g, f, k = generator, generator.factors, generator.known
    train = np.flatnonzero(g.train_mask)
    train_exposure = exposure(f)[:k, train]  # the true day factors and roadworks: generous
    train_counts = counts[:k, train]
    _, months = test_months(g)
    month_column = f.month_of_hour[test] - months[0]
    out = {}
    days = f.day_of_hour[train]
    daily_counts, daily_exposure = summed_by(train_counts, days), summed_by(train_exposure, days)
    for half_life in HALF_LIVES:
        for shrink in SHRINKS:
            level = half_life_levels(daily_counts, daily_exposure, half_life, shrink)
            name = f"half-life {half_life or 'all'} d, shrink {shrink}"
            out[name] = (level[:, None] * test_exposure).T.ravel()
    monthly_counts, monthly_exposure = summed_by(train_counts, f.month_of_hour[train]), summed_by(train_exposure, f.month_of_hour[train])
    city = np.log(monthly_counts.sum() / monthly_exposure.sum())
    ahead, risk_mean, risk_variance = filtered_levels(monthly_counts, monthly_exposure, np.full(k, city), np.full(k, 1.0), len(months))
    out["state-space, wide prior"] = (ahead[:, month_column] * test_exposure).T.ravel()
    prior_mean, prior_sd = neighbours_prior(g, risk_mean, risk_variance)
    ahead = filtered_levels(monthly_counts, monthly_exposure, prior_mean, prior_sd, len(months))[0]
    out["state-space, attributes+neighbours prior"] = (ahead[:, month_column] * test_exposure).T.ravel()
    place = (f.log_risk - g.risk_noise)[:k]
    ahead = filtered_levels(monthly_counts, monthly_exposure, place, np.full(k, synth.RISK_NOISE_SD), len(months))[0]
    out["state-space, true place prior"] = (ahead[:, month_column] * test_exposure).T.ravel()
    return out


# --- noise ------------------------------------------------------------------------------
def day_bootstrap(labels, day, flags, oracle_flags, draws, rng) -> np.ndarray:
    """F1(flags) / F1(oracle_flags) on `draws` resamplings of whole test days."""
    days = int(day.max()) + 1
    weights = rng.multinomial(days, np.full(days, 1 / days), size=draws).astype(float)

    def f1s(flagged):
        tp = np.bincount(day, (labels & flagged).astype(float), days)
        return 2 * (weights @ tp) / (weights @ np.bincount(day, labels.astype(float), days)
                                     + weights @ np.bincount(day, flagged.astype(float), days))

    return f1s(flags) / f1s(oracle_flags)


def redrawn_ratios(p_true, flag_sets: list[np.ndarray], draws, rng) -> tuple[np.ndarray, np.ndarray]:
    """The test labels drawn again `draws` times from the true probabilities (the test
    period's own rates, day factors and all): each flag set's F1 over the oracle's
    hindsight F1 on the same draw (draws x flag sets), and that oracle F1 (draws). The
    mean ratio is what a rule expects, free of the one draw of labels the test period
    happened to get."""
    order = np.argsort(-p_true, kind="stable")
    ranks = np.arange(1, len(p_true) + 1)
    flagged = np.array([flags.sum() for flags in flag_sets])
    out, oracle = np.empty((draws, len(flag_sets))), np.empty(draws)
    for d in range(draws):
        labels = rng.random(len(p_true)) < p_true
        positives = labels.sum()
        oracle[d] = (2 * np.cumsum(labels[order]) / (ranks + positives)).max()
        out[d] = [2 * np.count_nonzero(labels & flags) / (positives + count) / oracle[d] for flags, count in zip(flag_sets, flagged)]
    return out, oracle


def model_figures(runs: Path, seed: int, ids: pd.Series):
    """The model's probabilities and submitted flags in the sample's row order, or None."""
    probabilities, submission = runs / f"run-seed{seed}" / "test_probabilities.parquet", runs / f"submission-seed{seed}.csv"
    if not (probabilities.is_file() and submission.is_file()):
        return None
    index = pd.Index(ids)
    frame = pd.read_parquet(probabilities)
    p = np.zeros(len(ids))
    p[index.get_indexer(frame.iloc[:, 0])] = frame["probability"].to_numpy()
    sub = pd.read_csv(submission, dtype={0: str})
    flags = np.zeros(len(ids), dtype=bool)
    flags[index.get_indexer(sub.iloc[:, 0])] = sub.iloc[:, 1].to_numpy() > 0
    return p, flags


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def interval(ratios: np.ndarray) -> str:
    low, middle, high = np.percentile(ratios, [5, 50, 95])
    return f"median {middle:.3f}, 5-95% [{low:.3f}, {high:.3f}], P(>= 0.90) {np.mean(ratios >= 0.90):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, help="a bench/uberct_full.py --work folder: check process.json, add the model's figures")
    parser.add_argument("--draws", type=int, default=500, help="resamplings for the day bootstrap and the label redraws")
    parser.add_argument("--scale", default="full", choices=list(synth.SCALES), help="small: a quick check of the script")
    arguments = parser.parse_args()
    print(f"uptime: {uptime()}", flush=True)
    summary, chances = [], []  # chances: P(ratio >= 0.90) over the label redraws, best (c) and model
    for seed in arguments.seeds:
        started = time.perf_counter()
        g, rates, counts = simulate(seed, arguments.scale)
        test, ids = g.test_cells()
        labels = rows(g, counts, test) > 0
        p_true = probability(rows(g, rates, test))
        oracle = best_threshold(labels, p_true)
        process = arguments.runs / f"data-seed{seed}" / "answers" / "process.json" if arguments.runs else None
        if process and process.is_file():
            published = json.loads(process.read_text())["oracle_f1"]
            if round(oracle.f1, 6) != published:
                raise SystemExit(f"seed {seed}: rebuilt oracle F1 {oracle.f1:.6f} != {process}'s {published}")
            check = f"= {process}'s"
        else:
            check = "(no process.json given to check)"
        print(f"\nseed {seed}: oracle F1 {oracle.f1:.6f} {check}; {labels.sum()} positives in {len(labels)} rows", flush=True)

        known = without_day_factors(g)
        seen = forecast(g, known)
        test_exposure = exposure(seen)[: g.known, test]
        figures = {"oracle: the true probabilities": probability(rows(g, rates, test)),
                   "(a) day factors no input shows -> expectation": probability(rows(g, known.rates(), test)),
                   "(b) (a) + drift forecast, new roadworks unknown": probability(rows(g, seen.rates(), test))}
        figures |= {f"(c) {name}": probability(rate) for name, rate in level_estimates(g, counts, test_exposure, test).items()}
        scores = {name: scored(labels, p) for name, p in figures.items()}
        model = model_figures(arguments.runs, seed, ids) if arguments.runs else None
        if model is not None:
            scores["model: its probabilities / its submission"] = (best_threshold(labels, model[0]).f1, metrics.f1(labels, model[1]), model[1])
        rng = np.random.default_rng(seed)
        names = list(scores)
        redrawn, redrawn_oracle = redrawn_ratios(p_true, [scores[name][2] for name in names], arguments.draws, rng)
        expected = dict(zip(names, redrawn.mean(axis=0)))
        print(f"  {'F1 / oracle F1':<52} hindsight  label-free  label-free expected over {arguments.draws} label redraws")
        for name in names:
            hindsight, label_free, _ = scores[name]
            print(f"  {name:<52} {hindsight / oracle.f1:9.3f}  {label_free / oracle.f1:10.3f}  {expected[name]:.3f}", flush=True)
        estimators = [name for name in names if name.startswith("(c)")]
        best = max(estimators, key=expected.get)
        print(f"  best (c), by the expected label-free ratio: {best}")
        low, middle, high = np.percentile(redrawn_oracle, [5, 50, 95])
        print(f"  oracle hindsight F1 over the label redraws: median {middle:.4f}, 5-95% [{low:.4f}, {high:.4f}]; "
              f"the test's own {oracle.f1:.4f} is above {np.mean(redrawn_oracle < oracle.f1):.0%} of them")

        day = g.factors.day_of_hour[test].repeat(g.known) - g.factors.day_of_hour[test[0]]
        oracle_flags = oracle.apply(p_true)
        noisy = [best] + (["model: its probabilities / its submission"] if model is not None else [])
        for name in noisy:
            ratios = day_bootstrap(labels, day, scores[name][2], oracle_flags, arguments.draws, rng)
            print(f"  noise, {name}'s label-free flags:\n"
                  f"    day bootstrap ({arguments.draws} draws) of F1 / F1(oracle flags at its threshold): {interval(ratios)}\n"
                  f"    label redraws ({arguments.draws}) of F1 / oracle hindsight F1: {interval(redrawn[:, names.index(name)])}", flush=True)
        ratios = {name: (scores[name][0] / oracle.f1, scores[name][1] / oracle.f1, expected[name]) for name in names}
        summary.append((seed, ratios[names[0]], ratios[names[1]], ratios[names[2]], best, ratios[best], ratios[names[-1]] if model is not None else None))
        reaching = {name: float(np.mean(redrawn[:, names.index(name)] >= 0.90)) for name in noisy}
        chances.append((reaching[best], reaching.get(noisy[-1]) if model is not None else None))
        print(f"  ({time.perf_counter() - started:.0f} s; load average {os.getloadavg()[1]:.1f} over 5 min)", flush=True)

    print("\nF1 / oracle F1 as hindsight / label-free / label-free expected")
    print("seed  oracle                 (a)                  (b)                  best (c)             model")
    for seed, oracle_row, a, b, best, c, model_row in summary:
        cells = [f"{h:.3f}/{lf:.3f}/{e:.3f}" for h, lf, e in [oracle_row, a, b, c] + ([model_row] if model_row else [])]
        print(f"{seed:>4}  " + "  ".join(f"{cell:<19}" for cell in cells) + ("" if model_row else "  -") + f"   [(c): {best[4:]}]")
    best_chance = np.prod([c for c, _ in chances])
    model_chance = np.prod([m for _, m in chances]) if all(m is not None for _, m in chances) else None
    print(f"P(>= 0.90 on every seed above) over the label redraws, seeds independent: best (c) {best_chance:.2f}"
          + (f", model {model_chance:.2f}" if model_chance is not None else ""))
    print(f"uptime: {uptime()}")


if __name__ == "__main__":
    main()
