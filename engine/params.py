"""The flat parameter store: every parameter is a view into ONE vector `theta`, every gradient a view
into ONE vector `grad`.

The optimiser step, the allreduce, checkpoints and the analyses all work on these two vectors; the
layer table (name, layer, kind, role, shape, offset, size) says where each tensor lives, so a
checkpoint is one array plus the table.
"""
import math

import numpy as np

from .tensor import Tensor


class FlatParameters:
    """Allocate theta and grad for a list of (name, layer, kind, role, shape) entries, in that order."""

    def __init__(self, entries, xp=np, dtype=np.float32):
        self.table = []
        offset = 0
        for name, layer, kind, role, shape in entries:
            size = math.prod(shape)
            self.table.append({"name": name, "layer": layer, "kind": kind, "role": role,
                               "shape": list(shape), "offset": offset, "size": size})
            offset += size
        self.xp = xp
        self.theta = xp.zeros(offset, dtype=dtype)
        self.grad = xp.zeros(offset, dtype=dtype)
        self.tensors = {row["name"]: Tensor(self._view(self.theta, row), requires_grad=True,
                                            grad=self._view(self.grad, row))
                        for row in self.table}

    @staticmethod
    def _view(flat, row):
        return flat[row["offset"]:row["offset"] + row["size"]].reshape(row["shape"])

    @property
    def size(self):
        """Total number of scalar parameters."""
        return self.theta.size

    def __getitem__(self, name):
        """The Tensor of parameter `name` (its data and grad are views into theta and grad)."""
        return self.tensors[name]

    def zero_grad(self):
        """Reset the flat gradient in place (views stay valid)."""
        self.grad[...] = 0

    def layer_slices(self):
        """Map each layer name to the list of (offset, size) ranges of its parameters."""
        slices = {}
        for row in self.table:
            slices.setdefault(row["layer"], []).append((row["offset"], row["size"]))
        return slices


def per_layer_norms(vector, table):
    """Euclidean norm of `vector` restricted to each layer's parameters (weight and bias together)."""
    sums = {}
    for row in table:
        part = vector[row["offset"]:row["offset"] + row["size"]].astype(np.float64)
        sums[row["layer"]] = sums.get(row["layer"], 0.0) + float((part * part).sum())
    return {layer: math.sqrt(s) for layer, s in sums.items()}


def tables_match(a, b):
    """True when two layer tables describe the same layout (names, shapes and offsets)."""
    key = lambda t: [(r["name"], list(r["shape"]), r["offset"]) for r in t]  # noqa: E731
    return key(a) == key(b)
