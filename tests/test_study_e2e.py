"""A miniature study end to end: tiny runs on the synthetic images, then the report.

Checks that the report names every figure and every named figure is a PNG that Pillow decodes, that
a finding's verdict equals a hand-written Welch test on the runs' status.json files, and that running the
study again trains nothing (and a run left unfinished is the only one trained on the next call).
"""
import json
import os
import re

import pytest
from PIL import Image

from analysis.study import command, report
from analysis.stats import CONTRADICTED, INCONCLUSIVE, REPRODUCED
from test_study_stats import hand_welch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MINI = ["--batches", "64,128", "--base-batch", "64", "--sweep-lrs", "0.01", "--seeds", "2",
        "--image-size", "32", "--max-epochs", "1", "--patience", "1", "--kernels", "reference",
        "--analysis-examples", "32", "--surface-grid", "3", "--sharpness-maxiter", "1",
        "--interp-points", "3", "--noise-batches", "2", "--workers", "1",
        # every 1-epoch run crosses this level, so each group has a comparison point and is analysed
        "--snapshot-levels", "5"]


@pytest.fixture(scope="module")
def mini_study(tmp_path_factory):
    """Run the miniature study once for every test of this file."""
    root = tmp_path_factory.mktemp("study")
    out = str(root / "study")
    argv = ["--out", out, "--cache-dir", str(root / "cache")] + MINI
    assert command.main(argv) == 0
    return out, argv


@pytest.fixture(scope="module")
def mini_report(mini_study, tmp_path_factory):
    """The miniature study's report folder and report.md text."""
    folder = tmp_path_factory.mktemp("report")
    assert report.main([mini_study[0], "--out", str(folder), "--dpi", "40"]) == 0
    return folder, (folder / "report.md").read_text()


def invocations(out):
    with open(os.path.join(out, "study.json")) as f:
        return json.load(f)["invocations"]


def test_report_names_every_figure_and_each_is_a_png(mini_report):
    tmp_path, text = mini_report
    named = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert sorted(named) == written
    # every figure of the article list the miniature study has data for
    for stem in ("fig05", "fig06", "fig07", "fig08", "fig10", "fig11", "fig12", "fig13", "fig18",
                 "fig21", "fig22", "fig23", "fig24", "fig25", "fig26", "fig27", "fig28", "fig29"):
        assert any(name.startswith(stem) for name in named), stem
    for name in named:
        path = tmp_path / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 50
    rows = [line for line in text.splitlines() if re.match(r"^\| [1-8] \|", line)]
    assert len(rows) == 8
    assert all(any(f"**{v}**" in row for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)) for row in rows)


def test_finding_2_verdict_matches_a_recomputation_from_status_files(mini_study, mini_report):
    out, text = mini_study[0], mini_report[1]
    values = {}
    for batch in (64, 128):
        values[batch] = []
        for seed in (0, 1):
            with open(os.path.join(out, "runs", f"bs{batch}-lr0.01-s{seed}", "status.json")) as f:
                values[batch].append(json.load(f)["best_val_loss"])
    effect, _, _, p = hand_welch(values[128], values[64])  # Welch's t-test, written by hand
    expected = (INCONCLUSIVE if not p < 0.05 else REPRODUCED if effect > 0 else CONTRADICTED)
    row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    assert f"**{expected}**" in row
    assert f"{effect:+.4g}" in row


def test_second_invocation_trains_nothing_and_resumes_only_the_unfinished_run(mini_study):
    out, argv = mini_study
    runs_dir = os.path.join(out, "runs")
    stamps = {name: os.path.getmtime(os.path.join(runs_dir, name, "metrics.jsonl"))
              for name in os.listdir(runs_dir)}
    analysis_stamps = {p: os.path.getmtime(os.path.join(out, "analysis", p))
                       for p in os.listdir(os.path.join(out, "analysis"))}
    assert command.main(argv) == 0
    assert invocations(out)[-1]["trained_by_rank0"] == 0
    assert invocations(out)[-1]["analysed_by_rank0"] == 0
    assert stamps == {name: os.path.getmtime(os.path.join(runs_dir, name, "metrics.jsonl"))
                      for name in os.listdir(runs_dir)}
    assert analysis_stamps == {p: os.path.getmtime(os.path.join(out, "analysis", p))
                               for p in os.listdir(os.path.join(out, "analysis"))}
    # a run killed before it wrote its final status: exactly that one is continued
    victim = os.path.join(runs_dir, "bs128-lr0.02-s1")
    with open(os.path.join(victim, "status.json")) as f:
        best = json.load(f)["best_val_loss"]
    with open(os.path.join(victim, "status.json"), "w") as f:
        json.dump({"status": "running"}, f)
    assert command.main(argv) == 0
    assert invocations(out)[-1]["trained_by_rank0"] == 1
    with open(os.path.join(victim, "status.json")) as f:
        status = json.load(f)
    assert status["status"] in ("finished", "early_stopped") and status["best_val_loss"] == best


def test_changed_run_settings_are_refused(mini_study, capsys):
    out, argv = mini_study
    changed = list(argv)
    changed[changed.index("--image-size") + 1] = "64"
    assert command.main(changed) == command.EXIT_USAGE
    assert "image_size" in capsys.readouterr().err
