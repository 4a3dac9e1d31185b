"""Paired A/B of the training step (or the evaluation) of the working tree against another git revision.

    python bench/ab_step.py REV [--batches 32 256] [--threads 2] [--pass train] [--rounds 20]

The hosts here swing 1.5-2x in speed within minutes (bench/results/emeraldrapids: conv3's forward
took 5.4 ms at one time and 9.6 ms half an hour later), so two benchmark runs minutes apart cannot
tell a 5 % change from the weather. Here both versions run at once, each in its own process (REV's
files exported with `git archive` into ~/.cache/batchlab/ab/<commit>, where its kernels compile into
their own numba cache on first use), and take turns: one call of REV, one of the working tree, then
the working tree first (ABBA...), each alone on the machine while the other waits on a pipe; a
turn is the median of IMAGES_PER_TURN / batch calls. Each round's ratio is taken within the round
and the median reported with its range: the way the
README's "paired call by call" figures are measured, for any change anywhere in the step. The
calls are bench.step_time's (engine_call, fast kernels, 128 px, random pixels), imported from each
version's own tree.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "batchlab" / "ab"
WARMUP = 2
IMAGES_PER_TURN = 1024  # a turn is a few calls (4 at batch 256, 32 at batch 32): one small step is noise
PAUSE_S = 0.005  # between turns: an OpenMP worker of the process that just ran may still spin


class ABError(Exception):
    """A user mistake (an unknown revision, no git checkout), reported in one line."""


def export_revision(rev, repo=ROOT, cache=CACHE):
    """The directory holding REV's files (exported once per commit): (commit, path)."""
    try:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=repo,
                               capture_output=True, text=True)
    except FileNotFoundError:
        raise ABError("git is not installed: it exports the revision to compare with") from None
    if found.returncode != 0:
        raise ABError(f"unknown revision {rev!r} (in {repo})")
    commit = found.stdout.strip()
    target = cache / commit
    if not (target / "bench" / "step_time.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        if not (target / "bench" / "step_time.py").exists():
            raise ABError(f"{rev} has no bench/step_time.py to build its step from")
    return commit, target


def turn_order(round_index):
    """Who goes first in a round: REV (0) in even rounds, the working tree (1) in odd ones (ABBA),
    so that a host speeding up or slowing down through a round favours neither."""
    return (0, 1) if round_index % 2 == 0 else (1, 0)


def paired_speedup(rev_seconds, tree_seconds):
    """(median, lowest, highest) over the rounds of REV's time over the working tree's in the same
    round: above 1 means the working tree is faster."""
    ratios = [a / b for a, b in zip(rev_seconds, tree_seconds)]
    return statistics.median(ratios), min(ratios), max(ratios)


class Side:
    """One version's step in its own process, called one turn at a time over a pipe."""

    def __init__(self, root, train, batch, threads):
        # imported here, in the parent: a side's process must load every module from its own tree
        sys.path.insert(0, str(ROOT))
        from parallel.threads import configure_threads
        env = dict(os.environ)
        configure_threads(threads, env)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(root), "train" if train else "eval", str(batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root)

    def wait_ready(self):
        """Wait until the side has built and warmed up its step (the first use of a revision compiles)."""
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise ABError("a side's step failed to start (run it by hand: python bench/step_time.py)")

    def turn(self, calls):
        """The median seconds of `calls` calls, timed in the side's process."""
        self.process.stdin.write(f"{calls}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise ABError("a side's process ended during the comparison (its error is above)")
        return float(answer)

    def close(self):
        """End the side's process (it stops at the end of its input)."""
        self.process.stdin.close()
        self.process.wait()


def serve(root, pass_name, batch):
    """The child: build the step from `root`'s own code, warm it up, then for each line N on stdin
    time N calls and answer their median.
    Its answers go out on the original stdout; anything the code under test prints goes to stderr."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, root)
    from bench.step_time import engine_call
    call = engine_call("fast", pass_name == "train", batch, 128, "cpu")
    for _ in range(WARMUP):
        call()
    print("ready", file=answers, flush=True)
    for line in sys.stdin:
        seconds = []
        for _ in range(int(line)):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        print(statistics.median(seconds), file=answers, flush=True)


def compare(rev_root, train, batch, threads, rounds):
    """{'rev': [s], 'tree': [s]} of `rounds` paired rounds of one configuration."""
    sides = [Side(rev_root, train, batch, threads), Side(ROOT, train, batch, threads)]
    try:
        for side in sides:
            side.wait_ready()
        times, calls = ([], []), max(1, IMAGES_PER_TURN // batch)
        for r in range(rounds):
            for who in turn_order(r):
                time.sleep(PAUSE_S)
                times[who].append(sides[who].turn(calls))
        return {"rev": times[0], "tree": times[1]}
    finally:
        for side in sides:
            side.close()


def table_line(batch, pass_name, times):
    """One row of the printed table."""
    speed, low, high = paired_speedup(times["rev"], times["tree"])
    rev_ms, tree_ms = (1e3 * statistics.median(times[k]) for k in ("rev", "tree"))
    return f"| {batch} | {pass_name} | {rev_ms:.2f} | {tree_ms:.2f} | {speed:.3f} | {low:.3f}-{high:.3f} |"


def main(argv=None):
    """Compare, print one table row per batch size as it is measured, then the whole table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with (e.g. HEAD~1)")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pass", dest="pass_name", choices=("train", "eval"), default="train")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        commit, rev_root = export_revision(args.rev)
        print(f"{args.rev} = {commit[:10]} against the working tree, {args.threads} thread(s), {args.rounds} "
              f"rounds (the first use of a revision compiles its kernels: minutes)", flush=True)
        lines = [f"| batch | pass | {args.rev} ms | working tree ms | speed-up (median of rounds) | range |",
                 "|---|---|---|---|---|---|"]
        for batch in args.batches:
            times = compare(rev_root, args.pass_name == "train", batch, args.threads, args.rounds)
            lines.append(table_line(batch, args.pass_name, times))
            print(lines[-1], flush=True)
    except ABError as error:
        sys.exit(f"ab_step: {error}")
    print(f"\nload average {os.getloadavg()}\n" + "\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
