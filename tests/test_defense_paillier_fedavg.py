"""Encrypted FedAVG (paper Code 8): same model as plaintext FedAVG, the server only sees ciphertexts."""
import warnings

import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense import PaillierGradientClientManager, PaillierKeyGenerator, PaillierTensor
from aijack_lab.defense.paillier import PaillierKeySizeWarning
from aijack_lab.manager import BaseManager
from aijack_lab.models import make_digits_model


@pytest.fixture(scope="module")
def keys():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        return PaillierKeyGenerator(512, seed=3).generate_keypair()


def run_fedavg(digits, client_cls, server_kwargs=None, client_kwargs=None, rounds=2, hidden=16):
    X_train, y_train, X_test, y_test = digits
    parts = partition_iid(len(X_train), 3, seed=0)
    parts = [p[: 200 + 100 * i] for i, p in enumerate(parts)]  # unequal sizes: weights 2/9, 3/9, 4/9
    dataloaders = make_client_dataloaders(X_train, y_train, parts, batch_size=32, seed=0)
    NN = lambda: make_digits_model("mlp", seed=0, hidden=hidden)
    clients = [client_cls(NN(), user_id=i, **(client_kwargs or {})) for i in range(3)]
    server = FedAVGServer(clients, NN(), **(server_kwargs or {}))
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    uploads = []
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders, num_communication=rounds,
                    validation_dataloader=(X_test, y_test),
                    on_round=lambda api, info: uploads.append(info["client_updates"]))
    history = api.run()
    return server, clients, history, uploads


def test_encrypted_fedavg_equals_plaintext_fedavg_paper_listing(digits, keys):
    pk, sk = keys
    plain_server, _, plain_hist, _ = run_fedavg(digits, FedAVGClient)
    PaillierClient = PaillierGradientClientManager(pk, sk).attach(FedAVGClient)
    assert PaillierClient.__name__.startswith("Paillier") and issubclass(PaillierClient, FedAVGClient)
    # Code 8 as written: a plain FedAVGServer(clients, NN()) with its defaults
    server, clients, hist, uploads = run_fedavg(digits, PaillierClient)
    diffs = [(a - b).abs().max().item() for a, b in zip(plain_server.server_model.parameters(), server.server_model.parameters())]
    assert max(diffs) < 1e-4
    for client in clients:  # every client holds the same decrypted global model
        assert max((a - b).abs().max().item() for a, b in zip(client.model.parameters(), server.server_model.parameters())) < 1e-6
    acc_plain = [h["global_accuracy"] for h in plain_hist]
    acc_enc = [h["global_accuracy"] for h in hist]
    assert acc_enc == pytest.approx(acc_plain, abs=2e-3)
    assert acc_enc[-1] > 0.6  # it learns
    # the server only ever saw ciphertexts, and aggregated without a key
    assert all(isinstance(t, PaillierTensor) for update in uploads[-1] for t in update)
    assert all(isinstance(g, PaillierTensor) for g in server.aggregated_gradients)
    assert server.last_weights == pytest.approx([2 / 9, 3 / 9, 4 / 9])
    grad = clients[0].last_plain_gradients[0]
    server_view = uploads[-1][0][0]
    assert server_view.shape == grad.shape
    assert not any(int(c) == int(v) for c, v in zip(server_view.ciphertexts().ravel()[:20], grad.flatten()[:20] * 2**32))
    assert torch.allclose(server_view.decrypt(sk), grad, atol=1e-8)
    # each ciphertext is as wide as n^2 (128 bytes at 512 bits) against 4 bytes per float32
    assert hist[0]["bytes_uploaded"] == plain_hist[0]["bytes_uploaded"] * pk.ciphertext_bytes // 4


def test_encrypted_fedavg_with_explicit_client_side_update(digits, keys):
    pk, sk = keys
    plain_server, _, _, _ = run_fedavg(digits, FedAVGClient, rounds=1)
    PaillierClient = PaillierGradientClientManager(pk, sk).attach(FedAVGClient)
    server, _, _, _ = run_fedavg(digits, PaillierClient, server_kwargs={"server_side_update": False},
                                 client_kwargs={"server_side_update": True}, rounds=1)
    diffs = [(a - b).abs().max().item() for a, b in zip(plain_server.server_model.parameters(), server.server_model.parameters())]
    assert max(diffs) < 1e-4


def test_manager_bad_input(keys, digits):
    pk, sk = keys
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        pk2, sk2 = PaillierKeyGenerator(512, seed=4).generate_keypair()
    with pytest.raises(TypeError, match="pk"):
        PaillierGradientClientManager("pk", sk)
    with pytest.raises(TypeError, match="sk"):
        PaillierGradientClientManager(pk, None)
    with pytest.raises(ValueError, match="sk does not belong to pk"):
        PaillierGradientClientManager(pk, sk2)
    with pytest.raises(ValueError, match="precision"):
        PaillierGradientClientManager(pk, sk, precision=-1)
    manager = PaillierGradientClientManager(pk, sk)
    assert isinstance(manager, BaseManager)
    with pytest.raises(TypeError):
        manager.attach(FedAVGClient(make_digits_model("mlp", seed=0)))
    client = manager.attach(FedAVGClient)(make_digits_model("mlp", seed=0))
    with pytest.raises(ValueError, match="use_gradients=True"):
        client.upload_parameters()


@pytest.fixture(scope="module")
def keys1024():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaillierKeySizeWarning)
        return PaillierKeyGenerator(1024, seed=5).generate_keypair()


def test_packed_encrypted_fedavg_equals_plaintext_fedavg(digits, keys1024):
    pk, sk = keys1024
    plain_server, _, plain_hist, _ = run_fedavg(digits, FedAVGClient)
    PackedClient = PaillierGradientClientManager(pk, sk, packing=True).attach(FedAVGClient)
    server, clients, hist, uploads = run_fedavg(digits, PackedClient)
    diffs = [(a - b).abs().max().item() for a, b in zip(plain_server.server_model.parameters(), server.server_model.parameters())]
    assert max(diffs) < 1e-4
    assert [h["global_accuracy"] for h in hist] == pytest.approx([h["global_accuracy"] for h in plain_hist], abs=2e-3)
    # the server saw packed ciphertexts: 7 values per 1024-bit ciphertext with 128-bit slots
    update = uploads[-1][0]
    assert all(isinstance(t, PaillierTensor) and t.packed and t.slots == 7 for t in update)
    assert all(isinstance(g, PaillierTensor) and g.packed for g in server.aggregated_gradients)
    grad = clients[0].last_plain_gradients[0]
    assert update[0].shape == grad.shape and update[0].num_ciphertexts == -(-grad.numel() // 7)
    assert torch.allclose(update[0].decrypt(sk), grad, atol=1e-8)
    n_values = sum(p.numel() for p in plain_server.server_model.parameters())
    n_cts = sum(-(-p.numel() // 7) for p in plain_server.server_model.parameters())
    assert hist[0]["bytes_uploaded"] == 3 * n_cts * pk.ciphertext_bytes
    assert n_cts * 6 < n_values  # about 7x fewer ciphertexts than values


def test_packed_fedavg_slot_overflow_is_an_error_not_a_wrong_model(digits, keys):
    pk, sk = keys  # 512-bit key, 48-bit slots: gradients fit, the weighted sum (32 more bits) does not
    PackedClient = PaillierGradientClientManager(pk, sk, packing=True, slot_bits=48).attach(FedAVGClient)
    with pytest.raises(OverflowError, match="slot overflow in multiply by a scalar"):
        run_fedavg(digits, PackedClient, rounds=1)
    with pytest.raises(ValueError, match="slot_bits"):
        PaillierGradientClientManager(pk, sk, packing=True, slot_bits=600)
    with pytest.raises(TypeError, match="packing"):
        PaillierGradientClientManager(pk, sk, packing="yes")
