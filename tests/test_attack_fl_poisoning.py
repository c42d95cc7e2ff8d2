"""Malicious FL clients (issue 10): each attack's effect against the clean FedAVG run with the same seed.

Setting shared by every run: 5 IID clients on digits, the small CNN, 5 rounds of 1 local epoch,
SGD lr 0.1 momentum 0.9, batch 32, seed 0; the malicious clients are the last ones.
"""
import math

import pytest
import torch
from torch import nn

from aijack_lab.attack import (
    DistributedBackdoorAttackClientManager,
    FreeRiderClientManager,
    HistoryAttackClientWrapper,
    LabelFlipAttackClientManager,
    MAPFClientWrapper,
    ModelReplacementAttackClientManager,
)
from aijack_lab.attack.backdoor import (
    PixelPatternTrigger,
    backdoor_success_rate,
    class_accuracy,
    decompose_trigger,
    digits_corner_trigger,
    l2norm_checker,
)
from aijack_lab.attack.fl_utils import check_malicious_count, flatten_update, make_fl_clients
from aijack_lab.attack.freerider import update_statistics
from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense import NormClippingServerManager
from aijack_lab.manager import attached_managers
from aijack_lab.models import make_digits_model

N = 5
TRIGGER = digits_corner_trigger()


def NN():
    return make_digits_model("cnn", seed=0)


class CountingLoader:
    """A dataloader wrapper that counts the batches read from it."""

    def __init__(self, loader):
        self.loader, self.batches = loader, 0
        self.dataset = loader.dataset

    def __iter__(self):
        for batch in self.loader:
            self.batches += 1
            yield batch

    def __len__(self):
        return len(self.loader)


def run_fl(data, client_cls=FedAVGClient, num_malicious=0, rounds=5, server_cls=FedAVGServer, hook=None, wrap=None):
    x, y, x_test, y_test = data
    parts = partition_iid(len(x), N, seed=0)
    loaders = make_client_dataloaders(x, y, parts, batch_size=32, seed=0)
    if wrap is not None:
        loaders = [wrap(l) for l in loaders]
    clients = make_fl_clients(FedAVGClient, client_cls, NN, N, num_malicious)
    server = server_cls(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders, num_communication=rounds,
                    validation_dataloader=(x_test, y_test), on_round=hook)
    history = api.run()
    return [h["global_accuracy"] for h in history], server, clients, loaders


@pytest.fixture(scope="module")
def clean(digits):
    acc, server, _, _ = run_fl(digits)
    return acc, server.server_model


def test_clean_run_learns(clean, digits):
    acc, model = clean
    assert acc[-1] >= 0.9
    assert backdoor_success_rate(model, digits[2], digits[3], TRIGGER, 0) <= 0.05


# -- poisoning ------------------------------------------------------------------------------------
def test_history_attack_lowers_global_accuracy(clean, digits):
    acc, _, clients, _ = run_fl(digits, HistoryAttackClientWrapper(lam=5.0).attach(FedAVGClient), 1)
    assert acc[-1] <= clean[0][-1] - 0.1, (acc, clean[0])
    assert clients[-1].previous_global_parameters is not None


def test_mapf_drags_global_model_to_base(clean, digits):
    manager = MAPFClientWrapper(lam=3)
    acc, server, clients, _ = run_fl(digits, manager.attach(FedAVGClient), 1)
    assert acc[-1] <= 0.3 and clean[0][-1] >= 0.9
    base = flatten_update(clients[-1].base_model_parameters)
    dist_attacked = (flatten_update(list(server.server_model.parameters())) - base).norm()
    dist_clean = (flatten_update(list(clean[1].parameters())) - base).norm()
    assert dist_attacked < 0.5 * dist_clean


def test_label_flip_lowers_victim_class_accuracy(clean, digits):
    acc, server, clients, _ = run_fl(digits, LabelFlipAttackClientManager(3, 8).attach(FedAVGClient), 1)
    x_test, y_test = digits[2], digits[3]
    victim = class_accuracy(server.server_model, x_test, y_test, 3)
    clean_victim = class_accuracy(clean[1], x_test, y_test, 3)
    assert victim <= clean_victim - 0.2, (victim, clean_victim)
    assert clients[-1].flipped_count > 0
    # the other classes are barely touched
    assert acc[-1] >= clean[0][-1] - 0.05


def test_label_flip_random_target_never_keeps_victim_label():
    manager = LabelFlipAttackClientManager(victim_label=2, target_label=None, class_num=10, seed=0)
    labels = torch.full((1000,), 2)
    flipped = manager.flip(labels, generator=torch.Generator().manual_seed(0))
    assert (flipped != 2).all() and flipped.min() >= 0 and flipped.max() <= 9
    assert len(flipped.unique()) == 9


# -- backdoors ------------------------------------------------------------------------------------
def test_dba_global_trigger_succeeds_with_clean_accuracy_kept(clean, digits):
    local = decompose_trigger(TRIGGER, 2)
    manager = DistributedBackdoorAttackClientManager({3: local[0], 4: local[1]}, target_label=0,
                                                     poison_ratio=0.2, scale=2.0)
    acc, server, clients, _ = run_fl(digits, manager.attach(FedAVGClient), 2)
    x_test, y_test = digits[2], digits[3]
    success = backdoor_success_rate(server.server_model, x_test, y_test, TRIGGER, 0)
    assert success >= 0.8
    assert acc[-1] >= clean[0][-1] - 0.05
    assert backdoor_success_rate(clean[1], x_test, y_test, TRIGGER, 0) <= 0.05
    # no client used the whole trigger, and the assembled trigger works at least as well as each part
    assert all(len(c.trigger.pixels) < len(TRIGGER.pixels) for c in clients[3:])
    for part in local:
        assert success >= backdoor_success_rate(server.server_model, x_test, y_test, part, 0)


def _mr_run(digits, gamma, server_cls=FedAVGServer):
    manager = ModelReplacementAttackClientManager(alpha=1.0, gamma=gamma, trigger=TRIGGER, target_label=0,
                                                  poison_ratio=0.2, attack_rounds=[4])
    acc, server, _, _ = run_fl(digits, manager.attach(FedAVGClient), 1, server_cls=server_cls)
    return acc, server, backdoor_success_rate(server.server_model, digits[2], digits[3], TRIGGER, 0)


def test_model_replacement_backdoor_survives_averaging(digits):
    acc, _, success = _mr_run(digits, gamma=5.0)
    assert success >= 0.8
    assert acc[-1] >= 0.8
    # the same backdoored update without the replacement scale is averaged away
    _, _, plain = _mr_run(digits, gamma=1.0)
    assert plain <= 0.3, plain


def test_attack_manager_composes_with_server_defense(digits):
    """An attack client manager and a server manager attached together: median norm clipping blunts model replacement."""
    clipped_server = NormClippingServerManager().attach(FedAVGServer)
    acc, server, success = _mr_run(digits, gamma=5.0, server_cls=clipped_server)
    assert success <= 0.1, success
    assert acc[-1] >= 0.9
    # round 4: the attacker's boosted update is the largest and is scaled down
    norms, factors = server.update_norms[4], server.clip_factors[4]
    assert norms[-1] == max(norms) and factors[-1] < 0.5
    assert all(f == 1.0 or n > sorted(norms)[2] - 1e-9 for n, f in zip(norms, factors))


# -- free rider -----------------------------------------------------------------------------------
def _fr_run(digits, sigma):
    stats, previous = [], [None]

    def hook(api, info):
        stats.append(update_statistics(info["client_updates"], previous[0]))
        previous[0] = [t.clone() for t in api.server.aggregated_gradients]

    out = run_fl(digits, FreeRiderClientManager(mu=0, sigma=sigma).attach(FedAVGClient), 1, hook=hook, wrap=CountingLoader)
    return out, stats


def test_free_rider_sends_updates_without_training(digits):
    (acc, server, clients, loaders), stats = _fr_run(digits, sigma=1.0)
    rider = clients[-1]
    assert loaders[-1].batches == 0 and all(l.batches > 0 for l in loaders[:-1])
    assert rider.local_train_calls == 5
    # its model is the global model it last received: it never trained
    for p, g in zip(rider.model.parameters(), server.server_model.parameters()):
        assert torch.equal(p, g)
    # it still gets a data-size weight, and training still works
    assert rider.num_samples == len(loaders[-1].dataset)
    assert acc[-1] >= 0.85
    # detectable: its noisy upload's norm dwarfs every honest client's, in every round
    for r in stats:
        assert r[-1]["norm"] > 2 * max(s["norm"] for s in r[:-1])


def test_noiseless_free_rider_replays_the_last_global_step(digits):
    _, stats = _fr_run(digits, sigma=0.0)
    for r in stats[1:]:
        assert r[-1]["cosine"] >= 0.999
        assert max(s["cosine"] for s in r[:-1]) < 0.95


# -- composition and parameter uploads ------------------------------------------------------------
def test_attack_managers_compose(digits):
    x, y = digits[0][:64], digits[1][:64]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    inner = DistributedBackdoorAttackClientManager({0: TRIGGER}, target_label=0, poison_ratio=0.5, scale=2.0)
    outer = ModelReplacementAttackClientManager(alpha=1.0, gamma=3.0)
    cls = outer.attach(inner.attach(FedAVGClient))
    assert attached_managers(cls) == (inner, outer)
    assert issubclass(cls, FedAVGClient) and cls is not FedAVGClient
    client = cls(NN(), user_id=0)
    opt = torch.optim.SGD(client.parameters(), lr=0.1)
    client.local_train(1, nn.CrossEntropyLoss(), loader, opt)
    assert client.poisoned_count > 0
    honest = [(prev - p.detach()) / client.lr for prev, p in zip(client.prev_parameters, client.model.parameters())]
    for g, h in zip(client.upload_gradients(), honest):
        assert torch.allclose(g, 6.0 * h)


def test_mapf_with_parameter_uploads(digits):
    x, y, _, _ = digits
    loaders = make_client_dataloaders(x, y, partition_iid(len(x), 2, seed=0), batch_size=32, seed=0)
    manager = MAPFClientWrapper(lam=1.0, base_model_parameters=make_digits_model("cnn", seed=1))
    clients = [FedAVGClient(NN(), user_id=0, send_gradient=False),
               manager.attach(FedAVGClient)(NN(), user_id=1, send_gradient=False)]
    server = FedAVGServer(clients, NN())
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1) for c in clients]
    FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, loaders, use_gradients=False).run()
    upload = clients[1].upload()
    base = list(make_digits_model("cnn", seed=1).parameters())
    # a parameter upload of λ=1 is the base model itself
    for u, b in zip(upload, base):
        assert torch.allclose(u, b.detach(), atol=1e-6)


def test_l2norm_checker_is_zero_at_the_global_model():
    client = FedAVGClient(NN())
    assert float(l2norm_checker(client).detach()) < 1e-5
    with torch.no_grad():
        next(client.model.parameters()).add_(1.0)
    assert float(l2norm_checker(client).detach()) > 1.0


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, word", [
    (lambda: check_malicious_count(4, 5), "num_malicious"),
    (lambda: make_fl_clients(FedAVGClient, FedAVGClient, NN, 3, 4), "num_malicious"),
    (lambda: check_malicious_count(4, -1), "num_malicious"),
    (lambda: LabelFlipAttackClientManager(10, 1, class_num=10), "victim_label"),
    (lambda: LabelFlipAttackClientManager(1, 10, class_num=10), "target_label"),
    (lambda: LabelFlipAttackClientManager(-1, 2), "victim_label"),
    (lambda: LabelFlipAttackClientManager(2, 2), "target_label"),
    (lambda: LabelFlipAttackClientManager(2), "class_num"),
    (lambda: HistoryAttackClientWrapper(lam=float("nan")), "lam"),
    (lambda: HistoryAttackClientWrapper(lam=float("inf")), "lam"),
    (lambda: MAPFClientWrapper(lam=float("inf")), "lam"),
    (lambda: MAPFClientWrapper(lam=-1.0), "lam"),
    (lambda: DistributedBackdoorAttackClientManager([TRIGGER], 0, scale=float("inf")), "scale"),
    (lambda: DistributedBackdoorAttackClientManager([TRIGGER], 0, poison_ratio=1.5), "poison_ratio"),
    (lambda: DistributedBackdoorAttackClientManager([], 0), "decomposed_trigger_rules"),
    (lambda: ModelReplacementAttackClientManager(1.0, float("nan")), "gamma"),
    (lambda: ModelReplacementAttackClientManager(1.5, 5.0), "alpha"),
    (lambda: ModelReplacementAttackClientManager(1.0, 5.0, trigger=TRIGGER), "target_label"),
    (lambda: FreeRiderClientManager(mu=float("inf")), "mu"),
    (lambda: FreeRiderClientManager(sigma=-1.0), "sigma"),
    (lambda: NormClippingServerManager(max_norm=0.0), "max_norm"),
    (lambda: decompose_trigger(TRIGGER, 13), "parts"),
    (lambda: PixelPatternTrigger([]), "pixels"),
])
def test_bad_arguments_raise_clear_errors(make, word):
    with pytest.raises((ValueError, TypeError), match=word):
        make()


def test_lam_must_be_a_number():
    with pytest.raises(TypeError, match="lam"):
        MAPFClientWrapper(lam="3")


def test_dba_client_without_its_trigger_is_rejected():
    cls = DistributedBackdoorAttackClientManager({0: TRIGGER}, target_label=0).attach(FedAVGClient)
    with pytest.raises(ValueError, match="user_id 3"):
        cls(NN(), user_id=3)


def test_label_outside_the_models_classes_is_rejected_at_training(digits):
    x, y = digits[0][:32], digits[1][:32]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    client = LabelFlipAttackClientManager(victim_label=3, target_label=12).attach(FedAVGClient)(NN())
    with pytest.raises(ValueError, match="target_label=12"):
        client.local_train(1, nn.CrossEntropyLoss(), loader, torch.optim.SGD(client.parameters(), lr=0.1))


def test_trigger_outside_the_image_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        PixelPatternTrigger([(9, 9)])(torch.zeros(2, 1, 8, 8))


def test_attach_needs_a_class():
    with pytest.raises(TypeError, match="class"):
        FreeRiderClientManager().attach(FedAVGClient(NN()))


def test_model_replacement_stops_training_once_the_reference_loss_is_small(digits):
    x, y = digits[0][:64], digits[1][:64]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    reference = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(TRIGGER(x), torch.zeros_like(y)), batch_size=32)
    done = ModelReplacementAttackClientManager(alpha=1.0, gamma=2.0, reference_dataloader=reference, eps=1e9)
    client = done.attach(FedAVGClient)(NN())
    before = flatten_update(list(client.parameters()))
    losses = client.local_train(3, nn.CrossEntropyLoss(), loader, torch.optim.SGD(client.parameters(), lr=0.1))
    assert losses == [] and torch.equal(before, flatten_update(list(client.parameters())))
    assert client.num_samples == 64
    busy = ModelReplacementAttackClientManager(alpha=1.0, gamma=2.0, reference_dataloader=reference, eps=0.0)
    client = busy.attach(FedAVGClient)(NN())
    assert len(client.local_train(3, nn.CrossEntropyLoss(), loader, torch.optim.SGD(client.parameters(), lr=0.1))) == 3


# -- the same managers on MPI clients ------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.parametrize("attack", ["mapf", "freerider"])
def test_attack_managers_attach_to_the_mpi_client(digits, tmp_path, attack):
    """The last of 2 MPI client ranks is malicious; the global model equals the in-process attacked run."""
    from pathlib import Path

    from aijack_lab.collaborative.mpi.launch import run_mpi_job

    job = str(Path(__file__).resolve().parent / "mpi_jobs" / "fl_attack_job.py")
    out = tmp_path / "attack.pt"
    run_mpi_job(job, 3, ["--attack", attack, "--rounds", "2", "--out", str(out)], timeout=150)
    saved = torch.load(out)

    x, y, x_test, y_test = digits
    loaders = make_client_dataloaders(x, y, partition_iid(len(x), 2, seed=0), batch_size=32, seed=0)
    manager = MAPFClientWrapper(lam=3) if attack == "mapf" else FreeRiderClientManager(mu=0, sigma=1.0)
    mlp = lambda: make_digits_model("mlp", seed=0)  # noqa: E731
    clients = [FedAVGClient(mlp(), user_id=1), manager.attach(FedAVGClient)(mlp(), user_id=2)]
    server = FedAVGServer(clients, mlp())
    opts = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    history = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), opts, loaders, num_communication=2,
                        validation_dataloader=(x_test, y_test)).run()
    diff = max((a.detach() - b).abs().max().item() for a, b in zip(server.server_model.parameters(), saved["parameters"]))
    assert diff <= 1e-5
    assert saved["accuracy"] == pytest.approx([h["global_accuracy"] for h in history], abs=1e-6)
    if attack == "mapf":
        assert saved["accuracy"][-1] < 0.3  # the attack works over MPI too
