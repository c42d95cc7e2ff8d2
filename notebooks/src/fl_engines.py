# %% [markdown]
# # Federated clients on real parallel engines: in-process, ipyparallel, MPI
#
# **What you will learn:** how the same FedAVG run moves from one Python process to a cluster of
# ipyparallel engines and to MPI ranks (the paper's Code 6) without changing its result, what it
# costs per round, and what happens when a worker dies.
#
# Each way trains 2 clients on the bundled digits with the same seeds, so the three global
# models must agree to float precision. On a laptop the speed-up is bounded by its cores; the same
# code runs on a cluster (see the README's "Running on MPI and clusters").

# %%
import time
from pathlib import Path

import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import load_digits, make_client_dataloaders, partition_iid
from aijack_lab.models import make_digits_model

torch.set_num_threads(1)
X_train, y_train, X_test, y_test = load_digits()
NUM_CLIENTS, ROUNDS, LOCAL_EPOCH = 2, 3, 2


def make_api(engine=None):
    """Code 5 with seeded data, models and optimizers (client k has user_id k+1, like MPI rank k+1)."""
    parts = partition_iid(len(X_train), NUM_CLIENTS, seed=0)
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model("cnn", seed=0), user_id=i + 1) for i in range(NUM_CLIENTS)]
    server = FedAVGServer(clients, make_digits_model("cnn", seed=0))
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    return FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders,
                     num_communication=ROUNDS, local_epoch=LOCAL_EPOCH,
                     validation_dataloader=(X_test, y_test), engine=engine)


def max_difference(params_a, params_b):
    return max((a.detach() - b.detach()).abs().max().item() for a, b in zip(params_a, params_b))

# %% [markdown]
# ## 1. In-process (the default)
#
# Clients train one after another in this kernel.

# %%
start = time.perf_counter()
inprocess_api = make_api()
inprocess_history = inprocess_api.run()
inprocess_seconds = time.perf_counter() - start
inprocess_acc = [h["global_accuracy"] for h in inprocess_history]
print(f"in-process: accuracy per round {[round(a, 3) for a in inprocess_acc]} in {inprocess_seconds:.1f} s")
assert inprocess_acc[-1] > 0.85

# %% [markdown]
# ## 2. ipyparallel engines
#
# `IPyParallelEngine(n_engines=2)` starts a local cluster (a controller and two engine processes),
# runs each client's local training on an engine and brings the trained state back; the server
# stays here. As a context manager it shuts the cluster down at the end. To use a cluster that is
# already running, pass `profile=...` or `connection_file=...` instead (it is then left running).

# %%
from aijack_lab.engines.ipyparallel import IPyParallelEngine

with IPyParallelEngine(n_engines=2) as engine:
    cluster_start = time.perf_counter()
    engine.start()
    startup_seconds = time.perf_counter() - cluster_start
    print(engine.status)
    start = time.perf_counter()
    ipp_api = make_api(engine)
    ipp_history = ipp_api.run()
    ipp_seconds = time.perf_counter() - start
    shipped = engine.bytes_sent + engine.bytes_received
print(engine.status)
ipp_acc = [h["global_accuracy"] for h in ipp_history]
ipp_diff = max_difference(inprocess_api.server.server_model.parameters(), ipp_api.server.server_model.parameters())
print(f"ipyparallel: cluster up in {startup_seconds:.1f} s, {ROUNDS} rounds in {ipp_seconds:.1f} s, "
      f"{shipped / 1e3:.0f} kB shipped; max |difference| to in-process {ipp_diff:.1e}")
assert ipp_diff <= 1e-6
assert ipp_acc == inprocess_acc

# %% [markdown]
# ## 3. MPI ranks (paper Code 6)
#
# `examples/mpi_fedavg.py` is Code 6 as a script: rank 0 runs `MPIFedAVGAPI` with the server,
# ranks 1..K with one client each. From a shell: `mpiexec -n 3 python examples/mpi_fedavg.py`.
# Here `run_mpi_job` launches it with this environment's `mpiexec` (from the `mpich` wheel), waits
# at most `timeout` seconds and turns a failed rank into an error that names it.

# %%
import tempfile

from aijack_lab.collaborative.mpi.launch import run_mpi_job

root = Path.cwd() if (Path.cwd() / "examples").exists() else Path.cwd().parent
with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "mpi_result.pt"
    job = run_mpi_job(str(root / "examples" / "mpi_fedavg.py"), n=NUM_CLIENTS + 1,
                      args=["--rounds", ROUNDS, "--local-epoch", LOCAL_EPOCH, "--out", out], timeout=300)
    mpi_result = torch.load(out)
print(job.stdout)
mpi_acc = [h["global_accuracy"] for h in mpi_result["history"]]
mpi_diff = max_difference(inprocess_api.server.server_model.parameters(), mpi_result["parameters"])
print(f"MPI: {ROUNDS} rounds in {mpi_result['seconds']:.1f} s (job {job.seconds:.1f} s with start-up); "
      f"max |difference| to in-process {mpi_diff:.1e}")
assert mpi_diff <= 1e-5
assert mpi_acc == inprocess_acc

# %% [markdown]
# ## Comparing the three
#
# Same accuracies, same model. Time per round depends on how much local training there is to
# spread: with two small clients the cluster's per-round overhead (shipping the model and
# optimizer state, a few ms) is visible; `benchmarks/bench_engines.py` measures the speed-up in a
# training-heavy setting and the per-round overhead for a tiny model.

# %%
rows = [("in-process", inprocess_seconds, inprocess_acc[-1]),
        ("ipyparallel, 2 engines", ipp_seconds, ipp_acc[-1]),
        ("MPI, 3 ranks", mpi_result["seconds"], mpi_acc[-1])]
print(f"{'engine':<24}{'s / round':>10}{'final accuracy':>16}")
for name, seconds, acc in rows:
    print(f"{name:<24}{seconds / ROUNDS:>10.2f}{acc:>16.4f}")
assert len({round(acc, 6) for _, _, acc in rows}) == 1

# %% [markdown]
# ## When a worker dies
#
# A client never hangs the run. With MPI, every message is awaited for at most `timeout` seconds
# (`MPIFedAVGAPI(timeout=300)` by default): a rank that stops answering ends the job with
# `MPIRankError: MPI rank 2 did not send its update for round 4 within 300 s`, and a rank that is
# killed ends it at once (`MPI rank 2 (pid ...) was killed by signal 9`). With ipyparallel, an
# engine that dies raises `EngineFailedError` naming the client it was training and shuts down the
# cluster the engine started. The tests (`tests/test_fl_mpi.py`, `tests/test_fl_engines.py`) kill
# and stop real ranks and engines to check this.

# %% [markdown]
# ## The panel
#
# The FedAVG panel has an **engine** dropdown (in-process, ipyparallel with 2 or 4 engines, or
# engines under mpiexec); the result table shows the engine's status, and the Code view shows the
# `IPyParallelEngine` lines that reproduce the run.

# %%
from aijack_lab.widgets import FedAVGPanel

panel = FedAVGPanel(num_clients=2, num_communication=3)
panel.run()
print(panel.result["engine_status"], round(panel.result["final_accuracy"], 3))
assert panel.result["engine_status"] == "in-process" and panel.result["final_accuracy"] > 0.85
panel

# %% [markdown]
# ## Exercises
#
# 1. Set `LOCAL_EPOCH = 10` and `NUM_CLIENTS = 4`: how does the ipyparallel time per round compare
#    with in-process now? Run `python benchmarks/bench_engines.py` for the measured speed-up.
# 2. Start a cluster yourself (`ipcluster start -n 2` in a terminal) and pass
#    `IPyParallelEngine(profile="default", n_engines=None)`: the engine joins it and leaves it running.
# 3. Run `mpiexec -n 3 python examples/mpi_fedavg.py --timeout 5` in a terminal and suspend one
#    client with `kill -STOP <pid>`: which rank does the error name, and after how long?
