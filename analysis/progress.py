"""Progress lines for long analyses, written to stderr so JSON on stdout stays clean."""
import sys
import time


def stderr_log(message):
    """Print one timestamped progress line to stderr and flush it at once."""
    print(f"[analyze {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def quiet(message):
    """A log callable that discards its message (the default for library calls and tests)."""
    del message
