"""Peer: aiosmtpd (python3-aiosmtpd), a handle_DATA running the sink.

The sink runs as an asyncio subprocess, so other sessions go on while it
runs.  usage: peer_aiosmtpd.py PORT SINK
"""
import asyncio
import sys

from aiosmtpd.smtp import SMTP

PORT, SINK = int(sys.argv[1]), sys.argv[2]


class SinkHandler:
    async def handle_DATA(self, server, session, envelope):
        proc = await asyncio.create_subprocess_exec(
            SINK, stdin=asyncio.subprocess.PIPE)
        await proc.communicate(envelope.content)
        return "250 OK" if proc.returncode == 0 else "451 4.3.0 sink failed"


async def main():
    handler = SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=64 * 1024 * 1024),
        "127.0.0.1", PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
