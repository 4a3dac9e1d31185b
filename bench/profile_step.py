"""Per-layer breakdown of one training step of the study's net (128 px, fast kernels).

    python bench/profile_step.py [--batches 32 256] [--threads 2 1] [--repeats R]

Each layer of the model is wrapped so that its forward call and its Function's backward are timed
separately (the model is built with one layer per conv block: the training model runs conv1-conv3
as one stack, sample by sample, which bench/step_time.py times as a whole); the loss, the zeroing of
the flat gradient and the SGD update are timed too. What is left of the whole step's wall time
(input conversion, the accuracy count, the autograd heap and gradient hand-over, Python calls) is
reported as "overhead". Per part the median over the timed
steps is kept; the step total is the median too, and the uninstrumented step time (minimum, as in
bench/step_time.py) is stored beside it. Each thread count runs in its own subprocess.
Writes bench/results/profile_step.json and profile_step.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import best_time, machine_info, study_net_step, write_result, write_markdown  # noqa: E402


class _Timings:
    """Per-part forward and backward seconds of the current step."""

    def __init__(self):
        self.forward, self.backward = {}, {}

    def add(self, table, name, seconds):
        table[name] = table.get(name, 0.0) + seconds


def _timed_backward(fn, name, timings):
    """Make this Function instance time its own backward (the attribute is dropped on release)."""
    inner = fn.backward

    def backward(*grads):
        start = time.perf_counter()
        result = inner(*grads)
        timings.add(timings.backward, name, time.perf_counter() - start)
        return result
    fn.backward = backward


class _TimedLayer:
    """A layer whose forward call, and the backward of the Function it created, are timed."""

    def __init__(self, layer, name, timings):
        self.layer, self.name, self.timings = layer, name, timings

    def __getattr__(self, attribute):
        """Anything else (e.g. whether the layer reads pixels) is the wrapped layer's."""
        return getattr(self.layer, attribute)

    def __call__(self, x):
        start = time.perf_counter()
        out = self.layer(x)
        self.timings.add(self.timings.forward, self.name, time.perf_counter() - start)
        if out.creator is not None:
            _timed_backward(out.creator, self.name, self.timings)
        return out


def _layer_names(layers):
    """conv1..conv5, flatten, dense1, relu1, dense2, relu2, dense3 for the fast model."""
    names, counts = [], {}
    for layer in layers:
        kind = {"ConvReLUPool": "conv", "Dense": "dense", "ReLU": "relu",
                "Flatten": "flatten"}.get(type(layer).__name__, type(layer).__name__.lower())
        counts[kind] = counts.get(kind, 0) + 1
        names.append(kind if kind == "flatten" else f"{kind}{counts[kind]}")
    return names


def profile(batch, image_size, repeats):
    """Median per-part forward/backward ms of `repeats` training steps (after two warm-up steps)."""
    import engine.model as model_module

    # one layer per block (no ConvStack), so that every block can be timed on its own
    model, sgd, x, y, plain_step = study_net_step("fast", batch, image_size, stack_blocks=False)
    plain = best_time(plain_step, repeats, warmup=2)

    timings = _Timings()
    names = _layer_names(model.layers)
    model.layers = [_TimedLayer(layer, name, timings) for layer, name in zip(model.layers, names)]
    loss_class = model_module.BCEWithLogitsFn

    class TimedLoss(loss_class):
        """The loss Function with its forward and backward timed."""

        def __call__(self, *inputs):
            start = time.perf_counter()
            out = super().__call__(*inputs)
            timings.add(timings.forward, "loss", time.perf_counter() - start)
            if out.creator is not None:
                _timed_backward(out.creator, "loss", timings)
            return out
    model_module.BCEWithLogitsFn = TimedLoss
    zero_grad = model.params.zero_grad

    def timed_zero_grad():
        start = time.perf_counter()
        zero_grad()
        timings.add(timings.forward, "zero grad", time.perf_counter() - start)
    model.params.zero_grad = timed_zero_grad

    steps = []
    for i in range(repeats + 2):
        timings.forward, timings.backward = {}, {}
        start = time.perf_counter()
        model.loss_and_grad(x, y)
        mid = time.perf_counter()
        sgd.step(0.01)
        end = time.perf_counter()
        timings.add(timings.forward, "sgd update", end - mid)
        if i >= 2:
            steps.append((end - start, dict(timings.forward), dict(timings.backward)))
    model_module.BCEWithLogitsFn = loss_class

    parts = names + ["loss", "zero grad", "sgd update"]
    rows = []
    for name in parts:
        fwd = [s[1].get(name, 0.0) for s in steps]
        bwd = [s[2].get(name, 0.0) for s in steps]
        rows.append({"part": name, "forward_ms": 1e3 * statistics.median(fwd),
                     "backward_ms": 1e3 * statistics.median(bwd)})
    overhead = [s[0] - sum(s[1].values()) - sum(s[2].values()) for s in steps]
    rows.append({"part": "overhead", "forward_ms": 1e3 * statistics.median(overhead), "backward_ms": 0.0})
    total = 1e3 * statistics.median(s[0] for s in steps)
    return {"batch": batch, "total_ms": total, "uninstrumented_ms": 1e3 * plain,
            "images_per_s": batch / plain, "parts": rows}


def run_subprocess(threads, batch, image_size, repeats):
    """Profile one (threads, batch) configuration in a fresh interpreter."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    spec = json.dumps({"batch": batch, "size": image_size, "repeats": repeats})
    out = subprocess.run([sys.executable, __file__, "--one", spec], env=env, capture_output=True,
                         text=True, check=True)
    return {"threads": threads, **json.loads(out.stdout.strip().splitlines()[-1])}


def markdown(results):
    """One row per part, a forward and a backward column per (threads, batch) configuration."""
    heads = [f"{r['threads']}T bs {r['batch']}" for r in results]
    lines = ["| part (ms) | " + " | ".join(f"{h} fwd | {h} bwd" for h in heads) + " |",
             "|---|" + "---|---|" * len(results)]
    for i, row in enumerate(results[0]["parts"]):
        cells = []
        for r in results:
            p = r["parts"][i]
            back = "" if p["part"] in ("overhead", "zero grad", "sgd update") else f"{p['backward_ms']:.2f}"
            cells += [f"{p['forward_ms']:.2f}", back]
        lines.append(f"| {row['part']} | " + " | ".join(cells) + " |")
    lines.append("| **step (median)** | " + " | ".join(f"{r['total_ms']:.1f} | " for r in results) + " |")
    lines.append("| step uninstrumented (min) | "
                 + " | ".join(f"{r['uninstrumented_ms']:.1f} | {r['images_per_s']:,.0f} img/s" for r in results)
                 + " |")
    return "\n".join(lines) + "\n"


def main():
    """Profile every (threads, batch) configuration and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=0,
                        help="timed steps per configuration (default: 2048 images' worth, 5 to 40)")
    parser.add_argument("--name", default="profile_step")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(profile(spec["batch"], spec["size"], spec["repeats"])))
        return
    results = []
    for threads in args.threads:
        for batch in args.batches:
            repeats = args.repeats or min(40, max(5, 2048 // batch))
            result = run_subprocess(threads, batch, args.image_size, repeats)
            results.append(result)
            print(f"{threads} thread(s) bs {batch}: {result['total_ms']:.1f} ms/step instrumented, "
                  f"{result['uninstrumented_ms']:.1f} ms plain", flush=True)
    load = os.getloadavg()
    write_result(args.name, {"machine": machine_info(), "load_average": load, "results": results})
    write_markdown(args.name, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
