"""Train the 32-px study net for a few epochs on the shared test arrays and save the results.

Usage: [mpirun -n N] python train.py OUT_DIR KERNELS BATCH EPOCHS. Without a launcher this is the
single-process reference. Every rank writes its final flat weights to OUT_DIR/theta_rank{r}.npy;
rank 0 writes the per-epoch metrics to OUT_DIR/metrics.json.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from conftest import make_array_data  # noqa: E402

from engine.model import ModelConfig, build_model  # noqa: E402
from engine.train import Trainer, TrainConfig  # noqa: E402
from parallel import get_communicator  # noqa: E402

N_TRAIN, N_VAL = 100, 18  # batch 30 -> steps of 30, 30, 30 and a short 10; 18 val images over 4 ranks


def main(out_dir, kernels, batch, epochs):
    comm = get_communicator()
    data = make_array_data(N_TRAIN, N_VAL, size=32, seed=3)
    # ranks start from different weights: the Trainer must broadcast rank 0's (seed 7, as alone)
    model = build_model(ModelConfig(image_size=32), seed=7 + comm.rank, kernels=kernels)
    for turn in ("root", "others"):  # rank 0 fills numba's on-disk cache first; the rest load it
        if (turn == "root") == comm.is_root:
            model.loss_and_grad(*data.batch("train", np.arange(2)))
        comm.barrier()
    config = TrainConfig(batch=batch, lr=0.05, momentum=0.9, max_epochs=epochs, patience=epochs + 1,
                         seed=5, eval_batch=4)
    trainer = Trainer(model, data, comm, config, run_dir=None, log=lambda *a: None)
    status = trainer.run()
    np.save(Path(out_dir) / f"theta_rank{comm.rank}.npy", model.theta)
    if comm.is_root:
        (Path(out_dir) / "metrics.json").write_text(json.dumps(
            {"status": status, "steps": trainer.global_step, "metrics": trainer.metrics}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
