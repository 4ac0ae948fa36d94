"""The output folder's lock: a live holder keeps it, a gone one loses it, ``--break-lock`` takes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nsfw_scan.storage.lock import LockHeld, OutputLock
from nsfw_scan.storage.options import StorageOptions
from support.cli import nsfw_scan
from support.stores import image_bytes

HOLD = "import sys, time; from nsfw_scan.storage.lock import OutputLock\n" \
       "with OutputLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n"


def test_local_folder_one_writer_and_a_killed_holder(tmp_path):
    (tmp_path / "a.png").write_bytes(image_bytes(1))
    (tmp_path / "m.txt").write_text("a.png\n")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        refused = nsfw_scan("run", "--manifest", tmp_path / "m.txt", "--output", out)
        assert refused.returncode == 2 and refused.stdout == ""
        assert f"{out}/_LOCK: another run is writing to this output folder (host " in refused.stderr
        assert f", pid {holder.pid}, started at " in refused.stderr and "Traceback" not in refused.stderr
        assert not list(out.glob("run-*"))
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with OutputLock(str(out)):  # free at once: the kernel released it with the process
        assert json.loads((out / "_LOCK").read_text())["pid"] == os.getpid()
        with pytest.raises(LockHeld):
            OutputLock(str(out)).__enter__()
    assert not (out / "_LOCK").exists()


def _record(host: str, pid: int, age: float) -> bytes:
    at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - age))
    return json.dumps({"host": host, "pid": pid, "started_at": at, "refreshed_at": at, "token": "x"}).encode()


def test_object_store_lock_rules(store):
    storage = StorageOptions.from_beam_args(store.flags).apply()
    folder = store.uri("out")
    store.put("out/_LOCK", _record("elsewhere", 1, age=5))  # a live run on another machine
    with pytest.raises(LockHeld, match="host elsewhere, pid 1, "):
        OutputLock(folder, storage).__enter__()
    with OutputLock(folder, storage, break_lock=True):  # the operator knows better
        assert json.loads(store.get("out/_LOCK"))["pid"] == os.getpid()
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}, "):
            OutputLock(folder, storage).__enter__()  # this process is alive
    assert not store.keys("out/_LOCK")

    store.put("out/_LOCK", _record("elsewhere", 1, age=3600))  # not refreshed for an hour
    with OutputLock(folder, storage):
        assert json.loads(store.get("out/_LOCK"))["pid"] == os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    store.put("out/_LOCK", _record(socket.gethostname(), int(dead.stdout), age=5))  # this host, process gone
    with OutputLock(folder, storage):
        assert json.loads(store.get("out/_LOCK"))["pid"] == os.getpid()


def test_a_lock_taken_over_is_noticed(store, monkeypatch):
    from nsfw_scan.storage import lock as lock_module

    monkeypatch.setattr(lock_module, "REFRESH_SECONDS", 0.2)
    storage = StorageOptions.from_beam_args(store.flags).apply()
    with OutputLock(store.uri("out"), storage) as held:
        store.put("out/_LOCK", _record("elsewhere", 1, age=0))  # someone broke it
        deadline = time.monotonic() + 30
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(LockHeld, match="another run took the lock over"):
            held.check()
    assert json.loads(store.get("out/_LOCK"))["host"] == "elsewhere"  # not removed
