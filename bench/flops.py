"""Exact floating-point work of the study's net, layer by layer, and the machine's sgemm ceiling.

A multiply-add counts as 2 FLOPs. For a 3x3 'same' convolution with C inputs and O outputs on an
H x W plane, every output position does C*k*k multiply-adds (the kernels compute the zero-padded
border taps too), so

    conv forward            2 * N * O * C * k^2 * H * W
    conv weight gradient    the same (one multiply-add per tap per position)
    conv input gradient     the same, except for conv1 (the images need no gradient)
    dense forward           2 * N * in * out, and the same again for each of its two gradients

Bias adds, ReLU, pooling comparisons and the loss are left out: they are O(N*O*H*W), under 1 % of
the total. At 128 px one training image costs 37.36 MFLOP and one evaluated image 13.63 MFLOP.
"""
import os
import statistics
import time


def layer_flops(config, batch, train=True):
    """[(layer, pass, FLOPs)] for one step of `batch` images: passes 'forward', and when training
    'weight grad' and 'input grad' (conv1 has none: the images need no gradient)."""
    rows, channels, size, k = [], config.in_channels, config.image_size, config.kernel_size
    for i, out in enumerate(config.filters, start=1):
        conv = 2 * batch * out * channels * k * k * size * size
        rows.append((f"conv{i}", "forward", conv))
        if train:
            rows.append((f"conv{i}", "weight grad", conv))
            if i > 1:
                rows.append((f"conv{i}", "input grad", conv))
        channels, size = out, size // 2
    width = channels * size * size
    for i, out in enumerate(tuple(config.dense) + (1,), start=1):
        dense = 2 * batch * width * out
        rows.append((f"dense{i}", "forward", dense))
        if train:
            rows += [(f"dense{i}", "weight grad", dense), (f"dense{i}", "input grad", dense)]
        width = out
    return rows


def step_flops(config, batch, train=True):
    """Total FLOPs of one training step (train=True) or one no-grad forward pass of `batch` images."""
    return sum(flops for *_, flops in layer_flops(config, batch, train))


SGEMM_SIZE = 2048  # 1024 reads ~7 % lower here, which would flatter every fraction


def sgemm_gflops(size=SGEMM_SIZE, repeats=10):
    """(median, best) GFLOP/s of NumPy's float32 matrix product on size x size matrices with the
    process's BLAS threads: the ceiling the kernels are compared with, measured in the same run."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    flops = 2.0 * size ** 3
    return flops / statistics.median(times) / 1e9, flops / min(times) / 1e9


def load_average():
    """The 1, 5 and 15 minute load averages, reported beside every figure (the hosts are shared)."""
    return tuple(round(v, 2) for v in os.getloadavg())
