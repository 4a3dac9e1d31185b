"""Checking and safely, atomically extracting a downloaded zip archive."""
import os
import shutil
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from storage.files import fsync_dir
from storage.lock import file_lock
from imagedata.errors import DataError

# Microsoft's archive unpacks to about 0.85 GB; anything claiming far more is refused (zip bomb).
MAX_UNPACKED_BYTES = 8 * 1024 ** 3


def _check_members(zf: zipfile.ZipFile, zip_path: Path) -> None:
    """Refuse absolute paths, '..' components and implausibly large content."""
    total = 0
    for info in zf.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DataError(f"archive {zip_path} holds an unsafe path {info.filename!r}; "
                            "refusing to unpack")
        total += info.file_size
    if total > MAX_UNPACKED_BYTES:
        raise DataError(f"archive {zip_path} would unpack to {total:,} bytes; refusing to unpack")


def verify_zip(zip_path: Path) -> None:
    """Check a zip before it is used: safe member paths, a plausible unpacked size, and every
    member's CRC-32 against the zip's own central directory (each member is decompressed once).

    This is the check that remains for an archive without a published checksum: a transfer that
    corrupted any byte of a member's data fails its CRC. Raises DataError with a one-line reason.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            _check_members(zf, zip_path)
            corrupt = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise DataError(f"{zip_path} is not a valid zip archive ({e})") from None
    if corrupt is not None:
        raise DataError(f"archive {zip_path}: member {corrupt!r} does not match the CRC-32 in the "
                        "zip's directory (corrupt download)")


def extract_zip(zip_path: Path, dest: Path) -> Path:
    """Unpack `zip_path` into `dest` (once): into a temporary sibling folder, then one rename.

    `dest` therefore either does not exist or is complete. A lock keeps concurrent callers (MPI
    ranks) from unpacking twice.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.with_name(f"{dest.name}.lock")):
        if dest.is_dir():
            return dest
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with zipfile.ZipFile(zip_path) as zf:
                _check_members(zf, zip_path)
                zf.extractall(tmp)
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{zip_path} is not a valid zip archive ({e}); "
                            "delete it to download again") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.rename(tmp, dest)
        fsync_dir(dest.parent)
    return dest
