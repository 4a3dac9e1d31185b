"""`RunSpec`: every setting of one training run. Its record is config.json's "args" (the keys
are the CLI's flag names, so run folders written by earlier versions still resume and read)."""
import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunSpec:
    """Every setting of one training run; the defaults are the study's."""

    data: str | None = None           # image folder, a download name, 'synthetic', None: default
    batch: int = 32                   # GLOBAL batch (all ranks)
    lr: float = 0.01
    lr_scale: str = "none"            # none | linear | sqrt, relative to base_batch
    base_batch: int = 32
    warmup_epochs: float = 0.0
    momentum: float = 0.0
    weight_decay: float = 0.0
    max_epochs: int = 1000
    patience: int = 100
    seed: int = 0
    image_size: int = 128
    device: str = "cpu"
    kernels: str = "fast"             # reference | fast (| cuda, chosen by the runner on a GPU)
    threads: int | None = None
    eval_batch: int = 256
    checkpoint_every: int = 0
    snapshot_levels: tuple | None = None  # training-loss levels, highest first
    sha256: str | None = None
    jfif_only: bool = False
    quiet: bool = False
    cache_dir: str | None = None      # machine-local (None: the default cache); not recorded

    def __post_init__(self):
        if self.snapshot_levels is not None:  # one canonical order, whatever the caller passed
            object.__setattr__(self, "snapshot_levels",
                               tuple(sorted({float(v) for v in self.snapshot_levels}, reverse=True)))

    @classmethod
    def from_mapping(cls, mapping):
        """The spec of a parsed command line or a config.json "args" (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(mapping).items() if k in names})

    def record(self, out, resume=False, overwrite=False):
        """config.json's "args": every setting plus this invocation's folder and mode, JSON-ready
        (lists, not tuples, so a resumed run compares equal to what it reads back)."""
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cache_dir"}
        args["snapshot_levels"] = list(self.snapshot_levels) if self.snapshot_levels else None
        args.update(out=str(out), resume=resume, overwrite=overwrite)
        return args

    def train_config(self):
        """The engine's training settings of this run."""
        from engine.train import TrainConfig  # numpy loads only after the entry point set threads
        # every TrainConfig field has a RunSpec field of the same name and meaning
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        values["snapshot_levels"] = tuple(self.snapshot_levels or ())
        return TrainConfig(**values)

    def default_name(self, dataset_name, ranks):
        """<data>-bs<batch>-lr<lr>-<scale>-s<seed>[-r<ranks>]: the folder name of a run without --out."""
        data = Path(self.data).name if self.data else dataset_name
        name = f"{data}-bs{self.batch}-lr{self.lr:g}-{self.lr_scale}-s{self.seed}"
        return name + (f"-r{ranks}" if ranks > 1 else "")
