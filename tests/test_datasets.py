import gzip
import struct

import numpy as np
import pytest
import torch

from aijack_lab.datasets import (
    load_breast_cancer,
    load_digits,
    load_mnist_idx,
    load_wine,
    make_client_dataloaders,
    partition_dirichlet,
    partition_iid,
    read_idx,
)


def test_digits_shapes_range_and_split(digits):
    x_tr, y_tr, x_te, y_te = digits
    assert x_tr.shape[1:] == (1, 8, 8) and x_tr.dtype == torch.float32
    assert len(x_tr) + len(x_te) == 1797
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0 and x_tr.max() == 1.0
    assert set(y_tr.tolist()) == set(range(10)) and y_tr.dtype == torch.int64
    again = load_digits()
    assert torch.equal(again[0], x_tr)


def test_tabular_loaders_are_standardised():
    x_tr, y_tr, x_te, y_te = load_breast_cancer()
    assert x_tr.shape[1] == 30 and set(np.unique(y_tr)) == {0, 1}
    assert np.allclose(x_tr.mean(axis=0), 0, atol=1e-5)
    x_tr, y_tr, _, _ = load_wine()
    assert x_tr.shape[1] == 13 and set(np.unique(y_tr)) == {0, 1, 2}


def test_partition_iid_covers_every_sample_once():
    parts = partition_iid(103, 4, seed=1)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(103))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [p.tolist() for p in parts] == [p.tolist() for p in partition_iid(103, 4, seed=1)]


def test_dirichlet_small_alpha_is_skewed_large_alpha_near_iid(digits):
    _, y, _, _ = digits

    def mean_classes_per_client(alpha):
        parts = partition_dirichlet(y, 5, alpha=alpha, seed=0)
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
        # classes holding at least 5% of a client's data
        return np.mean([
            np.sum(np.bincount(y[p].numpy(), minlength=10) >= 0.05 * len(p)) for p in parts
        ])

    assert mean_classes_per_client(0.05) < 4
    assert mean_classes_per_client(100.0) >= 9


def test_partition_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        partition_dirichlet([0, 1, 1], 2, alpha=0)
    with pytest.raises(ValueError, match="num_clients"):
        partition_iid(10, 0)
    with pytest.raises(ValueError, match="cannot give"):
        partition_iid(3, 5)
    with pytest.raises(ValueError, match="no data"):
        make_client_dataloaders(torch.zeros(4, 1), torch.zeros(4), [np.arange(4), np.array([], dtype=int)])


def _write_idx(path, array, type_code):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(header + array.tobytes())


def test_mnist_idx_loader_on_a_tiny_file(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5) * 4
    labels = np.array([7, 0, 9], dtype=np.uint8)
    _write_idx(tmp_path / "img.idx", images, 0x08)
    _write_idx(tmp_path / "lab.idx.gz", labels, 0x08)
    x, y = load_mnist_idx(tmp_path / "img.idx", tmp_path / "lab.idx.gz")
    assert x.shape == (3, 1, 4, 5)
    assert torch.allclose(x[1, 0], torch.from_numpy(images[1].astype(np.float32) / 255))
    assert y.tolist() == [7, 0, 9]


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros(4, dtype=np.uint8), 0x08)
    data = (tmp_path / "short").read_bytes()
    (tmp_path / "short").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="data bytes"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")
