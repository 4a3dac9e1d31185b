"""root_first and broadcast_json across real ranks; each rank saves what it saw.

Usage: mpirun -n N python turns.py OUT_DIR. Every rank appends its rank to OUT_DIR/order.txt inside
root_first (rank 0 after a pause, so without the turns another rank would write first); then the
last rank fails inside root_first; then rank 0 broadcasts a JSON document. Rank r writes
OUT_DIR/rank{r}.json.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from parallel import Communicator, RankFailure, broadcast_json, get_communicator, root_first  # noqa: E402


def main(out_dir):
    comm = get_communicator()
    order = Path(out_dir) / "order.txt"

    def append_rank():
        if comm.is_root:
            time.sleep(0.5)
        with open(order, "a") as f:
            f.write(f"{comm.rank}\n")
        return comm.rank * 10

    returned = root_first(comm, append_rank)

    def last_rank_fails():
        if comm.rank == comm.size - 1:
            raise ValueError(f"no data on rank {comm.rank} (é)")
        return "fine"
    try:
        root_first(comm, last_rank_fails, expected=(ValueError,))
        failure = None
    except RankFailure as exc:
        failure = {"rank": exc.rank, "message": str(exc)}
    document = {"epoch": 3, "metrics": [0.5, 1e-30], "name": "chat é"} if comm.is_root else None
    record = {"is_communicator": isinstance(comm, Communicator), "returned": returned,
              "failure": failure, "document": broadcast_json(comm, document)}
    (Path(out_dir) / f"rank{comm.rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
