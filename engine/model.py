"""The study's VGG-style cats-vs-dogs net, built from a small config on one flat parameter vector.

    input 3 x S x S
    5 x [conv 3x3 'same' -> ReLU -> maxpool 2x2]   filters 4, 8, 16, 32, 64
    flatten -> dense 256 ReLU -> dense 256 ReLU -> dense 1 (logit; sigmoid lives in the loss)

At S = 128 this has 353,161 parameters.
"""
from dataclasses import dataclass

import numpy as np

from ops.block import direct_stack_depth
from ops.loss import count_correct
from ops.pixels import PixelRows, gathered, is_pixels, pixels_to_float

from .functions import BCEWithLogitsFn
from .init import glorot_uniform_theta
from .layers import Conv2D, ConvReLUPool, ConvStack, Dense, Flatten, MaxPool2D, ReLU
from .params import FlatParameters
from .tensor import Tensor, no_grad

KERNEL_CHOICES = ("reference", "fast", "cuda")


class ModelConfigError(ValueError):
    """A model configuration that cannot be built (a user mistake, reported in one line)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the net: input size, conv filters per block, hidden dense widths, kernel size."""

    image_size: int = 128
    filters: tuple = (4, 8, 16, 32, 64)
    dense: tuple = (256, 256)
    kernel_size: int = 3
    in_channels: int = 3

    def feature_size(self):
        """Spatial size after all pooling stages (each halves, flooring odd sizes)."""
        size = self.image_size
        for _ in self.filters:
            size //= 2
        return size

    def validate(self):
        """Raise ModelConfigError unless every pooling stage has at least one pixel to pool."""
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ModelConfigError(f"kernel size must be odd and positive, got {self.kernel_size}")
        if self.feature_size() < 1:
            smallest = 2 ** len(self.filters)
            raise ModelConfigError(
                f"image size {self.image_size} is too small for {len(self.filters)} pooling stages; "
                f"use at least {smallest}")

    def parameter_entries(self):
        """(name, layer, kind, role, shape) for every parameter tensor, in flat-vector order."""
        entries, channels, k = [], self.in_channels, self.kernel_size
        for i, out in enumerate(self.filters, start=1):
            entries += [(f"conv{i}.weight", f"conv{i}", "conv", "weight", (out, channels, k, k)),
                        (f"conv{i}.bias", f"conv{i}", "conv", "bias", (out,))]
            channels = out
        width = channels * self.feature_size() ** 2
        for i, out in enumerate(tuple(self.dense) + (1,), start=1):
            entries += [(f"dense{i}.weight", f"dense{i}", "dense", "weight", (out, width)),
                        (f"dense{i}.bias", f"dense{i}", "dense", "bias", (out,))]
            width = out
        return entries


class Model:
    """A sequential net whose parameters are views into `self.params.theta`."""

    def __init__(self, config, params, layers, kernels):
        self.config, self.params, self.layers, self.kernels = config, params, layers, kernels

    @property
    def theta(self):
        """The flat parameter vector (writing into it changes the model)."""
        return self.params.theta

    @property
    def grad(self):
        """The flat gradient vector filled by loss_and_grad."""
        return self.params.grad

    @property
    def table(self):
        """The layer table: name, layer, kind, role, shape, offset and size of every parameter."""
        return self.params.table

    @property
    def xp(self):
        """The array module (numpy or cupy) the parameters live in."""
        return self.params.xp

    def forward(self, x):
        """Logits (N, 1) for an input Tensor x (N, C, S, S)."""
        for layer in self.layers:
            x = layer(x)
        return x

    def _as_arrays(self, x, y):
        """x as the first layer reads it, y as a flat vector in the parameters' dtype. uint8 pixels
        stand for x / 255: the fused block reads them as they are (ops/pixels.py), so the float
        batch is never built, and the fast stack reads photos named by index (PixelRows) where they
        are; any other first layer gets them gathered once here, and separate layers converted."""
        xp, dtype = self.xp, self.theta.dtype
        reads_pixels = getattr(self.layers[0], "reads_pixels", False)
        if not (getattr(self.layers[0], "reads_rows", False) and isinstance(x, PixelRows)):
            x = xp.asarray(gathered(x))
        if not (is_pixels(x) and reads_pixels):
            x = xp.asarray(pixels_to_float(x, dtype), dtype=dtype)
        return x, xp.asarray(y, dtype=dtype).reshape(-1)

    def loss_and_grad(self, x, y, denominator=None):
        """Loss sum(x)/denominator and its gradient, written into the flat `grad` vector.

        `denominator` defaults to len(x) (the mean over this batch); under data parallelism it is
        the global batch size, so the ranks' gradients add up to the global mean's gradient.
        Returns (loss, number of correct predictions).
        """
        x, y = self._as_arrays(x, y)
        denominator = len(x) if denominator is None else denominator
        self.params.zero_grad()
        logits = self.forward(Tensor(x))
        loss = BCEWithLogitsFn(denominator, self.kernels)(logits, Tensor(y))
        correct = count_correct(logits.data.reshape(-1), y)
        loss.backward()
        return float(loss.data), correct

    def evaluate_sums(self, x, y, batch_size=256):
        """(sum of losses, number correct, count) over x without building a graph."""
        loss_sum, correct = 0.0, 0
        with no_grad():
            for start in range(0, len(x), batch_size):
                xb, yb = self._as_arrays(x[start:start + batch_size], y[start:start + batch_size])
                logits = self.forward(Tensor(xb)).data.reshape(-1)
                loss_sum += float(BCEWithLogitsFn(1, self.kernels).forward(logits, yb))
                correct += count_correct(logits, yb)
        return loss_sum, correct, len(x)

    def evaluate(self, x, y, batch_size=256):
        """Mean loss and accuracy over x (no graph, no activations kept)."""
        loss_sum, correct, count = self.evaluate_sums(x, y, batch_size)
        return loss_sum / count, correct / count


def build_model(config=ModelConfig(), seed=0, dtype="float32", kernels="fast", xp=np, stack_blocks=True):
    """Build the net with seeded Glorot-uniform weights and zero biases.

    `kernels="reference"` uses separate readable Conv2D/ReLU/MaxPool2D layers; "fast" uses the fused
    block (numba on CPU); "cuda" the fused block and the loss as numba.cuda kernels (on CuPy arrays,
    or NumPy arrays under numba's CUDA simulator). All share one parameter layout, so weights move
    freely between them. With "fast", the leading few-channel blocks form one ConvStack (each sample
    through all of them in turn; `stack_blocks=False` keeps one layer per block, e.g. to time them).
    Building a model leaves the process alone: its entry point tunes it (engine/tuning.py).
    """
    config.validate()
    if kernels not in KERNEL_CHOICES:
        raise ModelConfigError(f"kernels must be one of {KERNEL_CHOICES}, got {kernels!r}")
    dtype = np.dtype(dtype)
    params = FlatParameters(config.parameter_entries(), xp=xp, dtype=dtype)
    params.theta[...] = xp.asarray(glorot_uniform_theta(params.table, seed, dtype))
    in_channels = (config.in_channels,) + tuple(config.filters[:-1])
    stacked = direct_stack_depth(in_channels, config.kernel_size, kernels) if stack_blocks else 0
    layers = [ConvStack([(params[f"conv{i}.weight"], params[f"conv{i}.bias"]) for i in range(1, stacked + 1)],
                        kernels)] if stacked else []
    for i in range(stacked + 1, len(config.filters) + 1):
        w, b = params[f"conv{i}.weight"], params[f"conv{i}.bias"]
        if kernels != "reference":
            layers.append(ConvReLUPool(w, b, kernels))
        else:
            layers += [Conv2D(w, b), ReLU(), MaxPool2D()]
    layers.append(Flatten())
    n_dense = len(config.dense) + 1
    for i in range(1, n_dense + 1):
        layers.append(Dense(params[f"dense{i}.weight"], params[f"dense{i}.bias"], kernels))
        if i < n_dense:
            layers.append(ReLU())
    return Model(config, params, layers, kernels)
