"""The import graph goes one way: read every module's imports from its source (ast, so imports inside
functions count too) and fail on a cycle between modules or on anything below the CLI importing
run.py. A static walk, so it also sees the imports no test happens to execute."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "ops", "parallel", "storage", "console", "engine", "imagedata", "runner", "analysis", "bench", "batchlab")
CLI = {"run", "batchlab.__main__"}  # the top floor: the only modules that may import run.py
FLOOR = {"ops": 0, "parallel": 0, "storage": 0, "console": 0, "engine": 1, "imagedata": 1, "runner": 2,
         "analysis": 3, "bench": 3, "run": 4, "batchlab": 4}
# Known, listed module by module so that the list can only shrink. No cycle is left; sideways, on
# the top floor: run.py's `batchlab --version` reads the version from the batchlab package, whose
# __main__ runs run.py.
KNOWN_CYCLES = set()
KNOWN_SIDEWAYS = {("run", "batchlab"), ("batchlab.__main__", "run")}


def module_files():
    """{dotted module name: source path} of run.py and every module of the project's packages."""
    found = {"run": ROOT / "run.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name, path, known):
    """The project modules that module `name` imports anywhere in its source. `from P import x`
    counts as importing P.x when that is a module (as Python resolves it), else P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            targets.update(b for b in bases if b.split(".")[0] in known or b in known)
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module
        for alias in node.names:
            target = f"{base}.{alias.name}"
            targets.add(target if target in known else base)
    return {t for t in targets if t in known and t != name}


def import_graph():
    known = module_files()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def cyclic_groups(graph):
    """The strongly connected components with more than one member: sets of modules that import
    one another in a ring (found by reachability; the graph has a few hundred nodes)."""
    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
    reach = {node: reachable(node) for node in graph}
    return {frozenset({node} | {other for other in reach[node] if node in reach[other]})
            for node in graph if node in reach[node]}


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path):
    known = {"run", "analysis", "analysis.study", "analysis.study.command", "analysis.study.plan", "engine",
             "engine.model"}
    source = tmp_path / "command.py"
    source.write_text("from .plan import x\n\ndef f():\n    import run as cli\n"
                      "    from engine import model\n")
    assert imported_modules("analysis.study.command", source, known) == {
        "analysis.study.plan", "run", "engine.model"}


def test_cyclic_groups_finds_rings_and_accepts_chains():
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cyclic_groups(ring) == {frozenset("abc")}
    assert cyclic_groups({"a": {"b"}, "b": {"c"}, "c": set()}) == set()


def test_no_import_cycle_between_modules():
    assert cyclic_groups(import_graph()) == KNOWN_CYCLES


def test_packages_import_only_lower_floors():
    graph = import_graph()
    floor = {name: FLOOR[name.split(".")[0]] for name in graph}
    upward = {(a, t) for a, targets in graph.items() for t in targets
              if a.split(".")[0] != t.split(".")[0] and floor[t] >= floor[a]}
    assert upward == KNOWN_SIDEWAYS


def test_nothing_below_the_cli_imports_run_py():
    offenders = sorted(name for name, targets in import_graph().items()
                       if "run" in targets and name not in CLI)
    assert offenders == []


def test_importing_the_study_does_not_load_the_command_line():
    code = "import sys, analysis.study, runner; print('run' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
