"""Each segment's incident level, tracked month by month: the model's starting point.

A segment's incidents in a calendar month are Poisson with mean exp(level) x exposure,
where the exposure is what a segment of the city's average risk would see that month
(the city's incidents that month over the number of segments) and the level is the
segment's own log risk (fixed) plus a drift (an AR(1) by month, stationary). The exact
Bayes filter of (risk, drift) on a grid gives, as of any day, the posterior mean of
exp(level) for the months ahead: a recent rise or fall counts for what the drift's
persistence says it is worth, and a quiet segment is shrunk towards what its road
class, lanes, condition, junctions and neighbours predict (an empirical Bayes prior:
a weighted regression of a first, wide-prior pass on the shapefile's attributes plus a
kernel average of the other segments' residuals).

The drift's persistence and size are not assumed: they are chosen, as of each day, by
the marginal likelihood of the counts before that day over a small grid. Written by
hand (numpy): a 2-D grid filter over ~550 segments is a few matrix products a month,
and no state-space library filters a fixed effect plus an AR(1) under Poisson counts
in one vectorised pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRIFT_PERSISTENCE = (0.7, 0.85, 0.95)   # monthly AR coefficients tried
DRIFT_SIZE = (0.05, 0.1, 0.2)           # monthly innovation sds tried (log)
RISK_POINTS, DRIFT_POINTS = 61, 41      # the grid
WIDE_PRIOR_SD = 1.5                     # the first pass's prior of a log risk around the city's (0)
KERNEL_KM = 1.5                         # the neighbours' residual average
RIDGE = 1.0                             # on the attribute regression, in units of one well-measured segment


@dataclass
class Filtered:
    ahead: np.ndarray          # segments x horizons: log E[exp(level)] in the current month (0) and the ones after
    risk_mean: np.ndarray      # segments: the log risk's posterior mean
    risk_variance: np.ndarray  # segments: and its variance
    evidence: float            # log marginal likelihood of the counts (up to a constant of the data)


def filtered(counts: np.ndarray, exposure: np.ndarray, prior_mean: np.ndarray, prior_sd: np.ndarray,
             persistence: float, size: float, horizons: int) -> Filtered:
    """The Bayes filter of every segment's level over its monthly `counts` against
    `exposure` (segments x months, oldest first; the last month may be partial)."""
    segments, months = counts.shape
    stationary = size / np.sqrt(1 - persistence ** 2)
    drift = np.linspace(-4 * stationary, 4 * stationary, DRIFT_POINTS)
    step = np.exp(-0.5 * ((drift[None, :] - persistence * drift[:, None]) / size) ** 2)
    step /= step.sum(axis=1, keepdims=True)  # from drift (row) to drift (column)
    # Each segment's risk grid covers its posterior: centred where prior and counts agree.
    data_variance = 1 / (counts.sum(axis=1) + 0.5)
    data_mean = np.log((counts.sum(axis=1) + 0.5) / np.maximum(exposure.sum(axis=1), 1e-12))
    precision = 1 / data_variance + 1 / prior_sd ** 2
    centre = (data_mean / data_variance + prior_mean / prior_sd ** 2) / precision
    half_width = 5 * np.sqrt(1 / precision + stationary ** 2) + 0.1
    risk = centre[:, None] + half_width[:, None] * np.linspace(-1, 1, RISK_POINTS)[None, :]
    spacing = risk[:, 1] - risk[:, 0]
    # The risk's prior as a density times the spacing (not renormalised on the grid), so
    # the evidence compares hyperparameters fairly; the drift starts stationary.
    risk_prior = np.exp(-0.5 * ((risk - prior_mean[:, None]) / prior_sd[:, None]) ** 2) / (np.sqrt(2 * np.pi) * prior_sd[:, None])
    drift_prior = np.exp(-0.5 * (drift / stationary) ** 2)
    # float32: half the time of float64, and the belief is renormalised every month.
    belief = (risk_prior[:, :, None] * spacing[:, None, None] * (drift_prior / drift_prior.sum())[None, None, :]).astype(np.float32)
    step = step.astype(np.float32)
    level = (risk[:, :, None] + drift[None, None, :]).astype(np.float32)
    rate = np.exp(level)
    counts32, exposure32 = counts.astype(np.float32), exposure.astype(np.float32)
    evidence = np.zeros(segments)
    for month in range(months):
        if month:
            belief = belief @ step
        log_like = level * counts32[:, month, None, None] - rate * exposure32[:, month, None, None]
        top = log_like.max(axis=(1, 2), keepdims=True)
        belief = belief * np.exp(log_like - top)
        total = belief.sum(axis=(1, 2))
        evidence += np.log(np.maximum(total.astype(np.float64), 1e-300)) + top[:, 0, 0]
        belief /= np.maximum(total, np.float32(1e-30))[:, None, None]
    if months == 0:
        belief /= belief.sum(axis=(1, 2), keepdims=True)
    risk_marginal = belief.sum(axis=2, dtype=np.float64)
    risk_mean = (risk_marginal * risk).sum(axis=1)
    risk_variance = (risk_marginal * (risk - risk_mean[:, None]) ** 2).sum(axis=1)
    ahead = []
    for horizon in range(horizons):
        if horizon:
            belief = belief @ step
        ahead.append(np.log((belief * rate).sum(axis=(1, 2), dtype=np.float64)))
    return Filtered(np.column_stack(ahead), risk_mean, risk_variance, float(evidence.sum()))


def attribute_prior(risk_mean: np.ndarray, risk_variance: np.ndarray, attributes: np.ndarray,
                    distance_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical Bayes prior of each segment's log risk from the others: a weighted ridge
    regression of the first pass's risks on the attributes, plus a kernel average of the
    other segments' residuals (scaled by its own fitted slope); its sd is what the
    data leave unexplained. Rows of `attributes` with a NaN (no geometry) get the
    weighted mean and the spread of all the risks."""
    weight = 1 / (risk_variance + 0.1)
    placed = np.isfinite(attributes).all(axis=1)
    mean = np.full(len(risk_mean), np.average(risk_mean, weights=weight))
    spread = max(float(np.average((risk_mean - mean) ** 2 - risk_variance, weights=weight)), 0.01)
    if placed.sum() < attributes.shape[1] + 3:
        return mean, np.full(len(mean), np.sqrt(spread))
    x, y, w = attributes[placed], risk_mean[placed], weight[placed]
    gram = (x * w[:, None]).T @ x + RIDGE * np.diag(np.r_[0.0, np.ones(x.shape[1] - 1)])  # the intercept unpenalised
    coefficients = np.linalg.solve(gram, (x * w[:, None]).T @ y)
    residual = y - x @ coefficients
    kernel = np.exp(-0.5 * (distance_km / KERNEL_KM) ** 2) * w[None, :]
    np.fill_diagonal(kernel, 0)  # the others only: a segment's own counts are in its likelihood
    spatial = kernel @ residual / np.maximum(kernel.sum(axis=1), 1e-12)
    slope = float(np.sum(w * spatial * residual) / max(np.sum(w * spatial ** 2), 1e-12))
    mean[placed] = x @ coefficients + np.clip(slope, 0, 1) * spatial
    variance = max(float(np.average((y - mean[placed]) ** 2 - risk_variance[placed], weights=w)), 0.01)
    sd = np.full(len(mean), np.sqrt(spread))
    sd[placed] = np.sqrt(variance)
    return mean, sd


def drift_by_evidence(counts: np.ndarray, exposure: np.ndarray) -> tuple[float, float]:
    """The drift's (persistence, size) on the grid with the highest marginal likelihood
    of the counts under the wide prior."""
    wide_mean, wide_sd = np.zeros(len(counts)), np.full(len(counts), WIDE_PRIOR_SD)
    return max(((p, s) for p in DRIFT_PERSISTENCE for s in DRIFT_SIZE),
               key=lambda drift: filtered(counts, exposure, wide_mean, wide_sd, *drift, 1).evidence)


def forecast(counts: np.ndarray, exposure: np.ndarray, attributes: np.ndarray, distance_km: np.ndarray,
             persistence: float, size: float, horizons: int) -> tuple[np.ndarray, float]:
    """log E[exp(level)] of every segment for the current month and the `horizons` - 1
    after it: a wide-prior pass, then the filter again under the attributes-and-
    neighbours prior it gives (and that prior's median sd). `distance_km` is between
    the rows of `attributes` without a NaN."""
    wide_mean, wide_sd = np.zeros(len(counts)), np.full(len(counts), WIDE_PRIOR_SD)
    first = filtered(counts, exposure, wide_mean, wide_sd, persistence, size, 1)
    prior_mean, prior_sd = attribute_prior(first.risk_mean, first.risk_variance, attributes, distance_km)
    return filtered(counts, exposure, prior_mean, prior_sd, persistence, size, horizons).ahead, float(np.median(prior_sd))
