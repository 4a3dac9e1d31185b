"""A built-in, deterministic two-class image set for runs without photos.

Class 0 ("blobs") shows one to three smooth elliptical Gaussian blobs; class 1 ("stripes") shows a
hard-edged round patch of square-wave stripes at a random angle and frequency. Background and
foreground colours, positions and sizes are drawn from the same distributions for both classes (the
foreground always differs clearly from the background) and Gaussian pixel noise is added, so a
classifier must look at local texture (gentle slopes vs sharp, repeated edges), not at colour or
brightness. Sharp edges are what a 3x3 convolution sees first, so the study's net at its default
settings learns this task within a few epochs: a first run visibly learns.
Scenes are drawn in unit coordinates, so every image size shows the same scenes.
"""
import numpy as np

SYNTHETIC_SEED = 7_031_985
CLASSES = ("blobs", "stripes")
N_TRAIN = 2000
N_VAL = 400
NOISE_STD = 0.03
MIN_CONTRAST = 0.35  # foreground minus background, per channel, before clipping to [0, 1]


def _blobs(rng, xx, yy):
    """Foreground coverage in [0, 1]: the max of 1-3 anisotropic Gaussian bumps (no sharp edge)."""
    mask = np.zeros_like(xx)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.25, 0.75, 2).tolist()
        sx, sy = rng.uniform(0.08, 0.2, 2).tolist()
        mask = np.maximum(mask, np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)))
    return mask


def _stripes(rng, xx, yy):
    """Foreground coverage in {0, 1}: a square-wave grating inside a hard-edged disc."""
    cx, cy = rng.uniform(0.35, 0.65, 2).tolist()
    radius = float(rng.uniform(0.2, 0.35))
    theta = float(rng.uniform(0.0, np.pi))
    cycles = float(rng.uniform(3.0, 6.0))  # stripe periods per image width
    phase = float(rng.uniform(0.0, 2 * np.pi))
    along = xx * float(np.cos(theta)) + yy * float(np.sin(theta))
    grating = np.sin(2 * np.pi * cycles * along + phase) > 0
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2
    return (grating & disc).astype(xx.dtype)


def _colours(rng):
    """(background, foreground), each (3, 1, 1) float32, differing by MIN_CONTRAST-0.7 per channel."""
    background = rng.uniform(0.0, 1.0, (3, 1, 1))
    step = rng.uniform(MIN_CONTRAST, 0.7, (3, 1, 1))
    # move away from the background in whichever direction stays inside [0, 1] longer
    foreground = np.where(background < 0.5, background + step, background - step)
    return background.astype(np.float32), np.clip(foreground, 0.0, 1.0).astype(np.float32)


def _render(rng, label: int, size: int, xx, yy) -> np.ndarray:
    """One uint8 (3, size, size) image of class `label`."""
    background, foreground = _colours(rng)
    mask = (_blobs if label == 0 else _stripes)(rng, xx, yy)
    img = background * (1.0 - mask) + foreground * mask
    img = img + NOISE_STD * rng.standard_normal((3, size, size), dtype=np.float32)
    return np.clip(np.rint(img * np.float32(255.0)), 0, 255).astype(np.uint8)


def make_synthetic(image_size: int):
    """Return (train_x, train_y, val_x, val_y): N_TRAIN + N_VAL images, classes alternating 0, 1.

    Seeded by SYNTHETIC_SEED only, so every caller (and every MPI rank) gets identical arrays.
    """
    rng = np.random.default_rng(SYNTHETIC_SEED)
    coords = ((np.arange(image_size) + 0.5) / image_size).astype(np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    total = N_TRAIN + N_VAL
    x = np.empty((total, 3, image_size, image_size), dtype=np.uint8)
    y = (np.arange(total) % 2).astype(np.uint8)
    for i in range(total):
        x[i] = _render(rng, int(y[i]), image_size, xx, yy)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
