"""Exit codes shared by every entry point, the user-mistake exception they turn into code 2, and
the one-line diagnosis of a run that ran out of memory or disk."""
import errno

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A user mistake in a run's settings: reported in one line, exit code 2."""


def resource_problem(error):
    """One line saying what to change when `error` is a resource the user's settings ran out of
    (memory, disk space); None for any other error."""
    if isinstance(error, MemoryError):
        return (f"out of memory ({error or 'allocation failed'}); use a smaller --image-size, "
                "--batch or --eval-batch, or fewer ranks per node")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {error.filename}" if error.filename else ""
        return (f"no space left on the device{where}; free some space there or choose another "
                "--out / --cache-dir (a training run then continues with --resume)")
    return None
