"""Seeded Glorot-uniform initialisation of the flat parameter vector.

Glorot (Xavier) uniform draws W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); for a conv weight
(out, in, k, k), fan_in = in*k*k and fan_out = out*k*k (the Keras convention the study used). Biases
start at zero. Draws come from NumPy's PCG64 in float64 on the host and are then cast, so one seed
gives bit-identical weights on every machine and device.
"""
import math

import numpy as np


def glorot_uniform_theta(table, seed, dtype=np.float32):
    """Return a host vector of initial parameters for the layer `table`, seeded by `seed`."""
    rng = np.random.default_rng(seed)
    size = sum(row["size"] for row in table)
    theta = np.zeros(size, dtype=np.float64)
    for row in table:
        if row["role"] != "weight":
            continue
        shape = row["shape"]
        receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        theta[row["offset"]:row["offset"] + row["size"]] = rng.uniform(-limit, limit, row["size"])
    return theta.astype(dtype)
