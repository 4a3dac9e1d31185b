"""storage.lock: a held lock makes a non-blocking claim from another process fail and a blocking one
wait; released, the next claim gets it. The other process takes the lock with plain fcntl, so the
test does not check file_lock against itself."""
import subprocess
import sys
import threading
import time

from storage.lock import file_lock

# Holds an exclusive flock on argv[1] until stdin closes, announcing "held" once it has it.
HOLDER = """
import fcntl, sys
with open(sys.argv[1], "a+b") as f:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()
"""


def test_non_blocking_claim_yields_false_while_another_process_holds_the_lock(tmp_path):
    path = tmp_path / "locks" / "work.lock"
    path.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with file_lock(path, blocking=False) as mine:
            assert mine is False
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with file_lock(path, blocking=False) as mine:
        assert mine is True


def test_blocking_lock_waits_for_the_holder_and_creates_missing_folders(tmp_path):
    path = tmp_path / "new" / "folder" / "work.lock"
    with file_lock(path) as mine:  # the folders are created on the way
        assert mine is True
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    release_after = 0.5
    released = time.monotonic() + release_after

    def release():
        time.sleep(release_after)
        holder.stdin.close()

    threading.Thread(target=release).start()
    with file_lock(path) as mine:
        assert mine is True and time.monotonic() >= released - 0.05
    holder.wait(timeout=30)
