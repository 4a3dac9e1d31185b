"""Sigmoid + binary cross-entropy fused on logits, exact and finite for any finite logit.

For a logit z and label y in {0, 1}:
    loss = -y log s(z) - (1 - y) log(1 - s(z)) = max(z, 0) - z y + log(1 + exp(-|z|)),
the right-hand form never exponentiates a large positive number, so z = +-100 gives finite values.
The gradient is dloss/dz = s(z) - y, evaluated as (1 - y) s(z) - y s(-z) (equal, since
s(z) + s(-z) = 1) so that neither tail cancels to 0: at z = 100, y = 1 it gives -e^-100, not 0.
"""
from .backend import array_module


def bce_with_logits_sum(z, y):
    """Sum over the batch of the binary cross-entropy of logits z (N,) against labels y (N,)."""
    xp = array_module(z)
    per_example = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    return per_example.sum()


def sigmoid(z):
    """Logistic function computed as exp(-log(1 + exp(-z))), stable for large |z|."""
    xp = array_module(z)
    return xp.exp(-xp.logaddexp(0, -z))


def bce_with_logits_grad(z, y, denominator):
    """d(sum of losses / denominator)/dz = (s(z) - y) / denominator, accurate in both tails."""
    return ((1 - y) * sigmoid(z) - y * sigmoid(-z)) / denominator


def count_correct(z, y):
    """Number of examples whose predicted class (z > 0 means class 1) equals the label."""
    return int(((z > 0) == (y > 0.5)).sum())
