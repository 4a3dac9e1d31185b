"""The study-throughput bench's barrier and table (the timing itself is a benchmark, not a test)."""
import threading

import pytest

from bench.study_throughput import markdown_table, wait_for_peers


def test_barrier_waits_for_every_peer(tmp_path):
    released = threading.Event()

    def peer():
        wait_for_peers(tmp_path, "bs32", 2)
        released.set()
    thread = threading.Thread(target=peer)
    thread.start()
    assert not released.wait(0.2)  # alone, the peer waits
    (tmp_path / "bs32.other").touch()  # the second process arrives
    thread.join(5)
    assert released.is_set()


def test_barrier_gives_up_with_a_clear_error(tmp_path):
    with pytest.raises(TimeoutError, match="2 processes"):
        wait_for_peers(tmp_path, "bs64", 2, timeout=0.05)


def test_table_shows_each_layout_as_a_share_of_the_best():
    best = {"runs": {32: 3000.0, 256: 2000.0}, "threads": {32: 1500.0, 256: 2500.0}}
    lines = markdown_table(best, [32, 256], 2).splitlines()
    assert lines[2] == "| 2 runs x 1 thread | 3,000 img/s (1.00) | 2,000 img/s (0.80) |"
    assert lines[3] == "| 1 run x 2 threads | 1,500 img/s (0.50) | 2,500 img/s (1.00) |"
