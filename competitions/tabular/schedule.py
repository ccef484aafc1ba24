"""The CV's time budget kept while it runs. model.plan sizes the folds, repeats, families
and rounds once, from the data's shape, for idle cores; load that arrives, or a machine
slower than the estimate, would stretch the run past its budget (NYC flights at load 16:
2,022 s of 600). So before each fold fit the work left is estimated again from the
seconds measured so far, and what no longer fits by the CV's end is cut, in this order:
the CV repeats beyond the first (fewer bagged models), then the boosted fits' trees
(fewer rounds at a larger step, model.shrunk, and a deadline each fit stops growing trees
at, its best trees so far kept), then a whole family, when even SHORTEST of its fits
cannot fit. The plan is only ever cut, never grown: where the
machine keeps up with the plan nothing changes, and the same data and budget give the
same bytes as before; only a run that would overrun depends on the machine's speed.

Written by hand: the budget is the run's, across families of three libraries, and no
library plans a CV (common/trainers.Replan does the same for a network's epochs).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("compete")

# Of the time budget, what the CV and the final models may take; the rest is for the
# combination's nested CV, the out-of-fold files and the test's predictions.
CV_SHARE = 0.8
# The least share of its estimated seconds a boosted fit is cut to before its family goes:
# stopped sooner, its trees are too few to add to the others.
SHORTEST = 0.15
# A fit given fewer rounds may take this much longer than they were estimated to before
# its deadline stops it (the estimate is a mean; the fits after it are re-planned).
DEADLINE_SLACK = 1.2
# A shortfall this small cuts no rounds: early stopping often ends a fit sooner, and the
# deadline (with its slack) stops one that does not.
ROUNDS_KEPT = 0.9
# A final model refitted on every row costs about this many fold fits (1 / (1 - 1/K) the rows, and more).
REFIT_FITS = 1.5


@dataclass(frozen=True)
class Fit:
    repeat: int
    fold: int
    family: str


class Deadline:
    """A fit's clock time to stop growing trees at: each library's callback asks `due`
    after every round (model.py), which counts the rounds."""
    clock = staticmethod(time.perf_counter)

    def __init__(self, at: float | None):
        self.at, self.rounds, self.stopped = at, 0, False

    def due(self) -> bool:
        self.rounds += 1
        self.stopped = self.stopped or (self.at is not None and self.clock() >= self.at)
        return self.stopped


class Schedule:
    """What remains of the CV, cut to end by `end` (a clock time): `next` before each fold
    fit gives the next fit, its deadline and the share of its planned rounds it may grow,
    `done` after it takes its measured seconds. `planned`: each family's estimated seconds
    a fold fit (on idle cores, model.fold_seconds; a family it lacks: an even share of the time); `cuttable`: the
    families whose fits stop at a deadline (the boosted ones); `refitted`: those whose
    final model is fitted again on every row after the CV (its time kept aside)."""
    clock = staticmethod(time.perf_counter)

    def __init__(self, todo: list[Fit], planned: dict[str, float], end: float, cuttable=(), refitted=()):
        self.todo, self.end = list(todo), end
        share = max(end - self.clock(), 0.0) / max(len(todo), 1)
        self.planned = {fit.family: planned.get(fit.family, share) for fit in todo}
        self.known = set(planned)  # the families the plan estimated: what tells how slow the machine is
        self.cuttable, self.refitted = set(cuttable), set(refitted)
        self.natural = {family: [] for family in self.planned}  # each fit's seconds had it run uncut
        self.measured = self.expected = 0.0
        self.dropped: list[str] = []
        self.cut_repeats = False
        self.least_share = 1.0  # the fewest rounds a fit was given, a share of its planned ones
        self.share = 1.0  # of its planned rounds, the fit `next` gave last

    def estimate(self, family: str) -> float:
        """Seconds a fold fit of `family` will take: the mean of its own fits, else its
        planned seconds times how much slower than planned the other fits ran."""
        if self.natural[family]:
            return sum(self.natural[family]) / len(self.natural[family])
        return self.planned[family] * (self.measured / self.expected if self.expected else 1.0)

    def next(self) -> tuple[Fit | None, float | None, float]:
        """The next fit (None: the CV is done), the clock time it stops growing trees at
        (None: no limit) and the share of its planned rounds it may grow (1: all), the fits
        after it cut to what the time left affords."""
        self.share = 1.0
        if not self.todo:
            return None, None, 1.0
        left = self.end - self.clock() - sum(REFIT_FITS * self.estimate(family) for family in self.refitted
                                             if family in self.natural and family not in self.dropped)
        first = [fit for fit in self.todo if fit.repeat == 0]

        def least(fit: Fit) -> float:  # a fit's seconds cut as far as it can be
            return self.estimate(fit.family) * (SHORTEST if fit.family in self.cuttable else 1.0)
        while first and len(set(self.natural) - set(self.dropped)) > 1 and sum(map(least, first)) > left:
            remaining = {}
            for fit in first:
                remaining[fit.family] = remaining.get(fit.family, 0.0) + least(fit)
            family = max(remaining, key=remaining.get)
            log.info("budget: %.0f s left, %s's folds would need %.0f s at the least: %s dropped",
                     left, family, remaining[family], family)
            self.dropped.append(family)
            self.todo = [fit for fit in self.todo if fit.family != family]
            first = [fit for fit in first if fit.family != family]
        more, kept = sum(self.estimate(f.family) for f in first), []
        for fit in (fit for fit in self.todo if fit.repeat > 0):
            if more + self.estimate(fit.family) > left:
                break
            more += self.estimate(fit.family)
            kept.append(fit)
        extra = [fit for fit in self.todo if fit.repeat > 0]
        if len(kept) < len(extra):
            log.info("budget: %.0f s left for %.0f s of fits: %d of %d fold fits of the later CV repeats kept",
                     left, sum((self.estimate(f.family) for f in first + extra)), len(kept), len(extra))
            self.cut_repeats = True
        self.todo = first + kept
        fit = self.todo[0]
        if fit.family not in self.cuttable:
            return fit, None, 1.0
        fixed = sum(self.estimate(other.family) for other in self.todo if other.family not in self.cuttable)
        cut = sum(self.estimate(other.family) for other in self.todo if other.family in self.cuttable)
        scale = max(max(left - fixed, 0.0) / cut if cut else 1.0, SHORTEST)
        if scale >= 1:
            return fit, self.clock() + scale * self.estimate(fit.family), 1.0
        if scale >= ROUNDS_KEPT:
            return fit, self.clock() + DEADLINE_SLACK * scale * self.estimate(fit.family), 1.0
        if scale < self.least_share:
            log.info("budget: %.0f s left for %.0f s of fits: the boosted fits' rounds cut to %.0f%%",
                     left, fixed + cut, 100 * scale)
        self.least_share = min(self.least_share, scale)
        self.share = scale
        return fit, self.clock() + DEADLINE_SLACK * scale * self.estimate(fit.family), scale

    def done(self, fit: Fit, seconds: float, grown: float | None = None) -> None:
        """`fit` took `seconds`; `grown`: the share of the rounds it was given that it grew
        when its deadline stopped it (None: not stopped), from which, with the share of the
        planned rounds `next` gave it, its seconds at the planned rounds are told."""
        self.todo.remove(fit)
        natural = (seconds / max(grown, 0.01) if grown is not None else seconds) / self.share
        self.natural[fit.family].append(natural)
        if fit.family in self.known:
            self.measured += natural
            self.expected += self.planned[fit.family]
