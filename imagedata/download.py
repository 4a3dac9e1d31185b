"""Downloads of the photo archives (Microsoft's cats-vs-dogs, TensorFlow's cats_and_dogs_filtered):
resumable, verified by size, by sha256 where one is on record, and by the zip's own CRC-32s.

The file goes to <folder>/<hash of URL>/<archive name>. Bytes arrive in <name>.part; a rerun after
an interruption asks the server for the rest with an HTTP Range request. Only a complete, verified
file is renamed to its final name, with a small JSON record of its size and sha256 next to it.

Verified means: the size and sha256 on record for a known archive, or the sha256 the user pinned;
and always every member's CRC-32 against the zip's own directory (no checksum is published for the
current archive, so that is what catches a corrupted transfer). A cached archive is re-hashed and
compared with its record each time it is used. A refused archive is moved aside to <name>.refused.
"""
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from console.progress import progress_bar
from storage.files import atomic_write_bytes
from storage.lock import file_lock
from imagedata.archive import verify_zip
from imagedata.errors import DataError

DEFAULT_URL = ("https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
               "kagglecatsanddogs_5340.zip")
# TensorFlow's 3,000-photo subset (2,000 train + 1,000 validation), the one its tutorials use.
FILTERED_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
# (size, sha256 or None) of archives on record; TensorFlow Datasets recorded the older Microsoft
# archive. No checksum is published for kagglecatsanddogs_5340.zip, so that one is only recorded.
# cats_and_dogs_filtered.zip: the size is the Content-Length Google Storage sends (68,606,236 bytes,
# in published wget and Keras download logs from 2021 to 2025); no sha256 is published, so the
# content is checked against the CRC-32 the zip stores for every member.
KNOWN_ARCHIVES = {
    "kagglecatsanddogs_3367a.zip": (824_894_548,
                                    "f9553e426bd725354ed3a27e3c6920caadb55c835d1ebd880d2e56d3f1fbb22b"),
    "cats_and_dogs_filtered.zip": (68_606_236, None),
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
    return (f"could not download {archive_name(url)} from {url} ({why}); use --data PATH to "
            "point at a folder of images, or omit --data to use the built-in synthetic set")


class ByteBar:
    """progress(done, total) drawn as console.progress's bar: tqdm on a terminal, plain lines else."""

    def __init__(self, desc):
        self.desc, self.bar, self.shown = desc, None, 0

    def __call__(self, done: int, total):
        if self.bar is None:
            self.bar = progress_bar(total, self.desc, unit="B", unit_scale=True, initial=done)
            self.shown = done
        self.bar.update(done - self.shown)
        self.shown = done
        if total is not None and done >= total:
            self.bar.close()


def _reporter(progress, url, enabled=True):
    """The caller's progress(done, total) callback, else a byte bar on stderr (unless disabled)."""
    if progress is not None:
        return progress
    if enabled:
        return ByteBar(f"download {archive_name(url)}")
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


def archive_name_of(path: Path) -> str:
    """The archive's own name for a final or partial file (<name> or <name>.part)."""
    return path.name[:-len(".part")] if path.name.endswith(".part") else path.name


def _refused(path: Path, record: Path, reason: str) -> DataError:
    """Move a refused archive aside to <name>.refused (kept for inspection, out of the next
    download's way), drop its record, and return the one-line error saying so."""
    aside = path.with_name(f"{archive_name_of(path)}.refused")
    try:
        os.replace(path, aside)
        where = f"moved it aside to {aside}"
    except OSError as e:
        where = f"could not move it aside ({_one_line(e)}), delete {path}"
    try:
        record.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        where += f" and {record} ({_one_line(e)})"
    return DataError(f"{reason}; {where}; run again to download a fresh copy")


def _read_record(record: Path) -> dict:
    """The JSON record written after a verified download, or {} when missing or unreadable."""
    try:
        info = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    well_formed = (isinstance(info, dict) and isinstance(info.get("size"), int)
                   and isinstance(info.get("sha256"), str))
    return info if well_formed else {}


def _reverify_cached(final: Path, record: Path, info: dict, pinned, url: str) -> Archive:
    """Check a cached archive again before it is used: its size and sha256 against its record (and
    the pinned sha256), and its members' CRCs if an older version recorded it without them."""
    size = final.stat().st_size
    if size != info["size"]:
        raise _refused(final, record, f"cached archive {final} has {size:,} bytes, but "
                                      f"{info['size']:,} were recorded when it was downloaded")
    digest = file_sha256(final)
    if digest != info["sha256"]:
        raise _refused(final, record, f"cached archive {final} has sha256 {digest}, not the "
                                      f"{info['sha256']} recorded when it was downloaded")
    if pinned and digest != pinned:
        raise _refused(final, record, f"archive {final} has sha256 {digest}, not the expected "
                                      f"{pinned} (--sha256)")
    if not info.get("members_verified"):
        try:
            verify_zip(final)
        except DataError as e:
            raise _refused(final, record, str(e)) from None
        atomic_write_bytes(record, json.dumps({**info, "members_verified": True}).encode())
    return Archive(final, url, size, digest)


def fetch_archive(url: str, downloads: Path, expected_sha256=None, progress=None, log=print,
                  show_progress=True) -> Archive:
    """Return the verified archive at `url`, downloading or resuming it into `downloads` if needed.

    A new download must match the server's announced size, the size on record for known archives,
    `expected_sha256` if given (else the sha256 on record if the archive is known), and the CRC-32 of
    every member; a cached one is re-verified (see _reverify_cached). A refused file is moved aside
    and DataError is raised, so a bad archive is never used. progress(done, total) replaces the
    stderr bar, which `show_progress=False` turns off.
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
        info = _read_record(record) if final.is_file() else {}
        if info:
            return _reverify_cached(final, record, info, pinned, url)
        log(f"data: downloading {url} into {folder}")
        _download(url, part, _reporter(progress, url, show_progress), log)
        size = part.stat().st_size
        if known_size is not None and size != known_size:
            raise _refused(part, record, f"downloaded {name} has {size:,} bytes, expected {known_size:,}")
        digest = file_sha256(part)
        want = pinned or known_sha
        if want and digest != want:
            raise _refused(part, record, f"checksum mismatch for {name}: got sha256 {digest}, "
                                         f"expected {want}")
        try:
            verify_zip(part)
        except DataError as e:
            raise _refused(part, record, str(e)) from None
        os.replace(part, final)
        atomic_write_bytes(record, json.dumps({"url": url, "size": size, "sha256": digest,
                                               "members_verified": True}).encode())
        log(f"data: downloaded {size:,} bytes, sha256 {digest}")
        return Archive(final, url, size, digest)
