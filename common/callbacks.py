"""What a fit tells whoever listens while it trains: each fold's (or epoch's) score as it
comes, the way fastai's callbacks hear about each epoch. `compete tune` listens to prune a
trial that is already worse than the median of the others at the same step (Optuna's
MedianPruner); a plain run has no listener and the call costs nothing.

A competition's fit calls `scored(step, value)` after each fold (step 0, 1, ...) with a
figure of the competition's metric comparable across runs at the same step (e.g. the mean
of the folds so far): house-prices, birdcall and the generic tables do. One network trained on a hold-out
reports each epoch's validation loss instead (serengeti, through common/trainers.py's
`report=True`). A listener that wants the fit to end raises `Stop`: the stages let it
through as it is (it is not a failure of the stage) and the run leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Callable, Iterator

_listeners: contextvars.ContextVar[tuple] = contextvars.ContextVar("fit_listeners", default=())


class Stop(Exception):
    """Raised by a listener to end the fit now (a pruned trial), with the reason."""


def scored(step: int, value: float) -> None:
    """Tell every listener the fit's figure after step `step`; a non-finite value is not news."""
    if not math.isfinite(float(value)):
        return
    for listener in _listeners.get():
        listener(int(step), float(value))


def listened() -> bool:
    """Whether anyone listens (a fit may skip computing a figure nobody reads)."""
    return bool(_listeners.get())


@contextlib.contextmanager
def listening(listener: Callable[[int, float], None]) -> Iterator[None]:
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)
