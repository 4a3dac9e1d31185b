"""imagedata: layouts, bad files, colour modes, JFIF filter, split, cache, synthetic set, batches.

Every image tree is built here in tmp_path with Pillow; expected pixels come from an independent
Pillow decode + resize of each file, matched to the loaded rows by content.
"""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, skip_or_fail_in_ci
from PIL import Image

import imagedata.decode as decode_mod
from imagedata import DataError, Dataset, load_dataset
from imagedata.decode import decode_bytes
from imagedata.split import stratified_split
from imagedata.synthetic import make_synthetic

SIZE = 16
SHARED = SHARED_DATA


# ---------------------------------------------------------------- helpers building image trees

def noisy_rgb(seed, w=24, h=18):
    """A distinct smooth-ish RGB picture (noise upsampled), so every file decodes to unique pixels."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 3, 1), max(w // 3, 1), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.NEAREST)


def save(path, image=None, fmt="JPEG", seed=0, data=None):
    """Write `data` bytes, or `image` (default: noisy_rgb(seed)) in `fmt`, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    else:
        (image if image is not None else noisy_rgb(seed)).save(path, format=fmt)
    return path


def jpeg_bytes(seed, w=24, h=18):
    buf = io.BytesIO()
    noisy_rgb(seed, w, h).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def reference_pixels(path, size=SIZE):
    """Independent decode: Pillow open -> RGB -> bilinear resize -> CHW uint8."""
    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb).transpose(2, 0, 1)


def rows_by_content(x, y):
    return {np.asarray(x[i]).tobytes(): int(y[i]) for i in range(len(y))}


def assert_loaded_exactly(ds, expected, split=None, size=SIZE):
    """Every file in `expected` {path: label} is a row with its label; no other rows exist."""
    parts = [("train", ds.train_x, ds.train_y), ("val", ds.val_x, ds.val_y)]
    rows = {}
    for name, x, y in parts:
        if split in (None, name):
            got = rows_by_content(x, y)
            assert len(got) == len(y), "duplicate rows"
            rows.update(got)
    want = {reference_pixels(p, size).tobytes(): label for p, label in expected.items()}
    assert len(want) == len(expected)
    assert rows == want


def lines(log_list):
    return [str(m) for m in log_list]


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def default_cache_of_its_own(tmp_path, monkeypatch):
    """load_dataset(None) trains on Microsoft's archive once it is in the default cache: point that
    cache at an empty folder, so the synthetic-set tests never read a developer's downloads."""
    monkeypatch.setenv("BATCHLAB_CACHE", str(tmp_path / "default-cache"))


def load(src, cache, **kw):
    logs = []
    kw.setdefault("image_size", SIZE)
    ds = load_dataset(src, cache_dir=cache, log=logs.append, **kw)
    return ds, logs


# ---------------------------------------------------------------- layouts

def test_petimages_layout_from_parent_and_from_folder(tmp_path, cache):
    root = tmp_path / "kagglecatsanddogs"
    files = {}
    for label, cls in enumerate(["Cat", "Dog"]):
        for i in range(5):
            files[save(root / "PetImages" / cls / f"{i}.jpg", seed=10 * label + i)] = label
        save(root / "PetImages" / cls / "Thumbs.db", data=b"\xd0\xcf\x11\xe0 not a picture")
    save(root / "readme[1].txt", data=b"terms of use")

    ds, _ = load(root, cache)
    assert isinstance(ds, Dataset)
    assert ds.identity["layout"] == "petimages"
    assert ds.classes == ["Cat", "Dog"]
    assert ds.identity["source"] == str((root / "PetImages").resolve())
    assert ds.identity["n_skipped"] == 2
    assert {s["reason"] for s in ds.identity["skipped"]} == {"not an image file name"}
    assert_loaded_exactly(ds, files)
    # no own split: 20% of each class held out, at least one
    assert ds.identity["counts"] == {"train": {"Cat": 4, "Dog": 4}, "val": {"Cat": 1, "Dog": 1}}

    again, logs = load(root / "PetImages", cache)
    assert again.identity["cache_used"] and again.identity["cache_key"] == ds.identity["cache_key"]


def test_kaggle_layout_takes_class_from_file_name(tmp_path, cache):
    root = tmp_path / "dogs-vs-cats"
    files = {}
    for i in range(4):
        files[save(root / "train" / f"cat.{i}.jpg", seed=i)] = 0
        files[save(root / "train" / f"dog.{i}.jpg", seed=100 + i)] = 1
    save(root / "train" / "mystery.jpg", seed=999)
    save(root / "test1" / "1.jpg", seed=555)  # unlabelled test set: not part of the data
    ds, _ = load(root, cache)
    assert ds.identity["layout"] == "kaggle"
    assert ds.classes == ["cat", "dog"]
    assert ds.identity["skipped"] == [{"path": "mystery.jpg", "reason": "no class in file name"}]
    assert ds.identity["n_files"] == 9
    assert_loaded_exactly(ds, files)
    direct, _ = load(root / "train", cache)
    assert direct.identity["cache_used"]


def test_tensorflow_layout_keeps_its_own_split(tmp_path, cache):
    base = tmp_path / "data" / "cats_and_dogs_filtered"
    split_files = {"train": {}, "val": {}}
    seed = 0
    for split, folder, n in (("train", "train", 3), ("val", "validation", 2)):
        for label, cls in enumerate(["cats", "dogs"]):
            for _ in range(n):
                seed += 1
                split_files[split][save(base / folder / cls / f"{cls[:-1]}.{seed}.jpg", seed=seed)] = label
    ds, _ = load(tmp_path / "data", cache)  # the folder holding cats_and_dogs_filtered
    assert ds.identity["layout"] == "tensorflow"
    assert ds.identity["split"] == "own"
    assert ds.classes == ["cats", "dogs"]
    assert_loaded_exactly(ds, split_files["train"], split="train")
    assert_loaded_exactly(ds, split_files["val"], split="val")


def test_generic_tree_sorts_classes_and_walks_nested_folders(tmp_path, cache):
    root = tmp_path / "fruit"
    files = {}
    for label, cls in enumerate(["apple", "banana", "cherry"]):
        for i in range(5):
            sub = "deep/er" if i == 0 else ""
            files[save(root / cls / sub / f"{i}.png", fmt="PNG", seed=label * 50 + i)] = label
    save(root / ".DS_Store", data=b"hidden")
    save(root / "__MACOSX" / "._0.png", data=b"resource fork")
    ds, _ = load(root, cache)
    assert ds.identity["layout"] == "generic"
    assert ds.classes == ["apple", "banana", "cherry"]
    assert ds.identity["n_skipped"] == 0
    assert_loaded_exactly(ds, files)
    assert json.loads(json.dumps(ds.identity)) == ds.identity


@pytest.mark.parametrize("make, message", [
    (lambda r: None, "does not exist"),
    (lambda r: save(r, data=b"x"), "is not a folder"),
    (lambda r: r.mkdir(), "is empty"),
    (lambda r: save(r / "only" / "a.jpg"), "only one class"),
    (lambda r: save(r / "PetImages" / "Cat" / "1.jpg"), "only one class"),
    (lambda r: [save(r / "train" / f"cat.{i}.jpg", seed=i) for i in range(2)], "only one class"),
    (lambda r: [save(r / f"{i}.jpg", seed=i) for i in range(2)], "cannot recognise the layout"),
    (lambda r: [save(r / c / "x.jpg", data=b"") for c in "ab"], "no readable images"),
    (lambda r: [(r / c).mkdir(parents=True) for c in "ab"], "hold no files"),
    (lambda r: [save(r / "a" / "1.jpg"), save(r / "b" / "1.jpg", data=b"junk")], "only class a"),
    (lambda r: [save(r / s / c / "1.jpg") for s, c in [("train", "cat"), ("train", "dog"),
                                                       ("validation", "cat"), ("validation", "cow")]],
     "class folders differ"),
])
def test_user_mistakes_raise_one_line_data_error(tmp_path, cache, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError) as info:
        load(root, cache)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [0, -3, 4096, 2.5, "64", True])
def test_invalid_image_size_is_a_data_error(size):
    with pytest.raises(DataError, match="image size"):
        load_dataset(None, image_size=size, log=lambda m: None)


def test_numpy_integer_image_size_is_accepted():
    ds = load_dataset(None, image_size=np.int64(4), log=lambda m: None)
    assert ds.train_x.shape[1:] == (3, 4, 4) and type(ds.identity["image_size"]) is int


# ---------------------------------------------------------------- bad files and colour modes

def strip_jfif(data):
    """Remove the APP0 (JFIF) segment of a JPEG: still decodable, but no JFIF marker."""
    assert data[2:4] == b"\xff\xe0"
    length = int.from_bytes(data[4:6], "big")
    return data[:2] + data[4 + length:]


@pytest.fixture
def messy_tree(tmp_path):
    """Class 'a' holds decodable files in many modes/formats; class 'b' holds two good and all bad."""
    root = tmp_path / "messy"
    a, b = root / "a", root / "b"
    good = {
        save(a / "rgb.jpg", seed=1): 0,
        save(a / "grey.jpg", noisy_rgb(2).convert("L")): 0,
        save(a / "cmyk.jpg", noisy_rgb(3).convert("CMYK")): 0,
        save(a / "palette.png", noisy_rgb(4).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"): 0,
        save(a / "rgba.png", Image.merge("RGBA", (*noisy_rgb(5).split(), noisy_rgb(6).split()[0])),
             "PNG"): 0,
        save(a / "png_named.jpg", noisy_rgb(7), "PNG"): 0,
        save(a / "exif_only.jpg", data=strip_jfif(jpeg_bytes(8))): 0,
        save(b / "good1.jpg", seed=9): 1,
        save(b / "good2.jpg", seed=10): 1,
    }
    whole = jpeg_bytes(11, 64, 48)
    bad = {
        save(b / "empty.jpg", data=b""): "empty file",
        save(b / "truncated.jpg", data=whole[: len(whole) * 2 // 3]): "truncated or corrupt image",
        save(b / "random.jpg", data=np.random.default_rng(0).bytes(3000)): "not an image",
        save(b / "text.jpg", data=b"this is not a picture\n" * 20): "not an image",
        save(b / "notes.txt", data=b"hello"): "not an image file name",
        save(b / "Thumbs.db", data=b"\xd0\xcf\x11\xe0" + bytes(100)): "not an image file name",
    }
    return root, good, bad


def test_bad_files_are_counted_and_good_ones_decoded_exactly(messy_tree, cache):
    root, good, bad = messy_tree
    ds, logs = load(root, cache)
    assert_loaded_exactly(ds, good)
    got = {s["path"]: s["reason"] for s in ds.identity["skipped"]}
    assert got == {str(p.relative_to(root)): r for p, r in bad.items()}
    assert ds.identity["n_skipped"] == len(bad)
    assert ds.identity["skipped_by_reason"] == {
        "empty file": 1, "truncated or corrupt image": 1, "not an image": 2, "not an image file name": 2}
    assert any("skipped 6" in m for m in lines(logs))


def test_jfif_only_keeps_exactly_files_with_the_marker(messy_tree, cache):
    root, good, bad = messy_tree
    with_marker = {p: lab for p, lab in good.items() if b"JFIF" in p.read_bytes()[:10]}
    # the filter must matter here: PNGs, the CMYK JPEG and the APP0-stripped JPEG lack the marker
    assert {p.name for p in good} - {p.name for p in with_marker} >= {
        "png_named.jpg", "palette.png", "rgba.png", "exif_only.jpg"}
    ds, _ = load(root, cache, jfif_only=True)
    assert ds.identity["jfif_only"] is True
    assert_loaded_exactly(ds, with_marker)
    dropped = {s["path"] for s in ds.identity["skipped"] if s["reason"] == "no JFIF marker in header"}
    lacking = {str(p.relative_to(root)) for p in (*good, *bad)
               if p.suffix != ".txt" and p.name != "Thumbs.db" and p.stat().st_size
               and b"JFIF" not in p.read_bytes()[:10]}
    assert dropped == lacking and "b/random.jpg" in dropped
    full, _ = load(root, cache)
    assert full.identity["cache_key"] != ds.identity["cache_key"]


def solid(mode, value, size=(7, 5)):
    return Image.new(mode, size, value)


def png(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("image, rgb", [
    (solid("L", 77), (77, 77, 77)),
    (solid("LA", (90, 10)), (90, 90, 90)),
    (solid("RGBA", (200, 100, 50, 0)), (200, 100, 50)),  # alpha dropped, not composited
    (solid("P", 3).copy(), None),
    (solid("1", 1), (255, 255, 255)),
    (solid("I;16", 32896), (128, 128, 128)),  # 16-bit 32896 / 257 = 128
])
def test_colour_modes_convert_to_expected_rgb(image, rgb):
    if image.mode == "P":
        image.putpalette([0, 0, 0, 1, 1, 1, 2, 2, 2, 10, 200, 30] + [0] * 756)
        rgb = (10, 200, 30)
    pixels, reason = decode_bytes(png(image), 9)
    assert reason is None
    assert pixels.shape == (3, 9, 9) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    assert np.array_equal(pixels, np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, 9, 9)))


def test_cmyk_jpeg_converts_with_the_subtractive_formula():
    c, m, y, k = 0, 200, 255, 40
    buf = io.BytesIO()
    solid("CMYK", (c, m, y, k), (16, 16)).save(buf, format="JPEG", quality=100)
    pixels, reason = decode_bytes(buf.getvalue(), 4)
    assert reason is None
    expected = [(255 - ch) * (255 - k) / 255 for ch in (c, m, y)]
    assert np.allclose(pixels.reshape(3, -1).mean(1), expected, atol=4)


def test_resize_does_not_keep_aspect_ratio():
    # left half black, right half white in a 40x10 picture -> same split in the square output
    arr = np.zeros((10, 40, 3), np.uint8)
    arr[:, 20:] = 255
    pixels, _ = decode_bytes(png(Image.fromarray(arr)), 8)
    assert np.all(pixels[:, :, :3] == 0) and np.all(pixels[:, :, 5:] == 255)


# ---------------------------------------------------------------- split

def test_stratified_split_is_fixed_disjoint_and_balanced():
    labels = np.repeat([0, 1, 2], [50, 11, 1])
    np.random.seed(1)
    train, val = stratified_split(labels, 3)
    np.random.seed(2)
    train2, val2 = stratified_split(labels, 3)
    assert np.array_equal(train, train2) and np.array_equal(val, val2)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(labels.size))
    assert np.bincount(labels[val], minlength=3).tolist() == [10, 2, 0]
    # not simply the last 20% of each class
    assert not np.array_equal(val[labels[val] == 0], np.arange(40, 50))


def test_split_does_not_depend_on_the_training_seed(tmp_path):
    root = tmp_path / "two"
    for label, cls in enumerate("xy"):
        for i in range(10):
            save(root / cls / f"{i:02d}.png", fmt="PNG", seed=label * 100 + i)
    a, _ = load(root, tmp_path / "cache_a", seed=0)
    b, _ = load(root, tmp_path / "cache_b", seed=12345)
    assert not b.identity["cache_used"]  # really rebuilt, not read back
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.identity["counts"]["val"] == {"x": 2, "y": 2}


# ---------------------------------------------------------------- cache

def small_tree(root, n=4):
    files = {}
    for label, cls in enumerate(["cat", "dog"]):
        for i in range(n):
            files[save(root / cls / f"{i}.jpg", seed=label * 10 + i)] = label
    return files


def test_second_load_reads_the_cache_without_decoding(tmp_path, cache, monkeypatch):
    files = small_tree(tmp_path / "d")
    first, _ = load(tmp_path / "d", cache)
    assert not first.identity["cache_used"]

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")
    monkeypatch.setattr(decode_mod, "decode_file", refuse)
    second, logs = load(tmp_path / "d", cache)
    assert second.identity["cache_used"]
    assert any("cache" in m for m in lines(logs))
    assert isinstance(second.train_x, np.memmap) and not second.train_x.flags.writeable
    assert_loaded_exactly(second, files)
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert np.array_equal(getattr(first, name), getattr(second, name))


def test_cache_files_are_plain_uint8_npy_nchw(tmp_path, cache):
    small_tree(tmp_path / "d")
    ds, _ = load(tmp_path / "d", cache)
    folder = cache / "arrays" / ds.identity["cache_key"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json", "train_x.npy", "train_y.npy", "val_x.npy", "val_y.npy"]
    x = np.load(folder / "train_x.npy", allow_pickle=False)
    assert x.dtype == np.uint8 and x.shape == (6, 3, SIZE, SIZE)


def test_cache_is_rebuilt_when_a_file_is_added_or_changed(tmp_path, cache):
    root = tmp_path / "d"
    files = small_tree(root)
    first, _ = load(root, cache)
    files[save(root / "dog" / "new.jpg", seed=77)] = 1
    added, _ = load(root, cache)
    assert not added.identity["cache_used"]
    assert added.identity["counts"]["train"]["dog"] + added.identity["counts"]["val"]["dog"] == 5
    assert_loaded_exactly(added, files)

    changed = root / "cat" / "0.jpg"
    save(changed, seed=4242)
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    rebuilt, _ = load(root, cache)
    assert not rebuilt.identity["cache_used"]
    assert_loaded_exactly(rebuilt, files)
    # entries of the old versions of this folder were pruned
    assert sorted(p.name for p in (cache / "arrays").iterdir() if p.is_dir()) == [
        rebuilt.identity["cache_key"]]


def test_damaged_cache_entry_is_rebuilt(tmp_path, cache):
    files = small_tree(tmp_path / "d")
    ds, _ = load(tmp_path / "d", cache)
    (cache / "arrays" / ds.identity["cache_key"] / "val_x.npy").write_bytes(b"garbage")
    again, _ = load(tmp_path / "d", cache)
    assert not again.identity["cache_used"]
    assert_loaded_exactly(again, files)


CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
import imagedata.decode as d
real = d.decode_file
def slow(*args, **kwargs):
    time.sleep(0.05)  # widen the window in which both processes want to build
    return real(*args, **kwargs)
d.decode_file = slow
from imagedata import load_dataset
ds = load_dataset({root!r}, image_size={size}, cache_dir={cache!r}, log=lambda m: None)
print(json.dumps([ds.identity["cache_used"], int(ds.train_x.sum()), int(ds.val_x.sum())]))
"""


def test_two_processes_build_the_cache_once(tmp_path, cache):
    small_tree(tmp_path / "d", n=6)
    script = CHILD.format(repo=str(Path(__file__).resolve().parent.parent), root=str(tmp_path / "d"),
                          size=SIZE, cache=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(r[0] for r in results) == [False, True]
    assert results[0][1:] == results[1][1:]


# ---------------------------------------------------------------- synthetic set

def test_synthetic_set_is_fixed_and_says_so_in_one_line():
    logs = []
    a = load_dataset(None, image_size=32, seed=0, log=logs.append)
    b = load_dataset("synthetic", image_size=32, seed=99, log=lambda m: None)
    assert len(logs) == 1 and "synthetic" in logs[0].lower() and "not photos" in logs[0]
    assert a.train_x.shape == (2000, 3, 32, 32) and a.val_x.shape == (400, 3, 32, 32)
    assert a.train_x.dtype == np.uint8 and a.train_y.dtype == np.uint8
    assert np.bincount(a.train_y).tolist() == [1000, 1000] and np.bincount(a.val_y).tolist() == [200, 200]
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.identity["name"] == "synthetic"
    json.dumps(a.identity)


def _radial_log_power(x):
    """Log power of the grey image at each integer spatial frequency radius."""
    grey = x.astype(np.float64).mean(1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    n = x.shape[-1]
    f = np.fft.fftfreq(n) * n
    radius = np.hypot(f[:, None], f[None, :]).round().astype(int)
    return np.log(np.stack([power[:, radius == r].mean(1) for r in range(1, n // 2)], 1))


def _linear_accuracy(train_f, train_y, val_f, val_y):
    """Least-squares linear classifier (targets +-1) accuracy on the validation features."""
    w = np.linalg.lstsq(np.c_[train_f, np.ones(len(train_f))], 2.0 * train_y - 1, rcond=None)[0]
    return np.mean((np.c_[val_f, np.ones(len(val_f))] @ w > 0) == val_y)


def test_synthetic_classes_differ_in_texture_not_in_colour():
    tx, ty, vx, vy = make_synthetic(32)
    colour = lambda x: x.reshape(len(x), 3, -1).mean(2)  # noqa: E731
    # grey pixels pooled 2x2: 256 features, fewer than the 800 training images
    pixels = lambda x: x.mean(1).reshape(len(x), 16, 2, 16, 2).mean((2, 4)).reshape(len(x), -1)  # noqa: E731
    assert _linear_accuracy(colour(tx), ty, colour(vx), vy) < 0.62
    assert _linear_accuracy(pixels(tx), ty, pixels(vx), vy) < 0.65
    assert _linear_accuracy(_radial_log_power(tx), ty, _radial_log_power(vx), vy) > 0.85


# ---------------------------------------------------------------- batches

def test_batch_scales_to_unit_range_in_any_index_order():
    ds = load_dataset(None, image_size=8, log=lambda m: None)
    idx = np.array([5, 0, 5, 1999, 3])
    x, y = ds.batch("train", idx)
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == (5, 3, 8, 8)
    assert np.array_equal(x, (ds.train_x[idx].astype(np.float64) / 255.0).astype(np.float32))
    assert y.dtype == np.float32 and np.array_equal(y, ds.train_y[idx])
    xv, yv = ds.batch("validation", [1])
    assert np.array_equal(xv[0], ds.val_x[1] / np.float32(255))
    with pytest.raises(ValueError):
        ds.batch("test", [0])


def test_batch_from_memory_mapped_cache(tmp_path, cache):
    small_tree(tmp_path / "d")
    load(tmp_path / "d", cache)
    ds, _ = load(tmp_path / "d", cache)
    x, y = ds.batch("train", [3, 1])
    assert type(x) is np.ndarray and x.flags.c_contiguous
    assert np.allclose(x * 255, ds.train_x[[3, 1]], atol=1e-4)


def test_pixels_name_the_photos_in_the_memory_mapped_cache_without_copying(tmp_path, cache):
    small_tree(tmp_path / "d")
    load(tmp_path / "d", cache)
    ds, _ = load(tmp_path / "d", cache)
    rows, y = ds.pixels("train", [3, -1, 3])
    assert rows.source is ds.train_x and isinstance(ds.train_x, np.memmap)
    assert list(rows.indices) == [3, len(ds.train_y) - 1, 3]
    assert np.array_equal(np.asarray(rows), ds.train_x[[3, -1, 3]])
    assert y.dtype == np.float32 and np.array_equal(y, ds.train_y[[3, -1, 3]])
    with pytest.raises(IndexError, match="out of range"):
        ds.pixels("val", [len(ds.val_y)])


def test_skipped_list_is_capped_but_counted(tmp_path, cache):
    root = tmp_path / "many"
    small_tree(root, n=2)
    for i in range(205):
        save(root / "cat" / f"empty{i:03d}.jpg", data=b"")
    ds, _ = load(root, cache)
    assert ds.identity["n_skipped"] == 205 and len(ds.identity["skipped"]) == 200
    assert ds.identity["skipped_by_reason"] == {"empty file": 205}


# ---------------------------------------------------------------- real photos (optional)

def test_a_few_real_photos_from_the_shared_set(tmp_path, cache):
    if not SHARED.is_dir():
        skip_or_fail_in_ci(f"shared photos not present at {SHARED}")
    base = tmp_path / "cats_and_dogs_filtered"
    expected = {}
    for folder in ("train", "validation"):
        for label, cls in enumerate(["cats", "dogs"]):
            for src in sorted((SHARED / folder / cls).iterdir())[:3]:
                link = base / folder / cls / src.name
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, link)
                expected[link] = label
    ds, _ = load(tmp_path, cache, image_size=32, jfif_only=True)
    assert ds.identity["layout"] == "tensorflow" and ds.identity["n_skipped"] == 0
    assert_loaded_exactly(ds, expected, size=32)
