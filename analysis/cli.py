"""`run.py analyze SUBCOMMAND RUN_DIR... [--out DIR]`: run analyses on training run directories.

Each subcommand writes <out>/<name>.json and <out>/<name>.png (default out: <first RUN_DIR>/analysis).
Under mpirun the surface grid is spread over the ranks; every other analysis runs on rank 0 only.
"""
import argparse
import json
import os
import sys

import numpy as np

from runner.errors import EXIT_USAGE
from storage.files import atomic_write_bytes, to_jsonable

from . import plots
from .data import build_run_model, example_subset, load_run_dataset, split_objective
from .errors import AnalysisError
from .help_format import DefaultsFormatter, OneLineParser, positive_float, positive_int
from .geometry import run_geometry
from .interpolation import default_alphas, interpolate
from .landscape import assigned_points, compute_surface_points, default_axes, surface_directions
from .noise import gradient_competition, gradient_noise_scale, top_hessian_eigenvalue
from .progress import stderr_log
from .rundir import Run, check_same_model
from .sharpness import keskar_sharpness, random_subspace

COMMANDS = ("geometry", "interpolate", "sharpness", "surface", "noise", "hessian", "competition",
            "all")


def _add_interpolate(p):
    g = p.add_argument_group("interpolate")
    g.add_argument("--points", type=positive_int, default=25, help="alphas on [-1, 2]")


def _add_split(g):
    g.add_argument("--split", choices=("train", "val"), default="train",
                   help="data split for sharpness and the surface")


def _add_sharpness(p, with_split=True):
    g = p.add_argument_group("sharpness")
    g.add_argument("--eps", type=positive_float, default=1e-3, help="relative box size")
    g.add_argument("--space", choices=("full", "subspace", "both"), default="both",
                   help="full parameter space, a random subspace, or both")
    g.add_argument("--subspace-dim", type=positive_int, default=100, help="p of the random subspace")
    g.add_argument("--maxiter", type=positive_int, default=10, help="L-BFGS-B iterations")
    if with_split:
        _add_split(g)


def _add_surface(p, with_split=True):
    g = p.add_argument_group("surface")
    g.add_argument("--grid", type=positive_int, default=51, help="points per axis (at least 2)")
    g.add_argument("--extent", type=positive_float, default=1.0,
                   help="grid covers [-extent, extent]^2")
    if with_split:
        _add_split(g)


def _add_noise(p):
    g = p.add_argument_group("noise")
    g.add_argument("--b-small", type=positive_int, default=32, help="small batch of the noise scale")
    g.add_argument("--b-big", type=positive_int, default=256, help="big batch of the noise scale")
    g.add_argument("--batches", type=positive_int, default=8, help="batch pairs for the noise scale")


def _add_hessian(p):
    g = p.add_argument_group("hessian")
    g.add_argument("--iterations", type=positive_int, default=20, help="power iterations")
    g.add_argument("--tol", type=positive_float, default=1e-3,
                   help="power iteration relative tolerance")
    g.add_argument("--fd-step", type=positive_float, default=1e-3,
                   help="finite-difference step of Hessian-vector products")


def _add_competition(p):
    g = p.add_argument_group("competition")
    g.add_argument("--competition-examples", type=positive_int, default=256,
                   help="per-example gradients used for gradient competition")


def _add_everything(p):
    _add_interpolate(p)
    _add_sharpness(p, with_split=False)
    _add_surface(p)
    _add_noise(p)
    _add_hessian(p)
    _add_competition(p)


# each analysis's own options; `all` takes every one of them
OPTIONS = {"geometry": (), "interpolate": (_add_interpolate,), "sharpness": (_add_sharpness,),
           "surface": (_add_surface,), "noise": (_add_noise,), "hessian": (_add_hessian,),
           "competition": (_add_competition,), "all": (_add_everything,)}


def option_defaults():
    """Every analysis option's default, for the attributes a subcommand's parser does not define."""
    p = argparse.ArgumentParser(add_help=False)
    _add_everything(p)
    return vars(p.parse_args([]))


def build_parser():
    """The argument parser: one subcommand per analysis with the shared options and its own."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories")
    common.add_argument("--out", default=None, help="output folder (default: RUN_DIR/analysis)")
    common.add_argument("--weights", choices=("best", "final"), default="best",
                        help="which saved weights to analyse")
    common.add_argument("--examples", type=positive_int, default=None,
                        help="use a seeded random subset of this many examples per split "
                             "(default: all of them)")
    common.add_argument("--data", default=None, help="image folder (default: the run's own)")
    common.add_argument("--cache-dir", default=None,
                        help="decoded-image cache folder (default: $BATCHLAB_CACHE or "
                             "~/.cache/batchlab)")
    common.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="precision of the forward and backward passes")
    common.add_argument("--kernels", choices=("reference", "fast"), default="fast",
                        help="readable NumPy reference or fused numba kernels")
    common.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the model runs: NumPy on the CPU, or CuPy with the numba.cuda "
                             "kernels on a GPU (the optimisers and results stay on the host)")
    common.add_argument("--eval-batch", type=positive_int, default=256,
                        help="examples per forward chunk")
    common.add_argument("--seed", type=int, default=0, help="seed of subsets, directions, batches")
    common.add_argument("--quiet", action="store_true", help="no progress lines")
    parser = OneLineParser(prog="run.py analyze", description=__doc__.splitlines()[0],
                           formatter_class=DefaultsFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    helps = {"geometry": "distances from init, epoch distances, update norms",
             "interpolate": "1-D interpolation between SMALL_BATCH_RUN and LARGE_BATCH_RUN",
             "sharpness": "Keskar sharpness (full space and random subspace)",
             "surface": "filter-normalised 2-D loss surface (spread over MPI ranks)",
             "noise": "gradient noise scale B_simple", "hessian": "top Hessian eigenvalue",
             "competition": "|sum g_i| / sum |g_i| against batch size", "all": "every analysis"}
    for name in COMMANDS:
        child = sub.add_parser(name, parents=[common], help=helps[name], description=helps[name],
                               formatter_class=DefaultsFormatter)
        for add in OPTIONS[name]:
            add(child)
        child.set_defaults(**{k: v for k, v in option_defaults().items()
                              if k not in {a.dest for a in child._actions}})  # noqa: SLF001
    return parser


def analysis_device(name, comm):
    """The array module of --device (numpy, or cupy on this rank's GPU); AnalysisError when a GPU
    is asked for and none can be used."""
    from runner.errors import UsageError
    from runner.training import select_device
    try:
        return select_device(name, comm)
    except UsageError as error:
        raise AnalysisError(str(error)) from None


class Session:
    """Shared state of one `analyze` call: options, runs, communicator, cached models and data."""

    def __init__(self, args, comm):
        self.args, self.comm = args, comm
        self.runs = [Run(path) for path in args.runs]
        self.xp = analysis_device(args.device, comm)
        self.out = args.out or os.path.join(self.runs[0].path, "analysis")
        self._models, self._datasets = {}, {}

    @property
    def is_root(self):
        """True on the process that computes single-process analyses and writes files."""
        return self.comm.rank == 0

    def log(self, message):
        """A progress line on stderr (prefixed with the rank under MPI) unless --quiet."""
        if not self.args.quiet:
            stderr_log(message if self.comm.size == 1 else f"rank {self.comm.rank}: {message}")

    def objective(self, run, split, limit=None):
        """The run's loss on `split` (optionally a subset), on a cached model and dataset."""
        key = (run.args.get("data"), run.args.get("image_size"))
        if key not in self._datasets:
            self.log(f"loading data for {run.name}")
            self._datasets[key] = load_run_dataset(run, self.args.data, self.args.cache_dir,
                                                       log=self.log)
        if run.path not in self._models:
            kernels = "cuda" if self.args.device == "cuda" and self.args.kernels == "fast" \
                else self.args.kernels
            self._models[run.path] = build_run_model(run, self.args.dtype, kernels, self.xp)
        limit = self.args.examples if limit is None else limit
        return split_objective(self._models[run.path], self._datasets[key], split, limit,
                               self.args.seed, self.args.eval_batch)

    def write(self, name, result, plot):
        """Write <out>/<name>.json and draw <out>/<name>.png; report both paths on stdout."""
        os.makedirs(self.out, exist_ok=True)
        json_path = os.path.join(self.out, f"{name}.json")
        atomic_write_bytes(json_path, json.dumps(to_jsonable(result), indent=1).encode())
        png_path = plot(result, os.path.join(self.out, f"{name}.png"))
        print(f"{name}: wrote {json_path} and {png_path}", flush=True)


def run_info(run):
    """Identification of a run inside a result."""
    return {"run": run.path, "label": run.label(), "batch": run.batch, "lr": run.lr}


def do_geometry(session):
    """Distances and update norms of every run."""
    results = [run_geometry(run) for run in session.runs]
    session.write("geometry", {"runs": results}, lambda r, p: plots.plot_geometry(r["runs"], p))


def do_interpolate(session):
    """Loss and accuracy along the line from the first run (small batch) to the second (large)."""
    if len(session.runs) != 2:
        raise AnalysisError("interpolate needs exactly two run directories: SMALL_BATCH LARGE_BATCH")
    small, large = session.runs
    check_same_model(session.runs)
    objectives = {split: session.objective(small, split) for split in ("train", "val")}
    result = interpolate(small.theta(session.args.weights), large.theta(session.args.weights),
                         objectives, default_alphas(session.args.points), log=session.log)
    result.update(small=run_info(small), large=run_info(large), weights=session.args.weights)
    session.write("interpolate", result, plots.plot_interpolation)


def do_sharpness(session):
    """Keskar sharpness of each run in the full space and/or a random subspace."""
    a = session.args
    spaces = ("full", "subspace") if a.space == "both" else (a.space,)
    results = []
    for run in session.runs:
        theta = run.theta(a.weights)
        objective = session.objective(run, a.split)
        entry = {**run_info(run), "eps": a.eps, "split": a.split, "weights": a.weights, "spaces": {}}
        for space in spaces:
            session.log(f"sharpness of {run.name}, {space} space")
            A = None
            if space == "subspace":
                if not 1 <= a.subspace_dim <= theta.size:
                    raise AnalysisError(f"--subspace-dim must be in [1, {theta.size}]")
                A = random_subspace(theta.size, a.subspace_dim, a.seed)
            entry["spaces"][space] = keskar_sharpness(objective, theta, a.eps, A, a.maxiter,
                                                      log=session.log)
        results.append(entry)
    session.write("sharpness", {"runs": results}, lambda r, p: plots.plot_sharpness(r["runs"], p))


def gather_grid(part, n_points, comm):
    """Every rank's grid points summed into one flat array on all ranks; each point exactly once."""
    values, seen = np.zeros(n_points), np.zeros(n_points)
    values[part["indices"]] = part["losses"]
    seen[part["indices"]] = 1.0
    comm.allreduce_sum_(values)
    comm.allreduce_sum_(seen)
    if not np.all(seen == 1.0):
        raise AnalysisError("the surface grid was not covered exactly once by the ranks")
    return values


def do_surface(session):
    """Filter-normalised training-loss surface of each run, grid points spread over the ranks."""
    a = session.args
    if a.grid < 2 or a.extent <= 0:
        raise AnalysisError("--grid must be at least 2 and --extent positive")
    axis = default_axes(a.grid, a.extent)
    results = []
    for run in session.runs:
        theta = run.theta(a.weights)
        d1, d2 = surface_directions(theta, run.table, a.seed)
        session.log(f"surface of {run.name}: {len(axis) ** 2} points over {session.comm.size} "
                    f"rank(s), {len(assigned_points(len(axis) ** 2, session.comm.rank, session.comm.size))} here")
        part = compute_surface_points(session.objective(run, a.split), theta, d1, d2, axis, axis,
                                      session.comm.rank, session.comm.size, log=session.log)
        loss = gather_grid(part, len(axis) ** 2, session.comm).reshape(len(axis), len(axis))
        results.append({**run_info(run), "split": a.split, "weights": a.weights, "seed": a.seed,
                        "x": axis, "y": axis, "loss": loss})
    if session.is_root:
        session.write("surface", {"runs": results}, lambda r, p: plots.plot_surface(r["runs"], p))


def do_noise(session):
    """Gradient noise scale B_simple of each run on its training split."""
    a = session.args
    results = []
    for run in session.runs:
        theta = run.theta(a.weights)
        objective = session.objective(run, "train")
        if not 1 <= a.b_small < a.b_big <= objective.n_examples:
            raise AnalysisError(f"need 1 <= --b-small < --b-big <= {objective.n_examples} "
                                "(training examples in use)")

        def grad_fn(indices, objective=objective, theta=theta):
            return objective.subset(indices).value_and_grad(theta)[1]

        session.log(f"noise scale of {run.name}")
        result = gradient_noise_scale(grad_fn, objective.n_examples, a.b_small, a.b_big,
                                      a.batches, a.seed, log=session.log)
        results.append({**run_info(run), "weights": a.weights, **result})
    session.write("noise", {"runs": results}, lambda r, p: plots.plot_noise(r["runs"], p))


def do_hessian(session):
    """Top Hessian eigenvalue of each run's training loss by power iteration."""
    a = session.args
    results = []
    for run in session.runs:
        session.log(f"top Hessian eigenvalue of {run.name}")
        result = top_hessian_eigenvalue(session.objective(run, "train"), run.theta(a.weights),
                                        a.iterations, a.tol, a.seed, a.fd_step, log=session.log)
        results.append({**run_info(run), "weights": a.weights, **result})
    session.write("hessian", {"runs": results}, lambda r, p: plots.plot_hessian(r["runs"], p))


def do_competition(session):
    """Gradient competition against batch size (powers of two) over per-example gradients."""
    a = session.args
    results = []
    for run in session.runs:
        objective = session.objective(run, "train")
        count = min(a.competition_examples, objective.n_examples)
        sizes = [2 ** k for k in range(int(np.log2(count)) + 1)]
        # a random order: splits may be stored class by class, and groups are consecutive
        order = np.random.default_rng(a.seed).permutation(example_subset(objective.n_examples,
                                                                         count, a.seed))

        def logged(grads, name=run.name):
            for k, g in enumerate(grads, 1):
                if k % 32 == 0 or k == count:
                    session.log(f"competition of {name}: {k}/{count} per-example gradients")
                yield g

        by_batch = gradient_competition(
            logged(objective.example_gradients(run.theta(a.weights), order)), sizes)
        results.append({**run_info(run), "weights": a.weights, "examples": count,
                        "by_batch": {str(b): v for b, v in by_batch.items()}})
    session.write("competition", {"runs": results},
                  lambda r, p: plots.plot_competition(r["runs"], p))


STEPS = {"geometry": do_geometry, "interpolate": do_interpolate, "sharpness": do_sharpness,
         "surface": do_surface, "noise": do_noise, "hessian": do_hessian,
         "competition": do_competition}


def training_examples_in_use(session, run):
    """Training examples the gradient analyses of `run` draw from (--examples caps the split).

    Read from the run's config.json when the run's own data is used, so no data is loaded."""
    recorded = run.config.get("dataset", {}).get("n_train")
    count = (int(recorded) if session.args.data is None and recorded is not None
             else session.objective(run, "train", limit=None).n_examples)
    return count if session.args.examples is None else min(count, session.args.examples)


def check_arguments(session, names):
    """Refuse, before any analysis starts, the settings some analysis of `names` would fail on."""
    a, runs = session.args, session.runs
    if "interpolate" in names:
        if len(runs) != 2:
            raise AnalysisError("interpolate needs exactly two run directories: SMALL_BATCH LARGE_BATCH")
        check_same_model(runs)
    if "surface" in names and a.grid < 2:
        raise AnalysisError("--grid must be at least 2")
    if "sharpness" in names and a.space != "full":
        for run in runs:
            if a.subspace_dim > run.n_params:
                raise AnalysisError(f"--subspace-dim must be in [1, {run.n_params}]")
    if "noise" in names:
        for run in runs:
            count = training_examples_in_use(session, run)
            if not a.b_small < a.b_big <= count:
                raise AnalysisError(f"need 1 <= --b-small < --b-big <= {count} (training examples "
                                    f"in use for {run.name})")


def agreed_step(session, runs_here, step):
    """Run `step` on the ranks where `runs_here`, then let every rank learn whether any failed: the
    failing rank raises its AnalysisError, the others return False; True when all succeeded."""
    error = None
    if runs_here:
        try:
            step()
        except AnalysisError as exc:
            error = exc
    if session.comm.any_flag(error is not None):
        if error is not None:
            raise error
        return False
    return True


def run_command(session):
    """Run the chosen analysis (or all of them; interpolation only when two runs are given).

    Returns False when another rank failed. Every rank checks in after every step, so a failure on
    one rank ends the others instead of leaving them waiting in a collective."""
    command = session.args.command
    names = [n for n in STEPS if n != "interpolate" or len(session.runs) == 2] \
        if command == "all" else [command]
    if not agreed_step(session, session.is_root, lambda: check_arguments(session, names)):
        return False
    for name in names:
        # the surface is the one analysis every rank shares; the rest run on rank 0 alone
        if not agreed_step(session, name == "surface" or session.is_root,
                           lambda name=name: STEPS[name](session)):
            return False
    return True


def main(argv=None, comm=None):
    """Entry point of `run.py analyze`; returns the exit code (2 for a user mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if comm is None:
        from parallel import get_communicator
        comm = get_communicator()
    try:
        session = Session(args, comm)
    except AnalysisError as error:  # the same on every rank: say it once
        if comm.rank == 0:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    try:
        ok = run_command(session)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return 0 if ok else EXIT_USAGE
