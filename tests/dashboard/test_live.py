"""The live stream's alert watch: one database poll per web process, however many streams listen."""

from __future__ import annotations

import asyncio
import contextlib

from anyio import to_thread

from brightkitchen.contract import encode, topic_for
from dashboard.web.routers.live import AlertWatch


def test_one_poll_wakes_every_stream_and_stops_with_the_last(sessions, tenants, persister, make_event):
    watch = AlertWatch(sessions, poll_s=0.05)
    ev = make_event(restaurant="r-a")

    async def main() -> tuple[int, list[int]]:
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(3):
                await streams.enter_async_context(watch.listening())
            version = watch.version
            waiting = [asyncio.create_task(watch.wait(version, timeout=30)) for _ in range(3)]
            await asyncio.sleep(0.5)
            assert not any(w.done() for w in waiting)  # polls that found nothing wake nobody
            polls = watch.polls
            await to_thread.run_sync(persister.handle, topic_for(ev), encode(ev))
            woke = await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
            assert await watch.wait(woke[0], timeout=0.1) == woke[0]  # a timeout returns the same version
        stopped = watch.polls
        await asyncio.sleep(0.3)
        assert watch.polls == stopped  # the last stream closed: no more polling
        return polls, woke

    polls, woke = asyncio.run(main())
    assert woke == [1, 1, 1]
    assert 3 <= polls <= 12  # ~10 in 0.5 s at 0.05 s: one poller for three streams, not three

    async def again() -> int:  # another event loop (a second test client, a server restart): it works too
        async with watch.listening():
            waiting = asyncio.create_task(watch.wait(watch.version, timeout=10))
            await asyncio.sleep(0.2)
            await to_thread.run_sync(persister.handle, topic_for(ev2), encode(ev2))
            return await waiting

    ev2 = make_event(restaurant="r-b")
    assert asyncio.run(again()) == 2
