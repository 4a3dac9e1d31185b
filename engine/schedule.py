"""Learning-rate rules of the study.

Scaling (Goyal et al. 2017): with k = batch / base_batch, 'linear' uses lr * k, 'sqrt' lr * sqrt(k),
'none' leaves lr alone. Gradual warm-up ramps the rate linearly, step by step, from the unscaled lr
to the scaled one over the first warm-up epochs.
"""
import math

SCALE_RULES = ("none", "linear", "sqrt")


def scaled_lr(lr, batch, base_batch, rule):
    """The effective learning rate for `batch` under scaling `rule`."""
    if rule not in SCALE_RULES:
        raise ValueError(f"lr scaling must be one of {SCALE_RULES}, got {rule!r}")
    k = batch / base_batch
    return {"none": lr, "linear": lr * k, "sqrt": lr * math.sqrt(k)}[rule]


def lr_at_step(base_lr, target_lr, warmup_epochs, epoch, step, steps_per_epoch):
    """Learning rate at `step` of `epoch` (both from 0): a linear ramp from base_lr to target_lr over
    warmup_epochs epochs, then target_lr."""
    if warmup_epochs <= 0:
        return target_lr
    progress = (epoch * steps_per_epoch + step) / (warmup_epochs * steps_per_epoch)
    if progress >= 1:
        return target_lr
    return base_lr + (target_lr - base_lr) * progress
