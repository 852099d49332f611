"""LocalBlobStore only: permissions, atomic replacement, crashes mid-write, symlinks, temp-file cleanup."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from backend.storage import BlobError, LocalBlobStore
from backend.storage import local as local_module

REPO = Path(__file__).resolve().parents[3]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def test_files_are_0600_and_folders_0700(tmp_path: Path) -> None:
    old_umask = os.umask(0o000)  # even a permissive umask must not widen them
    try:
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("patients/p1/images/i.bin", b"x")
    finally:
        os.umask(old_umask)
    root = tmp_path / "blobs"
    assert _mode(root) == 0o700
    assert _mode(root / "patients") == 0o700
    assert _mode(root / "patients/p1") == 0o700
    assert _mode(root / "patients/p1/images") == 0o700
    assert _mode(root / "patients/p1/images/i.bin") == 0o600


def test_a_failed_write_leaves_the_old_blob_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("p/blob.bin", b"old content")
    real_write = os.write

    def write_half_then_fail(fd: int, data: bytes) -> int:  # disk full after half the bytes
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module.os, "write", write_half_then_fail)
    with pytest.raises(BlobError, match="No space left"):
        store.put("p/blob.bin", b"new content that never fully lands")
    monkeypatch.undo()
    assert store.get("p/blob.bin") == b"old content"
    assert _all_files(tmp_path) == ["p/blob.bin"]  # the temp file was removed


def test_a_failed_rename_leaves_the_old_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("p/blob.bin", b"old content")

    def fail_replace(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(local_module.os, "replace", fail_replace)
    with pytest.raises(BlobError, match="Input/output error"):
        store.put("p/blob.bin", b"new content")
    with pytest.raises(BlobError):
        store.put("p/fresh.bin", b"never visible")
    monkeypatch.undo()
    assert store.get("p/blob.bin") == b"old content"
    assert not store.exists("p/fresh.bin")
    assert _all_files(tmp_path) == ["p/blob.bin"]


def test_a_process_killed_mid_write_leaves_the_old_blob(tmp_path: Path) -> None:
    """A real crash: the writing process dies (os._exit) after writing half the new bytes to its temp file."""
    store = LocalBlobStore(tmp_path)
    store.put("patients/p1/image.bin", b"old" * 1000)
    child = textwrap.dedent(
        f"""
        import os, sys
        from backend.storage import local, LocalBlobStore
        real_write = os.write
        def write_half_and_die(fd, data):
            real_write(fd, bytes(data[: len(data) // 2]))
            os._exit(9)
        local.os.write = write_half_and_die
        LocalBlobStore({str(tmp_path)!r}).put("patients/p1/image.bin", b"NEW" * 1000)
        sys.exit(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child],
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert result.returncode == 9
    leftovers = [name for name in _all_files(tmp_path) if name != "patients/p1/image.bin"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp"), leftovers  # the crash left its temp file
    assert (tmp_path / leftovers[0]).read_bytes() == b"NEW" * 500  # ... holding the partial write
    assert store.get("patients/p1/image.bin") == b"old" * 1000  # but the blob is the old one, whole
    assert sorted(store.iter_keys()) == ["patients/p1/image.bin"]  # and the partial file is invisible
    assert store.cleanup_temp() == 0  # too young: could be a write in flight elsewhere
    assert store.cleanup_temp(older_than=0) == 1
    assert _all_files(tmp_path) == ["patients/p1/image.bin"]


def test_readers_never_see_a_partial_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    versions = [bytes([v]) * (256 * 1024) for v in (1, 2)]
    store.put("k.bin", versions[0])
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            store.put("k.bin", versions[i % 2])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = set()
        for _ in range(150):
            data = store.get("k.bin")
            assert data in versions
            seen.add(data[0])
    finally:
        stop.set()
        thread.join()
    assert seen  # every read returned a whole version


def test_erasure_also_removes_crash_leftovers_and_empty_folders(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("patients/p1/images/a.bin", b"a")
    store.put("patients/p2/images/b.bin", b"b")
    leftover = tmp_path / "patients/p1/images/.c.bin.~0123456789abcdef.tmp"
    leftover.write_bytes(b"partial ciphertext")
    assert store.delete_prefix("patients/p1") == 1
    assert not (tmp_path / "patients/p1").exists()
    assert _all_files(tmp_path) == ["patients/p2/images/b.bin"]


def test_delete_prunes_empty_folders(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/b/c/d.bin", b"d")
    store.put("a/e.bin", b"e")
    store.delete("a/b/c/d.bin")
    assert not (tmp_path / "a/b").exists()
    assert (tmp_path / "a/e.bin").exists()


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not for the store")
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("p/real.bin", b"r")
    os.symlink(outside / "secret.txt", tmp_path / "blobs/p/link.bin")
    os.symlink(outside, tmp_path / "blobs/linkdir")
    with pytest.raises(BlobError, match="symlink"):
        store.get("p/link.bin")
    assert store.exists("p/link.bin") is False
    assert sorted(store.iter_keys()) == ["p/real.bin"]
    with pytest.raises(BlobError, match="symlink at 'linkdir'"):
        store.get("linkdir/secret.txt")
    with pytest.raises(BlobError, match="symlink"):
        store.delete("linkdir/secret.txt")
    with pytest.raises(BlobError, match="symlink"):
        store.put("linkdir/new.bin", b"escape")
    assert sorted(store.iter_keys("linkdir")) == []
    assert store.delete_prefix("linkdir") == 0
    store.delete_prefix("p")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"not for the store"


def test_a_key_cannot_be_both_blob_and_folder(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a/b", b"blob")
    with pytest.raises(BlobError, match="it is a blob"):
        store.put("a/b/c", b"below a blob")
    with pytest.raises(BlobError, match="folder"):
        store.put("a", b"over a folder")
    assert store.get("a/b") == b"blob"
    assert _all_files(tmp_path) == ["a/b"]


def test_foreign_files_are_not_keys(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("p/ok.bin", b"ok")
    (tmp_path / "p/has space.bin").write_bytes(b"x")
    (tmp_path / "p/.x.bin.~0123456789abcdef.tmp").write_bytes(b"x")
    assert sorted(store.iter_keys()) == ["p/ok.bin"]
    assert list(store.iter_keys()) == ["p/ok.bin"]


def test_iter_keys_is_in_ascending_order(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    keys = ["a-b", "a/b", "a.b", "a/a/z", "a0", "A", "a/a.x"]
    for key in keys:
        store.put(key, b"x")
    assert list(store.iter_keys()) == sorted(keys)


def test_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(BlobError, match="cannot prepare"):
        LocalBlobStore(tmp_path / "file")
