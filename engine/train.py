"""The training loop: MirroredStrategy semantics on whatever communicator it is handed.

Each step takes the next global batch of the epoch's seeded permutation, gives every rank its
contiguous shard, computes the shard's share of the global mean loss (sum / global batch size), sums
the flat gradients with ONE in-place allreduce, and applies the same SGD update on every rank. With a
single process the communicator's collectives are the identity, so the same loop serves both.
"""
import math
import time
from dataclasses import dataclass

import numpy as np

from console.progress import progress_bar
from ops.backend import to_host
from parallel import broadcast_json
from storage.runfolder import snapshot_epochs, snapshot_kind

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .params import per_layer_norms
from .schedule import lr_at_step, scaled_lr
from .sgd import SGD


@dataclass
class TrainConfig:
    """Settings of one training run (the CLI's arguments that concern training)."""

    batch: int = 32
    lr: float = 0.01
    lr_scale: str = "none"
    base_batch: int = 32
    warmup_epochs: float = 0.0
    max_epochs: int = 1000
    patience: int = 100
    seed: int = 0
    momentum: float = 0.0
    weight_decay: float = 0.0
    eval_batch: int = 256
    checkpoint_every: int = 0
    snapshot_levels: tuple = ()  # training-loss levels whose first crossing saves the weights

    @property
    def effective_lr(self):
        """The learning rate after the scaling rule."""
        return scaled_lr(self.lr, self.batch, self.base_batch, self.lr_scale)


def epoch_permutation(seed, epoch, count):
    """The order of training examples in `epoch`: a pure function of (seed, epoch), so resuming
    needs no saved RNG state and every rank computes the same order."""
    return np.random.default_rng([seed, epoch]).permutation(count)


class Trainer:
    """Runs epochs, evaluates, keeps the best weights, stops early, checkpoints, and records."""

    def __init__(self, model, data, comm, config, run_dir=None, log=print, progress=False):
        self.model, self.data, self.comm, self.config = model, data, comm, config
        self.run_dir = run_dir if comm.is_root else None
        self.log = log if comm.is_root else (lambda *a, **k: None)
        self.progress = progress and comm.is_root
        self.optimizer = SGD(model.theta, model.grad, config.momentum, config.weight_decay)
        self.stop_requested = False
        self.n_train = len(data.train_y)
        self.steps_per_epoch = math.ceil(self.n_train / config.batch)
        xp = model.xp
        self.comm.broadcast_(model.theta)  # every replica starts from rank 0's weights
        self.theta_init = model.theta.copy()
        self.theta_best = model.theta.copy()
        self.theta_epoch_start = model.theta.copy()
        self.update_norms = []
        self.metrics = []
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.best = {"val_loss": math.inf, "val_acc": 0.0, "epoch": -1}
        self.epochs_since_best = 0
        self.sums = [0.0, 0.0, 0.0]  # this rank's train loss sum, correct count, example count
        self.xp = xp

    # ---- checkpoints ---------------------------------------------------------------------------
    def rank_sums(self):
        """Every rank's partial training sums, gathered onto every rank exactly (x + 0 = x), so a
        resumed rank continues from its own sums and the epoch's totals come out bit-identical."""
        spread = [0.0] * (3 * self.comm.size)
        spread[3 * self.comm.rank:3 * self.comm.rank + 3] = self.sums
        gathered = self.comm.sum_values(spread)
        return [gathered[3 * r:3 * r + 3] for r in range(self.comm.size)]

    def checkpoint_header(self, rank_sums):
        """The counters and scalars of the state (the arrays go alongside)."""
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "best": self.best,
                "epochs_since_best": self.epochs_since_best, "rank_sums": rank_sums,
                "metrics": self.metrics, "table": self.model.table,
                "rank_count": self.comm.size}

    def save_checkpoint(self):
        """Write the full state atomically. Every rank calls it (the partial sums are gathered);
        rank 0 writes. On a failed write the previous checkpoint stays valid."""
        rank_sums = self.rank_sums()
        if self.run_dir is None:
            return
        arrays = {"theta": to_host(self.model.theta), "theta_best": to_host(self.theta_best),
                  "theta_init": to_host(self.theta_init),
                  "theta_epoch_start": to_host(self.theta_epoch_start),
                  "update_norms": np.asarray(self.update_norms, dtype=np.float64)}
        arrays.update({f"opt_{k}": to_host(v) for k, v in self.optimizer.state().items()})
        try:
            save_checkpoint(self.run_dir.checkpoint, self.checkpoint_header(rank_sums), arrays)
        except OSError as error:
            self.log(f"warning: could not write the checkpoint ({error}); the previous one is intact")

    def restore(self, path):
        """Continue from a checkpoint written by save_checkpoint (same model, same rank count).

        Rank 0 reads it and broadcasts it, so ranks need no shared file system and resume from
        identical state.
        """
        header, arrays, error = None, None, None
        if self.comm.is_root:
            try:
                header, arrays = load_checkpoint(path, self.model.table)
            except CheckpointError as exc:
                error = str(exc)
        if self.comm.any_flag(error is not None):
            raise CheckpointError(error or "rank 0 could not read the checkpoint")
        header = broadcast_json(self.comm, header)
        if header["rank_count"] != self.comm.size:
            raise CheckpointError(f"{path} was written by {header['rank_count']} ranks; resume it with "
                                  f"the same number of ranks ({self.comm.size} now)")
        xp = self.xp
        targets = [("theta", self.model.theta), ("theta_best", self.theta_best),
                   ("theta_init", self.theta_init), ("theta_epoch_start", self.theta_epoch_start)]
        targets += [(f"opt_{k}", v) for k, v in self.optimizer.state().items()]
        for name, target in targets:
            if arrays is not None:
                target[...] = xp.asarray(arrays[name])
            self.comm.broadcast_(target)
        norms = (arrays["update_norms"].astype(np.float64) if arrays is not None
                 else np.empty(header["global_step"], dtype=np.float64))
        self.comm.broadcast_(norms)
        self.update_norms = [float(v) for v in norms]
        self.epoch, self.step_in_epoch = header["epoch"], header["step_in_epoch"]
        self.global_step = header["global_step"]
        self.best, self.epochs_since_best = header["best"], header["epochs_since_best"]
        self.sums, self.metrics = list(header["rank_sums"][self.comm.rank]), header["metrics"]

    # ---- the loop ------------------------------------------------------------------------------
    def lr_now(self):
        """The learning rate of the coming step (warm-up ramp, then the scaled rate)."""
        c = self.config
        return lr_at_step(c.lr, c.effective_lr, c.warmup_epochs, self.epoch, self.step_in_epoch,
                          self.steps_per_epoch)

    def train_step(self, batch_indices):
        """One global step; returns False when the loss or gradient is not finite (divergence)."""
        model, comm = self.model, self.comm
        local = batch_indices[comm.shard(len(batch_indices))]
        loss_share, correct = 0.0, 0
        if len(local):
            x, y = self.data.pixels("train", local)
            with np.errstate(invalid="ignore", over="ignore"):  # divergence is detected below
                loss_share, correct = model.loss_and_grad(x, y, denominator=len(batch_indices))
        else:
            model.params.zero_grad()
        comm.allreduce_sum_(model.grad)
        grad_finite = bool(self.xp.isfinite(model.grad.sum()))  # any NaN/inf makes the sum NaN/inf
        loss_bad = comm.any_flag(not math.isfinite(loss_share))
        if loss_bad or not grad_finite:
            return False
        self.update_norms.append(self.optimizer.step(self.lr_now()))
        self.sums[0] += loss_share * len(batch_indices)
        self.sums[1] += correct
        self.sums[2] += len(local)
        return True

    def evaluate_validation(self):
        """Exact validation loss and accuracy: each rank sums over its shard, the sums are reduced."""
        n_val = len(self.data.val_y)
        part = self.comm.shard(n_val)
        loss_sum, correct = 0.0, 0
        for start in range(part.start, part.stop, self.config.eval_batch):
            indices = np.arange(start, min(start + self.config.eval_batch, part.stop))
            x, y = self.data.pixels("val", indices)
            batch_loss, batch_correct, _ = self.model.evaluate_sums(x, y, self.config.eval_batch)
            loss_sum += batch_loss
            correct += batch_correct
        loss_sum, correct = self.comm.sum_values([loss_sum, correct])
        return loss_sum / n_val, correct / n_val

    def run_epoch(self):
        """Train the rest of the current epoch; returns 'ok', 'diverged' or 'interrupted'."""
        c = self.config
        order = epoch_permutation(c.seed, self.epoch, self.n_train)
        started = time.perf_counter()
        bar = progress_bar(self.steps_per_epoch, f"epoch {self.epoch + 1}", unit="step",
                           enabled=self.progress, initial=self.step_in_epoch)
        try:
            for step in range(self.step_in_epoch, self.steps_per_epoch):
                if not self.train_step(order[step * c.batch:(step + 1) * c.batch]):
                    return "diverged"
                self.step_in_epoch, self.global_step = step + 1, self.global_step + 1
                # this rank's running mean training loss over the epoch so far
                bar.set_postfix_str(f"loss {self.sums[0] / max(self.sums[2], 1):.4f}", refresh=False)
                bar.update(1)
                if c.checkpoint_every and self.global_step % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.comm.any_flag(self.stop_requested):
                    return "interrupted"
        finally:
            bar.close()
        self.train_seconds = time.perf_counter() - started
        return "ok"

    def finish_epoch(self):
        """Evaluate, record the epoch's metrics, update the best weights and early stopping."""
        started = time.perf_counter()
        val_loss, val_acc = self.evaluate_validation()
        eval_seconds = time.perf_counter() - started
        loss_sum, correct, count = self.comm.sum_values(self.sums)
        theta = self.model.theta
        record = {
            "epoch": self.epoch + 1, "train_loss": loss_sum / self.n_train,
            "train_acc": correct / count, "val_loss": val_loss, "val_acc": val_acc,
            "lr": self.lr_now() if self.config.warmup_epochs else self.config.effective_lr,
            "train_seconds": self.train_seconds, "eval_seconds": eval_seconds,
            "dist_init": float(self.xp.linalg.norm((theta - self.theta_init).astype("float64"))),
            "dist_init_layers": per_layer_norms(to_host(theta - self.theta_init), self.model.table),
            "epoch_distance": float(self.xp.linalg.norm((theta - self.theta_epoch_start).astype("float64"))),
            "steps": self.global_step,
        }
        self.metrics.append(record)
        self.save_snapshots(record)
        if not math.isfinite(val_loss):
            return "diverged"
        if val_loss < self.best["val_loss"]:
            self.best = {"val_loss": val_loss, "val_acc": val_acc, "epoch": self.epoch + 1}
            self.theta_best[...] = theta
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.sums = [0.0, 0.0, 0.0]
        self.theta_epoch_start[...] = theta
        if self.run_dir is not None:
            self.run_dir.write_metrics(self.metrics)
        self.log(f"epoch {record['epoch']:4d}  train loss {record['train_loss']:.4f}  "
                 f"val loss {val_loss:.4f}  val acc {val_acc:.4f}  "
                 f"{record['train_seconds'] + eval_seconds:6.1f} s")
        return "ok"

    def save_snapshots(self, record):
        """Save the weights the first time the epoch's training loss falls below each snapshot
        level, so runs of different speeds can be compared at equal training loss.

        "First time" is decided from the metrics alone (the lowest earlier epoch loss is still at or
        above the level), so a resumed run re-saves exactly what the uninterrupted run saves.
        """
        if self.run_dir is None or not self.config.snapshot_levels:
            return
        earlier = min((m["train_loss"] for m in self.metrics[:-1]), default=math.inf)
        for level in self.config.snapshot_levels:
            if record["train_loss"] < level <= earlier:
                self.run_dir.save_theta(snapshot_kind(level), to_host(self.model.theta))

    def train_epoch(self):
        """One whole epoch as run() does it: the steps, then validation and the epoch's records, then
        the checkpoint; returns 'ok', 'diverged' or 'interrupted'."""
        outcome = self.run_epoch()
        if outcome == "ok":
            outcome = self.finish_epoch()
        if outcome == "ok":
            self.save_checkpoint()
        return outcome

    def run(self):
        """Train until max_epochs, early stopping, divergence or a stop request; returns the status."""
        if self.run_dir is not None:
            self.run_dir.write_layers(self.model.table)
            self.run_dir.save_theta("init", to_host(self.theta_init))
            self.run_dir.write_status("running", epochs=self.epoch)
        status = "finished"
        while self.epoch < self.config.max_epochs:
            if self.epochs_since_best >= self.config.patience:
                status = "early_stopped"
                break
            outcome = self.train_epoch()
            if outcome != "ok":
                status = outcome
                break
        else:
            if self.epochs_since_best >= self.config.patience:
                status = "early_stopped"
        self.record_end(status)
        return status

    def record_end(self, status):
        """Write the final vectors, the update norms and the status (rank 0)."""
        if status == "interrupted":
            self.save_checkpoint()
        if self.run_dir is None:
            return
        if status != "interrupted":
            self.run_dir.save_theta("final", to_host(self.model.theta))
            self.run_dir.save_theta("best", to_host(self.theta_best))
            self.run_dir.save_update_norms(np.asarray(self.update_norms, dtype=np.float32))
        best_loss = self.best["val_loss"]
        self.run_dir.write_status(status, epochs=self.epoch, steps=self.global_step,
                                  snapshots=snapshot_epochs(self.metrics, self.config.snapshot_levels),
                                  best_epoch=self.best["epoch"],
                                  best_val_loss=best_loss if math.isfinite(best_loss) else None,
                                  best_val_acc=self.best["val_acc"])
