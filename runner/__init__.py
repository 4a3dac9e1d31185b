"""One training run as a library call: `RunSpec` (every setting of a run) and `train_run`.

Where this sits: one floor above engine/ and imagedata/ (a run needs both the images and the
engine, and those two floors must not import each other) and one floor below analysis/ (the study
trains its runs through it) and the CLI. So the floors read: ops/, parallel/ -> engine/,
imagedata/ -> runner/ -> analysis/, bench/ -> run.py. Nothing here imports analysis/ or run.py.
"""
from .errors import (EXIT_CRASH, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError,
                     resource_problem)
from .spec import RunSpec
from .training import RunOutcome, train_run

__all__ = ["EXIT_CRASH", "EXIT_DIVERGED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "RunOutcome",
           "RunSpec", "UsageError", "resource_problem", "train_run"]
