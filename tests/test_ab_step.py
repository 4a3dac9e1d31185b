"""bench/ab_step.py's pure parts: the turn order, the paired ratios, and the export of a revision."""
import subprocess

import pytest

from bench.ab_step import ABError, ROOT, export_revision, paired_speedup, turn_order


def test_turns_alternate_who_goes_first():
    assert [turn_order(r) for r in range(4)] == [(0, 1), (1, 0), (0, 1), (1, 0)]


def test_speedup_is_the_median_of_each_rounds_ratio():
    # the host halves its speed in round 3: both sides slow down together and the round still reads
    # 1.25, where the ratio of the medians (11 / 10) would read 1.1
    rev, tree = [10.0, 11.0, 20.0], [8.0, 10.0, 16.0]
    assert paired_speedup(rev, tree) == (1.25, 1.1, 1.25)


def test_a_revision_is_exported_as_committed(tmp_path):
    commit, root = export_revision("HEAD", cache=tmp_path)
    committed = subprocess.run(["git", "show", f"{commit}:bench/step_time.py"], cwd=ROOT, capture_output=True,
                               check=True).stdout
    assert root == tmp_path / commit and (root / "bench" / "step_time.py").read_bytes() == committed


def test_an_unknown_revision_is_a_one_line_error(tmp_path):
    with pytest.raises(ABError, match="unknown revision 'no-such-revision'"):
        export_revision("no-such-revision", cache=tmp_path)
