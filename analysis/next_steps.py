"""The block a training run ends with: where its results are and what to run next."""


def closing_block(out, data_name, python="python"):
    """Lines naming the run's files and the next commands (plot, evaluate, real photos, study)."""
    photos = data_name not in ("folder", "cats_and_dogs_filtered", "cats_vs_dogs")
    lines = [
        f"results in {out}/: metrics.jsonl (one line per epoch), theta_best.npy, status.json",
        "next:",
        f"  {python} run.py plot {out}        # loss and accuracy curves -> {out}/curves.png",
        f"  {python} run.py evaluate {out}    # loss, accuracy and confusion table (JSON)",
    ]
    if photos:
        lines.append(f"  {python} run.py --data cats_and_dogs_filtered --batch 32 --lr 0.05 "
                     "--max-epochs 40 --patience 10   # 3,000 real photos (68 MB download, once)")
    lines.append(f"  {python} run.py study --profile quick --data cats_and_dogs_filtered "
                 "--out study-quick   # the article's batch-size study")
    return "\n".join(lines)
