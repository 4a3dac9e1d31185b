"""The study report's figures (analysis/study/figures*.py), read back from the matplotlib objects.

A study folder is planted with known values (no training): bs 16 runs that early-stop, bs 32 runs
capped by the epoch limit, sharpness whose seed spread exceeds its mean, two loss surfaces of very
different ranges and a timing pass on 1 and 2 ranks. Each test recomputes what a figure must show
from the planted files and compares it with the drawn artists.
"""
import json
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.contour import ContourSet

from analysis.study import drawing
from analysis.study.figures import FigureWriter, all_figures
from analysis.study.plan import StudySettings, plan_analyses, plan_runs, run_name
from analysis.study.results import StudyResults

DATA_PATH = "/home/someone/datasets/PetImages"
CONTEXT = "PetImages, 64 px, standard profile"
LEVEL = 0.6
EPOCHS = {16: (4, 5, 4), 32: (6, 6, 6)}  # per seed; bs 32 runs use all 6 epochs (capped)
LAYERS = ("conv1", "dense1")


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def plant_run(folder, planned, max_epochs):
    """A run folder whose training loss falls from 0.69 through LEVEL, validation curves per seed."""
    epochs = EPOCHS[planned.batch][planned.seed] if planned.lr == 0.01 else 4
    rng = np.random.default_rng(planned.batch * 10 + planned.seed + int(planned.lr * 1000))
    steps_per_epoch = 800 // planned.batch
    metrics, crossed = [], None
    for e in range(1, epochs + 1):
        train_loss = 0.69 - 0.04 * e + 0.005 * planned.seed
        crossed = crossed or (e if train_loss < LEVEL else None)
        dist = 0.1 * e + 0.01 * planned.seed
        metrics.append({"epoch": e, "train_loss": train_loss, "train_acc": 0.5 + 0.05 * e,
                        "val_loss": 0.7 - 0.02 * e + rng.uniform(0, 0.05),
                        "val_acc": 0.5 + 0.04 * e + rng.uniform(0, 0.05),
                        "train_seconds": 2.0 + rng.uniform(), "eval_seconds": 0.5,
                        "steps": e * steps_per_epoch, "dist_init": dist,
                        "dist_init_layers": {name: dist / 2 for name in LAYERS},
                        "epoch_distance": 0.1, "lr": planned.lr})
    best = min(range(epochs), key=lambda i: metrics[i]["val_loss"]) + 1
    status = "early_stopped" if epochs < max_epochs else "finished"
    write_json(f"{folder}/status.json", {
        "status": status, "best_epoch": best, "epochs": epochs, "steps": epochs * steps_per_epoch,
        "best_val_loss": metrics[best - 1]["val_loss"], "best_val_acc": metrics[best - 1]["val_acc"],
        "snapshots": {f"{LEVEL:g}": crossed}})
    write_json(f"{folder}/config.json", {"args": {"batch": planned.batch, "lr": planned.lr}})
    write_json(f"{folder}/layers.json", [{"name": f"{n}.weight", "layer": n, "size": 4} for n in LAYERS])
    with open(f"{folder}/metrics.jsonl", "w") as f:
        f.writelines(json.dumps(m) + "\n" for m in metrics)
    np.save(f"{folder}/update_norms.npy", rng.uniform(1e-3, 1e-2, epochs * steps_per_epoch))


def plant_study(root, timing_ranks=(1, 2)):
    """A study folder with every input the figures read; returns its path."""
    settings = StudySettings(data=DATA_PATH, profile="standard", batches=[16, 32], base_batch=32,
                             sweep_lrs=[0.01], image_size=64, max_epochs=6, patience=2, seeds=3,
                             trend_seeds=3, sweep_seeds=1, sharpness_eps=[0.001], sharpness_space="full",
                             snapshot_levels=[LEVEL])
    study = str(root)
    write_json(f"{study}/study.json", {"settings": settings.as_dict(), "invocations": []})
    planned = plan_runs(settings)
    for p in planned:
        plant_run(f"{study}/runs/{p.name}", p, settings.max_epochs)
    # sharpness with a seed spread larger than its mean: mean - sd < 0 for bs 16 at lr 0.01
    spread = {0: 0.01, 1: 0.02, 2: 5.0}
    for task in plan_analyses(settings, planned):
        if task.kind == "sharpness":
            p = next(r for r in planned if task.name.endswith(r.name))
            write_json(f"{study}/analysis/{task.name}.json", {"result": {"sharpness": [
                {"space": "full", "eps": 0.001, "phi": spread[p.seed] * (1 if p.batch == 16 else 2)}]}})
    grid = np.linspace(-1, 1, 9)
    xx, yy = np.meshgrid(grid, grid)
    for batch, steepness in ((16, 1.0), (32, 30.0)):
        write_json(f"{study}/analysis/surface-{run_name(batch, 0.01, 0)}.json", {"result": {
            "x": grid.tolist(), "y": grid.tolist(), "loss": (0.3 + steepness * (xx**2 + yy**2)).tolist()}})
    write_json(f"{study}/analysis/interpolation.json", {"result": {
        "alpha": [-1, 0, 0.5, 1, 2], "train_loss": [2, 0.4, 0.6, 0.45, 3], "val_loss": [2, 0.5, 0.7, 0.55, 3]}})
    for batch in (16, 32):
        write_json(f"{study}/analysis/noise-{run_name(batch, 0.01, 0)}.json", {"result": {
            "b_simple": 40.0 * batch, "g2": 0.1, "g2_stderr": 0.01, "trace": 4.0, "trace_stderr": 0.4}})
    write_json(f"{study}/timing/timing.json", {"params": {"epochs": 4, "cores": 2}, "entries": [
        {"batch": b, "ranks": r, "threads_per_rank": 2 // r, "samples": [3.0 / r + 0.1 * k for k in range(3)]}
        for r in timing_ranks for b in (16, 32)]})
    return study


def drawn_figures(results, folder, draw):
    """Run `draw(writer)` and return ({png name: matplotlib Figure}, its result), figures kept open."""
    kept = {}
    original = FigureWriter.save

    def keep(writer, fig, name, title):
        kept[name] = fig
        return original(writer, fig, name, title)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FigureWriter, "save", keep)
        out = draw(FigureWriter(results, str(folder)))
    return kept, out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(StudyResults, {name: Figure}, [Figure records]) of the planted study, every figure drawn."""
    results = StudyResults(plant_study(tmp_path_factory.mktemp("study")))
    folder = tmp_path_factory.mktemp("figures")
    figures, records = drawn_figures(results, folder, lambda w: all_figures(results, str(folder)))
    return results, figures, records


def panels(fig):
    """The figure's axes without colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def seed_curves(results, batch, lr, key):
    """Per-seed metric lists read straight from the planted metrics.jsonl files."""
    curves = []
    for seed in range(3):
        with open(f"{results.study_dir}/runs/{run_name(batch, lr, seed)}/metrics.jsonl") as f:
            curves.append([json.loads(line)[key] for line in f if line.strip()])
    return curves


def test_every_figure_is_drawn_and_titled_with_data_size_and_profile_never_a_path(planted):
    _, figures, records = planted
    assert len(figures) == len(records) == 19
    for record in records:
        suptitle = figures[record.file[:-4]]._suptitle.get_text()
        assert record.title in suptitle and CONTEXT in suptitle, suptitle
        texts = [suptitle] + [ax.get_title() for ax in figures[record.file[:-4]].axes]
        assert not any("/home/someone" in t for t in texts)


def test_every_panel_has_both_axis_labels(planted):
    _, figures, _ = planted
    for name, fig in figures.items():
        for ax in panels(fig):
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (name, ax.get_title())
        for cax in fig.axes:
            if cax.get_label() == "<colorbar>":
                assert cax.get_ylabel().strip(), name


def test_no_error_bar_reaches_below_zero(planted):
    results, figures, _ = planted
    # the planted bs 16 sharpness really has mean - sd < 0: a plain ± sd bar would cross zero
    phis = [0.01, 0.02, 5.0]
    assert np.mean(phis) - np.std(phis, ddof=1) < 0
    bars = 0
    for name, fig in figures.items():
        for ax in fig.axes:
            for container in ax.containers:
                if isinstance(container, ErrorbarContainer) and container.lines[2]:
                    for segment in container.lines[2][0].get_segments():
                        bars += 1
                        assert segment[:, 1].min() >= 0, (name, ax.get_title(), segment)
    assert bars > 20


def test_sharpness_error_bar_stops_at_zero_and_keeps_its_upper_sd(planted):
    _, figures, _ = planted
    ax = figures["fig21_sharpness"].axes[0]
    phis = [0.01, 0.02, 5.0]
    mean, sd = np.mean(phis), np.std(phis, ddof=1)
    first = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    (segment,) = [s for s in first.lines[2][0].get_segments() if s[0, 0] == pytest.approx(0)]
    assert sorted(segment[:, 1]) == pytest.approx([0.0, mean + sd])


def test_surface_panels_share_contour_levels_and_a_colorbar_and_ticks_do_not_overlap(planted):
    _, figures, _ = planted
    fig = figures["fig22_surfaces"]
    contours = [[c for c in ax.collections if isinstance(c, ContourSet)] for ax in panels(fig)]
    assert [len(c) for c in contours] == [1, 1]
    (left,), (right,) = contours
    np.testing.assert_array_equal(left.levels, right.levels)
    # the levels span both planted surfaces: bs 16 goes 0.3 - 2.3, bs 32 0.3 - 60.3
    assert left.levels.min() == pytest.approx(0.3) and left.levels.max() == pytest.approx(60.3)
    assert left.norm.vmin == right.norm.vmin and left.norm.vmax == right.norm.vmax
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    canvas = FigureCanvasAgg(fig)  # the saved figure was closed: draw it on a fresh canvas
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in panels(fig):
        low, high = ax.get_xlim()
        boxes = [t.get_window_extent(renderer) for t, x in zip(ax.get_xticklabels(), ax.get_xticks())
                 if low <= x <= high and t.get_text()]
        assert len(boxes) >= 3
        boxes.sort(key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [(b.x0, b.x1) for b in boxes]


@pytest.mark.parametrize("name, lr", [("fig05_loss_curves", 0.01), ("fig23_loss_curves_scaled", None)])
def test_loss_curves_show_seed_mean_and_range_and_validation_accuracy(planted, name, lr):
    results, figures, _ = planted
    axes = panels(figures[name])
    assert [ax.get_ylabel() for ax in axes] == ["training loss", "validation loss", "validation accuracy"]
    batch = 16
    lr = lr or results.settings.scaled_lr(batch)
    for ax, key in zip(axes, ("train_loss", "val_loss", "val_acc")):
        curves = seed_curves(results, batch, lr, key)
        common = min(len(c) for c in curves)
        seeds = np.array([c[:common] for c in curves])
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == f"bs {batch}, lr {lr:g} (n=3)"]
        np.testing.assert_allclose(line.get_ydata(), seeds.mean(0), rtol=1e-12)
        assert line.get_linewidth() > 2 * max(ln.get_linewidth() for ln in ax.get_lines()
                                              if ln.get_label().startswith("_"))
        bands = [c for c in ax.collections if not isinstance(c, PathCollection)]
        band = bands[0].get_paths()[0].vertices  # the first band is bs 16's
        assert band[:, 1].min() == pytest.approx(seeds.min()) and band[:, 1].max() == pytest.approx(seeds.max())


def test_capped_runs_are_open_triangles_and_their_best_epochs_lower_bounds(planted):
    results, figures, _ = planted
    ax = next(a for a in figures["fig07_time_epochs"].axes if a.get_title() == "epochs to best val loss")
    assert "capped: lower bound" in ax.get_legend_handles_labels()[1]
    # open markers (no face colour) are exactly the three capped bs 32 runs, at their best epochs
    hollow = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_facecolor()) == 0]
    capped = [r for r in results.runs_of(32, 0.01) if r.status == "finished"]
    assert len(capped) == 3 == len(hollow)
    assert sorted(c.get_offsets()[0, 1] for c in hollow) == sorted(r.status_record["best_epoch"] for r in capped)
    assert all(c.get_offsets()[0, 0] == pytest.approx(1, abs=0.1) for c in hollow)
    # two series (base and scaled lr) share the capped bs 32 runs: one legend entry for them
    labels = figures["fig26_sharpness_scaled"].axes[0].get_legend_handles_labels()[1]
    assert labels.count(drawing.CAPPED_LABEL) == 1


@pytest.mark.parametrize("ranks, words", [((1, 2), "1 and 2 ranks"), ((1,), "1 rank")])
def test_figure_8_title_names_the_rank_counts_it_shows(tmp_path, ranks, words):
    results = StudyResults(plant_study(tmp_path / "study", timing_ranks=ranks))
    os.makedirs(tmp_path / "out")
    figures, record = drawn_figures(results, tmp_path / "out",
                                    lambda w: w.time_per_rank_count(results.base_settings(), "fig08"))
    (ax,) = figures["fig08"].axes
    assert record.title.endswith(f"on {words}") and words in ax.get_title()
    assert sorted(ax.get_legend_handles_labels()[1]) == [f"{r} rank(s)" for r in ranks]
    assert len(ax.patches) == 2 * len(ranks)
    plt.close("all")


def test_study_context_uses_the_folder_name_only():
    settings = StudySettings(data="/srv/data/cats_and_dogs_filtered/", image_size=128, profile="paper")
    assert drawing.study_context(settings) == "cats_and_dogs_filtered, 128 px, paper profile"
    assert drawing.study_context(StudySettings()) == "synthetic, 32 px, quick profile"
