"""The batch-size study: `run.py study` trains the article's experiment plan and runs its analyses
into one resumable folder, `run.py report` turns that folder into report.md and its figures.

    plan.py        profiles, settings, and the planned runs and analysis tasks
    folder.py      where a study folder keeps its files
    record.py      study.json: the settings and one record per invocation
    queue.py       executing the plan in one process (locks claim runs and tasks)
    tasks.py       the analysis tasks on finished runs
    timing.py      the timing pass (seconds per epoch on an otherwise idle machine)
    projection.py  the dry run's projected duration
    command.py     the `run.py study` command line and its worker processes
    results.py     reading a study folder into per-run values and seed summaries
    findings.py    the eight findings' verdicts
    drawing.py, figures_training.py, figures_landscape.py, figures.py   the report's figures
    report.py      the `run.py report` command: report.md
"""
from .command import main

__all__ = ["main"]
