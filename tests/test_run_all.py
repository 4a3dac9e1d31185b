"""bench/run_all.py's plan: every committed benchmark with its arguments, named into one folder."""
import sys

import pytest

from bench.run_all import RESULTS, STEPS, RunAllError, default_folder, plan, remaining


def test_results_go_to_the_folder_of_the_cpu():
    assert default_folder("znver4") == RESULTS
    assert default_folder("emeraldrapids") == RESULTS / "emeraldrapids"


def test_every_step_writes_under_the_folder_with_its_arguments():
    steps, left_out = plan(RESULTS / "emeraldrapids", torch_installed=True, photos_present=True)
    assert left_out == [] and [name for name, *_ in steps] == [name for name, *_ in STEPS]
    for name, argv, *_ in steps:
        assert argv[0] == sys.executable and argv[-2:] == ["--name", f"emeraldrapids/{name}"]
    argv = dict((name, argv) for name, argv, *_ in steps)
    assert argv["step_time"][1:3] == ["bench/step_time.py", "--torch"]
    assert argv["step_time_1thread"][1:4] == ["bench/step_time.py", "--threads", "1"]
    assert "--processes" in argv["epoch_time_study_layout"]
    assert dict((name, env) for name, _, env, _ in steps)["kernel_peak"]["NUMBA_NUM_THREADS"] == "1"


def test_the_home_folder_names_results_as_they_are_committed():
    steps, _ = plan(RESULTS, torch_installed=False, photos_present=True)
    named = {name: argv for name, argv, *_ in steps}
    assert named["step_time"][1:] == ["bench/step_time.py", "--name", "step_time"]  # no torch: no --torch


def test_without_photos_the_epoch_steps_are_left_out_and_said_why():
    steps, left_out = plan(RESULTS, torch_installed=True, photos_present=False, skip=["tile_peak"])
    assert {name for name, *_ in steps} == {name for name, *_ in STEPS} - {"epoch_time", "epoch_time_study_layout",
                                                                          "tile_peak"}
    assert dict(left_out)["tile_peak"] == "--skip" and "PetImages" in dict(left_out)["epoch_time"]


def test_an_unknown_step_is_a_one_line_error():
    with pytest.raises(RunAllError, match="no step named step_tme"):
        plan(RESULTS, True, True, skip=["step_tme"])


def test_time_left_follows_how_this_machine_compares_with_the_typical_one():
    assert remaining(typical_left=300, elapsed=0, typical_done=0) == 300
    assert remaining(typical_left=300, elapsed=0, typical_done=100) == 300  # a dry run: nothing measured
    assert remaining(typical_left=300, elapsed=200, typical_done=100) == 600  # twice as slow so far
