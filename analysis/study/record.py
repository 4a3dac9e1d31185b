"""study.json: the study's settings, checked on every start so that a folder never mixes runs of
different settings, and one record per invocation of the study command (its wall time, kept current
by a heartbeat, and its outcome), which the report sums into the study's wall time."""
import os
import threading
import time
from datetime import datetime, timezone

from storage.lock import file_lock

from .folder import StudyFolder, read_json, write_json_atomic
from .plan import StudyError, StudySettings

HEARTBEAT_SECONDS = 30.0


def now_iso():
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_study(out, settings):
    """Create or reopen the study folder's study.json; refuse settings that would change runs."""
    folder = StudyFolder(out)
    path = folder.study_json
    with file_lock(folder.lock("study.json")):
        saved = read_json(path)
        if saved is None and os.path.exists(path):
            raise StudyError(f"{path} is unreadable; fix or remove it")
        if saved is not None:
            old = StudySettings.from_dict(saved["settings"]).run_settings()
            changed = [k for k, v in settings.run_settings().items() if old.get(k) != v]
            if changed:
                raise StudyError(f"{out} was started with different {', '.join(changed)} "
                                 f"({', '.join(f'{k}={old.get(k)!r}' for k in changed)}); "
                                 "use a new --out")
        record = saved or {"created": now_iso(), "invocations": []}
        record["settings"] = settings.as_dict()
        write_json_atomic(path, record)


class InvocationRecord:
    """This invocation's entry in study.json: written when it starts and refreshed every
    HEARTBEAT_SECONDS by a background thread, so the wall time of an invocation that is killed
    outright (SIGKILL, a lost machine) is still counted, to within one heartbeat."""

    def __init__(self, out, fields):
        folder = StudyFolder(out)
        self.path, self.lock = folder.study_json, folder.lock("study.json")
        self.entry = {"start": now_iso(), "end": now_iso(), "seconds": 0.0, **fields,
                      "outcome": "running"}
        self.started = time.perf_counter()
        self.stopped = threading.Event()
        self._write(append=True)
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _write(self, append=False, **fields):
        self.entry.update(end=now_iso(), seconds=time.perf_counter() - self.started, **fields)
        with file_lock(self.lock):
            record = read_json(self.path) or {"invocations": []}
            invocations = record.setdefault("invocations", [])
            if append:
                invocations.append(self.entry)
            else:  # the entry that starts at our start time is ours
                index = max(i for i, e in enumerate(invocations) if e.get("start") == self.entry["start"])
                invocations[index] = self.entry
            write_json_atomic(self.path, record)

    def _beat(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            self._write()

    def finish(self, **fields):
        """Stop the heartbeat and write the final entry (outcome and counts)."""
        self.stopped.set()
        self.thread.join()
        self._write(**fields)
