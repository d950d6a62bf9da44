"""A TCP relay to the database that a test cuts and restores: the database unreachable for a
while (closed port, open connections cut), on the shared infrastructure."""

from __future__ import annotations

import asyncio
import contextlib

from deploy.local.infra import free_port


class Gate:
    """A TCP relay to the database that the test closes (the port refuses connections and the
    open ones are cut) and opens again on the same port."""

    def __init__(self, target: str) -> None:
        host_port = target.split("//", 1)[1].split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.target_port = int(port)
        self.port = free_port()
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port,
                                                  reuse_address=True)

    def cut(self) -> None:
        """Refuse new connections and cut the open ones, at once (callable from sync code)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._links):
            w.close()
        self._links.clear()

    async def close(self) -> None:
        self.cut()
        await asyncio.sleep(0)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
