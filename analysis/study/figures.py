"""The report's figures: equivalents of the article's figures 5-8, 10-13, 18 and 21-29.

Each figure method draws one PNG from StudyResults and returns a Figure record (file, title,
caption, the article's value) or None when the study holds no data for it (drawing.py has what
they share, figures_training.py and figures_landscape.py the figures themselves).
"""
from .figures_landscape import LandscapeFigures
from .figures_training import TrainingFigures


class FigureWriter(TrainingFigures, LandscapeFigures):
    """Every figure of the report, drawn into one folder at one resolution."""


def all_figures(results, folder, dpi=90):
    """Draw every figure the study has data for; returns the Figure records in article order."""
    w = FigureWriter(results, folder, dpi)
    st = results.settings
    lr0 = st.base_lr
    base, scaled = results.base_settings(), results.scaled_settings()
    figures = [
        w.loss_curves(base, "fig05_loss_curves", 5, f"lr {lr0:g}"),
        w.best_losses(base, "fig06_best_losses", 6, f"lr {lr0:g}", {32: 0.344, 256: 0.395}),
        w.time_and_epochs(base, "fig07_time_epochs", 7, f"lr {lr0:g}",
                          ("sec_per_epoch", "epochs_to_point", "time_to_point"),
                          {"sec_per_epoch": {32: "12.4 s", 256: "7.7 s"},
                           "epochs_to_point": {32: "158", 256: "958"},
                           "time_to_point": {32: "1915 s", 256: "~4x bs 32's"}}),
        w.time_per_rank_count(base, "fig08_time_per_epoch_ranks"),
        w.distance("fig10_distance_from_init"),
        w.distance_by_layer("fig11_distance_by_layer"),
        w.epoch_distances("fig12_epoch_distances"),
        w.update_norms("fig13_update_norms"),
        w.interpolation("fig18_interpolation"),
        w.sharpness([(base, f"lr {lr0:g}")], "fig21_sharpness", 21, "sharpness by batch size", {32: 1.14}),
        w.surfaces("fig22_surfaces"),
        w.loss_curves(scaled, "fig23_loss_curves_scaled", 23, "linearly scaled lr"),
        w.best_losses(scaled, "fig24_best_losses_scaled", 24, "linearly scaled lr", {32: 0.345, 256: 0.352}),
        w.time_and_epochs(scaled, "fig25_epochs_time_scaled", 25, "linearly scaled lr",
                          ("epochs_to_point", "time_to_point"),
                          {"time_to_point": {32: "3156 s", 256: "2197 s"}}),
        w.sharpness([(base, f"lr {lr0:g}"), (scaled, "scaled lr")], "fig26_sharpness_scaled", 26,
                    "sharpness with and without lr scaling", {32: 1.14}),
        w.lr_comparison("dist_init", "fig27_distance_scaled", 27,
                        "distance from initial weights with and without lr scaling",
                        "|theta - theta_0|", "scaling closes most of the gap; bs 128 anomaly"),
        w.val_at_lr("fig28_val_loss_at_lr"),
        w.lr_sweep("fig29_lr_sweep"),
        w.noise_scale("noise_scale"),
    ]
    return [f for f in figures if f is not None]
