"""Birdcall's blend of the fast baseline on pooled log-mel statistics and the CNN on
log-mel crops (both in common.sound), and its log-loss calibration.

Log loss punishes a confident mistake without limit, so every probability that leaves
here has been through a temperature fitted on out-of-fold predictions and a floor
(also fitted) that bounds the worst case.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from common import sound
from common.metrics import multiclass_log_loss

log = logging.getLogger("compete")


# ---------------------------------------------------------------- blending and calibration

@dataclass
class Calibration:
    """p_cnn * blend + p_baseline * (1 - blend), sharpened or softened by a temperature
    on the log scale, then floored and renormalised."""

    blend: float = 0.0
    temperature: float = 1.0
    floor: float = 1e-3

    def apply(self, baseline: np.ndarray, cnn: np.ndarray | None) -> np.ndarray:
        mixed = baseline if cnn is None or self.blend == 0 else self.blend * cnn + (1 - self.blend) * baseline
        logits = np.log(np.clip(mixed, 1e-12, None)) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p = np.maximum(p, self.floor)
        return p / p.sum(axis=1, keepdims=True)


FLOORS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 2e-2)


def fit_calibration(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray) -> Calibration:
    """Blend weight, temperature and floor minimising log loss on out-of-fold predictions."""
    from scipy.optimize import minimize_scalar
    blends = np.linspace(0, 1, 21) if cnn is not None else [0.0]
    best = None
    for blend in blends:
        def loss(log_t, blend=blend):
            return multiclass_log_loss(y, Calibration(blend, float(np.exp(log_t)), 1e-6).apply(baseline, cnn))
        found = minimize_scalar(loss, bounds=(np.log(0.2), np.log(5.0)), method="bounded")
        if best is None or found.fun < best[0]:
            best = (found.fun, float(blend), float(np.exp(found.x)))
    _, blend, temperature = best
    floor = min(FLOORS, key=lambda f: multiclass_log_loss(y, Calibration(blend, temperature, f).apply(baseline, cnn)))
    return Calibration(blend, temperature, floor)


def nested_calibrated(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """Honest calibrated blend of the OOF: each fold's calibration fitted on the others."""
    calibrated = np.zeros_like(baseline)
    for fold in np.unique(fold_of):
        inside, outside = fold_of == fold, fold_of != fold
        calibration = fit_calibration(baseline[outside], None if cnn is None else cnn[outside], y[outside])
        calibrated[inside] = calibration.apply(baseline[inside], None if cnn is None else cnn[inside])
    return calibrated


def nested_score(baseline: np.ndarray, cnn: np.ndarray | None, y: np.ndarray, fold_of: np.ndarray) -> float:
    return multiclass_log_loss(y, nested_calibrated(baseline, cnn, y, fold_of))


@dataclass
class BirdModel:
    species: list
    prior: np.ndarray                  # train label frequencies: the answer for an unreadable clip
    mel_settings: dict
    baseline: object                   # fitted on every usable training clip
    calibration: Calibration
    network_settings: dict | None = None
    networks: list = field(default_factory=list)   # state dicts, one per fold; averaged at test time

    def network_modules(self):
        settings = sound.NetworkSettings(**self.network_settings)
        modules = []
        for state in self.networks:
            module = sound.network(len(self.species), self.mel_settings["n_mels"], settings)
            module.load_state_dict(state)
            modules.append(module.eval())
        return modules, settings

