"""The VGG block conv 3x3 -> bias -> ReLU -> 2x2 max-pool as one op.

Fusing matters on the CPU: the pre-pool activation of the wide, shallow early layers is the largest
tensor of the net, and the fused kernels never write it. The op keeps one small code per pooled
output instead of any activation:
    code = index (0..3, row-major in the window) of the first maximum of the pre-activation, when that
           maximum is > 0 (the ReLU passes it);
    code = RELU_ZERO (4) when the maximum is <= 0, so the output is 0 and no gradient flows back.
Since ReLU is monotone, maxpool(relu(a)) = relu(maxpool(a)), and the gradient reaches the
pre-activation only at the winner of a window whose maximum is positive.

The input may be uint8 pixels (the first block's photos), standing for x / 255 (ops/pixels.py).

`kernels="reference"` composes the readable ops in conv.py/pool.py (on NumPy or CuPy arrays);
`kernels="fast"` calls the numba kernels in block_numba.py (CPU arrays; GPU arrays fall back to the
reference); `kernels="cuda"` calls the numba.cuda kernels in cuda_block.py (CuPy arrays on a GPU,
NumPy arrays under numba's CUDA simulator).
"""
from .backend import array_module, is_gpu_array
from .conv import conv2d_backward, conv2d_forward
from .pixels import pixels_to_float
from .pool import maxpool2x2_backward, maxpool2x2_forward
from .pool_code import RELU_ZERO


def conv_relu_pool_reference(x, w, b):
    """Reference fused forward: returns (pooled output, uint8 code)."""
    xp = array_module(x)
    pre = conv2d_forward(x, w, b)
    pooled, winner = maxpool2x2_forward(pre)
    code = xp.where(pooled > 0, winner, RELU_ZERO).astype(xp.uint8)
    return xp.maximum(pooled, 0), code


def conv_relu_pool_backward_reference(x, w, code, gy, need_gx=True):
    """Reference fused backward: (gx, gw, gb) from the pooled-output gradient gy and the codes."""
    n, _, h, wd = x.shape
    g_pooled = gy * (code != RELU_ZERO)
    g_pre = maxpool2x2_backward(g_pooled, code % RELU_ZERO, (n, w.shape[0], h, wd))
    return conv2d_backward(x, w, g_pre, need_gx=need_gx)


def _kernel_module(x, kernels):
    """The module with the chosen kernels for arrays like x, or None for the reference."""
    if kernels not in ("reference", "fast", "cuda"):
        raise ValueError(f"kernels must be 'reference', 'fast' or 'cuda', got {kernels!r}")
    if kernels == "cuda":
        from . import cuda_block
        return cuda_block
    if kernels == "fast" and not is_gpu_array(x):
        from . import block_numba
        return block_numba
    return None


def _float_input(x, w, module):
    """x for `module`: kernels that read uint8 pixels themselves (READS_PIXELS) get them as they
    are, the others (and the reference) x / 255."""
    return x if getattr(module, "READS_PIXELS", False) else pixels_to_float(x, w.dtype)


def conv_relu_pool_forward(x, w, b, kernels="fast"):
    """Fused conv+bias+ReLU+pool forward with the chosen kernels; returns (output, code). x may be
    uint8 pixels, standing for x / 255 (ops/pixels.py)."""
    module = _kernel_module(x, kernels)
    x = _float_input(x, w, module)
    if module is not None:
        return module.conv_relu_pool_forward(x, w, b)
    return conv_relu_pool_reference(x, w, b)


def conv_relu_pool_backward(x, w, code, gy, need_gx=True, kernels="fast"):
    """Fused backward with the chosen kernels; returns (gx or None, gw, gb)."""
    module = _kernel_module(x, kernels)
    x = _float_input(x, w, module)
    if module is not None:
        return module.conv_relu_pool_backward(x, w, code, gy, need_gx=need_gx)
    return conv_relu_pool_backward_reference(x, w, code, gy, need_gx=need_gx)


def direct_stack_depth(in_channels, kernel_size, kernels):
    """How many blocks at the start of a net (in_channels: each block's input channels) run as one
    stack, sample by sample through all of them (ops/block_numba.py: stack_forward): the leading
    blocks that take the direct 3x3 CPU kernels, when there are two or more; else 0."""
    if kernels != "fast" or kernel_size != 3:
        return 0
    from .block_numba import GEMM_MIN_CHANNELS
    depth = 0
    while depth < len(in_channels) and in_channels[depth] < GEMM_MIN_CHANNELS:
        depth += 1
    return depth if depth >= 2 else 0


def conv_relu_pool_stack_forward(x, ws, bs, kernels="fast", keep=True):
    """Blocks in a row, block i's output feeding block i + 1: returns ([y_i], [code_i]). The fast CPU
    kernels take each sample through all of them before the next (the same numbers); anything else
    runs them block after block, which is the definition. keep=False promises no backward: then only
    the last output is sure to be returned (ys[-1]; the fast kernels keep the rest in scratch)."""
    module = _kernel_module(x, kernels)
    if getattr(module, "STACKS", False):
        return module.stack_forward(x, ws, bs, keep=keep)
    ys, codes = [], []
    for w, b in zip(ws, bs):
        y, code = conv_relu_pool_forward(x, w, b, kernels=kernels)
        ys.append(y)
        codes.append(code)
        x = y
    return ys, codes


def conv_relu_pool_stack_backward(x, ws, ys, codes, gy, need_gx=True, kernels="fast"):
    """(gx or None, [gw_i], [gb_i]) of conv_relu_pool_stack_forward from the last block's output
    gradient gy; ys/codes as it returned them."""
    module = _kernel_module(x, kernels)
    if getattr(module, "STACKS", False):
        return module.stack_backward(x, ws, ys, codes, gy, need_gx=need_gx)
    gws, gbs = [], []
    for i in range(len(ws) - 1, -1, -1):
        inputs = ys[i - 1] if i else x
        gy, gw, gb = conv_relu_pool_backward(inputs, ws[i], codes[i], gy, need_gx=need_gx or i > 0,
                                             kernels=kernels)
        gws.insert(0, gw)
        gbs.insert(0, gb)
    return gy, gws, gbs
