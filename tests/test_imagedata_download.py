"""imagedata download path against a loopback HTTP server (127.0.0.1 only): verify, resume,
checksum mismatch, member CRCs, re-verified cache, refused archives moved aside, interrupted
transfers, servers ignoring Range, offline message, safe unzip."""
import hashlib
import http.server
import io
import json
import socket
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from imagedata import DataError, load_dataset
from imagedata import download as download_mod
from imagedata.archive import extract_zip
from imagedata.download import archive_folder

SIZE = 12
NAME = "kagglecatsanddogs_test.zip"


def jpeg(seed):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_archive():
    """A small zip in Microsoft's layout, with the kinds of junk the real archive holds."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for label, cls in enumerate(["Cat", "Dog"]):
            for i in range(5):
                zf.writestr(f"PetImages/{cls}/{i}.jpg", jpeg(10 * label + i))
            zf.writestr(f"PetImages/{cls}/Thumbs.db", b"\xd0\xcf\x11\xe0" + bytes(60))
        zf.writestr("PetImages/Cat/666.jpg", b"")
        zf.writestr("PetImages/Dog/11702.jpg", jpeg(99)[:150])
        zf.writestr("PetImages/Dog/bad.jpg", np.random.default_rng(1).bytes(500))
        zf.writestr("readme[1].txt", b"terms of use")
    return buf.getvalue()


ARCHIVE = make_archive()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


def crc_broken_archive():
    """A zip whose directory is intact but one stored member's bytes changed in transit."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("PetImages/Cat/0.jpg", jpeg(0))
        zf.writestr("PetImages/Dog/0.jpg", jpeg(1))
        zf.writestr("readme[1].txt", b"terms of use")
    return buf.getvalue().replace(b"terms of use", b"terms of usE")


def unsafe_archive():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("PetImages/Cat/0.jpg", jpeg(0))
        zf.writestr("../../escaped.txt", b"outside")
    return buf.getvalue()


class Server:
    """Serves `payload` (default ARCHIVE) at /`name` (default NAME), honouring Range unless told not
    to; can cut a response short."""

    def __init__(self, name=NAME, payload=ARCHIVE):
        self.name, self.payload = name, payload
        self.ranges = []  # Range header of every request (None when absent)
        self.honour_range = True
        self.cut_after = None  # send only this many body bytes of the next response, then close
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.ranges.append(self.headers.get("Range"))
                if self.path != f"/{owner.name}":
                    self.send_error(404)
                    return
                start, whole = 0, owner.payload
                header = self.headers.get("Range")
                if header and owner.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(whole):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(whole)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(whole) - 1}/{len(whole)}")
                else:
                    self.send_response(200)
                body = whole[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if owner.cut_after is not None:
                    body, owner.cut_after = body[:owner.cut_after], None
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Keep urllib away from any proxy: requests must go straight to 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def fetch(server, cache, **kw):
    logs, seen = [], []
    ds = load_dataset("cats_vs_dogs", image_size=SIZE, cache_dir=cache, log=logs.append,
                      download_url=server.url, progress=lambda done, total: seen.append((done, total)),
                      **kw)
    return ds, logs, seen


def part_path(server, cache):
    return archive_folder(server.url, cache / "downloads") / f"{NAME}.part"


def test_download_verifies_unpacks_and_loads_petimages(server, tmp_path):
    cache = tmp_path / "cache"
    ds, logs, seen = fetch(server, cache)
    assert server.ranges == [None]
    assert ds.identity["name"] == "cats_vs_dogs" and ds.identity["source"] == server.url
    assert ds.identity["archive"] == {"url": server.url, "size": len(ARCHIVE), "sha256": SHA}
    assert ds.identity["layout"] == "petimages" and ds.classes == ["Cat", "Dog"]
    assert ds.identity["skipped_by_reason"] == {
        "not an image file name": 2, "empty file": 1, "truncated or corrupt image": 1, "not an image": 1}
    assert ds.identity["counts"] == {"train": {"Cat": 4, "Dog": 4}, "val": {"Cat": 1, "Dog": 1}}
    assert seen[-1] == (len(ARCHIVE), len(ARCHIVE))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    # every loaded row is one of the archive's good photos, decoded independently
    want = set()
    for seed in [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]:
        with Image.open(io.BytesIO(jpeg(seed))) as im:
            want.add(np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
                     .transpose(2, 0, 1).tobytes())
    got = {ds.train_x[i].tobytes() for i in range(len(ds.train_y))} | \
          {ds.val_x[i].tobytes() for i in range(len(ds.val_y))}
    assert got == want

    again, logs, _ = fetch(server, cache)
    assert server.ranges == [None]  # nothing fetched the second time
    assert again.identity["cache_used"] and again.identity["archive"]["sha256"] == SHA
    assert any("cache" in m for m in logs)


def test_no_source_prefers_a_downloaded_archive_over_the_synthetic_set(server, tmp_path, monkeypatch):
    import imagedata.loader
    monkeypatch.setattr(imagedata.loader, "DEFAULT_URL", server.url)
    cache = tmp_path / "cache"
    assert load_dataset(None, image_size=SIZE, cache_dir=cache, log=lambda m: None).identity["name"] == "synthetic"
    fetch(server, cache)
    ds = load_dataset(None, image_size=SIZE, cache_dir=cache, log=lambda m: None)
    assert ds.identity["name"] == "cats_vs_dogs" and ds.identity["cache_used"]
    assert server.ranges == [None]  # downloaded once, by the explicit request


def test_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    cache = tmp_path / "cache"
    part = part_path(server, cache)
    part.parent.mkdir(parents=True)
    part.write_bytes(ARCHIVE[:1000])
    ds, logs, _ = fetch(server, cache)
    assert server.ranges == ["bytes=1000-"]
    assert ds.identity["archive"]["sha256"] == SHA
    assert any("resuming" in m for m in logs)
    assert not part.exists()


def test_interrupted_download_fails_cleanly_then_resumes(server, tmp_path):
    cache = tmp_path / "cache"
    server.cut_after = 700
    with pytest.raises(DataError, match="run again to resume") as info:
        fetch(server, cache)
    assert "\n" not in str(info.value)
    part = part_path(server, cache)
    assert part.read_bytes() == ARCHIVE[:700]
    ds, _, _ = fetch(server, cache)
    assert server.ranges == [None, "bytes=700-"]
    assert ds.identity["archive"]["sha256"] == SHA


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    cache = tmp_path / "cache"
    part = part_path(server, cache)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 500)  # stale bytes that must not survive
    server.honour_range = False
    ds, _, _ = fetch(server, cache)
    assert server.ranges == ["bytes=500-"]
    assert ds.identity["archive"]["sha256"] == SHA


def test_complete_partial_file_is_accepted_after_416(server, tmp_path):
    cache = tmp_path / "cache"
    part = part_path(server, cache)
    part.parent.mkdir(parents=True)
    part.write_bytes(ARCHIVE)
    ds, _, _ = fetch(server, cache)
    assert server.ranges == [f"bytes={len(ARCHIVE)}-"]
    assert ds.identity["archive"]["size"] == len(ARCHIVE)


def assert_moved_aside(folder, content):
    """Nothing usable is left under the archive's names; the refused bytes sit in <name>.refused."""
    assert not (folder / NAME).exists() and not (folder / f"{NAME}.part").exists()
    assert not (folder / f"{NAME}.json").exists()
    assert (folder / f"{NAME}.refused").read_bytes() == content


def test_checksum_mismatch_rejects_and_moves_the_file_aside(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch") as info:
        fetch(server, cache, expected_sha256="0" * 64)
    assert SHA in str(info.value) and "moved it aside" in str(info.value)
    folder = archive_folder(server.url, cache / "downloads")
    assert_moved_aside(folder, ARCHIVE)
    assert not (cache / "extracted").exists() and not (cache / "arrays").exists()
    ds, _, _ = fetch(server, cache, expected_sha256=SHA.upper())
    assert ds.identity["archive"]["sha256"] == SHA
    with pytest.raises(DataError, match="not the expected"):
        fetch(server, cache, expected_sha256="1" * 64)  # pinned sum differs from the stored archive
    assert_moved_aside(folder, ARCHIVE)


def test_a_member_failing_its_crc_is_refused_before_use(server, tmp_path):
    cache = tmp_path / "cache"
    server.payload = crc_broken_archive()
    with pytest.raises(DataError, match=r"'readme\[1\].txt' does not match the CRC-32") as info:
        fetch(server, cache)
    assert "\n" not in str(info.value) and "run again" in str(info.value)
    folder = archive_folder(server.url, cache / "downloads")
    assert_moved_aside(folder, server.payload)
    assert not (cache / "extracted").exists()
    server.payload = ARCHIVE  # the next run downloads a good copy
    ds, _, _ = fetch(server, cache)
    assert ds.identity["archive"]["sha256"] == SHA


def test_an_unsafe_archive_is_refused_and_moved_aside(server, tmp_path):
    cache = tmp_path / "cache"
    server.payload = unsafe_archive()
    with pytest.raises(DataError, match="unsafe path") as info:
        fetch(server, cache)
    assert "moved it aside" in str(info.value)
    assert_moved_aside(archive_folder(server.url, cache / "downloads"), server.payload)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_cached_archive_is_reverified_before_each_use(server, tmp_path):
    cache = tmp_path / "cache"
    fetch(server, cache)
    folder = archive_folder(server.url, cache / "downloads")
    damaged = bytearray(ARCHIVE)
    damaged[len(damaged) // 2] ^= 0xFF  # same size: only the hash can tell
    (folder / NAME).write_bytes(bytes(damaged))
    requests = len(server.ranges)
    with pytest.raises(DataError, match="recorded when it was downloaded"):
        fetch(server, cache)
    assert len(server.ranges) == requests  # refused from the cache, nothing fetched
    assert_moved_aside(folder, bytes(damaged))
    ds, _, _ = fetch(server, cache)
    assert ds.identity["archive"]["sha256"] == SHA


def test_a_cached_archive_recorded_without_member_checks_gets_them(server, tmp_path):
    cache = tmp_path / "cache"
    folder = archive_folder(server.url, cache / "downloads")
    folder.mkdir(parents=True)
    broken = crc_broken_archive()  # as an older version would have accepted it, on size and hash
    (folder / NAME).write_bytes(broken)
    (folder / f"{NAME}.json").write_text(json.dumps(
        {"url": server.url, "size": len(broken), "sha256": hashlib.sha256(broken).hexdigest()}))
    with pytest.raises(DataError, match="CRC-32"):
        fetch(server, cache)
    assert_moved_aside(folder, broken)


def test_malformed_pinned_checksum_is_a_data_error(server, tmp_path):
    with pytest.raises(DataError, match="64 hexadecimal"):
        fetch(server, tmp_path / "cache", expected_sha256="abc")
    assert server.ranges == []


def test_size_on_record_is_enforced(server, tmp_path, monkeypatch):
    monkeypatch.setitem(download_mod.KNOWN_ARCHIVES, NAME, (len(ARCHIVE) + 1, SHA))
    with pytest.raises(DataError, match="expected"):
        fetch(server, tmp_path / "cache")
    assert not part_path(server, tmp_path / "cache").exists()


def test_known_checksum_on_record_is_enforced(server, tmp_path, monkeypatch):
    monkeypatch.setitem(download_mod.KNOWN_ARCHIVES, NAME, (len(ARCHIVE), "f" * 64))
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(server, tmp_path / "cache")


def test_unreachable_server_names_the_offline_alternatives(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the port is closed now: connecting is refused
    with pytest.raises(DataError) as info:
        load_dataset("cats_vs_dogs", image_size=SIZE, cache_dir=tmp_path / "cache",
                     download_url=f"http://127.0.0.1:{port}/{NAME}", log=lambda m: None)
    message = str(info.value)
    assert "\n" not in message
    assert "--data PATH" in message and "synthetic" in message and f"127.0.0.1:{port}" in message


def test_http_error_is_a_data_error(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("cats_vs_dogs", image_size=SIZE, cache_dir=tmp_path / "cache",
                     download_url=server.url.replace(NAME, "missing.zip"), log=lambda m: None)


def test_unsafe_zip_members_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("PetImages/Cat/1.jpg", jpeg(0))
        zf.writestr("../escaped.txt", b"outside")
    with pytest.raises(DataError, match="unsafe path"):
        extract_zip(evil, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "out" / "x").exists()


def test_broken_zip_is_a_data_error_and_leaves_nothing(tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    with pytest.raises(DataError, match="not a valid zip"):
        extract_zip(broken, tmp_path / "out" / "x")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.lock"]


# ---------------------------------------------------------------- TensorFlow's cats_and_dogs_filtered

def make_filtered_archive():
    """A small zip in the layout of TensorFlow's cats_and_dogs_filtered.zip (with its script)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for split, count in (("train", 4), ("validation", 2)):
            for label, cls in enumerate(["cats", "dogs"]):
                for i in range(count):
                    zf.writestr(f"cats_and_dogs_filtered/{split}/{cls}/{cls[:-1]}.{i}.jpg",
                                jpeg(100 + 10 * label + i + 50 * (split == "train")))
        zf.writestr("cats_and_dogs_filtered/vectorize.py", b"print('not an image')\n")
    return buf.getvalue()


FILTERED = make_filtered_archive()


@pytest.fixture
def filtered_server():
    s = Server("cats_and_dogs_filtered_test.zip", FILTERED)
    yield s
    s.close()


def test_filtered_photos_download_resume_and_load_in_tensorflows_split(filtered_server, tmp_path):
    cache = tmp_path / "cache"
    url = filtered_server.url
    part = archive_folder(url, cache / "downloads") / "cats_and_dogs_filtered_test.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FILTERED[:700])  # an interrupted earlier download
    logs = []
    ds = load_dataset("cats_and_dogs_filtered", image_size=SIZE, cache_dir=cache, log=logs.append,
                      download_url=url, show_progress=False)
    assert filtered_server.ranges == ["bytes=700-"]
    assert ds.identity["name"] == "cats_and_dogs_filtered" and ds.identity["layout"] == "tensorflow"
    assert ds.identity["archive"]["sha256"] == hashlib.sha256(FILTERED).hexdigest()
    assert np.bincount(ds.train_y).tolist() == [4, 4] and np.bincount(ds.val_y).tolist() == [2, 2]
    # the cached archive and arrays are reused: no second request
    again = load_dataset("cats_and_dogs_filtered", image_size=SIZE, cache_dir=cache,
                         log=lambda m: None, download_url=url, show_progress=False)
    assert again.identity["cache_used"] and len(filtered_server.ranges) == 1


def test_filtered_archive_is_checked_against_its_size_on_record_and_its_crcs(tmp_path):
    cache = tmp_path / "cache"
    # served under the real name, the test archive has the wrong size: refused and deleted
    real_name = Server("cats_and_dogs_filtered.zip", FILTERED)
    try:
        with pytest.raises(DataError, match="68,606,236"):
            load_dataset("cats_and_dogs_filtered", image_size=SIZE, cache_dir=cache,
                         log=lambda m: None, download_url=real_name.url, show_progress=False)
        assert not any(p.suffix in (".zip", ".part") for p in (cache / "downloads").rglob("*"))
    finally:
        real_name.close()
    # one flipped byte inside a member's compressed data: its CRC-32 no longer matches
    broken = bytearray(FILTERED)
    broken[FILTERED.index(b"cats_and_dogs_filtered/train/cats/cat.0.jpg") + 200] ^= 0xFF
    bad = Server("cats_and_dogs_filtered_bad.zip", bytes(broken))
    try:
        with pytest.raises(DataError, match="CRC|not a valid zip"):
            load_dataset("cats_and_dogs_filtered", image_size=SIZE, cache_dir=cache,
                         log=lambda m: None, download_url=bad.url, show_progress=False)
        assert not any(p.suffix in (".zip", ".part") for p in (cache / "downloads").rglob("*"))
    finally:
        bad.close()


def test_run_py_trains_on_the_downloaded_filtered_photos(filtered_server, tmp_path, monkeypatch):
    import imagedata.loader
    import run
    monkeypatch.setattr(imagedata.loader, "FILTERED_URL", filtered_server.url)
    out = tmp_path / "run"
    code = run.main(["--data", "cats_and_dogs_filtered", "--image-size", "32", "--batch", "4",
                     "--max-epochs", "1", "--kernels", "reference", "--out", str(out),
                     "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    dataset = json.loads((out / "config.json").read_text())["dataset"]
    assert dataset["name"] == "cats_and_dogs_filtered" and dataset["source"] == filtered_server.url
    assert dataset["n_train"] == 8 and dataset["n_val"] == 4
