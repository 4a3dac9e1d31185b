"""Exit codes shared by every entry point, and the user-mistake exception they turn into code 2."""

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A user mistake in a run's settings: reported in one line, exit code 2."""
