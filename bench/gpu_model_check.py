"""Whole-model gradient check on a GPU: the study net through the GPU kernels (float64, CuPy arrays)
against the CPU reference net and against central differences along random directions.

    python bench/gpu_model_check.py --out model_check.json [--image-size 64] [--batch 4]

Run by bench/gpu_check.sh; exits 1 when an error exceeds its bound.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from engine.gradcheck import directional_derivative, relative_error  # noqa: E402
from engine.model import ModelConfig, build_model  # noqa: E402

BOUNDS = {"grad_vs_cpu_reference": 1e-12, "loss_vs_cpu_reference": 1e-12, "directional_derivative": 1e-5}


def main():
    """Compare, write the JSON, return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--directions", type=int, default=3)
    args = parser.parse_args()
    import cupy
    config = ModelConfig(image_size=args.image_size)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, args.image_size, args.image_size))
    y = (np.arange(args.batch) % 2).astype(np.float64)
    reference = build_model(config, seed=0, dtype="float64", kernels="reference")
    gpu = build_model(config, seed=0, dtype="float64", kernels="cuda", xp=cupy)
    loss_ref, _ = reference.loss_and_grad(x, y)
    loss, _ = gpu.loss_and_grad(x, y)
    grad = cupy.asnumpy(gpu.grad)
    result = {"image_size": args.image_size, "batch": args.batch,
              "loss_vs_cpu_reference": abs(loss - loss_ref) / abs(loss_ref),
              "grad_vs_cpu_reference": relative_error(grad, reference.grad)}
    xd, yd = cupy.asarray(x), cupy.asarray(y)
    errors = []
    for _ in range(args.directions):
        direction = rng.standard_normal(gpu.theta.size)
        numeric = directional_derivative(lambda: gpu.evaluate(xd, yd)[0], gpu.theta,
                                         cupy.asarray(direction), h=1e-5)
        errors.append(abs(numeric - grad @ direction) / abs(numeric))
    result["directional_derivative"] = max(errors)
    result["passed"] = all(result[name] < bound for name, bound in BOUNDS.items())
    Path(args.out).write_text(json.dumps({**result, "bounds": BOUNDS}, indent=2) + "\n")
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
