"""Embedded data sets, user .npz files and spike encoders."""
import numpy as np
import pytest
import torch

from neuromap import data
from neuromap.errors import FormatError, NeuromapError


def test_digits_split_is_fixed_and_scaled():
    d = data.load("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    assert d.num_classes == 10
    assert np.array_equal(d.y_test, data._split("digits", *_raw_digits()).y_test)


def _raw_digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    return (raw.images / 16.0).reshape(-1, 1, 8, 8), raw.target


def test_mnist5k_is_embedded():
    d = data.load("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert set(np.unique(d.y_test)) == set(range(10))
    assert d.flat().x_test.shape == (1000, 784)


def test_npz_user_data(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.random.rand(50, 3), y=np.arange(50) % 5)
    d = data.load(str(path))
    assert d.x_train.shape == (40, 3) and d.num_classes == 5


@pytest.mark.parametrize("content, message", [
    (dict(x=np.ones((4, 2))), "missing array 'y'"),
    (dict(x=np.ones((4, 2)), y=np.ones(3, dtype=int)), "'x' must be"),
    (dict(x=np.full((4, 2), np.nan), y=np.zeros(4, dtype=int)), "NaN"),
    (dict(x=np.ones((4, 2)), y=np.ones(4)), "integer labels"),
    (dict(x=np.array([{"a": 1}] * 4, dtype=object), y=np.zeros(4, dtype=int)), "not a readable"),
])
def test_bad_npz_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(FormatError, match=message):
        data.load_npz(path)


def test_not_npz_and_unknown_name(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_text("hello")
    with pytest.raises(FormatError, match="not a readable"):
        data.load(str(bad))
    with pytest.raises(NeuromapError, match="unknown data set 'cifar'"):
        data.load("cifar")


def test_encoders():
    x = torch.tensor([[0.0, 0.5, 1.0, -1.0]])
    assert torch.equal(data.direct_encode(x, 3)[0, 2], x[0])
    spikes = data.poisson_encode(x.repeat(2000, 1), 4, seed=1)
    rates = spikes.mean(dim=(0, 1))
    assert rates[0] == 0 and rates[2] == 1 and rates[3] == -1
    assert abs(rates[1].item() - 0.5) < 0.02
    assert torch.equal(spikes, data.poisson_encode(x.repeat(2000, 1), 4, seed=1))
    with pytest.raises(NeuromapError, match="must lie in"):
        data.poisson_encode(torch.tensor([[2.0]]), 3)
