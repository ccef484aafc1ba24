"""Progress for every long stage, on stderr: a tqdm bar where a terminal shows it, plain
lines where nothing redraws a row (a pipe, `nohup ... > train.log`, a scheduler's log).

tqdm redraws its bar with carriage returns, which a log file keeps as one endless line
interleaved with the log's own lines. `tqdm(...)` here is a drop-in for `tqdm.auto.tqdm`
that, when stderr is not a terminal, writes whole lines instead: one every
PLAIN_INTERVAL seconds (tqdm's own TQDM_MININTERVAL overrides it), and the last figures
when the stage ends, if it ran long enough to have printed one; a stage shorter than the
interval prints nothing (the log says what it did).
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm as _tqdm

PLAIN_INTERVAL = 30.0  # seconds between lines in a log: often enough to see a stage move, rare enough to read


def interval() -> float:
    return float(os.environ.get("TQDM_MININTERVAL") or PLAIN_INTERVAL)


class PlainBar(_tqdm):
    """tqdm writing whole lines: no carriage return, no cursor movement, no clearing."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("mininterval", interval())
        kwargs.setdefault("ascii", True)
        self._line_at, self._line_n = None, None  # when the last line was written (None: none yet), at what count
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm clearing the row: there is no row to clear
            return False
        now = time.time()
        since = now - (self._line_at if self._line_at is not None else getattr(self, "start_t", now))
        if msg is None and since < self.mininterval:  # a redraw around a log line, or the bar's first draw
            return False
        self.fp.write((str(self) if msg is None else msg).rstrip() + "\n")
        getattr(self.fp, "flush", lambda: None)()
        self._line_at, self._line_n = now, self.n
        return True

    def clear(self, nolock=False):
        pass

    def moveto(self, n):
        pass

    def close(self):
        if not hasattr(self, "pos"):  # a signal cut __init__ short (Ctrl-C, a run's SIGTERM): nothing was drawn,
            return                    # and tqdm's own close, called again from __del__, would raise on the missing row
        if not self.disable and self._line_at is not None and self._line_n != self.n:
            self._line_at = -float("inf")  # the last figures, once, whatever the interval
            self.display()
        self.leave = False
        super().close()


def tqdm(iterable=None, **kwargs):
    """`tqdm.auto.tqdm(iterable, **kwargs)` on a terminal or in a notebook; a PlainBar elsewhere. The file is
    stderr unless `file` says otherwise: stdout is kept for the command's result lines."""
    stream = kwargs.setdefault("file", sys.stderr)
    terminal = hasattr(stream, "isatty") and stream.isatty()
    notebook = type(stream).__module__.startswith("ipykernel")  # Jupyter redraws: tqdm.auto's widget
    if terminal or notebook:
        from tqdm.auto import tqdm as auto
        return auto(iterable, **kwargs)
    return PlainBar(iterable, **kwargs)
