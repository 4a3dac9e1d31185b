"""Progress of long loops (training steps, downloads, decoding) on stderr.

On a terminal: a tqdm bar with rate, ETA and live figures (e.g. the running loss). When stderr is
not a terminal (a log file, a pipe): one plain line every `interval` seconds (and a last one at the
end when any was printed), so a log shows progress within a long epoch without carriage-return
clutter. Disabled: nothing at all.
"""
import sys
import time

from tqdm import tqdm

PLAIN_INTERVAL_SECONDS = 10.0


class PlainLines:
    """tqdm's meter text as whole lines, at most one per `interval` seconds plus a final one."""

    def __init__(self, total, desc, unit, stream, interval, unit_scale):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.interval, self.unit_scale = interval, unit_scale
        self.n, self.postfix, self.shown_n = 0, "", None
        self.started = self.last_shown = time.perf_counter()

    def _show(self):
        elapsed = time.perf_counter() - self.started
        self.stream.write(tqdm.format_meter(self.n, self.total, elapsed, ncols=0, prefix=self.desc,
                                            unit=self.unit, unit_scale=self.unit_scale,
                                            postfix=self.postfix or None) + "\n")
        self.stream.flush()
        self.last_shown, self.shown_n = time.perf_counter(), self.n

    def update(self, count=1):
        """Advance by `count`; print a line when `interval` seconds passed since the last one."""
        self.n += count
        if time.perf_counter() - self.last_shown >= self.interval:
            self._show()

    def set_postfix_str(self, text, refresh=True):
        """Live figures shown after the meter (e.g. 'loss 0.512')."""
        del refresh  # lines are only written by update and close
        self.postfix = text

    def close(self):
        """After periodic lines, one more for the end (a short task, which printed none, stays
        silent: the caller's own summary line follows)."""
        if self.shown_n is not None and self.shown_n != self.n:
            self._show()


class NoProgress:
    """The disabled bar: accepts the same calls and shows nothing."""

    def update(self, count=1):
        """Ignore progress."""

    def set_postfix_str(self, text, refresh=True):
        """Ignore live figures."""

    def close(self):
        """Nothing to close."""


def progress_bar(total, desc, unit="it", enabled=True, stream=None, interval=None,
                 unit_scale=False, initial=0):
    """A progress reporter with update(n), set_postfix_str(text) and close().

    A tqdm bar when `stream` (default stderr) is a terminal, plain periodic lines otherwise, nothing
    when not `enabled`. `total` may be None (unknown size: no ETA). `interval`: seconds between
    plain lines (default PLAIN_INTERVAL_SECONDS).
    """
    if not enabled:
        return NoProgress()
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True,
                    unit_scale=unit_scale, initial=initial)
    plain = PlainLines(total, desc, unit, stream,
                       PLAIN_INTERVAL_SECONDS if interval is None else interval, unit_scale)
    plain.n = initial
    return plain
