"""The study's comparison points and its eight findings on a planted study folder (no training).

The planted folder is written by hand the way `run.py study` leaves one: study.json, runs/<name>/
{config,status,layers}.json, metrics.jsonl and update_norms.npy, analysis/sharpness-<group>-<run>.json
and timing/timing.json. Every value a finding could read by mistake is planted with the opposite
outcome: distances, update sizes and epochs differ at the comparison point from everywhere else, the
sharpness of the other group, the other eps and the subspace is reversed, and so are the runs' own
epoch times and the 2-rank timing. Each finding's verdict is then known, and is checked through
`compute_findings` and through `run.py report`.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_study_stats import hand_welch

from analysis.study import tasks as study_tasks
from analysis.comparison import ComparisonPoint, comparison_point
from analysis.stats import CONTRADICTED, INCONCLUSIVE, REPRODUCED
from analysis.study.findings import compute_findings
from analysis.study.plan import AnalysisTask, StudySettings
from analysis.study.results import StudyResults
from analysis.study.timing import timing_params

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
LEVELS = [0.65, 0.6, 0.55]


# ---- comparison_point ---------------------------------------------------------------------------

def test_all_early_stopped_runs_are_compared_at_their_best_weights():
    statuses = [{"status": "early_stopped", "best_epoch": 7, "snapshots": {"0.65": 2}},
                {"status": "early_stopped", "best_epoch": 4, "snapshots": {"0.65": 3, "0.6": 4}}]
    point = comparison_point(statuses)
    assert point == ComparisonPoint(None) and point.weights == "best"
    assert [point.epoch(s) for s in statuses] == [7, 4]


def test_a_capped_run_moves_the_group_to_the_lowest_common_level():
    statuses = [{"status": "early_stopped", "best_epoch": 9, "snapshots": {"0.65": 2, "0.6": 3, "0.55": 5}},
                {"status": "finished", "best_epoch": 4, "snapshots": {"0.65": 5, "0.6": 8}},
                {"status": "early_stopped", "best_epoch": 6, "snapshots": {"0.6": 2, "0.65": 1, "0.55": 3}}]
    point = comparison_point(statuses)
    assert point.level == 0.6 and point.weights == "loss0.6"
    assert point.as_dict() == {"weights": "loss0.6", "level": 0.6}
    assert [point.epoch(s) for s in statuses] == [3, 8, 2]


def test_a_run_without_any_snapshot_leaves_the_group_without_a_point():
    plateau = {"status": "finished", "best_epoch": 3, "snapshots": {}}
    assert comparison_point([{"status": "early_stopped", "best_epoch": 2, "snapshots": {"0.65": 1}},
                             plateau]) is None
    assert comparison_point([{"status": "finished", "best_epoch": 2, "snapshots": {"0.65": 1}},
                             {"status": "finished", "best_epoch": 2}]) is None  # written before snapshots
    assert comparison_point([{"status": "finished", "snapshots": {"0.65": 1}},
                             {"status": "finished", "snapshots": {"0.6": 4}}]) is None  # no level shared
    assert comparison_point([]) is None


# ---- the planted study --------------------------------------------------------------------------

SETTINGS = StudySettings(batches=[32, 256], base_batch=32, base_lr=0.01, sweep_lrs=[], seeds=3,
                         trend_seeds=3, sweep_seeds=1, image_size=32, max_epochs=12, patience=2,
                         analysis_examples=32, sharpness_eps=[1e-3, 5e-4], sharpness_space="both",
                         snapshot_levels=LEVELS)
TABLE = [{"name": "conv1.weight", "layer": "conv1", "kind": "conv", "role": "weight", "shape": [4, 3, 3, 3],
          "offset": 0, "size": 108},
         {"name": "dense1.weight", "layer": "dense1", "kind": "dense", "role": "weight", "shape": [1, 4],
          "offset": 108, "size": 4}]


def spec(batch, lr, seed):
    """The planted facts of one run: status, epochs, crossings of the levels, per-value plants."""
    j = seed - 1  # seed jitter, so every setting has a spread
    if (batch, lr) == (32, 0.01):  # converged; crosses 0.6 early; far and busy at that point
        c60 = 3 + (seed == 2)
        return dict(status="early_stopped", epochs=11, best_epoch=9, spe=10, crossings=(2, c60, c60 + 1),
                    first_loss=2.5 + 0.01 * j, best_val=0.50 + 0.002 * j,
                    dist=(1.0 + 0.01 * j, 2.0 + 0.02 * j), norms=(3e-3 * (1 + 0.01 * j), 1e-4 * (1 + 0.01 * j)),
                    train_seconds=5.0 + 0.1 * j)
    if (batch, lr) == (256, 0.01):  # capped at max_epochs; crosses 0.6 late, never 0.55
        c60 = 8 + (seed == 1)
        return dict(status="finished", epochs=12, best_epoch=5, spe=2, crossings=(5, c60, None),
                    first_loss=0.70, best_val=0.60 + 0.002 * j,
                    dist=(3.0 + 0.01 * j, 1.0 + 0.02 * j), norms=(1e-3 * (1 + 0.01 * j), 1e-2 * (1 + 0.01 * j)),
                    train_seconds=1.0 + 0.1 * j)
    # bs 256 at its linearly scaled lr 0.08: converged, closes 90 % of the validation-loss gap
    return dict(status="early_stopped", epochs=8, best_epoch=6, spe=2, crossings=(2, 3, 4),
                first_loss=0.70, best_val=0.51 + 0.002 * j, dist=(1.5, 1.5), norms=(2e-3, 2e-3),
                train_seconds=1.0)


def train_loss_curve(s):
    """Epoch training losses that cross 0.65, 0.6, 0.55 exactly at the planted epochs."""
    c65, c60, c55 = s["crossings"]
    losses = []
    for epoch in range(1, s["epochs"] + 1):
        if epoch < c65:
            loss = 0.70
        elif epoch < c60:
            loss = 0.62
        elif c55 is None or epoch < c55:
            loss = 0.57
        else:
            loss = 0.52 - 0.01 * (epoch - c55)
        losses.append(loss)
    losses[0] = max(losses[0], s["first_loss"])
    return losses


PLANTED = {(b, lr, seed): spec(b, lr, seed) for b, lr in ((32, 0.01), (256, 0.01), (256, 0.08))
           for seed in SEEDS}


def run_name(batch, lr, seed):
    return f"bs{batch}-lr{lr:g}-s{seed}"


def write_run(folder, batch, lr, seed, s):
    """One run folder as training leaves it (everything but the weights)."""
    folder.mkdir(parents=True)
    losses = train_loss_curve(s)
    point = s["crossings"][1]  # the base group's point is level 0.6 (bs 256 at lr 0.01 is capped)
    metrics = []
    for epoch, loss in enumerate(losses, 1):
        # distance from init: one value at the level-0.6 epoch, another everywhere else
        dist = s["dist"][1] if epoch == point else s["dist"][0]
        val = s["best_val"] + 0.05 * abs(epoch - s["best_epoch"])
        metrics.append({"epoch": epoch, "train_loss": loss, "train_acc": 1 - loss / 2, "val_loss": val,
                        "val_acc": 1 - val / 2, "lr": lr, "train_seconds": s["train_seconds"],
                        "eval_seconds": 0.5, "dist_init": dist,
                        "dist_init_layers": {"conv1": 0.6 * dist, "dense1": 0.8 * dist},
                        "epoch_distance": 0.1 / epoch, "steps": epoch * s["spe"]})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    # update norms: one size for the steps up to the level-0.6 epoch, another after it
    steps_to_point, steps = point * s["spe"], s["epochs"] * s["spe"]
    norms = np.array([s["norms"][0]] * steps_to_point + [s["norms"][1]] * (steps - steps_to_point))
    np.save(folder / "update_norms.npy", norms.astype(np.float32))
    snapshots = {f"{level:g}": c for level, c in zip(LEVELS, s["crossings"]) if c is not None}
    (folder / "status.json").write_text(json.dumps({
        "status": s["status"], "epochs": s["epochs"], "steps": steps, "snapshots": snapshots,
        "best_epoch": s["best_epoch"], "best_val_loss": s["best_val"],
        "best_val_acc": 1 - s["best_val"] / 2}))
    (folder / "config.json").write_text(json.dumps({
        "args": {"batch": batch, "lr": lr, "seed": seed, "image_size": 32, "data": None},
        "effective_lr": lr, "ranks": 1, "threads_per_rank": 2, "git_commit": "0123456789abcdef",
        "dataset": {"name": "synthetic", "n_train": 100, "n_val": 50}}))
    (folder / "layers.json").write_text(json.dumps(TABLE))


# Sharpness at the base group's point: bs 256 sharper in the full space at eps 1e-3 (the headline);
# the other eps, the subspace and the scaled group's file of the shared bs 32 runs say the opposite.
def sharpness_entries(batch, lr, seed, group):
    j = 0.01 * (seed - 1)
    headline = {(32, 0.01): 1.0 + j, (256, 0.01): 2.0 + j, (256, 0.08): 1.5 + j}[(batch, lr)]
    if group == "scaled" and batch == 32:
        headline = 100.0 + j
    reversed_ = 5.0 - headline if headline < 5 else 0.5
    return [{"space": "full", "eps": 1e-3, "phi": headline},
            {"space": "full", "eps": 5e-4, "phi": reversed_},
            {"space": "subspace", "eps": 1e-3, "phi": reversed_},
            {"space": "subspace", "eps": 5e-4, "phi": reversed_}]


# Timing pass: on 1 rank bs 32 and bs 256 take the same time (within the epochs' spread); the 2-rank
# entries, the warm-up epochs and the runs' own (shared-core) epoch times all favour bs 256.
TIMING = {(32, 1): [2.0, 2.2, 1.9], (256, 1): [2.1, 1.95, 2.05],
          (32, 2): [3.0, 3.01, 3.02], (256, 2): [1.0, 1.01, 1.02]}


def write_study(root, with_runs=True):
    """The planted study folder."""
    root.mkdir(parents=True)
    (root / "study.json").write_text(json.dumps({
        "settings": SETTINGS.as_dict(),
        "invocations": [{"start": "2024-05-01T10:00:00", "end": "2024-05-01T12:00:00", "seconds": 7200.0,
                         "ranks": 1, "parallel": "runs", "outcome": "finished"}]}))
    if not with_runs:
        return root
    for (batch, lr, seed), s in PLANTED.items():
        write_run(root / "runs" / run_name(batch, lr, seed), batch, lr, seed, s)
    (root / "analysis").mkdir()
    members = {"base": [k for k in PLANTED if k[1] == 0.01],
               "scaled": [k for k in PLANTED if k[:2] in ((32, 0.01), (256, 0.08))]}
    for group, keys in members.items():
        for batch, lr, seed in keys:
            name = run_name(batch, lr, seed)
            (root / "analysis" / f"sharpness-{group}-{name}.json").write_text(json.dumps({
                "kind": "sharpness", "runs": [run_name(*k) for k in keys], "params": {"group": group},
                "seconds": 1.0, "result": {"sharpness": sharpness_entries(batch, lr, seed, group)}}))
    (root / "timing").mkdir()
    (root / "timing" / "timing.json").write_text(json.dumps({
        "params": timing_params(SETTINGS, 2), "measured": "2024-05-01T12:00:00+0000", "entries": [
            {"batch": b, "ranks": r, "threads_per_rank": 2 // r, "epoch_seconds": [30.0] + v,
             "samples": v, "train_seconds": v, "load_before": 0.1} for (b, r), v in TIMING.items()]}))
    return root


def seeds(batch, lr, value):
    """A planted quantity of every seed of one setting, computed from the plan (not the folder)."""
    return [value(PLANTED[(batch, lr, seed)]) for seed in SEEDS]


def expected_effects():
    """{finding: (values of bs 256, values of bs 32)} at the right place, and at the wrong one."""
    point = lambda s: s["crossings"][1]  # noqa: E731 - the level-0.6 epoch
    k = min(s["epochs"] for key, s in PLANTED.items() if key[1] == 0.01)
    first_k = lambda s: float(np.mean(train_loss_curve(s)[:k]))  # noqa: E731
    right = {1: first_k, 2: lambda s: s["best_val"], 4: point, 5: lambda s: s["dist"][1],
             6: lambda s: s["norms"][0]}
    wrong = {4: lambda s: s["best_epoch"], 5: lambda s: s["dist"][0],  # best/final epoch's distance
             6: lambda s: float(np.median([s["norms"][0]] * (point(s) * s["spe"]) + [s["norms"][1]]
                                          * ((s["epochs"] - point(s)) * s["spe"])))}  # all steps
    pair = lambda f: (seeds(256, 0.01, f), seeds(32, 0.01, f))  # noqa: E731
    effects = {n: pair(f) for n, f in right.items()}
    effects[3] = (TIMING[(256, 1)], TIMING[(32, 1)])
    effects[7] = tuple([e[0]["phi"] for e in (sharpness_entries(b, 0.01, s, "base") for s in SEEDS)]
                       for b in (256, 32))
    mistakes = {n: pair(f) for n, f in wrong.items()}
    mistakes[3] = (TIMING[(256, 2)], TIMING[(32, 2)])  # 2 ranks
    mistakes["3 runs"] = pair(lambda s: s["train_seconds"] + 0.5)  # the runs' own shared-core times
    mistakes[7] = (effects[7][0], [sharpness_entries(32, 0.01, s, "scaled")[0]["phi"] for s in SEEDS])
    return effects, mistakes


EXPECTED = {1: CONTRADICTED, 2: REPRODUCED, 3: INCONCLUSIVE, 4: REPRODUCED, 5: REPRODUCED,
            6: REPRODUCED, 7: REPRODUCED, 8: REPRODUCED}
SIGNS = {1: +1, 2: +1, 3: -1, 4: +1, 5: -1, 6: -1, 7: +1}  # the article's directions


def welch_verdict(large, small, sign):
    """Verdict of a Welch comparison computed by hand (hand_welch); values without any spread
    (e.g. every run's best epoch the same) differ exactly."""
    if np.ptp(large) == np.ptp(small) == 0:
        effect, p = np.mean(large) - np.mean(small), 0.0
    else:
        effect, _, _, p = hand_welch(large, small)
    if p < 0.05:
        return REPRODUCED if np.sign(effect) == sign else CONTRADICTED
    return INCONCLUSIVE


def test_the_planted_values_decide_each_finding_only_where_it_should_read():
    effects, mistakes = expected_effects()
    for number, (large, small) in effects.items():
        assert welch_verdict(large, small, SIGNS[number]) == EXPECTED[number], number
    # reading the wrong weights, steps, group or timing would give another verdict
    for number, (large, small) in mistakes.items():
        sign = SIGNS[int(str(number)[0])]
        assert welch_verdict(large, small, sign) != EXPECTED[int(str(number)[0])], number


@pytest.fixture(scope="module")
def planted_study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("planted") / "study")


def test_compute_findings_gives_each_planted_verdict(planted_study):
    results = StudyResults(str(planted_study))
    assert results.points["base"] == ComparisonPoint(0.6)
    assert results.points["scaled"] == ComparisonPoint(None)
    rows = {row["number"]: row for row in compute_findings(results)}
    assert {n: rows[n]["effect"].verdict for n in rows} == EXPECTED
    effects, _ = expected_effects()
    for number, (large, small) in effects.items():
        value, low, high, p = hand_welch(large, small)
        effect = rows[number]["effect"]
        # (update norms are stored as float32: agreement to 1e-4)
        assert (effect.value, effect.low, effect.high, effect.p) == (
            pytest.approx(value, rel=1e-4), pytest.approx(low, rel=1e-4), pytest.approx(high, rel=1e-4),
            pytest.approx(p, rel=1e-4))
    # finding 8: (L - Ls) / (L - S) of the planted best validation losses
    best = {key: seeds(*key, lambda s: s["best_val"]) for key in ((32, 0.01), (256, 0.01), (256, 0.08))}
    fraction = ((np.mean(best[(256, 0.01)]) - np.mean(best[(256, 0.08)]))
                / (np.mean(best[(256, 0.01)]) - np.mean(best[(32, 0.01)])))
    assert rows[8]["effect"].value == pytest.approx(fraction, rel=1e-9) and fraction == pytest.approx(0.9)
    assert rows[8]["effect"].low > 0.5
    assert "0.6" in rows[4]["measure"] and "equal training loss 0.6" in rows[5]["comparison"]


def report(study, *extra):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "report", str(study), "--dpi", "30",
                           *extra], capture_output=True, text=True, timeout=300)


def test_run_py_report_prints_the_planted_verdicts_and_is_reproducible(planted_study):
    first = report(planted_study)
    assert first.returncode == 0, first.stderr
    text = (planted_study / "report" / "report.md").read_text()
    rows = {int(line.split("|")[1]): line for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in "12345678"
            and line.split("|")[1].strip()}
    assert sorted(rows) == list(range(1, 9))
    for number, verdict in EXPECTED.items():
        assert rows[number].rstrip().endswith(f"**{verdict}** |"), rows[number]
    assert "equal training loss 0.6" in text
    second = report(planted_study)
    assert second.returncode == 0, second.stderr
    assert (planted_study / "report" / "report.md").read_text() == text


def test_run_py_report_refuses_a_folder_without_run_data(tmp_path):
    study = write_study(tmp_path / "empty", with_runs=False)
    result = report(study)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr and "no run data" in lines[0]
    assert not (study / "report" / "report.md").exists()


# ---- the analysis tasks read the weights of the group's point -----------------------------------

def plant_group(study, statuses):
    """Run folders whose best weights and equal-loss snapshots are different, recognisable vectors."""
    vectors = {}
    for index, (name, status) in enumerate(statuses.items()):
        folder = study / "runs" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"args": {"batch": 32, "lr": 0.01, "data": None,
                                                                 "image_size": 32}}))
        (folder / "layers.json").write_text(json.dumps(TABLE))
        (folder / "status.json").write_text(json.dumps(status))
        for kind, value in (("best", 1.0), ("loss0.65", 2.0), ("loss0.6", 3.0)):
            vectors[(name, kind)] = np.full(112, value + 10 * index, dtype=np.float32)
            np.save(folder / f"theta_{kind}.npy", vectors[(name, kind)])
    return vectors


@pytest.mark.parametrize("capped,weights,epoch", [(True, "loss0.6", 4), (False, "best", 9)])
def test_sharpness_task_reads_the_weights_of_the_groups_point(tmp_path, monkeypatch, capped, weights, epoch):
    statuses = {"bs32-lr0.01-s0": {"status": "early_stopped", "best_epoch": 9,
                                   "snapshots": {"0.65": 2, "0.6": 4}},
                "bs256-lr0.01-s0": {"status": "finished" if capped else "early_stopped",
                                    "best_epoch": 5, "snapshots": {"0.65": 6, "0.6": 11}}}
    vectors = plant_group(tmp_path, statuses)
    seen = []
    # the objective and the sharpness optimisation are stubbed: only the weights handed over matter
    monkeypatch.setattr(study_tasks.TaskRunner, "_objective", lambda self, run, split, examples: None)
    monkeypatch.setattr(study_tasks, "keskar_sharpness",
                        lambda objective, theta, eps, A, maxiter: seen.append(theta.copy()) or
                        {"phi": float(theta[0]), "loss": float(theta[0])})
    task = AnalysisTask("sharpness", "sharpness-base-bs32-lr0.01-s0", tuple(statuses), {
        "group": "base", "targets": ["bs32-lr0.01-s0"], "eps": [1e-3], "maxiter": 1, "space": "full",
        "subspace_dim": 4, "examples": 8})
    study_tasks.TaskRunner(str(tmp_path), SETTINGS, log=lambda *a: None).run(task)
    saved = json.loads((tmp_path / "analysis" / "sharpness-base-bs32-lr0.01-s0.json").read_text())
    result = saved["result"]
    assert result["point"]["weights"] == weights
    assert result["epochs"] == {"bs32-lr0.01-s0": epoch}
    assert len(seen) == 1 and np.array_equal(seen[0], vectors[("bs32-lr0.01-s0", weights)])
    assert result["sharpness"][0]["loss"] == float(vectors[("bs32-lr0.01-s0", weights)][0])


def test_a_task_whose_group_never_left_the_plateau_is_skipped(tmp_path):
    statuses = {"a": {"status": "early_stopped", "best_epoch": 3, "snapshots": {"0.65": 2}},
                "b": {"status": "finished", "best_epoch": 5, "snapshots": {}}}
    plant_group(tmp_path, statuses)
    task = AnalysisTask("sharpness", "sharpness-base-a", ("a", "b"), {
        "group": "base", "targets": ["a"], "eps": [1e-3], "maxiter": 1, "space": "full",
        "subspace_dim": 4, "examples": 8})
    study_tasks.TaskRunner(str(tmp_path), SETTINGS, log=lambda *a: None).run(task)
    result = json.loads((tmp_path / "analysis" / "sharpness-base-a.json").read_text())["result"]
    assert "plateau" in result["skipped"] and "sharpness" not in result
