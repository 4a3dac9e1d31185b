"""The internals tour (docs/tour/) executed: every code block of every chapter runs, and the numbers
each chapter quotes are compared with what its code prints, so the tour cannot go stale.

How a chapter is written (docs/tour/README.md says the same to readers):
- ```python blocks run in order in one interpreter per chapter (one shared namespace, like pasting
  them into one `python` session); ```python file=NAME blocks are saved as NAME instead of run;
  ```bash blocks run in bash. Every chapter runs in a fresh scratch folder, with the repository on
  PYTHONPATH and its path in $BATCHLAB.
- A ```text block right after a code block is what that block prints. Text must match word for
  word; a number must match to the digits it is quoted with (integers exactly, decimals within one
  unit of their last digit); a number written ~N is machine-dependent (a time) and is not compared.
- A reference `path/file.py: name` in the prose must name a file of the repository that defines
  `name` (a function or class), so renames break this test rather than the reader.

Run as a script (`python tests/test_tour.py CHAPTER.md`), this file is the chapter runner itself.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "docs" / "tour"
CHAPTERS = sorted(TOUR.glob("[0-9][0-9]-*.md"))
MARKER = "@@tour-block {}@@"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
NUMBER = re.compile(r"(?:~\s*)?[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")
REFERENCE = re.compile(r"`([\w/]+\.py): ([\w.]+)`")
CHAPTER_TIMEOUT = 420


def parse_blocks(text):
    """[(kind, options, code)] of the fenced blocks of a chapter, in order."""
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def run_blocks(blocks):
    """Execute the blocks of one chapter in the current directory, printing MARKER before each
    executable block's output (the chapter runner; it runs in its own interpreter)."""
    namespace = {"__name__": "__main__"}
    for index, (kind, options, code) in enumerate(blocks):
        if kind == "python" and options.startswith("file="):
            Path(options[len("file="):]).write_text(code)
            continue
        if kind not in ("python", "bash"):
            continue
        print(MARKER.format(index), flush=True)
        if kind == "python":
            exec(compile(code, f"<tour block {index}>", "exec"), namespace)
            sys.stdout.flush()
        else:
            subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], check=True)


def split_outputs(stdout):
    """{block index: printed text} from the runner's stdout."""
    parts = re.split(r"^@@tour-block (\d+)@@\n", stdout, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def _number_matches(quoted, printed):
    """A quoted number against a printed one: integers exactly, decimals to their last digit."""
    if quoted.startswith("~"):
        return True
    q, p = quoted.replace(",", ""), printed.lstrip("~").strip().replace(",", "")
    if re.fullmatch(r"[-+]?\d+", q):
        return q.lstrip("+") == p.lstrip("+")
    mantissa = q.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(q.lower().split("e")[1]) if "e" in q.lower() else 0
    unit = 10.0 ** (exponent - decimals)
    return abs(float(q) - float(p)) <= unit * (1 + 1e-9)


def compare_output(expected, printed):
    """None when `printed` shows what `expected` quotes, else a one-line description of the first
    difference."""
    want = [line for line in expected.strip().splitlines()]
    got = [line for line in printed.strip().splitlines()]
    if len(want) != len(got):
        return f"expected {len(want)} lines, the code printed {len(got)}:\n{printed}"
    for w, g in zip(want, got):
        w_text, g_text = NUMBER.split(w), NUMBER.split(g)
        w_nums, g_nums = NUMBER.findall(w), NUMBER.findall(g)
        same_text = [" ".join(t.split()) for t in w_text] == [" ".join(t.split()) for t in g_text]
        if not same_text or len(w_nums) != len(g_nums):
            return f"line differs: quoted {w!r}, printed {g!r}"
        for q, p in zip(w_nums, g_nums):
            if not _number_matches(q, p):
                return f"number {q} quoted, {p} printed, in line {g!r}"
    return None


def chapter_environment():
    """The environment a reader has after the README's set-up: the repository importable, its
    path in $BATCHLAB, the project's python and mpirun first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_", "OMPI_"))}
    env.update({"PYTHONPATH": str(ROOT), "BATCHLAB": str(ROOT),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    return env


def test_number_comparison_respects_quoted_precision():
    assert compare_output("loss 0.6931, 353,161 parameters", "loss 0.69314, 353,161 parameters") is None
    assert compare_output("loss 0.6931", "loss 0.6933") is not None
    assert compare_output("353,161 parameters", "353,162 parameters") is not None
    assert compare_output("took ~12.5 ms", "took 80.1 ms") is None
    assert compare_output("took ~  2.5 ms", "took ~ 80.1 ms") is None
    assert compare_output("phi 2.5e-04", "phi 2.6e-04") is None
    assert compare_output("phi 2.5e-04", "phi 2.7e-04") is not None
    assert compare_output("verdict reproduced", "verdict contradicted") is not None
    assert compare_output("a\nb", "a") is not None


def test_every_chapter_uses_only_runnable_blocks_and_quotes_after_code():
    assert len(CHAPTERS) == 7
    for chapter in CHAPTERS:
        blocks = parse_blocks(chapter.read_text())
        assert blocks, chapter.name
        for i, (kind, _options, _) in enumerate(blocks):
            assert kind in ("python", "bash", "text"), f"{chapter.name}: a ```{kind} block is never run"
            if kind == "text":
                assert i > 0 and blocks[i - 1][0] in ("python", "bash") \
                    and not blocks[i - 1][1], f"{chapter.name}: block {i} quotes no code"


def test_references_name_functions_that_exist():
    pages = CHAPTERS + [TOUR / "README.md"]
    found = 0
    for page in pages:
        for path, name in REFERENCE.findall(page.read_text()):
            source = (ROOT / path).read_text()
            last = name.split(".")[-1]
            assert re.search(rf"^\s*(def|class) {re.escape(last)}\b|^{re.escape(last)} =", source, re.M), \
                f"{page.name}: {path} defines no {name}"
            found += 1
    assert found >= 30


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_runs_and_prints_what_it_quotes(chapter, tmp_path):
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(chapter)],
                            cwd=tmp_path, env=chapter_environment(), capture_output=True, text=True,
                            timeout=CHAPTER_TIMEOUT)
    assert result.returncode == 0, f"{chapter.name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    outputs = split_outputs(result.stdout)
    blocks = parse_blocks(chapter.read_text())
    quoted = 0
    for i, (kind, _, expected) in enumerate(blocks):
        if kind != "text":
            continue
        problem = compare_output(expected, outputs.get(i - 1, ""))
        assert problem is None, f"{chapter.name}, block {i}: {problem}"
        quoted += 1
    assert quoted >= 2, f"{chapter.name} quotes the output of fewer than two blocks"


if __name__ == "__main__":
    run_blocks(parse_blocks(Path(sys.argv[1]).read_text()))
