"""Per-step gradient equivalence on real photos: the flat gradient summed over the ranks against the
single-process gradient of the same global batch, at several points along a short training run.

Usage: mpirun -n N python gradients.py PHOTOS_DIR OUT_JSON. Every rank decodes the same global batch
(the first photos of each class in PHOTOS_DIR/train) and trains the study's 128-px net on it with the
real training step (shards, one gradient sum, SGD). Before each update rank 0 recomputes the whole
batch's gradient in a second, single-process model at the same weights and records the relative
difference of the two flat vectors.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np  # noqa: E402

from engine.kernel_cache import warm_up_kernels  # noqa: E402
from engine.model import ModelConfig, build_model  # noqa: E402
from engine.train import Trainer, TrainConfig, epoch_permutation  # noqa: E402
from imagedata.decode import decode_file  # noqa: E402
from ops.pixels import PixelRows  # noqa: E402
from parallel import get_communicator  # noqa: E402

GLOBAL_BATCH = 25  # uneven shards on 2 and 3 ranks (13 + 12, 9 + 8 + 8)
STEPS = 12
CHECKED = (0, 1, 4, 8, 11)


class Photos:
    """The decoded photos with the loader's pixels interface (the validation split is unused)."""

    def __init__(self, root):
        files = [(path, label) for label, cls in enumerate(("cats", "dogs"))
                 for path in sorted((Path(root) / "train" / cls).iterdir())[:(GLOBAL_BATCH + 1) // 2]]
        decoded = [(decode_file(path, 128)[0], label) for path, label in files][:GLOBAL_BATCH]
        self.train_x = np.stack([x for x, _ in decoded])
        self.train_y = np.array([y for _, y in decoded], dtype=np.uint8)
        self.val_x, self.val_y = self.train_x[:1], self.train_y[:1]

    def pixels(self, split, indices):
        return PixelRows(self.train_x, indices), self.train_y[indices].astype(np.float32)


def main(root, out):
    comm = get_communicator()
    photos = Photos(root)
    warm_up_kernels(comm, "fast")
    model = build_model(ModelConfig(), seed=0, kernels="fast")
    single = build_model(ModelConfig(), seed=0, kernels="fast") if comm.is_root else None
    trainer = Trainer(model, photos, comm, TrainConfig(batch=GLOBAL_BATCH, lr=0.05), log=lambda *a: None)
    differences = []
    original_step = trainer.optimizer.step
    for step in range(STEPS):
        indices = epoch_permutation(0, step, GLOBAL_BATCH)

        def compare_then_step(lr, step=step, indices=indices):
            if comm.is_root and step in CHECKED:
                single.theta[...] = model.theta
                single.loss_and_grad(*photos.pixels("train", indices))
                want = single.grad.astype(np.float64)
                differences.append({"step": step, "relative": float(
                    np.linalg.norm(model.grad.astype(np.float64) - want) / np.linalg.norm(want))})
            return original_step(lr)
        trainer.optimizer.step = compare_then_step
        assert trainer.train_step(indices), "the loss or gradient became non-finite"
    if comm.is_root:
        Path(out).write_text(json.dumps({"ranks": comm.size, "differences": differences}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
