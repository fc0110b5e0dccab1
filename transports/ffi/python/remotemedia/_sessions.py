"""The asyncio form of the native package's streaming sessions."""

import asyncio

from ._remotemedia import StreamSession


class AsyncStreamSession:
    """The asyncio form of `StreamSession`: `await session.send(x)`,
    `await session.recv()`, `await session.close()`, `async with`, `async for`.

    Each call runs the blocking session method in a worker thread (the GIL is released
    while the runtime works), so the event loop is never blocked.
    """

    def __init__(self, manifest):
        self._session = StreamSession(manifest)

    @property
    def session_id(self):
        return self._session.session_id

    @property
    def is_active(self):
        return self._session.is_active

    async def send(self, item):
        await asyncio.to_thread(self._session.send, item)

    async def recv(self, timeout=None):
        return await asyncio.to_thread(self._session.recv, timeout)

    async def close(self):
        await asyncio.to_thread(self._session.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await asyncio.to_thread(_next_or_none, self._session)
        if item is None:
            raise StopAsyncIteration
        return item


def _next_or_none(session):
    return next(session, None)


async def open_async_session(manifest):
    """Opens an `AsyncStreamSession` without blocking the event loop."""
    return await asyncio.to_thread(AsyncStreamSession, manifest)
