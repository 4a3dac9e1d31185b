"""The one exception type for user mistakes in the analyses (bad run directory, mismatched models)."""


class AnalysisError(Exception):
    """A user-facing error: the CLI prints its one-line message without a traceback."""
