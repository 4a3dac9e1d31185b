"""The step and epoch benchmarks' pure parts: derived figures, the epoch's breakdown, the tables."""
import statistics

import numpy as np
import pytest

from bench.epoch_time import PARTS, Stopwatch, epoch_breakdown, epoch_row, layout_summary
from bench.epoch_time import markdown as epoch_markdown
from bench.step_time import higher_ceiling, markdown_tables, row_figures


def spec(kind, variant, pass_, batch):
    return {"kind": kind, "variant": variant, "pass": pass_, "batch": batch}


def test_row_figures_compare_median_with_median_and_best_with_best():
    times = [0.4, 0.1, 0.25, 0.2]
    row = row_figures(spec("engine", "fast", "train", 32), times, flops=3e9, sgemm=(60.0, 80.0))
    median = (0.25 + 0.2) / 2
    assert row["images_per_s_median"] == pytest.approx(32 / median)
    assert row["images_per_s_best"] == pytest.approx(32 / 0.1)
    assert row["gflops_median"] == pytest.approx(3 / median)
    assert row["fraction_median"] == pytest.approx(3 / median / 60.0)
    assert row["fraction_best"] == pytest.approx(30 / 80.0)
    no_ceiling = row_figures(spec("engine", "cuda", "eval", 32), times, flops=3e9, sgemm=None)
    assert no_ceiling["fraction_median"] is None and no_ceiling["gflops_best"] == pytest.approx(30)


def test_ceiling_takes_the_higher_median_and_best_of_the_two_sgemm_measurements():
    # a burst of other load during one measurement lowers it; the row must not be divided by it
    assert higher_ceiling((130.0, 190.0), (185.0, 188.0)) == (185.0, 190.0)
    assert higher_ceiling((186.0, 192.0), (120.0, 150.0)) == (186.0, 192.0)
    assert higher_ceiling(None, None) is None


def full_row(kind, variant, pass_, batch, seconds, sgemm=(100.0, 120.0)):
    row = row_figures(spec(kind, variant, pass_, batch), [seconds, seconds * 0.9], 2e9, sgemm)
    return {**row, "peak_rss_mb": 300.0, "load_average": (1.0, 2.0, 3.0)}


def test_step_tables_show_fractions_and_speedups_per_batch():
    rows = [full_row("engine", "fast", "train", 32, 0.02), full_row("torch", "nchw", "train", 32, 0.05),
            full_row("engine", "fast", "train", 64, 0.03), full_row("engine", "fast", "eval", 32, 0.01),
            full_row("torch", "nchw", "eval", 32, 0.04)]
    text = markdown_tables(rows, [32, 64], "header")
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    median = statistics.median([0.02, 0.018])
    assert f"{2 / median / 100:.2f}" in lines["| engine fast train fraction of sgemm"]
    speedup = (32 / statistics.median([0.02, 0.018])) / (32 / statistics.median([0.05, 0.045]))
    assert lines["| fast train vs torch nchw (median)"].split(" | ")[1:] == [f"{speedup:.2f}x", "- |"]
    eval_speedup = statistics.median([0.04, 0.036]) / statistics.median([0.01, 0.009])
    assert f"{eval_speedup:.2f}x" in lines["| fast eval vs torch nchw (median)"]
    assert sum(line.startswith("| engine fast train | ") for line in text.splitlines()) == 2  # full rows
    # the typical-ceiling line divides every row by the median of the rows' sgemm medians (100 here)
    assert lines["| engine fast train fraction of the run's typical sgemm (100)"].split(" | ")[1] == \
        f"{2 / median / 100:.2f}"
    assert text.count("| 2 | 300 | 1.00 2.00 3.00 |") == len(rows)  # calls, memory and load with every row


def test_the_typical_fraction_divides_by_the_median_of_the_rows_ceilings():
    # the second row's own sgemm read low (a dip), the third's high (a burst): their own fractions
    # move with it, the run's typical ceiling (the median, 200) does not
    rows = [full_row("engine", "fast", "train", 32, 0.02, sgemm=(200.0, 210.0)),
            full_row("engine", "fast", "train", 64, 0.02, sgemm=(150.0, 160.0)),
            full_row("engine", "fast", "train", 128, 0.02, sgemm=(300.0, 310.0))]
    text = markdown_tables(rows, [32, 64, 128])
    own, run = (next(line for line in text.splitlines() if line.startswith(f"| engine fast train {what}"))
                for what in ("fraction of sgemm", "fraction of the run's typical sgemm (200)"))
    gflops = 2 / statistics.median([0.02, 0.018])
    assert [cell[:4] for cell in own.split(" | ")[1:4]] == [f"{gflops / c:.2f}" for c in (200, 150, 300)]
    assert run.split(" | ")[1:] == [f"{gflops / 200:.2f}"] * 2 + [f"{gflops / 200:.2f} |"]


def test_epoch_breakdown_accounts_for_the_whole_epoch():
    seconds = {"loss_and_grad": 8.0, "sgd": 0.5, "train_batches": 0.2, "validation": 1.5,
               "evaluate_sums": 1.25, "checkpoint": 0.05, "metrics_file": 0.01, "val_batches": 0.1}
    parts = epoch_breakdown(seconds, 10.5)
    assert list(parts) == list(PARTS)
    assert parts["train steps"] == 8.5 and parts["validation other"] == pytest.approx(0.25)
    assert sum(parts.values()) == pytest.approx(10.5) and parts["other"] == pytest.approx(0.24)
    row = epoch_row(32, 2, 2000, 500, seconds, 10.5, steps=[0.016, 0.02, 0.018])
    assert row["ratio"] == pytest.approx((2000 / 10.5) / (32 / 0.018))
    assert row["step_images_per_s_best"] == pytest.approx(2000.0)
    assert row["validation_images_per_s"] == pytest.approx(500 / 1.5)
    row.update(load_average_before=(1.5, 1, 1), load_average_after=(2.5, 1, 1))
    text = epoch_markdown([row], "header")
    assert f"| **epoch / step throughput** | **{row['ratio']:.3f}** |" in text
    assert f"| - train steps | 8.50 s ({8.5 / 10.5:.1%}) |" in text
    assert "| | bs 32 epoch 2 |" in text and "| load average before / after | 1.50 / 2.50 |" in text


def test_layout_summary_adds_the_processes_throughput_and_divides_the_epoch_by_them():
    seconds = {"loss_and_grad": 9.0, "sgd": 0.0, "train_batches": 0.0, "validation": 1.0,
               "evaluate_sums": 1.0, "checkpoint": 0.0, "metrics_file": 0.0, "val_batches": 0.0}
    # process 0 takes 10, 12 and 11 s per epoch (median 11), process 1 12 and 14 (median 13)
    rows = [{**epoch_row(64, e, 2200, 500, seconds, s, steps=[0.03]), "process": p}
            for p, epochs in enumerate([(10.0, 12.0, 11.0), (12.0, 14.0)]) for e, s in enumerate(epochs, 1)]
    line = layout_summary(rows, 2).splitlines()[2]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == ["64", "11.00 s / 13.00 s", "6.00 s", f"{2200 / 11 + 2200 / 13:,.0f}"]  # median of all: 12
    assert cells[5] == f"{9.0 / 12.0:.3f}" and cells[6] == f"{1.0 / 12.0:.3f}"


def test_stopwatch_times_a_wrapped_method_and_keeps_its_result():
    class Thing:
        def work(self, value):
            return value * 2
    thing, watch = Thing(), Stopwatch()
    watch.wrap(thing, "work", lambda value: f"work{value}")
    assert thing.work(4) == 8 and thing.work(1) == 2 and thing.work(4) == 8
    assert set(watch.seconds) == {"work4", "work1"} and 0 < watch.seconds["work4"] < 1


def test_tile_fractions_are_medians_of_each_rounds_ratios():
    from bench.tile_peak import paired_fractions
    # the host slows down in the last round: the ratio of the medians (80 / 100) would read 0.8
    # where two of the three rounds read 0.9 or more
    tile, sgemm, peak = [80.0, 100.0, 45.0], [100.0, 110.0, 50.0], [200.0, 150.0, 60.0]
    of_sgemm, of_peak, sgemm_of_peak = paired_fractions(tile, sgemm, peak, executed=2 / 3)
    assert of_sgemm == 0.9 and sgemm_of_peak == 110.0 / 150.0
    assert of_peak == pytest.approx(sorted(t * 2 / 3 / p for t, p in zip(tile, peak))[1], rel=1e-12)


def test_tile_table_gives_each_rows_fractions_and_the_ceilings_spans():
    from bench.tile_peak import markdown as tile_markdown
    rows = [{"tile": "conv3_tile_pool", "shape": "C = 8", "ns_per_call": 150.0, "gflops": 122.9, "kib": 96.0,
             "sgemm_gflops": 134.0, "peak_gflops": 166.0, "of_sgemm": 0.91, "of_peak": 0.48, "sgemm_of_peak": 0.8},
            {"tile": "corr3_tile_pair", "shape": "n = 256", "ns_per_call": 127.6, "gflops": 144.5, "kib": 26.0,
             "sgemm_gflops": 120.0, "peak_gflops": 160.0, "of_sgemm": 1.2, "of_peak": 0.9, "sgemm_of_peak": 0.75}]
    lines = tile_markdown(rows, load=((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))).splitlines()
    assert lines[-2] == "| conv3_tile_pool | C = 8 | 150.0 | 122.9 | 0.91 | 0.48 | 96 |"
    assert lines[-1] == "| corr3_tile_pair | n = 256 | 127.6 | 144.5 | 1.20 | 0.90 | 26 |"
    assert "sgemm (120-134 GFLOP/s" in lines[0] and "peak (160-166 GFLOP/s" in lines[0]
    assert "runs at 0.75-0.80 of the peak" in lines[0]


def test_multiply_add_peak_counts_what_its_loop_executes():
    # each chain gains a * b = 0.125 per round, so the chains' sum (exact in float32 here) shows that
    # every multiply-add the GFLOP/s count credits ran
    from bench.tile_peak import CHAINS, _fma_rounds
    seeds = np.zeros((CHAINS + 2) * 16, np.float32)
    seeds[:16], seeds[16:32] = 0.5, 0.25
    seeds[32:] = np.arange(CHAINS * 16, dtype=np.float32) % 3
    expected = (seeds[32:].reshape(CHAINS, 16).sum(axis=0) + CHAINS * 1000 * 0.125).astype(np.float32)
    _fma_rounds(1000, seeds)
    assert np.array_equal(seeds[:16], expected)
