"""A job whose last rank cannot load its data (say, a node without the data folder).

Usage: mpirun -n N python data_error.py RUN.PY-ARGS... The last rank's loader raises DataError with a
reason only that rank knows; rank 0 must print that reason, not a generic message.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import imagedata  # noqa: E402
import run  # noqa: E402

real_load = imagedata.load_dataset


def load_or_fail(*args, **kwargs):
    from mpi4py import MPI  # asking the rank is local; building a communicator here would not be
    rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
    if rank == size - 1:
        raise imagedata.DataError(f"data folder /mnt/photos does not exist on node-{rank}")
    return real_load(*args, **kwargs)


if __name__ == "__main__":
    imagedata.load_dataset = load_or_fail
    sys.exit(run.main(sys.argv[1:]))
