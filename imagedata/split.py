"""The train/validation split for layouts that have none of their own.

The split is seeded by a fixed constant, never by the training seed: a run's seed changes the
initial weights and the batch order, never which photos are held out, so runs with different seeds
are evaluated on the same validation set.
"""
import numpy as np

SPLIT_SEED = 20_200_601
VAL_FRACTION = 0.2


def stratified_split(labels: np.ndarray, n_classes: int):
    """Split item positions into (train, val) index arrays, 20% of every class held out.

    Within a class, a permutation seeded by (SPLIT_SEED, class) picks the held-out items; a class
    with at least two items always keeps at least one for validation. Both outputs are sorted, so
    the arrays keep the source's file order.
    """
    labels = np.asarray(labels)
    val_parts = []
    for c in range(n_classes):
        members = np.flatnonzero(labels == c)
        n_val = int(round(VAL_FRACTION * members.size))
        if members.size >= 2:
            n_val = max(n_val, 1)
        rng = np.random.default_rng((SPLIT_SEED, c))
        val_parts.append(members[rng.permutation(members.size)[:n_val]])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(labels.size), val)
    return train, val
