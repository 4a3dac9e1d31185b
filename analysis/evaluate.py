"""`run.py evaluate RUN [--data DIR] [--weights best|final] [--split val|train|all]`: score a trained
run on a data folder: loss, accuracy and a confusion table, printed as one JSON line on stdout.

Images go through the training preprocessing (the loader's resize and cache, `Dataset.batch`'s
division by 255) at the run's image size, and the loss is summed in the run's own `--eval-batch`
chunks, so on the run's own validation split it reproduces the validation loss training recorded.
"""
import json

import numpy as np

from .data import build_run_model, load_run_dataset
from .errors import EXIT_OK, AnalysisError, command_main
from .help_format import DefaultsFormatter, OneLineParser, positive_int
from .progress import quiet, stderr_log
from .rundir import Run

SPLITS = ("val", "train", "all")


def build_parser():
    """Arguments of `run.py evaluate`."""
    p = OneLineParser(prog="run.py evaluate", formatter_class=DefaultsFormatter,
                                description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN_DIR", help="a finished training run directory")
    p.add_argument("--data", default=None,
                   help="image folder or download name to score (default: the run's own data)")
    p.add_argument("--weights", choices=("best", "final"), default="best", help="which saved weights")
    p.add_argument("--split", choices=SPLITS, default="val",
                   help="which part of the folder: its validation split, its training split, or all")
    p.add_argument("--eval-batch", type=positive_int, default=None,
                   help="examples per forward chunk (default: the run's own --eval-batch)")
    p.add_argument("--cache-dir", default=None,
                   help="decoded-image cache (default: $BATCHLAB_CACHE or ~/.cache/batchlab)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def split_indices(dataset, split):
    """[(split name, indices)] making up `split` of the dataset ('all': train then val)."""
    names = ("train", "val") if split == "all" else (split,)
    return [(name, np.arange(len(dataset.arrays(name)[1]))) for name in names]


def score(model, dataset, split, eval_batch):
    """Loss sum, confusion counts [true][predicted] and count over `split`, in eval_batch chunks."""
    from engine.tensor import Tensor, no_grad
    from ops.loss import bce_with_logits_sum
    n_classes = max(2, len(dataset.classes))
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    loss_sum, count = 0.0, 0
    with no_grad():
        for name, indices in split_indices(dataset, split):
            for start in range(0, len(indices), eval_batch):
                x, y = dataset.batch(name, indices[start:start + eval_batch])
                logits = np.asarray(model.forward(Tensor(model.xp.asarray(x))).data).reshape(-1)
                loss_sum += float(bce_with_logits_sum(logits, y))
                # a positive logit predicts class 1 (the sigmoid lives in the loss)
                np.add.at(confusion, (y.astype(np.int64), (logits > 0).astype(np.int64)), 1)
                count += len(y)
    return loss_sum, confusion, count


def evaluate_run(args, log):
    """The JSON-ready result of scoring args.run on args.data (AnalysisError for user mistakes)."""
    run = Run(args.run)
    trained_on = run.config.get("dataset", {}).get("classes")
    # a run trained on a GPU records kernels "cuda"; scoring it here runs on the CPU
    kernels = "fast" if run.args.get("kernels", "fast") == "cuda" else run.args.get("kernels", "fast")
    model = build_run_model(run, "float32", kernels)
    model.theta[...] = model.xp.asarray(run.theta(args.weights).astype(np.float32))
    dataset = load_run_dataset(run, args.data, args.cache_dir, log=log, show_progress=not args.quiet)
    if trained_on and [c.lower() for c in trained_on] != [c.lower() for c in dataset.classes]:
        log(f"warning: {run.name} was trained on classes {trained_on}, this data has "
            f"{dataset.classes}; class k is scored as the run's class k")
    eval_batch = args.eval_batch or int(run.args.get("eval_batch", 256))
    loss_sum, confusion, count = score(model, dataset, args.split, eval_batch)
    if count == 0:
        raise AnalysisError(f"the {args.split} split of the data is empty")
    return {"run": run.path, "data": args.data if args.data is not None else run.args.get("data"),
            "dataset": dataset.identity.get("name"), "source": dataset.identity.get("source"),
            "split": args.split, "weights": args.weights, "examples": count,
            "loss": loss_sum / count, "accuracy": float(np.trace(confusion)) / count,
            "classes": list(dataset.classes),
            "confusion": {"rows": "true class", "columns": "predicted class",
                          "matrix": confusion.tolist()}}


def main(argv=None):
    """Entry point of `run.py evaluate`; returns the exit code (2 for a user mistake)."""
    def work(args):
        result = evaluate_run(args, quiet if args.quiet else stderr_log)
        print(json.dumps(result), flush=True)
        return EXIT_OK
    return command_main(build_parser, argv, work)
