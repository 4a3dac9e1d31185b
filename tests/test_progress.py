"""console.progress: plain periodic lines when stderr is not a terminal, nothing when disabled, and the
training loop's within-epoch lines carrying the running loss the epoch record ends with."""
import io
import json
import re

from conftest import make_array_data

from console import progress
from engine.model import ModelConfig, build_model
from engine.train import Trainer, TrainConfig
from parallel import LocalCommunicator


def test_plain_lines_count_steps_and_show_the_live_figures():
    out = io.StringIO()  # not a terminal
    bar = progress.progress_bar(4, "epoch 1", unit="step", stream=out, interval=0.0)
    for k in range(4):
        bar.set_postfix_str(f"loss {k / 10:.4f}")
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4  # one per update, no repeat at close
    for k, line in enumerate(lines, 1):
        assert line.startswith("epoch 1") and f"{k}/4" in line and f"loss {(k - 1) / 10:.4f}" in line


def test_short_tasks_print_nothing_and_disabled_bars_never_do():
    out = io.StringIO()
    bar = progress.progress_bar(3, "decoding", stream=out, interval=3600.0)
    bar.update(3)
    bar.close()
    quiet = progress.progress_bar(3, "decoding", enabled=False, stream=out, interval=0.0)
    quiet.update(3)
    quiet.close()
    assert out.getvalue() == ""


def test_training_log_shows_progress_within_an_epoch(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_SECONDS", 0.0)
    data = make_array_data(n_train=40, n_val=8)
    model = build_model(ModelConfig(image_size=32), seed=0, kernels="reference")
    trainer = Trainer(model, data, LocalCommunicator(), TrainConfig(batch=8, max_epochs=1, lr=0.05),
                      log=lambda m: None, progress=True)
    assert trainer.run() == "finished"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch 1")]
    assert [re.search(r"(\d+)/5", line).group(1) for line in lines] == ["1", "2", "3", "4", "5"]
    # the last running loss is the epoch's mean training loss, computed by the record independently
    # of the bar (from the communicator's summed totals)
    shown = float(re.search(r"loss (\d\.\d{4})", lines[-1]).group(1))
    assert abs(shown - json.loads(json.dumps(trainer.metrics[-1]))["train_loss"]) < 6e-5
