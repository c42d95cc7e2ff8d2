"""MPIFedGEMSAPI / MPIDSFLAPI: the server and each client on their own rank give the in-process
models and history numbers; a silent client or a NaN upload ends the run naming the client.

Threaded runs use the in-memory communicators of test_fl_mpi; the mpiexec runs (marked mpi, slow)
run examples/mpi_distillation.py under run_mpi_job's hard timeout.
"""
import importlib.util
import math
import threading
import time
from pathlib import Path

import pytest
import torch

from aijack_lab.collaborative import (
    DSFLClient, DSFLServer, FedGEMSClient, FedGEMSServer, MPIDSFLAPI, MPIDSFLClientManager, MPIDSFLServerManager,
    MPIFedGEMSAPI, MPIFedGEMSClientManager, MPIFedGEMSServerManager, MPIFedMDAPI, MPIRankError,
)
from aijack_lab.collaborative.mpi.launch import run_mpi_job
from test_fl_mpi import SilentComm, ThreadComm  # the in-memory communicators of the MPI tests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "mpi_distillation.py")
_spec = importlib.util.spec_from_file_location("mpi_distillation_example", EXAMPLE)
ex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ex)  # the example's set-up, so the reference run is the script's own

ROUNDS, CLIENTS = 2, 3
JOB_TIMEOUT = 90  # seconds: a hard bound on each mpiexec run
PROTO = {
    "fedgems": (FedGEMSClient, FedGEMSServer, MPIFedGEMSClientManager, MPIFedGEMSServerManager, MPIFedGEMSAPI),
    "dsfl": (DSFLClient, DSFLServer, MPIDSFLClientManager, MPIDSFLServerManager, MPIDSFLAPI),
}
SERVER_KEYS = {"fedgems": ("global_accuracy", "bytes_uploaded", "bytes_downloaded", "fusion_stats"),
               "dsfl": ("global_accuracy", "bytes_uploaded", "bytes_downloaded", "entropy_before", "entropy_after",
                        "client_losses")}


def max_diff(params_a, params_b):
    return max((a.detach() - b.detach()).abs().max().item() for a, b in zip(params_a, params_b))


def run_threads(apis, join=120):
    errors = []

    def run(api):
        try:
            api.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(api,), daemon=True) for api in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join)
    assert not any(t.is_alive() for t in threads), "a rank thread hangs"
    return errors


def threaded_run(protocol, client_cls=None, timeout=60, rounds=ROUNDS):
    """The example's run with every rank as a thread: (server party, client parties, apis)."""
    base_client, base_server, ClientManager, ServerManager, API = PROTO[protocol]
    public, loaders, val = ex.make_setup(CLIENTS)
    boxes, size = {}, CLIENTS + 1
    MPIServer = ServerManager().attach(base_server)
    sargs, skw = ex.make_server_args(protocol, public)
    server = MPIServer(ThreadComm(boxes, 0, size), list(range(1, size)), *sargs, **skw)
    apis = [API(server.comm, server, True, server_optimizer=ex.optimizer(server.server_model), validation_dataloader=val,
                timeout=timeout, abort_on_error=False, **ex.settings(protocol, rounds))]
    MPIClient = ClientManager().attach(client_cls or base_client)
    clients = []
    for rank in range(1, size):
        comm = ThreadComm(boxes, rank, size)
        client = ex.make_client(protocol, rank - 1, public, cls=lambda *a, **k: MPIClient(comm, *a, **k))
        clients.append(client)
        apis.append(API(comm, client, False, local_dataloader=loaders[rank - 1], client_optimizer=ex.optimizer(client.model),
                        validation_dataloader=val, timeout=timeout, abort_on_error=False, **ex.settings(protocol, rounds)))
    return server, clients, apis


def assert_equals_inprocess(protocol, server_params, client_params, server_history, client_histories):
    ref_server, ref_clients, ref_history = ex.run_inprocess(protocol, len(client_params), ROUNDS)
    assert max_diff(ref_server.server_model.parameters(), server_params) <= 1e-6
    for ref, mine in zip(ref_clients, client_params):
        assert max_diff(ref.model.parameters(), mine) <= 1e-6
    assert len(server_history) == len(ref_history) == ROUNDS
    for ref, mine in zip(ref_history, server_history):
        for key in SERVER_KEYS[protocol]:
            assert mine[key] == pytest.approx(ref[key], abs=1e-6), key
    # each client's own numbers are its entries of the in-process history
    for k, hist in enumerate(client_histories):
        for ref, mine in zip(ref_history, hist):
            assert mine["client_losses"][0] == pytest.approx(ref["client_losses"][k], abs=1e-6)
            assert mine["client_accuracies"][0] == pytest.approx(ref["client_accuracies"][k], abs=1e-6)
    return ref_history


@pytest.mark.parametrize("protocol", ["fedgems", "dsfl"])
def test_threaded_mpi_run_equals_inprocess(protocol):
    server, clients, apis = threaded_run(protocol)
    errors = run_threads(apis)
    assert not errors, errors
    assert_equals_inprocess(protocol, list(server.server_model.parameters()),
                            [list(c.model.parameters()) for c in clients], apis[0].history,
                            [a.history for a in apis[1:]])
    # only predictions on the public data crossed: one (public x 10) float tensor per client
    assert apis[0].history[-1]["bytes_uploaded"] == CLIENTS * 300 * 10 * 4
    # and the protocol did something: the server learnt, and (FedGEMS) used fused knowledge
    accuracy = [h["global_accuracy"] for h in apis[0].history]
    assert accuracy[-1] > 0.5 and accuracy[-1] > accuracy[0]
    if protocol == "fedgems":
        assert apis[0].history[-1]["fusion_stats"]["fused"] > 0
    else:  # ERA sharpened the averaged soft labels
        assert apis[0].history[-1]["entropy_after"] < apis[0].history[-1]["entropy_before"]


@pytest.mark.parametrize("protocol", ["fedgems", "dsfl"])
def test_silent_client_rank_is_named_after_the_timeout(protocol):
    _, base_server, _, ServerManager, API = PROTO[protocol]
    public, _, _ = ex.make_setup(2)
    sargs, skw = ex.make_server_args(protocol, public)
    server = ServerManager().attach(base_server)(SilentComm(rank=0, size=3), [1, 2], *sargs, **skw)
    api = API(server.comm, server, True, timeout=0.3, abort_on_error=False)
    noun = "logits" if protocol == "fedgems" else "soft labels"
    start = time.monotonic()
    with pytest.raises(MPIRankError, match=rf"MPI ranks 1, 2 did not send its {noun} for round 0 within 0.3 s") as err:
        api.run()
    assert err.value.rank == (1, 2) and time.monotonic() - start < 5


@pytest.mark.parametrize("protocol", ["fedgems", "dsfl"])
def test_client_waiting_for_a_silent_server_names_it(protocol):
    base_client, _, ClientManager, _, API = PROTO[protocol]
    public, loaders, _ = ex.make_setup(2)
    client = ex.make_client(protocol, 0, public,
                            cls=lambda *a, **k: ClientManager().attach(base_client)(SilentComm(rank=1, size=3), *a, **k))
    api = API(client.comm, client, False, local_dataloader=loaders[0], timeout=0.2, abort_on_error=False)
    # the upload is never taken (nobody answers): the client names the server rank
    with pytest.raises(MPIRankError, match="MPI rank 0 did not take its") as err:
        api.run()
    assert err.value.rank == 0


class _NaNModel(torch.nn.Module):
    """Trainable (one parameter), but every output is NaN."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.full((len(x), 10), float("nan")) + self.w


@pytest.mark.parametrize("protocol", ["fedgems", "dsfl"])
def test_nan_upload_names_the_client(protocol):
    base_client = PROTO[protocol][0]

    # a client that checks nothing (an old or a hostile build) sends NaN from rank 2
    class Unchecked(base_client):
        def upload(self):
            out = super().upload() if self.user_id != 1 else None
            return out if out is not None else torch.full((300, 10), float("nan"))

    server, clients, apis = threaded_run(protocol, client_cls=Unchecked, timeout=1.5, rounds=1)
    errors = run_threads(apis, join=60)
    named = [e for e in errors if isinstance(e, MPIRankError) and e.rank == 2]
    assert named, errors
    noun = "logits" if protocol == "fedgems" else "soft labels"
    assert f"client rank 2 sent {noun} with NaN or inf in round 0" in str(named[0])
    assert server.round == 0  # nothing of that round was aggregated or sent

    # an ordinary client whose model outputs NaN stops on its own rank, naming itself
    base_client, _, ClientManager, _, API = PROTO[protocol]
    public, loaders, _ = ex.make_setup(2)
    client = ClientManager().attach(base_client)(SilentComm(rank=1, size=3), _NaNModel(), public, output_dim=10,
                                                 user_id=0)
    api = API(client.comm, client, False, local_dataloader=loaders[0], timeout=0.2, abort_on_error=False,
              **({"epoch_client_on_localdataset": 0} if protocol == "fedgems" else {}))
    with pytest.raises(ValueError, match="client 0 sent a non-finite update"):
        api.run()


def test_bad_arguments():
    public, loaders, _ = ex.make_setup(2)
    MPIClient = MPIFedGEMSClientManager().attach(FedGEMSClient)
    client = MPIClient(SilentComm(rank=1, size=3), ex.client_model(0), public, output_dim=10)
    with pytest.raises(ValueError, match="local_dataloader is required"):
        MPIFedGEMSAPI(client.comm, client, False)
    with pytest.raises(ValueError, match="is_server=True but party is an MPI client"):
        MPIFedGEMSAPI(client.comm, client, True, local_dataloader=loaders[0])
    with pytest.raises(TypeError, match=r"MPIDSFLClientManager\(\)\.attach\(DSFLClient\)"):
        MPIDSFLAPI(client.comm, client, False, local_dataloader=loaders[0])  # a FedGEMS party
    with pytest.raises(TypeError, match="MPIFedMDClientManager"):
        MPIFedMDAPI(client.comm, client, False, client_optimizer=object())
    with pytest.raises(ValueError, match="epoch_local_training must be > 0"):
        dsfl = MPIDSFLClientManager().attach(DSFLClient)(SilentComm(rank=1, size=3), ex.client_model(0), public,
                                                         output_dim=10)
        MPIDSFLAPI(dsfl.comm, dsfl, False, local_dataloader=loaders[0], epoch_local_training=0)
    with pytest.raises(ValueError, match="needs public_dataloader"):
        MPIFedGEMSServerManager().attach(FedGEMSServer)(SilentComm(rank=0, size=3), [1, 2], ex.server_model())
    with pytest.raises(ValueError, match="server's rank"):
        MPIClient(SilentComm(rank=0, size=3), ex.client_model(0), public, output_dim=10)


# -- mpiexec runs ---------------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["fedgems", "dsfl"])
def test_mpiexec_run_equals_inprocess(protocol, tmp_path):
    out = tmp_path / "mpi.pt"
    start = time.monotonic()
    run_mpi_job(EXAMPLE, 3, ["--protocol", protocol, "--rounds", str(ROUNDS), "--timeout", "30", "--out", str(out)],
                timeout=JOB_TIMEOUT)
    seconds = time.monotonic() - start
    saved = [torch.load(out)] + [torch.load(f"{out}.rank{r}") for r in (1, 2)]
    assert_equals_inprocess(protocol, saved[0]["parameters"], [s["parameters"] for s in saved[1:]],
                            saved[0]["history"], [s["history"] for s in saved[1:]])
    assert not math.isnan(saved[0]["history"][-1]["global_accuracy"])
    print(f"{protocol} mpiexec -n 3: {seconds:.1f} s")
