"""ipyparallel engine: same result as in-process, clear error naming the client when its engine
dies mid-round, and the cluster it started is shut down. Cluster tests are slow (engines start
in seconds) and bounded by the engine's own timeouts."""
import os
import signal
import threading
import time

import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.engines import InProcessEngine, available_engines, resolve_engine
from aijack_lab.engines.ipyparallel import EngineFailedError, IPyParallelEngine
from aijack_lab.models import make_digits_model

ipp = pytest.importorskip("ipyparallel")
psutil = pytest.importorskip("psutil")


def build(digits, engine, n_clients=3, model="mlp", rounds=2, local_epoch=1, **kw):
    x_tr, y_tr, x_te, y_te = digits
    parts = partition_iid(len(x_tr), n_clients, seed=0)
    loaders = make_client_dataloaders(x_tr, y_tr, parts, batch_size=32, seed=0)
    clients = [FedAVGClient(make_digits_model(model, seed=0), user_id=i) for i in range(n_clients)]
    server = FedAVGServer(clients, make_digits_model(model, seed=0))
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    return FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=rounds,
                     local_epoch=local_epoch, validation_dataloader=(x_te, y_te), engine=engine, **kw)


def test_engine_names_and_arguments():
    assert "ipyparallel" in available_engines()
    eng = resolve_engine("ipyparallel")
    assert isinstance(eng, IPyParallelEngine) and not eng.started  # constructing starts nothing
    assert eng.status == "ipyparallel: not started"
    assert isinstance(resolve_engine(None), InProcessEngine)
    with pytest.raises(ValueError, match="engines must be 'local' or 'mpi'"):
        IPyParallelEngine(engines="slurm")
    with pytest.raises(ValueError, match="n_engines must be > 0"):
        IPyParallelEngine(n_engines=0)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        IPyParallelEngine(timeout=-1)
    with pytest.raises(ValueError, match="connection_file .* does not exist"):
        IPyParallelEngine(connection_file="/nonexistent/ipcontroller-client.json")


@pytest.mark.slow
def test_ipyparallel_gives_the_inprocess_result_and_joins_an_existing_cluster(digits):
    reference = build(digits, None)
    ref_history = reference.run()
    with IPyParallelEngine(n_engines=2, timeout=120) as engine:
        api = build(digits, engine)
        history = api.run()
        assert "2 engines up" in engine.status
        pids = engine.pids
        assert len(pids["engines"]) == 2 and pids["controller"] is not None
        # 3 clients on 2 engines: engine 0 trains clients 0 and 2
        assert [engine.engine_of(i) for i in range(3)] == [0, 1, 0]
        for p, q in zip(reference.server.server_model.parameters(), api.server.server_model.parameters()):
            assert torch.allclose(p, q, atol=1e-6)
        assert [h["global_accuracy"] for h in history] == pytest.approx(
            [h["global_accuracy"] for h in ref_history], abs=1e-6)
        # the local optimizers and clients hold the state trained remotely (momentum, sample counts)
        assert all(c.num_samples == r.num_samples for c, r in zip(api.clients, reference.clients))
        for o, r in zip(api.local_optimizers, reference.local_optimizers):
            assert torch.allclose(o.state_dict()["state"][0]["momentum_buffer"], r.state_dict()["state"][0]["momentum_buffer"], atol=1e-6)
        # a second engine object joins the running cluster by its connection file and leaves it running
        with IPyParallelEngine(n_engines=None, connection_file=engine.client_connection_file, start_timeout=30) as joined:
            again = build(digits, joined, rounds=1)
            again.run()
            assert "joined cluster" in joined.status
        assert engine._rc is not None and len(engine._rc.ids) == 2
        _check_panel_on(engine)
    assert len(pids["all"]) >= 3
    for pid in pids["all"]:
        assert _gone(pid), "the cluster this engine started must be shut down"


def _gone(pid, wait=15.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_engine_dying_mid_round_names_the_client_and_stops_the_cluster(digits):
    engine = IPyParallelEngine(n_engines=2, timeout=60)
    try:
        engine.start()
        pids = engine.pids
        victim = pids["engines"][1]  # engine 1 trains client 1

        def kill_during_next_round(api, info):
            if info["round"] == 0:
                threading.Timer(0.3, os.kill, (victim, signal.SIGKILL)).start()

        # long enough local training (about a second per round) that the kill 0.3 s into round 1
        # lands while engine 1 is training, however fast the machine
        api = build(digits, engine, model="cnn", rounds=3, local_epoch=16, on_round=kill_during_next_round)
        start = time.monotonic()
        with pytest.raises(EngineFailedError, match=r"engine 1 \(pid \d+\) died while training client 1") as err:
            api.run()
        assert err.value.client == 1 and err.value.engine_id == 1
        assert "shut down" in str(err.value)
        assert time.monotonic() - start < 60
        assert engine.status.startswith("ipyparallel: failed")
        assert len(pids["all"]) >= 3
        for pid in pids["all"]:  # controller, engines and their nanny processes
            assert _gone(pid), "the cluster must be cleaned up after the failure"
    finally:
        engine.close()


def test_fedavg_panel_defaults_to_in_process():
    from aijack_lab.widgets import FedAVGPanel

    panel = FedAVGPanel()
    assert panel.values["engine"] == "inprocess"
    assert "IPyParallelEngine" not in panel.code_text and "engine" not in panel.code_text.split("api.run()")[0].split("FedAVGAPI(")[1]
    panel.set(engine="ipyparallel-2")
    assert "with IPyParallelEngine(n_engines=2) as engine:" in panel.code_text
    with pytest.raises(ValueError, match="engine must be one of"):
        panel.set(engine="cloud")


def _check_panel_on(engine):
    """The FedAVG panel's ipyparallel choice (given this running engine) matches in-process and
    its Code view (which starts and stops its own cluster) reproduces the numbers."""
    from aijack_lab.widgets import FedAVGPanel
    from aijack_lab.widgets import fl_fedavg
    from aijack_lab.widgets.testing import assert_code_reproduces

    settings = dict(num_clients=2, num_communication=2, model="mlp")
    local = FedAVGPanel(**settings).run()
    fl_fedavg._ENGINES["ipyparallel-2"] = engine
    try:
        panel = FedAVGPanel(engine="ipyparallel-2", **settings)
        result = panel.run()
        assert "2 engines up" in result["engine_status"]
        assert result["accuracy_per_round"] == pytest.approx(local["accuracy_per_round"], abs=1e-6)
        assert_code_reproduces(panel)
    finally:
        fl_fedavg._ENGINES.pop("ipyparallel-2", None)
