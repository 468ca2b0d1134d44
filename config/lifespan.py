import asyncio
import contextlib


class Lifespan:
    """What every server process runs beside its requests: the sweeper that moves on
    driver searches whose offers timed out (any process may take any search)."""

    async def __call__(self, scope, receive, send):
        from dispatch.sweeper import searches_sweep_forever

        sweeper = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                sweeper = asyncio.create_task(searches_sweep_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if sweeper is not None:
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper
                await send({"type": "lifespan.shutdown.complete"})
                return
