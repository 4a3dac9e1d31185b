"""Run every MPICommunicator collective on rank-dependent inputs and save what each rank got.

Usage: mpirun -n N python collectives.py OUT_DIR. Rank r writes OUT_DIR/rank{r}.npz; the test
recomputes the expected values from the same inputs.
"""
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from parallel import get_communicator  # noqa: E402

N = 10_007


class FakeDeviceArray:
    """Stands in for a CuPy array: values reachable only through get(out=) and set()."""

    def __init__(self, values):
        self._values = values.copy()
        self.shape, self.dtype = values.shape, values.dtype

    def get(self, out):
        out[...] = self._values

    def set(self, host):
        self._values[...] = host


def rank_vector(rank, seed):
    """Values spanning many magnitudes, so the order of additions matters in float32."""
    rng = np.random.default_rng([seed, rank])
    return (rng.standard_normal(N) * 10.0 ** rng.integers(-6, 4, N)).astype(np.float32)


def main(out_dir):
    comm = get_communicator()
    reduced = comm.allreduce_sum_(rank_vector(comm.rank, 1))
    device = FakeDeviceArray(rank_vector(comm.rank, 1))
    comm.cuda_aware = False  # a host-only MPI: device vectors must be staged through the host
    comm.allreduce_sum_(device)
    broadcast = comm.broadcast_(rank_vector(comm.rank, 2))
    sums = comm.sum_values([0.1 * (comm.rank + 1), 1e16 if comm.rank == 0 else 1.0, comm.rank + 1])
    part = comm.shard(30)
    np.savez(Path(out_dir) / f"rank{comm.rank}.npz", reduced=reduced, staged=device._values,
             broadcast=broadcast, sums=np.array(sums), shard=np.array([part.start, part.stop]),
             flag_any=comm.any_flag(comm.rank == comm.size - 1), flag_none=comm.any_flag(False),
             ranks=np.array([comm.rank, comm.size, comm.local_rank, comm.local_size,
                             int(os.environ.get("MPI_LOCALRANKID", -1)),
                             int(os.environ.get("MPI_LOCALNRANKS", -1))]))
    comm.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
