"""Loss functions of a flat parameter vector: the interface every analysis uses.

An objective answers three questions at any flat theta: the loss, the loss and its exact gradient,
and (where it means something) the loss and the accuracy. `QuadraticObjective` has closed-form
answers for tests; `ModelObjective` evaluates the engine's model over a whole data split.
"""
from typing import Protocol

import numpy as np

from ops.backend import array_module, to_host


class Objective(Protocol):
    """What the analyses need from a loss: f(theta), and f(theta) with its exact gradient."""

    def value(self, theta):
        """Loss at the flat parameter vector `theta` (a float)."""

    def value_and_grad(self, theta):
        """(loss, gradient) at `theta`; the gradient is a float64 array shaped like theta."""

    def evaluate(self, theta):
        """(loss, accuracy) at `theta`; accuracy is NaN where it has no meaning."""


class QuadraticObjective:
    """f(x) = 1/2 x^T H x + b^T x + c: a test function whose gradient (Hx + b), Hessian (H) and
    maxima over boxes are known in closed form. H should be symmetric."""

    def __init__(self, H, c=0.0, b=None):
        self.H = np.asarray(H, dtype=np.float64)
        self.c = float(c)
        self.b = np.zeros(self.H.shape[0]) if b is None else np.asarray(b, dtype=np.float64)

    def value(self, theta):
        """1/2 x^T H x + b^T x + c."""
        x = np.asarray(theta, dtype=np.float64)
        return float(0.5 * x @ self.H @ x + self.b @ x + self.c)

    def value_and_grad(self, theta):
        """The value and its gradient H x + b."""
        x = np.asarray(theta, dtype=np.float64)
        return self.value(x), self.H @ x + self.b

    def evaluate(self, theta):
        """(value, NaN): a quadratic has no accuracy."""
        return self.value(theta), float("nan")


def to_unit_range(images):
    """uint8 images as float32 in [0, 1], exactly as the study preprocesses: cast, then divide."""
    return images.astype(np.float32) / np.float32(255.0)


class ModelObjective:
    """Mean loss of the engine model over the examples (x, y), as a function of a flat theta.

    The data are processed in chunks of `batch_size` (memory stays bounded); the mean loss and the
    exact gradient are the chunk means weighted by chunk size, accumulated in float64 so the result
    does not depend on the chunking beyond the model's own precision. `x` may be uint8 images (scaled
    to [0, 1] chunk by chunk, as the study's preprocessing does) or floats already in [0, 1].
    """

    def __init__(self, model, x, y, batch_size=256):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if len(x) == 0:
            raise ValueError("an objective needs at least one example")
        self.model, self.x, self.y = model, x, np.asarray(y)
        self.batch_size = int(batch_size)

    @property
    def n_examples(self):
        """Number of examples the mean runs over."""
        return len(self.y)

    def subset(self, indices):
        """The same objective restricted to the examples at `indices` (a minibatch loss)."""
        indices = np.asarray(indices)
        return ModelObjective(self.model, self.x[indices], self.y[indices], self.batch_size)

    def _chunks(self):
        for start in range(0, self.n_examples, self.batch_size):
            xb = self.x[start:start + self.batch_size]
            if xb.dtype == np.uint8:
                xb = to_unit_range(xb)
            yb = self.y[start:start + self.batch_size].astype(np.float32)
            yield xb, yb

    def _load(self, theta):
        target = self.model.theta
        theta = np.asarray(theta)
        if theta.shape != target.shape:
            raise ValueError(f"theta has shape {theta.shape}, the model has {target.shape}")
        target[...] = array_module(target).asarray(theta, dtype=target.dtype)

    def value(self, theta):
        """Mean loss over all examples at `theta` (no gradient)."""
        return self.evaluate(theta)[0]

    def evaluate(self, theta):
        """(mean loss, accuracy) over all examples at `theta`, without building a graph."""
        self._load(theta)
        total_loss, total_correct = 0.0, 0.0
        for xb, yb in self._chunks():
            loss, acc = self.model.evaluate(xb, yb, batch_size=self.batch_size)
            total_loss += float(loss) * len(yb)
            total_correct += float(acc) * len(yb)
        return total_loss / self.n_examples, total_correct / self.n_examples

    def value_and_grad(self, theta):
        """(mean loss, exact gradient of the mean loss) at `theta`, gradient in float64."""
        self._load(theta)
        total_loss = 0.0
        grad = np.zeros(self.model.theta.shape, dtype=np.float64)
        for xb, yb in self._chunks():
            loss, _ = self.model.loss_and_grad(xb, yb)
            # d(mean over all)/d theta = sum over chunks of (chunk size / N) * d(chunk mean)/d theta
            total_loss += float(loss) * len(yb)
            grad += to_host(self.model.grad).astype(np.float64) * len(yb)
        return total_loss / self.n_examples, grad / self.n_examples

    def example_gradients(self, theta, indices):
        """Yield the gradient of each single example's loss at `theta`, one float64 array each."""
        self._load(theta)
        for i in np.asarray(indices):
            xb = self.x[i:i + 1]
            if xb.dtype == np.uint8:
                xb = to_unit_range(xb)
            self.model.loss_and_grad(xb, self.y[i:i + 1].astype(np.float32))
            yield to_host(self.model.grad).astype(np.float64)
