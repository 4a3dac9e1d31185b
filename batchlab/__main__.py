"""`batchlab ...` (the console script) and `python -m batchlab ...`: run.py's command line, the
same subcommands."""
import sys


def main():
    """Entry point: run.py's main, its return value as the exit code."""
    from run import main as run_main
    sys.exit(run_main())


if __name__ == "__main__":
    main()
