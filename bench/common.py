"""Shared pieces of the benchmarks: machine facts, timing, peak memory, result files."""
import json
import os
import platform
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info():
    """What the numbers were measured on."""
    import numpy
    info = {"python": platform.python_version(), "numpy": numpy.__version__,
            "machine": platform.machine(), "cores": os.cpu_count(),
            "threads": os.environ.get("NUMBA_NUM_THREADS"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import numba
        import llvmlite.binding as llvm
        info["numba"] = numba.__version__
        info["llvm_cpu"] = llvm.get_host_cpu_name()
    except ImportError:
        pass
    return info


def machine_line(info=None):
    """One line naming the CPU the figures come from: kernels tuned on one CPU can reach a different
    fraction of sgemm on another (AMD Zen 4 and Intel Emerald Rapids differ by up to 2x here)."""
    info = info or machine_info()
    return (f"Machine: {info.get('cpu', 'unknown CPU')} (numba/LLVM target {info.get('llvm_cpu', '?')}), "
            f"{info['cores']} cores, measured {info['date']}.")


def write_markdown(name, text):
    """Write bench/results/NAME.md: `text` under the machine line."""
    path = RESULTS / f"{name}.md"
    path.write_text(machine_line() + "\n\n" + text)
    return path


def call_times(fn, repeats, warmup=1, min_seconds=0.0):
    """Wall times of at least `repeats` calls of fn() after `warmup` untimed calls (for medians and
    bests), continuing until the timed calls add up to `min_seconds`: on a shared host a median over
    a tenth of a second (10 small steps) follows whatever else ran in that moment."""
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeats or sum(times) < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def alternating_times(fns, rounds, warmup=1):
    """{name: [seconds]} of the callables in the dict `fns`, called one after the other in each of
    `rounds` rounds after `warmup` untimed rounds: the i-th times of all of them come from the same
    moment of a shared host, so their ratios can be taken round by round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def best_time(fn, repeats, warmup=1):
    """Minimum wall time of fn() over `repeats` calls after `warmup` calls (least noisy estimate)."""
    return min(call_times(fn, repeats, warmup))


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name, payload):
    """Write bench/results/NAME.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def study_net_step(kernels, batch, image_size, seed=0, xp=None, stack_blocks=True):
    """The study's net with a random batch of pixels and one training step (forward, backward, SGD
    update) as a callable; returns (model, sgd, x, y, step). `xp` (default numpy) is where theta and
    the batch live; the step ends by reading the loss and update norm back, so a timed GPU step has
    finished. `stack_blocks` as for engine.model.build_model."""
    import numpy as np
    xp = np if xp is None else xp

    from engine.model import ModelConfig, build_model
    from engine.sgd import SGD
    from engine.tuning import tune_process
    tune_process()  # the timed process is tuned as a training command's is
    model = build_model(ModelConfig(image_size=image_size), seed=seed, kernels=kernels, xp=xp,
                        stack_blocks=stack_blocks)
    sgd = SGD(model.theta, model.grad)
    rng = np.random.default_rng(seed)
    # uint8 pixels, as training hands them to the model (its first block divides by 255 itself)
    x = xp.asarray(rng.integers(0, 256, (batch, 3, image_size, image_size), dtype=np.uint8))
    y = xp.asarray((rng.random(batch) > 0.5).astype(np.float32))

    def step():
        model.loss_and_grad(x, y)
        sgd.step(0.01)
    return model, sgd, x, y, step
