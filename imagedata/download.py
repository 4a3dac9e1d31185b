"""Download of Microsoft's cats-vs-dogs archive: resumable, size- and sha256-verified.

The file goes to <folder>/<hash of URL>/<archive name>. Bytes arrive in <name>.part; a rerun after
an interruption asks the server for the rest with an HTTP Range request. Only a complete, verified
file is renamed to its final name, with a small JSON record of its size and sha256 next to it.
"""
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from engine.storage import atomic_write_bytes, file_lock
from imagedata.errors import DataError

DEFAULT_URL = ("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
               "kagglecatsanddogs_5340.zip")
# (size, sha256) of archives whose checksum is on record; TensorFlow Datasets recorded the older
# archive. No checksum is published for kagglecatsanddogs_5340.zip, so that one is only recorded.
KNOWN_ARCHIVES = {
    "kagglecatsanddogs_3367a.zip": (824_894_548,
                                    "f9553e426bd725354ed3a27e3c6920caadb55c835d1ebd880d2e56d3f1fbb22b"),
}
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Archive:
    """A downloaded, verified archive."""
    path: Path
    url: str
    size: int
    sha256: str


def offline_message(url: str, why: str) -> str:
    """The one-line error for an unreachable download, naming the two offline alternatives."""
    return (f"could not download the cats_vs_dogs archive from {url} ({why}); use --data PATH to "
            "point at a folder of images, or omit --data to use the built-in synthetic set")


class TerminalBar:
    """A one-line progress bar on a terminal stream, redrawn when the shown percentage changes."""

    def __init__(self, stream):
        self.stream = stream
        self.shown = None

    def __call__(self, done: int, total):
        if total:
            pct = min(100, done * 100 // total)
            if pct == self.shown:
                return
            self.shown = pct
            bar = "#" * (pct // 4)
            text = f"\r[{bar:<25}] {pct:3d}% {done / 1e6:8.1f} / {total / 1e6:.1f} MB"
        else:
            text = f"\r{done / 1e6:8.1f} MB"
        self.stream.write(text + ("\n" if total and done >= total else ""))
        self.stream.flush()


def _reporter(progress):
    """The caller's progress(done, total) callback, else a terminal bar on stderr if it is a TTY."""
    if progress is not None:
        return progress
    if sys.stderr.isatty():
        return TerminalBar(sys.stderr)
    return lambda done, total: None


def _range_start_and_total(header):
    """Parse 'bytes START-END/TOTAL' or 'bytes */TOTAL' into (start or None, total or None)."""
    try:
        _, spec = header.split(" ", 1)
        span, total = spec.split("/")
        start = None if span == "*" else int(span.split("-")[0])
        return start, (None if total == "*" else int(total))
    except (AttributeError, ValueError):
        return None, None


def _one_line(error) -> str:
    """An exception's text without newlines, for one-line messages."""
    return " ".join(str(getattr(error, "reason", error)).split())


def _download(url: str, part: Path, report, log, allow_restart: bool = True):
    """Fetch `url` into `part`, resuming from its current length; return the total size if known."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "batchlab-imagedata"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            _, total = _range_start_and_total(e.headers.get("Content-Range"))
            if total == offset:
                return total  # the partial file already holds every byte
            if allow_restart:
                part.unlink()
                return _download(url, part, report, log, allow_restart=False)
        raise DataError(f"download of {url} failed: HTTP {e.code} {_one_line(e)}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        raise DataError(offline_message(url, _one_line(e))) from None
    with response:
        if offset and response.status == 206:
            start, total = _range_start_and_total(response.headers.get("Content-Range"))
            if start != offset:
                if not allow_restart:
                    raise DataError(f"download of {url} failed: server sent an unexpected byte range")
                response.close()
                part.unlink()
                return _download(url, part, report, log, allow_restart=False)
            log(f"data: resuming download at byte {offset:,}")
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        done = offset
        try:
            with open(part, mode) as f:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    done += len(chunk)
                    report(done, total)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, http.client.HTTPException) as e:
            raise DataError(f"download of {url} interrupted after {done:,} bytes ({_one_line(e)}); "
                            "run again to resume") from None
    if total is not None and done != total:
        raise DataError(f"download of {url} stopped at {done:,} of {total:,} bytes; run again to resume")
    return total


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _normalise_sha(value):
    """Lower-case hex sha256 from the user, or DataError if it is not 64 hex digits."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise DataError(f"expected sha256 {value!r} is not 64 hexadecimal digits")
    return text


def archive_folder(url: str, downloads: Path) -> Path:
    """Per-URL download folder, so a different URL never resumes another URL's partial file."""
    return Path(downloads) / hashlib.sha256(url.encode()).hexdigest()[:16]


def archive_name(url: str) -> str:
    """File name the archive at `url` is stored under."""
    return os.path.basename(urllib.parse.urlparse(url).path) or "archive.zip"


def archive_downloaded(url: str, downloads: Path) -> bool:
    """True when the archive at `url` was fully downloaded and recorded in `downloads` before."""
    name, folder = archive_name(url), archive_folder(url, downloads)
    return (folder / name).is_file() and (folder / f"{name}.json").is_file()


def fetch_archive(url: str, downloads: Path, expected_sha256=None, progress=None, log=print) -> Archive:
    """Return the verified archive at `url`, downloading or resuming it into `downloads` if needed.

    The size must match what the server announced (and the size on record for known archives); the
    sha256 must match `expected_sha256` if given, else the one on record if the archive is known.
    On a mismatch the file is deleted and DataError is raised, so a bad archive is never used.
    """
    pinned = _normalise_sha(expected_sha256)
    name = archive_name(url)
    known_size, known_sha = KNOWN_ARCHIVES.get(name, (None, None))
    folder = archive_folder(url, downloads)
    final, part, record = folder / name, folder / f"{name}.part", folder / f"{name}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create download folder {folder}: {_one_line(e)}") from None
    with file_lock(folder / f"{name}.lock"):
        if final.is_file() and record.is_file():
            try:
                info = json.loads(record.read_text())
            except ValueError:
                info = {}  # unreadable record: fetch the archive again
            if info.get("size") == final.stat().st_size:
                if pinned and info["sha256"] != pinned:
                    raise DataError(f"archive {final} has sha256 {info['sha256']}, not the expected "
                                    f"{pinned}; delete it to download again")
                return Archive(final, url, info["size"], info["sha256"])
        log(f"data: downloading {url} into {folder}")
        _download(url, part, _reporter(progress), log)
        size = part.stat().st_size
        if known_size is not None and size != known_size:
            part.unlink()
            raise DataError(f"downloaded {name} has {size:,} bytes, expected {known_size:,}; "
                            "the file was deleted")
        digest = file_sha256(part)
        want = pinned or known_sha
        if want and digest != want:
            part.unlink()
            raise DataError(f"checksum mismatch for {name}: got sha256 {digest}, expected {want}; "
                            "the file was deleted")
        os.replace(part, final)
        atomic_write_bytes(record, json.dumps({"url": url, "size": size, "sha256": digest}).encode())
        log(f"data: downloaded {size:,} bytes, sha256 {digest}")
        return Archive(final, url, size, digest)
