"""batchlab as an installed command: `batchlab ...` and `python -m batchlab ...` run run.py's
command line (batchlab/__main__.py); the version is kept here, once."""

__version__ = "0.1.0"
