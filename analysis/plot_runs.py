"""`run.py plot RUN_DIR... [--out PNG]`: training and validation curves (loss and accuracy per
epoch) of one or more runs, read from their metrics.jsonl, as one PNG."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .errors import EXIT_OK, AnalysisError, command_main  # noqa: E402
from .help_format import DefaultsFormatter, OneLineParser, positive_int  # noqa: E402
from .rundir import Run  # noqa: E402

# (metric key, panel title, y label); one panel per quantity, train solid and validation dashed
PANELS = (("loss", "loss", "binary cross-entropy"), ("acc", "accuracy", "fraction correct"))


def build_parser():
    """Arguments of `run.py plot`."""
    p = OneLineParser(prog="run.py plot", formatter_class=DefaultsFormatter,
                                description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories")
    p.add_argument("--out", default=None, help="PNG path (default: FIRST_RUN_DIR/curves.png)")
    p.add_argument("--dpi", type=positive_int, default=110, help="resolution of the PNG")
    return p


def curves(run):
    """{epoch, train_loss, val_loss, train_acc, val_acc} lists from a run's metrics.jsonl."""
    records = run.read_metrics()
    if not records:
        raise AnalysisError(f"{run.path} has no finished epoch in metrics.jsonl yet")
    keys = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")
    return {k: [float(r[k]) for r in records] for k in keys}


def draw(runs):
    """The figure: loss and accuracy panels, one colour per run, train solid, validation dashed."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 4.2))
    for run in runs:
        data = curves(run)
        for ax, (key, _title, _ylabel) in zip(axes, PANELS):
            (line,) = ax.plot(data["epoch"], data[f"train_{key}"], "-", label=f"{run.label()} train")
            ax.plot(data["epoch"], data[f"val_{key}"], "--", color=line.get_color(),
                    label=f"{run.label()} validation")
    data_names = sorted({str(run.config.get("dataset", {}).get("name", run.args.get("data")))
                         for run in runs})
    sizes = sorted({str(run.args.get("image_size", "?")) for run in runs})
    for ax, (_key, title, ylabel) in zip(axes, PANELS):
        ax.set(title=f"{title} ({', '.join(data_names)}, {'/'.join(sizes)} px)", xlabel="epoch",
               ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    """Entry point of `run.py plot`; returns the exit code (2 for a user mistake)."""
    def work(args):
        runs = [Run(path) for path in args.runs]
        out = args.out or os.path.join(runs[0].path, "curves.png")
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise AnalysisError(f"folder of --out {out} does not exist")
        fig = draw(runs)
        fig.savefig(out, dpi=args.dpi)
        plt.close(fig)
        print(f"plot: wrote {out}", flush=True)
        return EXIT_OK
    return command_main(build_parser, argv, work)
