"""Fuzzing the per-file decoder: random bytes, format headers followed by junk, every truncation and
random bit flips of real JPEG/PNG files, and decompression bombs. The decoder must return either a
well-formed image or a known skip reason, and never raise."""
import io
import signal
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagedata import decode as d

REASONS = {d.REASON_EMPTY, d.REASON_NOT_IMAGE, d.REASON_CORRUPT, d.REASON_TOO_LARGE, d.REASON_NOT_JFIF}
SIZE = 8
MAGIC = [b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a",
         b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@pytest.fixture(autouse=True)
def hang_guard():
    """Fail instead of hanging forever if some input sends a decoder into a loop."""
    def fire(signum, frame):
        raise RuntimeError("decoder did not return within 300 s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def encoded(fmt, seed=0, **kw):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def check(data, jfif_only=False):
    pixels, reason = d.decode_bytes(data, SIZE, jfif_only)
    if pixels is None:
        assert reason in REASONS, reason
    else:
        assert reason is None
        assert pixels.shape == (3, SIZE, SIZE) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous
    return reason


def test_random_bytes_and_junk_after_headers():
    rng = np.random.default_rng(2024)
    reasons = []
    for i in range(300):
        body = rng.bytes(int(rng.integers(0, 3000)))
        reasons.append(check(MAGIC[i % len(MAGIC)] + body if i % 2 else body, jfif_only=bool(i % 3 == 0)))
    assert reasons.count(None) < 10  # junk essentially never decodes to a picture


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_every_truncation_point_of_a_real_file(fmt):
    data = encoded(fmt)
    full = check(data)
    assert full is None
    cuts = sorted(set(np.linspace(0, len(data) - 1, 60).astype(int).tolist()))
    results = [check(data[:n]) for n in cuts]
    assert results[0] == d.REASON_EMPTY
    assert any(r is not None for r in results[1:])


def test_bit_flips_in_real_jpeg_and_png():
    rng = np.random.default_rng(7)
    for fmt in ("JPEG", "PNG"):
        data = bytearray(encoded(fmt, seed=3))
        for _ in range(120):
            mutated = bytearray(data)
            for pos in rng.integers(0, len(mutated), int(rng.integers(1, 6))):
                mutated[pos] ^= 1 << int(rng.integers(0, 8))
            check(bytes(mutated))


def png_header_claiming(width, height):
    """A tiny PNG whose IHDR claims width x height RGB pixels (the data itself is a stub)."""
    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 20_000])  # above the warning and the error limit
def test_decompression_bombs_are_refused_before_decoding(side):
    assert side * side > Image.MAX_IMAGE_PIXELS
    assert check(png_header_claiming(side, side)) == d.REASON_TOO_LARGE


def test_oversized_file_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    path.write_bytes(encoded("JPEG"))
    monkeypatch.setattr(d, "MAX_FILE_BYTES", 100)
    assert d.decode_file(path, SIZE) == (None, d.REASON_FILE_TOO_LARGE)
    assert d.decode_file(tmp_path / "missing.jpg", SIZE) == (None, d.REASON_UNREADABLE)
