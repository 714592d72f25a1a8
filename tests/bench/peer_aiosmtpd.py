"""Peer: aiosmtpd (python3-aiosmtpd), a handle_DATA running the sink.

The sink runs as an asyncio subprocess, so other sessions go on while it
runs.  usage: peer_aiosmtpd.py PORT SINK [CERT KEY]
With CERT and KEY it offers STARTTLS (tls_context) and requires it
before MAIL (require_starttls), as W4 measures it.
"""
import asyncio
import ssl
import sys

from aiosmtpd.smtp import SMTP

PORT, SINK = int(sys.argv[1]), sys.argv[2]
TLS = None
if len(sys.argv) == 5:
    TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    TLS.load_cert_chain(sys.argv[3], sys.argv[4])


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
        lambda: SMTP(handler, data_size_limit=64 * 1024 * 1024,
                     tls_context=TLS, require_starttls=TLS is not None),
        "127.0.0.1", PORT)
    async with server:
        await server.serve_forever()


asyncio.run(main())
