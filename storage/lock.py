"""Advisory file locks (fcntl.flock): processes sharing a folder (MPI ranks, study workers,
concurrent downloads) take turns on one critical section, or skip work another process holds."""
import contextlib
import fcntl
import os


@contextlib.contextmanager
def file_lock(path, blocking=True):
    """Hold an exclusive advisory lock on `path` (created if missing) for the with-block and yield
    True. With blocking=False, yield False at once instead of waiting when another process holds it
    (the study's workers use that to claim work without queueing behind one another)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
