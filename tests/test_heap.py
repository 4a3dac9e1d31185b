"""ops.numba_heap: after keep_freed_memory(), a large block freed and allocated again reuses the same
pages instead of page-faulting fresh ones in (measured with the kernel's minor-fault counter)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import resource, sys
import numpy as np
sys.path.insert(0, {root!r})
from ops.numba_heap import keep_freed_memory

def faults_per_cycle(cycles=20, mb=40):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        block = np.empty(mb << 20, dtype=np.uint8)
        block[::4096] = 1          # touch every page once, as a kernel writing an activation does
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles

default = faults_per_cycle()
applied = keep_freed_memory()
faults_per_cycle(2)                 # the first cycle after the change grows the heap once
print(applied, default, faults_per_cycle())
"""


def test_freed_blocks_are_recycled_instead_of_faulted_in_again():
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    applied, default, recycled = out[0] == "True", float(out[1]), float(out[2])
    assert applied
    huge_pages = (40 << 20) // (2 << 20)   # NumPy asks for 2 MB pages on large arrays where it can
    assert default >= huge_pages           # glibc maps a fresh 40 MB block every time by default
    assert recycled <= 0.05 * default      # afterwards the same pages come back without faults
