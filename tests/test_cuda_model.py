"""The whole study net through the GPU kernels (kernels='cuda': fused blocks, loss, SGD update) gives
the CPU reference's loss, flat gradient and update. Simulated in CI at 32 px, batch 2."""
import os

import numpy as np
import pytest
from cuda_harness import ON_GPU, TOLERANCE, max_relative_error, on_host, xp

from engine.model import ModelConfig, build_model
from engine.sgd import SGD

# A GPU can afford the study's real image size and both dtypes. The simulator interprets every
# thread (about 15 s of CPU for this net at 32 px, batch 2, in one dtype), so CI checks the net in
# float64, the tighter bound; every kernel is checked in both dtypes by test_cuda_kernels.py.
IMAGE_SIZE = int(os.environ.get("BATCHLAB_CUDA_MODEL_SIZE", 128 if ON_GPU else 32))
BATCH = 8 if ON_GPU else 2
DTYPES = [np.float32, np.float64] if ON_GPU else [np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_study_net_loss_gradient_and_update_match_cpu_reference(dtype):
    config = ModelConfig(image_size=IMAGE_SIZE)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(dtype)
    y = (np.arange(BATCH) % 2).astype(dtype)
    reference = build_model(config, seed=1, dtype=dtype, kernels="reference")
    gpu = build_model(config, seed=1, dtype=dtype, kernels="cuda", xp=xp)
    # biases start at 0; nonzero ones make the bias terms and the ReLU boundaries matter
    for row in reference.table:
        if row["role"] == "bias":
            start = row["offset"]
            reference.theta[start:start + row["size"]] = np.linspace(-0.05, 0.05, row["size"])
    gpu.theta[...] = xp.asarray(reference.theta)
    loss_ref, correct_ref = reference.loss_and_grad(x, y)
    loss, correct = gpu.loss_and_grad(x, y)
    assert abs(loss - loss_ref) / abs(loss_ref) < TOLERANCE[dtype]
    assert correct == correct_ref
    assert max_relative_error(gpu.grad, reference.grad) < TOLERANCE[dtype]
    assert np.abs(reference.grad).min() < np.abs(reference.grad).max()  # not a degenerate gradient
    norm_ref = SGD(reference.theta, reference.grad, momentum=0.9, cuda_kernel=False).step(0.1)
    norm = SGD(gpu.theta, gpu.grad, momentum=0.9, cuda_kernel=True).step(0.1)
    assert abs(norm - norm_ref) / norm_ref < TOLERANCE[dtype]
    assert max_relative_error(gpu.theta, reference.theta) < TOLERANCE[dtype]
    assert on_host(gpu.theta).dtype == dtype
