"""A TCP gate in front of a real server, for outage tests: it passes connections through
while open, and when closed refuses new ones and cuts the ones it carries."""

from __future__ import annotations

import asyncio
import contextlib


class Gate:
    """Lets ``allow_first`` connections through, then only while open. Kafka clients reach
    the broker's advertised address after bootstrap, so for Kafka only bootstraps pass here;
    a MongoDB client keeps every connection on the gate."""

    def __init__(self, target: str, allow_first: int = 0, opened: bool = False) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.allow_first = allow_first
        self.opened = asyncio.Event()
        if opened:
            self.opened.set()
        self.connections = 0
        self.refused = 0
        self.address = ""
        self._server: asyncio.Server | None = None
        self._carried: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.close()
        if self._server is not None:
            self._server.close()

    def open(self) -> None:
        self.opened.set()

    def close(self) -> None:
        """Refuse new connections and cut the open ones, as a dead server would."""
        self.opened.clear()
        self.allow_first = 0
        for writer in list(self._carried):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections > self.allow_first and not self.opened.is_set():
            self.refused += 1
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._carried |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        finally:
            self._carried -= {writer, upstream_writer}
            writer.close()
            upstream_writer.close()
