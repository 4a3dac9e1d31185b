"""Where runs of different speeds are compared: converged minimisers, or equal training loss.

A run that stopped by patience has converged, and its best-validation weights are its minimiser. A run
capped by the epoch limit has not; comparing its weights with a converged run's compares a point on
its way with a destination. Every run therefore saves its weights the first time its epoch training
loss falls below each of a few fixed levels (engine/train.py, `theta_loss<L>.npy`). A group of runs
is compared at their best weights when all of them converged, else at the lowest level that every
one of them reached; a group in which some run never reached the first level (still on the ln 2
plateau) cannot be compared at all.
"""
from dataclasses import dataclass

from storage.runfolder import snapshot_kind

CONVERGED_STATUS = "early_stopped"


@dataclass(frozen=True)
class ComparisonPoint:
    """The weights a group of runs is compared at: 'best' or an equal-loss level."""

    level: float | None  # None: the best weights of converged runs

    @property
    def weights(self):
        """The weights' name in a run folder: 'best' or 'loss<L>' (theta_<name>.npy)."""
        return "best" if self.level is None else snapshot_kind(self.level)

    def describe(self):
        """How the comparison was made, in words."""
        if self.level is None:
            return "between converged runs (best-validation weights; every run stopped by patience)"
        return (f"at equal training loss {self.level:g} (each run's weights at the end of the first "
                "epoch whose training loss fell below it; not every run converged)")

    def epoch(self, status):
        """The epoch of this point in one run: its best epoch, or when it first crossed the level."""
        if self.level is None:
            return int(status["best_epoch"])
        return int(status["snapshots"][f"{self.level:g}"])

    def as_dict(self):
        """JSON form."""
        return {"weights": self.weights, "level": self.level}


def comparison_point(statuses):
    """The ComparisonPoint of a group of usable runs' status.json records, or None when no training-
    loss level was reached by all of them (or the group is empty)."""
    if not statuses:
        return None
    if all(s.get("status") == CONVERGED_STATUS for s in statuses):
        return ComparisonPoint(None)
    common = set.intersection(*(set(s.get("snapshots", {})) for s in statuses))
    if not common:
        return None
    return ComparisonPoint(min(float(level) for level in common))
