"""The study's experiment plan: profiles, settings, and the list of runs and analysis tasks.

A run is identified by its settings alone (batch, effective learning rate, seed), so the same run
serves every step that needs it: the base-lr row, the linearly scaled row and the lr sweep all
name batch 32 at lr 0.01 seed 0 `bs32-lr0.01-s0`, and it is trained once. Every run is trained with
`--lr-scale none --lr <effective lr>`, which is what makes the sharing exact.
"""
from dataclasses import asdict, dataclass, field, fields

from ..errors import AnalysisError


class StudyError(AnalysisError):
    """A user mistake in the study command or study folder (printed in one line)."""


# The article's settings; a standard profile on the article's own photos that fits 150 minutes on
# 2 cores; and a shrunken smoke version on the 3,000 photos.
LOSS_LEVELS = [0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2]
PROFILES = {
    "paper": dict(image_size=128, max_epochs=1000, patience=100, seeds=3, trend_seeds=3,
                  sweep_seeds=1, analysis_examples=0, surface_grid=51, sharpness_maxiter=10,
                  sharpness_space="both", sharpness_eps=[1e-3, 5e-4], interp_points=25,
                  noise_batches=16, snapshot_levels=LOSS_LEVELS),
    "standard": dict(image_size=64, max_epochs=120, patience=10, seeds=3, trend_seeds=3,
                     sweep_seeds=1, sweep_lrs=[], analysis_examples=1000, surface_grid=21,
                     sharpness_maxiter=10, sharpness_space="both", sharpness_eps=[1e-3, 5e-4],
                     interp_points=25, noise_batches=8, snapshot_levels=LOSS_LEVELS),
    "quick": dict(image_size=32, max_epochs=150, patience=20, seeds=3, trend_seeds=3,
                  sweep_seeds=1, analysis_examples=500, surface_grid=21, sharpness_maxiter=10,
                  sharpness_space="full", interp_points=25, noise_batches=8),
}

# Settings that decide what a trained run contains: a study folder keeps them for its whole life.
RUN_SETTINGS = ("data", "image_size", "max_epochs", "patience", "eval_batch", "kernels",
                "jfif_only", "snapshot_levels")


@dataclass
class StudySettings:
    """Everything the plan depends on (the profile's values, then the user's overrides)."""

    data: str | None = None
    profile: str = "quick"
    batches: list = field(default_factory=lambda: [32, 64, 128, 256])
    base_batch: int = 32
    base_lr: float = 0.01
    sweep_lrs: list = field(default_factory=lambda: [0.01, 0.02, 0.04, 0.08, 0.16])
    image_size: int = 32
    max_epochs: int = 60
    patience: int = 10
    seeds: int = 3
    trend_seeds: int = 3  # seeds of the batches between the smallest and largest (no verdict reads them)
    sweep_seeds: int = 1
    eval_batch: int = 256
    kernels: str = "fast"
    jfif_only: bool = False
    analysis_examples: int = 500
    surface_grid: int = 21
    surface_extent: float = 1.0
    sharpness_eps: list = field(default_factory=lambda: [1e-3])
    sharpness_maxiter: int = 10
    sharpness_space: str = "full"
    subspace_dim: int = 100
    interp_points: int = 25
    noise_batches: int = 8
    snapshot_levels: list = field(default_factory=list)

    def run_settings(self):
        """The subset that must not change once runs exist."""
        return {k: getattr(self, k) for k in RUN_SETTINGS}

    def as_dict(self):
        """JSON-ready copy of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Settings from a saved study.json (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in values.items() if k in names})
        if not isinstance(settings.sharpness_eps, list):  # study.json of an earlier version
            settings.sharpness_eps = [settings.sharpness_eps]
        return settings

    def validate(self):
        """Raise StudyError for values the plan cannot use."""
        if len(self.batches) < 2 or any(b <= 0 for b in self.batches):
            raise StudyError("--batches needs at least two positive batch sizes")
        if any(not lr > 0 for lr in self.sweep_lrs) or not self.base_lr > 0:
            raise StudyError("learning rates must be positive")
        for name in ("seeds", "trend_seeds", "sweep_seeds", "max_epochs", "patience", "image_size", "interp_points",
                     "noise_batches", "sharpness_maxiter", "subspace_dim", "eval_batch", "base_batch"):
            if getattr(self, name) < 1:
                raise StudyError(f"--{name.replace('_', '-')} must be at least 1")
        if self.surface_grid < 2:
            raise StudyError("--surface-grid must be at least 2")
        if self.sweep_seeds > self.seeds or self.trend_seeds > self.seeds:
            raise StudyError("--sweep-seeds and --trend-seeds cannot exceed --seeds")
        if not self.sharpness_eps or any(not e > 0 for e in self.sharpness_eps):
            raise StudyError("--sharpness-eps needs positive values")
        if any(not v > 0 for v in self.snapshot_levels):
            raise StudyError("--snapshot-levels must be positive")
        if self.sharpness_space not in ("full", "subspace", "both"):
            raise StudyError("--sharpness-space must be full, subspace or both")

    @property
    def small_batch(self):
        """The smallest batch of the plan (the article's 32)."""
        return min(self.batches)

    @property
    def large_batch(self):
        """The largest batch of the plan (the article's 256)."""
        return max(self.batches)

    def scaled_lr(self, batch):
        """Goyal et al.'s linear rule: lr * batch / base_batch (rounded to 12 digits so that
        0.01 * 3 and 0.03 name the same run)."""
        return clean_lr(self.base_lr * batch / self.base_batch)

    def fig28_lr(self):
        """The lr of the article's figure 28 (0.08: the large batch's scaled lr) if swept, else the
        largest swept lr."""
        target = self.scaled_lr(self.large_batch)
        if not self.sweep_lrs:
            return None
        return target if target in self.sweep_lrs else max(self.sweep_lrs)

    def verdict_batch(self, batch):
        """True for the batches the verdicts compare (the smallest and the largest)."""
        return batch in (self.small_batch, self.large_batch)


def clean_lr(lr):
    """A learning rate rounded to 12 significant digits (identity for typed values)."""
    return float(f"{lr:.12g}")


def run_name(batch, lr, seed):
    """The run folder name: a pure function of the settings that differ between runs."""
    return f"bs{batch}-lr{clean_lr(lr):g}-s{seed}"


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan and the steps that use it."""

    batch: int
    lr: float
    seed: int
    groups: tuple  # subset of ("base", "scaled", "sweep")

    @property
    def name(self):
        """Folder name under <study>/runs."""
        return run_name(self.batch, self.lr, self.seed)

    def run_spec(self, settings, cache_dir=None):
        """The RunSpec of this run (levels rounded to 6 digits, as the study always recorded them)."""
        from runner import RunSpec
        levels = settings.snapshot_levels
        return RunSpec(data=settings.data, batch=self.batch, lr=self.lr, lr_scale="none",
                       base_batch=settings.base_batch, seed=self.seed, image_size=settings.image_size,
                       max_epochs=settings.max_epochs, patience=settings.patience,
                       eval_batch=settings.eval_batch, kernels=settings.kernels,
                       jfif_only=bool(settings.jfif_only), quiet=True, cache_dir=cache_dir,
                       snapshot_levels=tuple(float(f"{v:g}") for v in levels) if levels else None)


def plan_runs(settings):
    """Every distinct run of the study, in the order they are trained.

    Order: seed 0 of the headline rows (base lr, then linearly scaled), the other seeds of those
    rows (the verdicts need them), then the lr sweep; each run appears once with all its groups.
    """
    groups = {}
    order = []

    def add(batch, lr, seed, group):
        key = (batch, clean_lr(lr), seed)
        if key not in groups:
            groups[key] = []
            order.append(key)
        if group not in groups[key]:
            groups[key].append(group)

    for seed in range(settings.seeds):
        batches = [b for b in settings.batches
                   if seed < settings.trend_seeds or settings.verdict_batch(b)]
        for batch in batches:
            add(batch, settings.base_lr, seed, "base")
        for batch in batches:
            add(batch, settings.scaled_lr(batch), seed, "scaled")
    for seed in range(settings.sweep_seeds):
        for batch in settings.batches:
            for lr in settings.sweep_lrs:
                add(batch, lr, seed, "sweep")
    # a headline seed beyond sweep_seeds still belongs to the sweep cell it coincides with
    swept = {(b, clean_lr(lr)) for b in settings.batches for lr in settings.sweep_lrs}
    for key in order:
        if (key[0], key[1]) in swept and "sweep" not in groups[key]:
            groups[key].append("sweep")
    return [PlannedRun(b, lr, s, tuple(groups[(b, lr, s)])) for b, lr, s in order]


COMPARISON_GROUPS = ("base", "scaled")


@dataclass(frozen=True)
class AnalysisTask:
    """One analysis of the plan: its result file, the runs it waits for, and its parameters.

    `runs` is the whole comparison group (every run at the base lr, or every run at its linearly
    scaled lr): the weights analysed are chosen when the group has finished (analysis/comparison.py),
    so that all its runs are measured at the same comparable point. `params["targets"]` names the
    runs actually analysed.
    """

    kind: str       # sharpness | surface | interpolation | noise
    name: str       # result file stem under <study>/analysis
    runs: tuple     # the comparison group: run names it waits for
    params: dict = field(hash=False, compare=False)


def group_members(runs, group):
    """Names of the planned runs that belong to a comparison group."""
    return tuple(r.name for r in runs if group in r.groups)


def plan_analyses(settings, runs):
    """Sharpness of every run of both comparison groups; interpolation, surfaces and noise scale
    of the small- and large-batch runs at the base lr (seed 0)."""
    examples = settings.analysis_examples or None
    tasks = []
    for group in COMPARISON_GROUPS:
        members = group_members(runs, group)
        for name in members:
            tasks.append(AnalysisTask("sharpness", f"sharpness-{group}-{name}", members, {
                "group": group, "targets": [name], "eps": list(settings.sharpness_eps),
                "maxiter": settings.sharpness_maxiter, "space": settings.sharpness_space,
                "subspace_dim": settings.subspace_dim, "examples": examples}))
    base = group_members(runs, "base")
    small = run_name(settings.small_batch, settings.base_lr, 0)
    large = run_name(settings.large_batch, settings.base_lr, 0)
    tasks.append(AnalysisTask("interpolation", "interpolation", base,
                              {"group": "base", "targets": [small, large],
                               "points": settings.interp_points, "examples": examples}))
    for name in (small, large):
        tasks.append(AnalysisTask("surface", f"surface-{name}", base,
                                  {"group": "base", "targets": [name], "grid": settings.surface_grid,
                                   "extent": settings.surface_extent, "examples": examples,
                                   "seed": 0}))
        tasks.append(AnalysisTask("noise", f"noise-{name}", base,
                                  {"group": "base", "targets": [name],
                                   "b_small": settings.small_batch, "b_big": settings.large_batch,
                                   "batches": settings.noise_batches, "seed": 0}))
    return tasks


def settings_from_args(args):
    """StudySettings from parsed CLI arguments: the profile's values, then explicit overrides."""
    values = dict(PROFILES[args.profile])
    for key, value in vars(args).items():
        if value is not None and key in {f.name for f in fields(StudySettings)}:
            values[key] = value
    values["profile"] = args.profile
    if getattr(args, "trend_seeds", None) is None:  # fewer seeds asked for: the trend rows follow
        values["trend_seeds"] = min(values["trend_seeds"], values.get("seeds", StudySettings.seeds))
    values["sweep_lrs"] = [clean_lr(v) for v in values.get("sweep_lrs", StudySettings().sweep_lrs)]
    values["base_lr"] = clean_lr(values.get("base_lr", StudySettings.base_lr))
    values["batches"] = sorted(set(values.get("batches", StudySettings().batches)))
    settings = StudySettings(**values)
    settings.validate()
    return settings


def plan_summary(settings):
    """A one-line summary of the plan's size, shown before training starts."""
    runs = plan_runs(settings)
    return (f"{len(runs)} runs ({settings.seeds} seed(s) for the headline rows, {settings.sweep_seeds} "
            f"for the rest of the sweep), at most {settings.max_epochs} epochs each at "
            f"{settings.image_size} px, patience {settings.patience}; "
            f"{len(plan_analyses(settings, runs))} analyses")
