"""A built-in, deterministic two-class image set for runs without photos.

Class 0 ("blobs") shows one to three soft elliptical blobs; class 1 ("stripes") shows a soft patch
of parallel stripes at a random angle and frequency. Background and foreground colours, positions and
sizes are drawn from the same distributions for both classes and Gaussian pixel noise is added, so a
classifier must look at local texture (smooth edges vs periodic edges), not at colour or brightness.
Scenes are drawn in unit coordinates, so every image size shows the same scenes.
"""
import numpy as np

SYNTHETIC_SEED = 7_031_985
CLASSES = ("blobs", "stripes")
N_TRAIN = 800
N_VAL = 200
NOISE_STD = 0.08


def _blobs(rng, xx, yy):
    """Foreground coverage in [0, 1]: the max of 1-3 anisotropic Gaussian bumps."""
    mask = np.zeros_like(xx)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.2, 0.8, 2).tolist()
        sx, sy = rng.uniform(0.06, 0.18, 2).tolist()
        bump = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
        mask = np.maximum(mask, np.clip(1.6 * bump, 0.0, 1.0))
    return mask


def _stripes(rng, xx, yy):
    """Foreground coverage in [0, 1]: a sinusoidal grating under a soft round window."""
    cx, cy = rng.uniform(0.3, 0.7, 2).tolist()
    radius = float(rng.uniform(0.15, 0.3))
    theta = float(rng.uniform(0.0, np.pi))
    cycles = float(rng.uniform(3.0, 8.0))  # stripe periods per image width
    phase = float(rng.uniform(0.0, 2 * np.pi))
    along = xx * float(np.cos(theta)) + yy * float(np.sin(theta))
    grating = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * along + phase)
    window = np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / radius ** 2)
    return grating * np.clip(1.6 * window, 0.0, 1.0)


def _render(rng, label: int, size: int, xx, yy) -> np.ndarray:
    """One uint8 (3, size, size) image of class `label`."""
    background, foreground = rng.uniform(0.0, 1.0, (2, 3, 1, 1)).astype(np.float32)
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
