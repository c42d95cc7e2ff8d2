"""Sparse gradients (issue 12, paper Code S-20): only the top-k fraction of entries is sent (bytes
counted), the server applies the sparse updates (server_side_update=False), and FedAVG still learns."""
import pytest
import torch
from torch import nn

from aijack_lab.collaborative import FedAVGAPI, FedAVGClient, FedAVGServer
from aijack_lab.collaborative.core import update_nbytes
from aijack_lab.datasets import make_client_dataloaders, partition_iid
from aijack_lab.defense.sparse import (
    SparseGradient,
    SparseGradientClientManager,
    SparseGradientServerManager,
    topk_sparsify,
)
from aijack_lab.models import make_digits_model
from aijack_lab.models.digits import count_parameters


def test_topk_keeps_the_largest_entries_and_counts_bytes():
    g = torch.tensor([[0.1, -3.0, 0.2], [2.0, 0.0, -0.5]])
    s = topk_sparsify(g, 0.5)
    assert sorted(s.indices.tolist()) == [1, 3, 5]  # |-3|, |2|, |-0.5|
    assert torch.equal(s.to_dense(), torch.tensor([[0.0, -3.0, 0.0], [2.0, 0.0, -0.5]]))
    assert s.nbytes == 3 * 4 + 3 * 4  # float32 values + int32 indices
    assert update_nbytes([s]) == 24
    # + and scalar * (what FedAVGServer.aggregate uses) match the dense arithmetic
    t = topk_sparsify(torch.tensor([[1.0, 1.0, 5.0], [0.0, 0.0, 0.0]]), 0.2)
    combo = s * 0.25 + t * 0.75
    assert isinstance(combo, SparseGradient)
    assert torch.allclose(combo.to_dense(), s.to_dense() * 0.25 + t.to_dense() * 0.75)
    assert len(topk_sparsify(torch.zeros(3), 0.01).values) == 1  # at least one entry per tensor


def test_code_s20_sends_the_top_k_fraction_and_learns(digits):
    x, y, x_test, y_test = digits
    client_num, k = 3, 0.3

    def NN():
        return make_digits_model("cnn", seed=0)

    client_manager = SparseGradientClientManager(k=k)
    SparseGradientFedAVGClient = client_manager.attach(FedAVGClient)
    server_manager = SparseGradientServerManager()
    SparseGradientFedAVGServer = server_manager.attach(FedAVGServer)
    clients = [SparseGradientFedAVGClient(NN(), server_side_update=False) for i in range(client_num)]
    server = SparseGradientFedAVGServer(clients, NN(), server_side_update=False)
    parts = partition_iid(len(x), client_num, seed=0)
    dataloaders = make_client_dataloaders(x, y, parts, batch_size=32, seed=0)
    optimizers = [torch.optim.SGD(c.parameters(), lr=0.1, momentum=0.9) for c in clients]
    api = FedAVGAPI(server, clients, nn.CrossEntropyLoss(), optimizers, dataloaders, num_communication=4,
                    validation_dataloader=(x_test, y_test))
    history = api.run()
    acc = [h["global_accuracy"] for h in history]
    assert acc[-1] >= 0.85, acc
    model = NN()
    sent_entries = sum(max(1, int(k * p.numel())) for p in model.parameters())
    assert sent_entries <= k * count_parameters(model) + len(list(model.parameters()))
    for h in history:  # each entry: a float32 value and an int32 index
        assert h["bytes_uploaded"] == client_num * sent_entries * 8
    dense = client_num * count_parameters(model) * 4
    assert history[0]["bytes_uploaded"] / dense == pytest.approx(2 * k, abs=0.01)
    assert clients[0].uploaded_nbytes[-1] == sent_entries * 8
    # every upload really is sparse, and the clients applied the same aggregate as the server
    assert all(isinstance(t, SparseGradient) for t in server.uploaded_gradients[0])
    for c in clients:
        for p, q in zip(c.model.parameters(), server.server_model.parameters()):
            assert torch.equal(p, q)


def test_sparse_upload_equals_topk_of_the_dense_upload(digits):
    x, y, _, _ = digits
    Sparse = SparseGradientClientManager(k=0.1).attach(FedAVGClient)
    plain, sparse = FedAVGClient(make_digits_model("cnn", seed=0)), Sparse(make_digits_model("cnn", seed=0))
    for c in (plain, sparse):
        c.local_train(1, nn.CrossEntropyLoss(), [(x[:32], y[:32])], torch.optim.SGD(c.parameters(), lr=0.1))
    for d, s in zip(plain.upload_gradients(), sparse.upload_gradients()):
        n = max(1, int(0.1 * d.numel()))
        assert len(s.values) == n
        top = d.reshape(-1).abs().topk(n).values
        assert torch.allclose(s.values.abs().sort().values, top.sort().values)


def test_bad_input_raises_clear_errors():
    for k in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"k must be in \(0.0, 1.0\]"):
            SparseGradientClientManager(k=k)
    with pytest.raises(TypeError, match="k must be a real number"):
        SparseGradientClientManager(k="0.3")
    server = SparseGradientServerManager().attach(FedAVGServer)([FedAVGClient(make_digits_model("mlp"))],
                                                                 make_digits_model("mlp"))
    bad = [topk_sparsify(torch.ones(3, 3), 0.5)] * 4
    with pytest.raises(ValueError, match=r"update tensor 0 is \(3, 3\), expected \(32, 64\)"):
        server.aggregate([bad], [1.0])
    with pytest.raises(ValueError, match="indices must lie in"):
        SparseGradient(torch.ones(1), torch.tensor([9]), (2, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        SparseGradient(torch.tensor([float("nan")]), torch.tensor([0]), (2, 2))
