"""The CV's time budget kept while it runs. model.plan sizes the folds, repeats, families
and rounds once, from the data's shape, for idle cores; load that arrives, or a machine
slower than the estimate, would stretch the run past its budget (NYC flights at load 16:
2,022 s of 600). So before each fold fit the work left is estimated again from the
seconds measured so far, and what no longer fits by the CV's end is cut, in this order:
the CV repeats beyond the first (fewer bagged models), then the boosted fits' trees
(fewer rounds at a larger step, model.shrunk, and a deadline each fit stops growing trees
at, its best trees so far kept), then a whole family, measured at least once, when even
SHORTEST of its rounds cannot fit (the last boosted family left is cut as far as it
takes: few trees beat none). The plan is only ever cut, never grown: where the machine
keeps up with the plan nothing changes, and the same data and budget give the same bytes
as before; only a run that would overrun depends on the machine's speed.

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
# Of the time budget, how far past its end the CV may run rather than drop a family for a
# small shortfall (its other folds done, its time spent): taken from the share left after it.
DROP_SLACK = 0.05
# A fit given fewer rounds may take this much longer than they were estimated to before
# its deadline stops it (the estimate is a mean; the fits after it are re-planned).
DEADLINE_SLACK = 1.2
# With time to spare, a fit may take its share of the time left (in proportion to its
# estimate among the fits ahead), and at least this many times its estimate, before its
# deadline: against a fit running away, as the first of a family under load does, yet
# far from the estimate, so that a busy machine with the budget far from spent stops no
# fit (a run's bytes do not hang on the load).
SPARE_SLACK = 2.0
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
    after every round (model.py), which counts the rounds and times them (`growing`: the
    seconds from the first round's end to the last's; the rest of a fit's seconds, the
    encoding, the data set up and the predictions, do not shrink with the rounds)."""
    clock = staticmethod(time.perf_counter)

    def __init__(self, at: float | None):
        self.at, self.rounds, self.stopped = at, 0, False
        self.first = self.last = None

    def due(self) -> bool:
        now = self.clock()
        self.first, self.last = self.first if self.first is not None else now, now
        self.rounds += 1
        self.stopped = self.stopped or (self.at is not None and now >= self.at)
        return self.stopped

    @property
    def growing(self) -> float:
        return self.last - self.first if self.first is not None else 0.0


class Schedule:
    """What remains of the CV, cut to end by `end` (a clock time): `next` before each fold
    fit gives the next fit, its deadline and the share of its planned rounds it may grow,
    `done` after it takes its measured seconds. `planned`: each family's estimated seconds
    a fold fit (on idle cores, model.fold_seconds; a family it lacks: an even share of the
    time); `rounds`: the planned rounds of each family whose rounds can be cut (the
    boosted ones: "cuttable"); `refitted`: those whose final model is fitted again on every row after the CV
    (its time kept aside); `slack`: seconds the CV may end past `end` rather than drop a
    family (whose folds may be mostly done) for a small shortfall. A fit's seconds are told apart as fixed (all of an uncuttable
    family's) and its rounds' (what a cut shrinks)."""
    clock = staticmethod(time.perf_counter)

    def __init__(self, todo: list[Fit], planned: dict[str, float], end: float, rounds: dict[str, int] | None = None,
                 refitted=(), slack: float = 0.0):
        self.todo, self.end, self.slack = list(todo), end, slack
        share = max(end - self.clock(), 0.0) / max(len(todo), 1)
        self.planned = {fit.family: planned.get(fit.family, share) for fit in todo}
        self.known = set(planned)  # the families the plan estimated: what tells how slow the machine is
        self.rounds = dict(rounds or {})   # each cuttable family's planned rounds a fold fit (all its models')
        self.cuttable, self.refitted = set(self.rounds), set(refitted)
        self.measured = {family: [] for family in self.planned}  # each fit's (fixed, rounds') seconds at the planned rounds
        self.slower = {True: [0.0, 0.0], False: [0.0, 0.0]}  # cuttable or not: seconds measured, planned, of the fits done
        self.dropped: list[str] = []
        self.cut_repeats = False
        self.least_share = 1.0  # the fewest rounds a fit was given, a share of its planned ones

    def estimate(self, family: str) -> tuple[float, float]:
        """Seconds a fold fit of `family` will take at its planned rounds, fixed and its
        rounds': the mean of its own fits, else its planned seconds times how much slower
        than planned the other fits of its kind ran (cuttable or not: two threads of
        boosting slow down under load far more than one of a linear solver: NYC flights at
        load 13, LightGBM 7x its plan)."""
        done = self.measured[family]
        if done:
            return sum(f for f, _ in done) / len(done), sum(r for _, r in done) / len(done)
        measured, planned = self.slower[family in self.cuttable]
        seconds = self.planned[family] * (measured / planned if planned else 1.0)
        return (0.0, seconds) if family in self.cuttable else (seconds, 0.0)

    def total(self, family: str) -> float:
        return sum(self.estimate(family))

    def next(self) -> tuple[Fit | None, float | None, float]:
        """The next fit (None: the CV is done), the clock time it stops growing trees at
        (None: no limit) and the share of its planned rounds it may grow (1: all), the fits
        after it cut to what the time left affords."""
        if not self.todo:
            return None, None, 1.0
        kept = set(self.measured) - set(self.dropped)
        left = self.end - self.clock() - sum(REFIT_FITS * self.total(family) for family in self.refitted & kept)
        first = [fit for fit in self.todo if fit.repeat == 0]

        def shortest() -> float:  # the last boosted family left may be cut further: few trees beat none
            return SHORTEST if len(kept & self.cuttable) > 1 else 0.0

        def least(fit: Fit) -> float:  # a fit's seconds with its rounds cut as far as they go
            if not self.measured[fit.family]:  # a family goes on measured seconds: the others at their plan
                return self.planned[fit.family] * (shortest() if fit.family in self.cuttable else 1.0)
            fixed, rounds = self.estimate(fit.family)
            return fixed + shortest() * rounds

        # a family goes when even its least is too much, and only on its own measured seconds
        while len(kept) > 1 and sum(map(least, first)) > left + self.slack:
            remaining = {}
            for fit in first:
                if self.measured[fit.family]:
                    remaining[fit.family] = remaining.get(fit.family, 0.0) + least(fit)
            if not remaining:
                break
            family = max(remaining, key=remaining.get)
            log.info("budget: %.0f s left, %s's folds would need %.0f s at the least: %s dropped",
                     left, family, remaining[family], family)
            self.dropped.append(family)
            kept.discard(family)
            self.todo = [fit for fit in self.todo if fit.family != family]
            first = [fit for fit in first if fit.family != family]
        # the later repeats' fits in order while each fits after the first repeat's; one that
        # does not is skipped when its turn comes (a cheaper family's may still fit), and
        # until then kept: the fits before it may run faster than estimated
        more, later = sum(self.total(f.family) for f in first), []
        for fit in (fit for fit in self.todo if fit.repeat > 0):
            if more + self.total(fit.family) > left:
                break
            more += self.total(fit.family)
            later.append(fit)
        while not first and self.todo and not later:
            skipped = self.todo.pop(0)
            if not self.cut_repeats:
                log.info("budget: %.0f s left, a %s fold fit of a later CV repeat takes %.0f s: skipped, and any "
                         "other that does not fit", left, skipped.family, self.total(skipped.family))
            self.cut_repeats = True
            later = [fit for fit in self.todo[:1] if self.total(fit.family) <= left]
        if not self.todo:
            return None, None, 1.0
        ahead = first + later   # what the next fit's rounds are sized against
        fit = self.todo[0]
        if fit.family not in self.cuttable:
            return fit, None, 1.0
        fixed = sum(self.estimate(other.family)[0] for other in ahead)
        rounds = sum(self.estimate(other.family)[1] for other in ahead)
        scale = max((left - fixed) / rounds if rounds else 1.0, shortest())
        own_fixed, own_rounds = self.estimate(fit.family)
        if scale >= 1:  # time to spare: its share of it (SPARE_SLACK), as far as the others' estimates leave
            own, spare = own_fixed + own_rounds, left - (fixed + rounds - own_fixed - own_rounds)
            share = left * own / (fixed + rounds) if fixed + rounds > 0 else spare
            return fit, self.clock() + min(spare, max(SPARE_SLACK * own, share)), 1.0
        if scale >= ROUNDS_KEPT:
            return fit, self.clock() + own_fixed + DEADLINE_SLACK * scale * own_rounds, 1.0
        if scale < self.least_share:
            log.info("budget: %.0f s left for %.0f s of fits (%.0f s of them fixed): the boosted fits' rounds cut "
                     "to %.0f%%", left, fixed + rounds, fixed, 100 * scale)
        self.least_share = min(self.least_share, scale)
        return fit, self.clock() + own_fixed + DEADLINE_SLACK * scale * own_rounds, max(scale, 0.001)

    def done(self, fit: Fit, seconds: float, rounds: int = 0, growing: float | None = None) -> None:
        """`fit` took `seconds`, of them `growing` for its `rounds` (a boosted fit's, timed
        by its Deadline; None: untold). Its rounds' seconds at the planned rounds follow
        from the seconds a round; a fit of one round tells only its fixed seconds."""
        self.todo.remove(fit)
        if fit.family in self.cuttable and growing is not None and rounds > 1:
            growing = min(growing, seconds)
            measured = (seconds - growing, growing / (rounds - 1) * self.rounds[fit.family])
        elif fit.family in self.cuttable:
            measured = (seconds, self.estimate(fit.family)[1])
        else:
            measured = (seconds, 0.0)
        self.measured[fit.family].append(measured)
        if fit.family in self.known:
            self.slower[fit.family in self.cuttable][0] += sum(measured)
            self.slower[fit.family in self.cuttable][1] += self.planned[fit.family]
