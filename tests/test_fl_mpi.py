"""MPI backend (paper Code 6): same global model as in-process FedAVG, managers still attach, and a
rank that dies or stops answering ends the job with an error naming it, never a hang.

The mpiexec tests are marked ``mpi`` and ``slow`` and run under a hard timeout (run_mpi_job kills
the whole process group), so nothing can hang CI.
"""
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from aijack_lab.collaborative import (
    FedAVGAPI, FedAVGClient, FedAVGServer, MPIFedAVGAPI, MPIFedAVGClientManager, MPIFedAVGServerManager, MPIRankError,
)
from aijack_lab.collaborative.mpi.launch import _explain_failure, read_rank_status, run_mpi_job
from aijack_lab.collaborative.mpi.transport import gather_from, send_to
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "mpi_fedavg.py")
JOB = str(ROOT / "tests" / "mpi_jobs" / "fedavg_job.py")
JOB_TIMEOUT = 150  # seconds: a hard bound on every mpiexec run of this file


class SilentComm:
    """A communicator on which nobody ever answers (for the transport's timeouts)."""

    def __init__(self, rank=0, size=3):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Iprobe(self, source=None, tag=None):
        return False

    def recv(self, source=None, tag=None):  # pragma: no cover - never reached
        raise AssertionError

    def isend(self, obj, dest, tag):
        class Pending:
            def Test(self):
                return False
        return Pending()

    def Abort(self, code=1):  # pragma: no cover
        raise SystemExit(code)


def inprocess(digits, n_clients, rounds, model="cnn", local_epoch=1, server_cls=FedAVGServer):
    x_tr, y_tr, x_te, y_te = digits
    parts = partition_iid(len(x_tr), n_clients, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model(model, seed=0), user_id=i + 1) for i in range(n_clients)]
    server = server_cls(clients, make_digits_model(model, seed=0))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    history = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                        local_epoch=local_epoch, validation_dataloader=(x_te, y_te)).run()
    return server, history


def max_diff(params_a, params_b):
    return max((a.detach() - b.detach()).abs().max().item() for a, b in zip(params_a, params_b))


# -- fast checks (no mpiexec) -------------------------------------------------------------------
def test_silent_rank_is_named_after_the_timeout():
    start = time.monotonic()
    with pytest.raises(MPIRankError, match=r"rank 2 did not send its update for round 0 within 0.3 s") as err:
        gather_from(_OneAnswers(), [1, 2], tag=12, timeout=0.3, what="its update for round 0")
    assert err.value.rank == 2
    assert 0.3 <= time.monotonic() - start < 3.0
    with pytest.raises(MPIRankError, match=r"MPI rank 1 did not take the global model within 0.2 s"):
        send_to(SilentComm(), {"x": 1}, [1], tag=11, timeout=0.2, what="the global model")


class _OneAnswers(SilentComm):
    """Rank 1 has sent its message; rank 2 never does."""

    def __init__(self):
        super().__init__()
        self.box = {1: "update from 1"}

    def Iprobe(self, source=None, tag=None):
        return source in self.box

    def recv(self, source=None, tag=None):
        return self.box.pop(source)


def test_arguments_are_checked():
    comm = SilentComm(rank=0, size=3)
    MPIServer = MPIFedAVGServerManager().attach(FedAVGServer)
    MPIClient = MPIFedAVGClientManager().attach(FedAVGClient)
    with pytest.raises(ValueError, match="clients must be ranks in 0..2 other than the server's rank 0"):
        MPIServer(comm, [0, 1], make_digits_model("mlp"))
    with pytest.raises(TypeError, match="integer ranks"):
        MPIServer(comm, [1.5], make_digits_model("mlp"))
    with pytest.raises(TypeError, match="comm must be an MPI communicator"):
        MPIServer(object(), [1, 2], make_digits_model("mlp"))
    server = MPIServer(comm, [1, 2], make_digits_model("mlp"))
    with pytest.raises(ValueError, match="is_server=False but party is an MPI server"):
        MPIFedAVGAPI(comm, server, False, nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="party must be built by MPIFedAVGServerManager"):
        MPIFedAVGAPI(comm, FedAVGServer([], make_digits_model("mlp")), True, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="timeout must be > 0"):
        MPIFedAVGAPI(comm, server, True, nn.CrossEntropyLoss(), timeout=0)
    with pytest.raises(ValueError, match="num_communication must be > 0"):
        MPIFedAVGAPI(comm, server, True, nn.CrossEntropyLoss(), num_communication=0)
    client = MPIClient(SilentComm(rank=1), make_digits_model("mlp"), user_id=1)
    with pytest.raises(ValueError, match="local_optimizer is required"):
        MPIFedAVGAPI(SilentComm(rank=1), client, False, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="cannot run on the server's rank 0"):
        MPIClient(comm, make_digits_model("mlp"), user_id=0)


def test_server_stops_with_the_silent_rank_named_instead_of_hanging():
    comm = SilentComm(rank=0, size=3)
    server = MPIFedAVGServerManager().attach(FedAVGServer)(comm, [1, 2], make_digits_model("mlp"))
    api = MPIFedAVGAPI(comm, server, True, nn.CrossEntropyLoss(), timeout=0.2, abort_on_error=False)
    with pytest.raises(MPIRankError, match=r"MPI ranks 1, 2 did not take the global model after round 0 within 0.2 s"):
        api.run()


def test_launcher_maps_a_killed_pid_to_its_rank():
    hydra = ("=====\n=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n=   PID 4242 RUNNING AT vm\n"
             "=   EXIT CODE: 9\n=   CLEANING UP REMAINING PROCESSES\n")
    err = _explain_failure(hydra, {0: {"pid": 4240, "round": 3}, 2: {"pid": 4242, "round": 2}})
    assert err.rank == 2 and "MPI rank 2 (pid 4242 on vm) died" in str(err) and "after round 2" in str(err)
    ours = "[aijack_lab] MPI rank 0 stops the run: MPIRankError(rank=1): MPI rank 1 did not send ..."
    err = _explain_failure(ours, {})
    assert err.rank == 1 and "rank 0 reported" in str(err)


def test_an_mpi_library_error_is_reported_as_lost_contact(capsys, monkeypatch):
    from aijack_lab.collaborative.mpi import transport
    from aijack_lab.collaborative.mpi.transport import abort_with_message

    monkeypatch.setattr(transport, "LOST_PEER_GRACE", 0.0)

    class FakeMPIException(Exception):
        pass

    FakeMPIException.__module__ = "mpi4py.MPI"
    aborted = []

    class Comm:
        def Get_rank(self):
            return 0

        def Abort(self, code=1):
            aborted.append(code)

    abort_with_message(Comm(), FakeMPIException("Other MPI error, error stack:\nmore"))
    assert aborted == [1]
    assert "[aijack_lab] MPI rank 0 lost contact with a peer: Other MPI error" in capsys.readouterr().err
    abort_with_message(Comm(), ValueError("client 2 sent NaN"))
    assert "[aijack_lab] MPI rank 0 stops the run: ValueError: client 2 sent NaN" in capsys.readouterr().err


def test_launcher_names_the_killed_rank_not_the_rank_that_lost_it():
    # the server notices the dead peer and aborts, possibly before MPICH reports the death: the
    # guard's line is the root cause, whichever order the two lines arrive in
    killed = "[aijack_lab] MPI rank 2 (pid 4242) was killed by signal 9 (SIGKILL)"
    lost = "[aijack_lab] MPI rank 0 lost contact with a peer: Other MPI error, error stack:"
    for output in (killed + "\n" + lost, lost + "\n" + killed):
        err = _explain_failure(output, {2: {"pid": 4242, "round": 5}})
        assert err.rank == 2 and "MPI rank 2 (pid 4242) was killed by signal 9" in str(err) and "round 5" in str(err)
    # without the guard line, MPICH's PID (the guard's, i.e. the rank's parent) still names it
    hydra = "=   PID 4241 RUNNING AT vm\n=   EXIT CODE: 137\n"
    err = _explain_failure(lost + "\n" + hydra, {0: {"pid": 4000, "ppid": 3999}, 2: {"pid": 4242, "ppid": 4241}})
    assert err.rank == 2 and "MPI rank 2 (pid 4241 on vm) died" in str(err)
    # and with nothing else to go on, a lost contact does not blame the rank that reported it
    err = _explain_failure(lost, {})
    assert err.rank is None and "lost contact with a peer" in str(err)


# -- mpiexec runs ---------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.slow
def test_example_script_equals_inprocess_fedavg(digits, tmp_path):
    out = tmp_path / "mpi.pt"
    run_mpi_job(EXAMPLE, 3, ["--rounds", "2", "--out", str(out)], timeout=JOB_TIMEOUT)
    saved = torch.load(out)
    server, history = inprocess(digits, n_clients=2, rounds=2)
    assert max_diff(server.server_model.parameters(), saved["parameters"]) <= 1e-5
    mpi_acc = [h["global_accuracy"] for h in saved["history"]]
    assert mpi_acc == pytest.approx([h["global_accuracy"] for h in history], abs=1e-6)
    assert mpi_acc[-1] > 0.8


class ThreadComm:
    """An in-memory communicator for ranks run as threads of this process (messages are pickled)."""

    def __init__(self, boxes, rank, size):
        self.boxes, self.rank, self.size = boxes, rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Iprobe(self, source, tag):
        return bool(self.boxes.get((source, self.rank, tag)))

    def recv(self, source, tag):
        return self.boxes[(source, self.rank, tag)].pop(0)

    def isend(self, obj, dest, tag):
        import pickle

        self.boxes.setdefault((self.rank, dest, tag), []).append(pickle.loads(pickle.dumps(obj)))

        class Done:
            def Test(self):
                return True
        return Done()

    def Abort(self, code=1):  # pragma: no cover
        raise SystemExit(code)


def run_threaded_mpi(digits, server_cls, client_cls, n_clients=2, rounds=2, api_cls=MPIFedAVGAPI, **api_kw):
    """Code 6 with every rank as a thread; returns the server party."""
    x_tr, y_tr, x_te, y_te = digits
    boxes, size = {}, n_clients + 1
    parts = partition_iid(len(x_tr), n_clients, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    server = server_cls(ThreadComm(boxes, 0, size), list(range(1, size)), make_digits_model("mlp", seed=0))
    apis = [api_cls(server.comm, server, True, nn.CrossEntropyLoss(), num_communication=rounds, timeout=60, **api_kw)]
    for r in range(1, size):
        client = client_cls(ThreadComm(boxes, r, size), make_digits_model("mlp", seed=0), user_id=r)
        opt = torch.optim.SGD(client.parameters(), lr=0.1, momentum=0.9)
        apis.append(api_cls(client.comm, client, False, nn.CrossEntropyLoss(), opt, loaders[r - 1],
                            num_communication=rounds, timeout=60, **api_kw))
    errors = []

    def run(api):
        try:
            api.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(api,), daemon=True) for api in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads), errors
    return server


@pytest.mark.parametrize("mpi_outermost", [True, False])
def test_a_defense_manager_attaches_to_the_mpi_server_in_either_order(digits, mpi_outermost):
    NormClippingServerManager = pytest.importorskip("aijack_lab.defense").NormClippingServerManager
    clip, mpi = NormClippingServerManager(0.5), MPIFedAVGServerManager()
    server_cls = mpi.attach(clip.attach(FedAVGServer)) if mpi_outermost else clip.attach(mpi.attach(FedAVGServer))
    server = run_threaded_mpi(digits, server_cls, MPIFedAVGClientManager().attach(FedAVGClient))
    reference, _ = inprocess(digits, n_clients=2, rounds=2, model="mlp",
                             server_cls=NormClippingServerManager(0.5).attach(FedAVGServer))
    assert len(server.clip_factors) == 2 and all(f < 1.0 for fs in server.clip_factors for f in fs)
    assert max_diff(reference.server_model.parameters(), server.server_model.parameters()) <= 1e-5


def test_plain_threaded_mpi_run_equals_inprocess(digits):
    server = run_threaded_mpi(digits, MPIFedAVGServerManager().attach(FedAVGServer),
                              MPIFedAVGClientManager().attach(FedAVGClient))
    reference, _ = inprocess(digits, n_clients=2, rounds=2, model="mlp")
    assert max_diff(reference.server_model.parameters(), server.server_model.parameters()) <= 1e-5


def _run_and_hit_rank(tmp_path, sig, timeout_arg):
    """Start a long MPI job, send ``sig`` to client rank 2 after round 2, return (error, seconds after the signal)."""
    box = {}

    def target():
        try:
            run_mpi_job(JOB, 3, ["--rounds", "100000", "--timeout", str(timeout_arg)], timeout=JOB_TIMEOUT,
                        status_dir=str(tmp_path))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline and thread.is_alive():
        status = read_rank_status(str(tmp_path))
        if status.get(0, {}).get("round", -1) >= 2 and 2 in status:
            break
        time.sleep(0.2)
    status = read_rank_status(str(tmp_path))
    assert status.get(0, {}).get("round", -1) >= 2, f"the job did not start: {box}"
    pid = status[2]["pid"]
    os.kill(pid, sig)
    hit = time.monotonic()
    thread.join(JOB_TIMEOUT)
    elapsed = time.monotonic() - hit
    try:  # never leave a stopped process behind
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert not thread.is_alive()
    return box.get("error"), elapsed


@pytest.mark.mpi
@pytest.mark.slow
def test_killed_client_rank_ends_the_job_with_an_error_naming_it(tmp_path):
    error, elapsed = _run_and_hit_rank(tmp_path, signal.SIGKILL, timeout_arg=20)
    assert isinstance(error, MPIRankError)
    assert error.rank == 2 and "MPI rank 2" in str(error)
    assert elapsed < 20  # MPICH ends the job at once, before the protocol's own timeout


@pytest.mark.mpi
@pytest.mark.slow
def test_stopped_client_rank_is_named_after_the_timeout(tmp_path):
    error, elapsed = _run_and_hit_rank(tmp_path, signal.SIGSTOP, timeout_arg=3)
    assert isinstance(error, MPIRankError)
    assert error.rank == 2
    # a stopped rank is caught wherever the server meets it first: waiting for its update, or
    # waiting for it to take the global model (which phase depends on timing)
    assert re.search(r"MPI rank 2 did not (send its update|take the global model)", str(error)), str(error)
    assert elapsed < 3 + 15  # the documented timeout plus the abort


def test_mpi_fedprox_equals_inprocess_fedprox(digits):
    from aijack_lab.collaborative import FedProxAPI, FedProxClient, MPIFedProxAPI

    server = run_threaded_mpi(digits, MPIFedAVGServerManager().attach(FedAVGServer),
                              MPIFedAVGClientManager().attach(FedProxClient), api_cls=MPIFedProxAPI, mu=0.5)
    x_tr, y_tr, x_te, y_te = digits
    parts = partition_iid(len(x_tr), 2, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    clients = [FedProxClient(make_digits_model("mlp", seed=0), user_id=i + 1) for i in range(2)]
    reference = FedAVGServer(clients, make_digits_model("mlp", seed=0))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    FedProxAPI(reference, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=2, mu=0.5).run()
    assert max_diff(reference.server_model.parameters(), server.server_model.parameters()) <= 1e-5
    # and the proximal term mattered: plain FedAVG ends elsewhere
    plain, _ = inprocess(digits, n_clients=2, rounds=2, model="mlp")
    assert max_diff(plain.server_model.parameters(), server.server_model.parameters()) > 1e-3
    with pytest.raises(TypeError, match="not an MPI FedProxClient"):
        client = MPIFedAVGClientManager().attach(FedAVGClient)(SilentComm(rank=1), make_digits_model("mlp"), user_id=1)
        MPIFedProxAPI(client.comm, client, False, nn.CrossEntropyLoss(), object(), object())
