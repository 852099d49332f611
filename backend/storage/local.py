"""Blobs as files under one directory: the default store, for a single machine.

Every ``put`` writes a temporary file in the destination directory, flushes and fsyncs it, renames it over
the destination with ``os.replace`` (atomic on POSIX) and fsyncs the directory: readers see the old blob or
the new one, never a partial one, and after a crash or power loss the blob is the old one or the new one.
A crash mid-write can leave a temporary file (``.<name>.~<16 hex>.tmp``); such names are never valid keys,
so ``get``/``exists``/``iter_keys`` ignore them, and :meth:`LocalBlobStore.cleanup_temp` removes them.

Files are created 0600 and directories 0700 (the root included). Symlinks are never followed.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .base import BlobError, BlobNotFound, BlobStore, normalize_prefix, validate_key

FILE_MODE = 0o600
DIR_MODE = 0o700
_TEMP_NAME = re.compile(r"\..+\.~[0-9a-f]{16}\.tmp")
_VALID_NAME = re.compile(r"[A-Za-z0-9._-]+")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _is_temp_name(name: str) -> bool:
    return _TEMP_NAME.fullmatch(name) is not None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            os.chmod(self.root, DIR_MODE)
        except OSError as exc:
            raise BlobError(f"cannot prepare blob store directory {self.root}: {exc}") from exc
        if not self.root.is_dir():
            raise BlobError(f"blob store root {self.root} is not a directory")

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r})"

    # -- helpers -------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _check_folders(self, path: Path) -> bool:
        """Whether every folder between root and ``path`` exists; a symlink among them raises :class:`BlobError`.

        (The root is 0700 and only this service writes below it, so a symlink there is a misconfiguration or an
        intrusion: refused rather than followed out of the store.)"""
        current = self.root
        for part in path.parent.relative_to(self.root).parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return False
            if stat.S_ISLNK(mode):
                key = current.relative_to(self.root).as_posix()
                raise BlobError(f"refusing to follow a symlink at {key!r} in the blob store")
            if not stat.S_ISDIR(mode):
                return False
        return True

    def _make_dirs(self, directory: Path) -> None:
        """Create ``directory`` (below root) level by level with mode 0700, fsyncing each new entry."""
        current = self.root
        for part in directory.relative_to(self.root).parts:
            parent, current = current, current / part
            try:
                os.mkdir(current, DIR_MODE)
            except FileExistsError:
                mode = os.lstat(current).st_mode
                if not stat.S_ISDIR(mode):
                    key = current.relative_to(self.root).as_posix()
                    if stat.S_ISLNK(mode):
                        raise BlobError(
                            f"refusing to follow a symlink at {key!r} in the blob store"
                        ) from None
                    raise BlobError(f"cannot store below {key!r}: it is a blob, not a folder") from None
                continue
            os.chmod(current, DIR_MODE)
            _fsync_dir(parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove ``directory`` and its ancestors below root while they are empty."""
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = directory.parent

    # -- the interface -------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob data must be bytes, not {type(data).__name__}")
        payload = memoryview(data).cast("B")
        for attempt in range(3):
            try:
                self._make_dirs(path.parent)
                temp = path.parent / f".{path.name}.~{secrets.token_hex(8)}.tmp"
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, FILE_MODE)
            except FileNotFoundError:
                # A concurrent delete pruned the (then empty) folder between mkdir and open: retry.
                if attempt == 2:
                    raise BlobError(
                        f"cannot create a file for blob {key!r}: folder keeps vanishing"
                    ) from None
                continue
            except OSError as exc:
                raise BlobError(f"cannot write blob {key!r}: {exc}") from exc
            break
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                view = payload
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException as exc:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            if isinstance(exc, IsADirectoryError):
                raise BlobError(f"cannot store blob {key!r}: it is a folder of other blobs") from exc
            if isinstance(exc, OSError):
                raise BlobError(f"cannot write blob {key!r}: {exc}") from exc
            raise
        try:
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BlobError(f"blob {key!r} written but its folder could not be fsynced: {exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        if not self._check_folders(path):
            raise BlobNotFound(key)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BlobError(f"refusing to follow a symlink at blob {key!r}") from exc
            raise BlobError(f"cannot read blob {key!r}: {exc}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BlobNotFound(key)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise BlobError(f"cannot read blob {key!r}: {exc}") from exc
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not self._check_folders(path):
            return
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise BlobError(f"cannot delete blob {key!r}: {exc}") from exc
        self._prune_empty_dirs(path.parent)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        if not self._check_folders(path):
            return False
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise BlobError(f"cannot check blob {key!r}: {exc}") from exc

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        normalized = normalize_prefix(prefix)
        start = self.root.joinpath(*normalized.split("/")) if normalized else self.root
        if normalized and (not self._check_folders(start) or os.path.islink(start)):
            return
        yield from self._walk(start, normalized)

    def _walk(self, directory: Path, key_prefix: str) -> Iterator[str]:
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e)
                    for e in scan
                    if _VALID_NAME.fullmatch(e.name) and e.name not in (".", "..")
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise BlobError(f"cannot list blobs under {key_prefix!r}: {exc}") from exc
        # Sorting files by name and folders by name + "/" yields keys in plain ascending string order.
        for sort_name, entry in sorted(entries, key=lambda item: item[0]):
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if sort_name.endswith("/"):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                yield key

    def iter_modified(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        for key in self.iter_keys(prefix):
            try:
                moment = os.lstat(self._path(key)).st_mtime
            except FileNotFoundError:
                continue  # deleted while listing
            yield key, datetime.fromtimestamp(moment, UTC)

    def delete_prefix(self, prefix: str) -> int:
        normalized = self._prefix_for_delete(prefix)
        directory = self.root.joinpath(*normalized.split("/"))
        count = 0
        for key in list(self.iter_keys(normalized)):
            try:
                os.unlink(self._path(key))
                count += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BlobError(f"cannot delete blob {key!r} under {normalized!r}: {exc}") from exc
        # Erasure must leave nothing behind: temporary files of crashed writes and empty folders too.
        if directory.is_dir() and not directory.is_symlink():
            for current, dirnames, filenames in os.walk(directory, topdown=False):
                for name in filenames:
                    if _is_temp_name(name):
                        try:
                            os.unlink(os.path.join(current, name))
                        except FileNotFoundError:
                            pass
                try:
                    os.rmdir(current)
                except OSError:
                    pass
        self._prune_empty_dirs(directory.parent)
        return count

    def cleanup_temp(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by crashed writes, if last modified over ``older_than`` seconds ago.

        The default of an hour spares writes in flight in other processes; pass 0 at a start-up where no other
        process writes. Returns how many were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for current, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not _is_temp_name(name):
                    continue
                path = os.path.join(current, name)
                try:
                    if os.lstat(path).st_mtime <= cutoff:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
