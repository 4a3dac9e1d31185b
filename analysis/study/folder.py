"""A study folder's layout: the only module that knows where a study keeps its files.

    study.json              settings, and one record per invocation (wall time, outcome)
    runs/<name>/            one run folder (storage/runfolder.py) per distinct (batch, lr, seed)
    analysis/<task>.json    sharpness of every run; interpolation, surfaces, noise scale
    timing/timing.json      the timing pass, and its run folders timing/bs<batch>-r<ranks>/
    locks/<key>.lock        advisory locks: which process is working on what
    report/                 report.md and its figures (the default of `run.py report`)
"""
import json
import os

from storage.files import atomic_write_json, to_jsonable


def write_json_atomic(path, payload):
    """Write JSON atomically (temp file, fsync, rename), so readers never see half a file."""
    atomic_write_json(path, to_jsonable(payload))


def read_json(path):
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


class StudyFolder:
    """Paths inside one study folder."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def _join(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def study_json(self):
        """The study's settings and invocation records."""
        return self._join("study.json")

    def lock(self, key):
        """The lock file that claims work item `key` (or guards study.json: key 'study.json')."""
        return self._join("locks", f"{key}.lock")

    @property
    def runs(self):
        """The folder holding every run folder."""
        return self._join("runs")

    def run(self, name):
        """The folder of planned run `name`."""
        return self._join("runs", name)

    def task_result(self, name):
        """The result file of analysis task `name`."""
        return self._join("analysis", f"{name}.json")

    @property
    def timing_json(self):
        """The timing pass's result."""
        return self._join("timing", "timing.json")

    def timing_run(self, batch, ranks):
        """The run folder of one timed configuration."""
        return self._join("timing", f"bs{batch}-r{ranks}")

    @property
    def report(self):
        """The report's default folder."""
        return self._join("report")
