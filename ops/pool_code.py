"""The code a fused conv + ReLU + 2x2 max-pool op keeps per pooled output (ops/block.py explains
it), in its own module so the CPU and GPU kernels share it without importing the dispatcher."""

RELU_ZERO = 4  # the window's maximum was <= 0: the output is 0 and no gradient flows back
