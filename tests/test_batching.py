"""Batch assembly: the one-pass gather + scale kernel against NumPy's two-pass definition."""
import numpy as np
import pytest

from imagedata.batching import gather_scaled
from imagedata.dataset import Dataset


def numpy_definition(x, idx):
    """What Dataset.batch computed before the kernel: x[idx] in uint8, divided by 255 in float32."""
    out = np.empty((len(idx),) + x.shape[1:], dtype=np.float32)
    np.divide(x[idx], np.float32(255.0), out=out)
    return out


@pytest.fixture
def images():
    """Every uint8 value appears (the scaling is checked value by value), in odd shapes."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(40, 3, 5, 7), dtype=np.uint8)
    x.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)
    return x


def test_gather_scaled_is_bit_identical_to_the_numpy_definition(images, tmp_path):
    idx = np.array([39, 0, 5, 5, 17, 1, 38, 2])
    expected = numpy_definition(images, idx)
    got = gather_scaled(images, idx)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (8, 3, 5, 7)
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    np.save(tmp_path / "x.npy", images)  # memory-mapped, as the cache serves it
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert np.array_equal(gather_scaled(mapped, idx).view(np.uint32), expected.view(np.uint32))
    strided = images[:, ::-1, 1:, ::2]  # a non-contiguous source
    assert np.array_equal(gather_scaled(strided, idx), numpy_definition(strided, idx))


def test_gather_scaled_indexes_like_numpy(images):
    assert np.array_equal(gather_scaled(images, [-1, -40]), numpy_definition(images, [39, 0]))
    assert gather_scaled(images, np.array([], dtype=int)).shape == (0, 3, 5, 7)
    for bad in ([40], [-41]):
        with pytest.raises(IndexError):
            gather_scaled(images, bad)


def test_dataset_batch_uses_the_definition(images):
    labels = (np.arange(40) % 2).astype(np.uint8)
    data = Dataset(images, labels, images[:4], labels[:4], ["a", "b"], {})
    x, y = data.batch("train", [7, 3])
    assert np.array_equal(x, numpy_definition(images, [7, 3]))
    assert y.dtype == np.float32 and y.tolist() == [1.0, 1.0]
