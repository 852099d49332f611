"""SQLite's writers take turns through `WriterLock`: a thread lock within a process and a file lock between
the processes of `dermalink serve --workers N`; a process that dies never leaves the lock held."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from sqlalchemy import column, select, table, text, update

from backend.db import WriterLock, make_engine

HOLD = """
import sys, time
from backend.db import WriterLock
lock = WriterLock(sys.argv[1])
assert lock.acquire(timeout=5)
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_waits_until_the_first_releases(tmp_path):
    database = str(tmp_path / "app.db")
    first, second = WriterLock(database), WriterLock(database)  # two open files: as two processes
    assert first.acquire(timeout=1)
    started = time.monotonic()
    assert not second.acquire(timeout=0.2)  # refused after its timeout, not at once and not never
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, first.release).start()
    assert second.acquire(timeout=5)  # handed over once released
    second.release()


def test_threads_of_one_process_queue_on_the_same_lock(tmp_path):
    lock, inside, overlaps = WriterLock(str(tmp_path / "app.db")), [], []

    def write(i: int) -> None:
        assert lock.acquire(timeout=10)
        try:
            if inside:
                overlaps.append(i)
            inside.append(i)
            time.sleep(0.002)
            inside.remove(i)
        finally:
            lock.release()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [] and inside == []


def test_a_killed_process_leaves_the_lock_free(tmp_path):
    database = str(tmp_path / "app.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = WriterLock(database)
        assert not lock.acquire(timeout=0.2)
        holder.kill()  # kill -9: no release, the kernel drops the file lock with the process
        holder.wait(timeout=30)
        assert lock.acquire(timeout=5)
        lock.release()
    finally:
        holder.kill()


def test_two_engines_on_one_file_write_in_turn_without_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engines = [make_engine(url), make_engine(url)]  # each has its own WriterLock, like two processes
    with engines[0].begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[Exception] = []

    counter = table("counter", column("n"))

    def bump(engine) -> None:  # type: ignore[no-untyped-def]
        from sqlmodel import Session

        try:
            for _ in range(25):
                with Session(engine) as session:
                    # FOR UPDATE takes the write lock before reading (SQLite has no row locks)
                    value = session.execute(select(counter.c.n).with_for_update()).scalar_one()
                    session.execute(update(counter).values(n=value + 1))
                    session.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the test, in its own thread
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(engines[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 100
