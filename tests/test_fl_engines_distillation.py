"""FedMD, FedGEMS and DSFL with ``engine=``: the client-side phases run through
``engine.run_on_clients`` and give the in-process numbers; a client failing on an engine is named.
The cluster tests share one started 2-engine cluster (module fixture) and are marked slow."""
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aijack_lab.collaborative import (
    DSFLAPI, DSFLClient, DSFLServer, FedGEMSAPI, FedGEMSClient, FedGEMSServer, FedMDAPI, FedMDClient, FedMDServer,
)
from aijack_lab.datasets import make_client_dataloaders, partition_dirichlet
from aijack_lab.engines import CLIENT_LOADER, BaseEngine, InProcessEngine
from aijack_lab.models import make_digits_model

NPUB = 200
PROTOCOLS = ["fedmd", "fedgems", "dsfl"]


def build(protocol, digits, engine=None, rounds=2, client_cls=None, on_round=None):
    X, y, Xt, yt = digits
    Xp, yp = X[:NPUB].clone(), y[:NPUB].clone()  # own storage: the public data pickles small
    Xr, yr = X[NPUB:], y[NPUB:]
    loaders = make_client_dataloaders(Xr, yr, partition_dirichlet(yr, 3, alpha=0.3, seed=0), batch_size=32, seed=0)
    pub = DataLoader(TensorDataset(Xp, yp), batch_size=32)
    models = [make_digits_model("mlp", seed=0, hidden=16), make_digits_model("mlp", seed=1, hidden=32),
              make_digits_model("cnn", seed=2, channels=4)]
    kw = dict(validation_dataloader=(Xt, yt), num_communication=rounds, engine=engine, on_round=on_round)
    if protocol == "fedmd":
        cls = client_cls or FedMDClient
        clients = [cls(m, pub, output_dim=10, batch_size=32, user_id=i) for i, m in enumerate(models)]
        server = FedMDServer(clients, make_digits_model("mlp", seed=3))
        opts = [torch.optim.Adam(c.model.parameters(), lr=3e-3) for c in clients]
        return FedMDAPI(server, clients, pub, loaders, client_optimizers=opts, transfer_epoch_public=2,
                        consensus_epoch=2, **kw)
    if protocol == "fedgems":
        cls = client_cls or FedGEMSClient
        clients = [cls(m, pub, output_dim=10, user_id=i) for i, m in enumerate(models)]
        server = FedGEMSServer(clients, make_digits_model("mlp", seed=3, hidden=64), output_dim=10)
        return FedGEMSAPI(server, clients, pub, loaders, epoch_client_on_localdataset=2, **kw)
    cls = client_cls or DSFLClient
    clients = [cls(m, pub, output_dim=10, user_id=i) for i, m in enumerate(models)]
    server = DSFLServer(clients, make_digits_model("mlp", seed=3))
    return DSFLAPI(server, clients, pub, loaders, **kw)


def numbers(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def assert_same_run(api, ref):
    for p, q in zip(api.server.server_model.parameters(), ref.server.server_model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    for c, r in zip(api.clients, ref.clients):
        for p, q in zip(c.model.parameters(), r.model.parameters()):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # the optimizers' moments and the private loaders' shuffling state came back too
    for o, r in zip(api.client_optimizers, ref.client_optimizers):
        torch.testing.assert_close(o.state_dict()["state"][0]["exp_avg"], r.state_dict()["state"][0]["exp_avg"],
                                   atol=1e-6, rtol=0)
        assert o.state_dict()["state"][0]["step"] == r.state_dict()["state"][0]["step"]
    for a, b in zip(api.local_dataloaders, ref.local_dataloaders):
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert numbers(api.history) == numbers(ref.history)


class CountingEngine(InProcessEngine):
    """The in-process engine, recording which phases went through it."""

    def __init__(self):
        self.calls = []

    def run_on_clients(self, api, jobs, task="its work", round=None):
        self.calls.append((task, round, sorted(i for i, _, _ in jobs)))
        return super().run_on_clients(api, jobs, task=task, round=round)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_inprocess_engine_equals_default_and_carries_every_client_phase(protocol, digits):
    ref = build(protocol, digits)
    assert isinstance(ref.engine, InProcessEngine)
    ref.run()
    engine = CountingEngine()
    api = build(protocol, digits, engine=engine)
    api.run()
    assert_same_run(api, ref)
    # every client-side phase of every round went through the engine, for all three clients
    assert all(clients == [0, 1, 2] for _, _, clients in engine.calls)
    tasks = [(task, rnd) for task, rnd, _ in engine.calls]
    expected = {
        "fedmd": [("training on the public data", None), ("training on the private data", None)]
                 + [t for r in range(2) for t in (("upload", r), ("digest and revisit", r))],
        "fedgems": [t for r in range(2) for t in (("local training and upload", r),
                                                  ("distillation of the server's knowledge", r))],
        "dsfl": [t for r in range(2) for t in (("local training and upload", r),
                                               ("distillation of the global soft labels", r))],
    }[protocol]
    assert tasks == expected


def _double(client, optimizer, loader, k):
    return sum(len(y) for _, y in loader) * k, client.user_id


def test_run_on_clients_jobs_and_their_checks(digits):
    api = build("dsfl", digits, rounds=1)
    sizes = [len(dl.dataset) for dl in api.local_dataloaders]
    assert api.run_clients([(2, _double, (CLIENT_LOADER, 2)), (0, _double, (CLIENT_LOADER, 1))], "count") == [
        (2 * sizes[2], 2), (sizes[0], 0)]
    with pytest.raises(ValueError, match="client index 0 appears in more than one job"):
        api.run_clients([(0, _double, (CLIENT_LOADER, 1)), (0, _double, (CLIENT_LOADER, 1))], "count")
    with pytest.raises(ValueError, match=r"job client index must be in \[0, 3\), got 3"):
        api.run_clients([(3, _double, (CLIENT_LOADER, 1))], "count")
    with pytest.raises(TypeError, match="job fn for client 1 must be callable"):
        api.run_clients([(1, "fn", ())], "count")

    class OnlyLocalTrain(BaseEngine):
        pass

    with pytest.raises(TypeError, match="abstract method 'run_on_clients'|abstract method run_on_clients"):
        OnlyLocalTrain()  # every engine must run client jobs; local_train is built on them
    with pytest.raises(TypeError, match="engine must be None, a name or an engine object"):
        build("fedmd", digits, engine=3.5)


def test_engine_resident_objects_and_reshipping_bookkeeping(digits):
    pytest.importorskip("ipyparallel")
    from aijack_lab.engines.ipyparallel import IPyParallelEngine

    api = build("fedmd", digits, rounds=1)
    c = api.clients[1]
    assert {id(o) for o in api.engine_resident(1)} == {id(c.public), id(c.public_dataloader), id(c.public.x), id(c.public.y)}
    engine = IPyParallelEngine()  # bookkeeping only: nothing is started
    objs = tuple(api.engine_resident(1))
    engine._remember("k", objs)
    assert engine._on_engine("k", objs) and not engine._on_engine("k", objs[:2])
    # a new object that happens to reuse a dead one's id is not taken for what the engine holds
    engine._remember("t", torch.zeros(3))
    assert not engine._on_engine("t", torch.zeros(3))


# -- on a 2-engine ipyparallel cluster ------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ipyparallel")
    import cloudpickle

    from aijack_lab.engines.ipyparallel import IPyParallelEngine

    # the test module is not importable on the engines: ship its functions and classes by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    engine = IPyParallelEngine(n_engines=2, timeout=120)
    try:
        yield engine.start()
    finally:
        engine.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ipyparallel_run_equals_inprocess(protocol, digits, cluster):
    ref = build(protocol, digits)
    ref.run()
    sent = []
    api = build(protocol, digits, engine=cluster, on_round=lambda api, info: sent.append(cluster.bytes_sent))
    api.run()
    assert_same_run(api, ref)
    assert "2 engines up" in cluster.status
    # the clients' public (and private) data went to their engines once: the second round's six jobs
    # (models, optimizer moments, downloaded labels) ship less than the public data alone would
    # weigh if it travelled with each job
    public = api.clients[0].public.x.nbytes + api.clients[0].public.y.nbytes
    assert sent[1] - sent[0] < 6 * public


def _fail_on_client_1(client, optimizer, loader):
    if client.user_id == 1:
        raise RuntimeError("disk full on this client")
    return len(loader.dataset)


class NaNUpload(DSFLClient):
    """A broken client: its upload (computed on its engine) is NaN."""

    def upload(self):
        if self.user_id == 2:
            return torch.full((NPUB, 10), float("nan"))
        return super().upload()


@pytest.mark.slow
def test_a_client_failing_on_an_engine_is_named(digits, cluster):
    from aijack_lab.engines.ipyparallel import EngineFailedError

    # the server's check on receipt names the client whose engine computed a NaN upload, as in-process
    api = build("dsfl", digits, engine=cluster, client_cls=NaNUpload)
    with pytest.raises(ValueError, match="client 2 sent a non-finite update"):
        api.run()
    assert api.history == [] and cluster.started
    # a job raising on its engine stops the call with an error naming the client; the cluster is shut down
    api = build("fedmd", digits, engine=cluster)
    with pytest.raises(EngineFailedError, match=r"client 1 failed on engine 1 \(probe\): RuntimeError: disk full") as err:
        api.run_clients([(i, _fail_on_client_1, (CLIENT_LOADER,)) for i in range(3)], "probe")
    assert err.value.client == 1 and err.value.engine_id == 1
    assert "shut down" in str(err.value) and not cluster.started
