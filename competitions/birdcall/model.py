"""Birdcall's fitted model: the fast baseline on pooled log-mel statistics, a CNN on
log-mel crops per fold, and their calibrated blend (all three in common.sound).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from common import sound
from common.sound import Calibration  # noqa: F401  (models pickled before the move name it here)

log = logging.getLogger("compete")


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

