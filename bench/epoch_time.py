"""One article-size epoch on two cores, data loading included, and the cache's read throughput.

    python bench/epoch_time.py [--batch 32] [--train 18610] [--val 4652] [--image-size 128]

Random uint8 pixels stand in for the photos (speed does not depend on content): they are written to
a memory-mapped .npy in a temporary folder exactly like imagedata's cache, then one epoch is trained
with the real Trainer (shuffled batches read from the memory map, scaled to float32, forward,
backward, update) followed by the sharded validation pass. Writes bench/results/epoch_time.json.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_info, peak_rss_mb, write_result  # noqa: E402
from engine.model import ModelConfig, build_model  # noqa: E402
from engine.train import Trainer, TrainConfig, epoch_permutation  # noqa: E402
from imagedata.dataset import Dataset  # noqa: E402
from parallel import LocalCommunicator  # noqa: E402


def memmapped_images(folder, name, count, size, rng):
    """Random images saved as .npy and reopened memory-mapped, as the loader's cache does."""
    path = Path(folder) / f"{name}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, 3, size, size))
    for start in range(0, count, 1024):
        stop = min(start + 1024, count)
        array[start:stop] = rng.integers(0, 256, (stop - start, 3, size, size), dtype=np.uint8)
    array.flush()
    del array
    return np.load(path, mmap_mode="r", allow_pickle=False)


def cache_read_rate(data, batch, seconds=3.0):
    """Images per second that shuffled batches can be read from the memory map and scaled."""
    order = epoch_permutation(0, 0, len(data.train_y))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for step in range(0, len(order), batch):
            data.batch("train", order[step:step + batch])
            done += len(order[step:step + batch])
            if time.perf_counter() - start >= seconds:
                break
    return done / (time.perf_counter() - start)


def main():
    """Build the stand-in data, time the cache, time one epoch, write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--train", type=int, default=18610)
    parser.add_argument("--val", type=int, default=4652)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--kernels", default="fast")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        data = Dataset(memmapped_images(folder, "train_x", args.train, args.image_size, rng),
                       (np.arange(args.train) % 2).astype(np.uint8),
                       memmapped_images(folder, "val_x", args.val, args.image_size, rng),
                       (np.arange(args.val) % 2).astype(np.uint8), ["cat", "dog"], {"name": "bench"})
        read_rate = cache_read_rate(data, 256)
        print(f"cache read: {read_rate:,.0f} images/s (shuffled batches of 256, scaled to float32)")
        model = build_model(ModelConfig(image_size=args.image_size), seed=0, kernels=args.kernels)
        trainer = Trainer(model, data, LocalCommunicator(),
                          TrainConfig(batch=args.batch, lr=0.01, max_epochs=1, patience=1),
                          log=print, progress=sys.stderr.isatty())
        model.loss_and_grad(*data.batch("train", np.arange(args.batch)))  # compile/load kernels first
        start = time.perf_counter()
        trainer.run()
        total = time.perf_counter() - start
        record = trainer.metrics[-1]
    result = {"machine": machine_info(), "batch": args.batch, "train_images": args.train,
              "val_images": args.val, "image_size": args.image_size, "kernels": args.kernels,
              "epoch_seconds": total, "train_seconds": record["train_seconds"],
              "eval_seconds": record["eval_seconds"],
              "train_images_per_s": args.train / record["train_seconds"],
              "eval_images_per_s": args.val / record["eval_seconds"],
              "cache_read_images_per_s": read_rate, "peak_rss_mb": peak_rss_mb()}
    write_result(f"epoch_time_bs{args.batch}", result)
    print(f"epoch: {total:.1f} s (train {record['train_seconds']:.1f} s, eval {record['eval_seconds']:.1f} s)")


if __name__ == "__main__":
    main()
