"""The communicator contract (parallel/contract.py) and the patterns on it (parallel/turns.py):
both communicators meet the contract method by method; root_first returns fn's result and turns an
expected error into one RankFailure; broadcast_json returns rank 0's document. One mpirun test
checks the turn order, the agreed error and the broadcast across real ranks."""
import inspect
import json

import pytest
from test_mpi import SCRIPTS, check_ok, launch, needs_mpi

from parallel import Communicator, LocalCommunicator, RankFailure, broadcast_json, root_first
from parallel.mpi import MPICommunicator

DATA_MEMBERS = ("rank", "size", "local_rank", "local_size")


def contract_methods():
    """{name: parameter names} of every method the contract declares, read from the Protocol."""
    return {name: list(inspect.signature(member).parameters)
            for name, member in vars(Communicator).items()
            if inspect.isfunction(member) and not name.startswith("_")}


def test_the_contract_names_the_collectives_the_code_uses():
    assert set(contract_methods()) == {"shard", "broadcast_", "allreduce_sum_", "sum_values",
                                       "any_flag", "barrier", "abort"}
    assert isinstance(vars(Communicator)["is_root"], property)
    assert set(Communicator.__annotations__) == set(DATA_MEMBERS)


@pytest.mark.parametrize("cls", [LocalCommunicator, MPICommunicator])
def test_each_communicator_has_every_method_with_the_contract_arguments(cls):
    for name, parameters in contract_methods().items():
        method = getattr(cls, name, None)
        assert inspect.isfunction(method), f"{cls.__name__}.{name} missing"
        assert list(inspect.signature(method).parameters) == parameters, f"{cls.__name__}.{name}"
    assert isinstance(vars(cls)["is_root"], property)


def test_runtime_check_accepts_the_local_communicator_and_refuses_a_partial_one():
    assert isinstance(LocalCommunicator(), Communicator)

    class NoAgreement(LocalCommunicator):
        any_flag = None  # a communicator that cannot agree on a flag
    assert not isinstance(NoAgreement(), Communicator)


def test_root_first_returns_the_result_and_turns_expected_errors_into_one_failure():
    comm = LocalCommunicator()
    assert root_first(comm, lambda: [1, 2]) == [1, 2]

    def missing():
        raise FileNotFoundError("no images in /data")
    with pytest.raises(RankFailure, match=r"^no images in /data$") as caught:
        root_first(comm, missing, expected=(OSError,))
    assert caught.value.rank == 0
    with pytest.raises(FileNotFoundError):  # not expected: propagates as itself
        root_first(comm, missing, expected=(ValueError,))


def test_a_failure_on_another_rank_names_that_rank():
    assert str(RankFailure(2, "disk full")) == "rank 2: disk full"
    assert str(RankFailure(0, "disk full")) == "disk full"


def test_broadcast_json_returns_rank_zeros_document():
    document = {"epoch": 4, "best": 0.125, "rank_sums": [[1.0, 2.0]], "name": "chien é"}
    got = broadcast_json(LocalCommunicator(), document)
    assert got == json.loads(json.dumps(document)) and got is not document


@needs_mpi
def test_root_first_and_broadcast_json_across_ranks(tmp_path):
    ranks = 2
    check_ok(launch([SCRIPTS / "turns.py", tmp_path], ranks))
    assert (tmp_path / "order.txt").read_text().split() == ["0", "1"]  # rank 0 first despite its pause
    for r in range(ranks):
        record = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert record["is_communicator"] is True
        assert record["returned"] == 10 * r
        assert record["failure"] == {"rank": ranks - 1,
                                     "message": f"rank {ranks - 1}: no data on rank {ranks - 1} (é)"}
        assert record["document"] == {"epoch": 3, "metrics": [0.5, 1e-30], "name": "chat é"}

