"""Letters rendered in worker processes (``letters.Renderer``): the same files as in the
service's own thread; a worker that dies fails only its letter, as a transient failure, and
the next letter gets a new worker; a worker ends with the service, even a killed one. Real
processes, no fake."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from services.notification import letters
from services.notification.channels import TransientSendError
from services.notification.templates import Templates
from tests.unit.notification.test_templates_and_letters import _letter


async def test_a_worker_process_renders_the_same_files_as_the_services_thread(
        tmp_path: Path) -> None:
    letter = _letter(Templates.load())
    in_thread = await letters.Renderer(0).write(tmp_path / "thread", letter)
    renderer = letters.Renderer(1)
    try:
        in_worker = await renderer.write(tmp_path / "worker", letter)
        worker = renderer._pool._processes  # type: ignore[union-attr]
        assert worker and all(pid != os.getpid() for pid in worker)
    finally:
        renderer.close()
    assert in_worker == in_thread
    for name in in_thread.files:
        day = in_thread.day
        assert (tmp_path / "worker" / day / name).read_bytes() == \
            (tmp_path / "thread" / day / name).read_bytes()


async def test_a_worker_that_dies_fails_its_letter_as_transient_and_the_next_gets_a_new_one(
        tmp_path: Path) -> None:
    letter = _letter(Templates.load())
    renderer = letters.Renderer(1)
    try:
        await renderer.write(tmp_path, letter)
        (pid,) = renderer._pool._processes  # type: ignore[union-attr]
        renderer._pool.submit(os.kill, pid, signal.SIGKILL)  # type: ignore[union-attr]
        with pytest.raises(TransientSendError, match="renderer"):
            for _ in range(50):  # until the pool notices its worker is gone
                await renderer.write(tmp_path, letter)
                await asyncio.sleep(0.05)
        stored = await renderer.write(tmp_path, letter)
        assert stored.pages and pid not in renderer._pool._processes  # type: ignore[union-attr]
    finally:
        renderer.close()


def test_a_worker_ends_when_the_service_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, os, sys, time
        from pathlib import Path
        from services.notification import letters
        from services.notification.templates import Templates
        from tests.unit.notification.test_templates_and_letters import _letter

        async def main():
            r = letters.Renderer(1)
            await r.write(Path(sys.argv[1]), _letter(Templates.load()))
            print(" ".join(map(str, r._pool._processes)), flush=True)
            time.sleep(120)

        if __name__ == "__main__":
            asyncio.run(main())
    """)
    (tmp_path / "service.py").write_text(script)
    root = str(Path(__file__).parents[3])
    service = subprocess.Popen([sys.executable, str(tmp_path / "service.py"), str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, cwd=root,
                               env={**os.environ, "PYTHONPATH": root})
    try:
        workers = [int(p) for p in service.stdout.readline().split()]  # type: ignore[union-attr]
        assert workers and all(psutil.pid_exists(p) for p in workers)
    finally:
        service.kill()
        service.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived the killed service"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
