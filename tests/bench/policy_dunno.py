"""A Postfix policy server (policy delegation protocol) that answers
action=DUNNO to every request, for W1policy: per connection it reads
name=value lines up to an empty line, answers, and keeps the connection
for the next request, as Postfix's and smtpd-stdio's clients expect.

usage: policy_dunno.py SOCKET
"""
import asyncio
import os
import sys

SOCK = sys.argv[1]


async def serve(reader, writer):
    request = {}
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            line = line.rstrip(b"\n")
            if line:
                name, _, value = line.partition(b"=")
                request[name] = value
                continue
            if request.get(b"request") != b"smtpd_access_policy":
                break
            writer.write(b"action=DUNNO\n\n")
            await writer.drain()
            request = {}
    finally:
        writer.close()


async def main():
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    server = await asyncio.start_unix_server(serve, SOCK)
    async with server:
        await server.serve_forever()


asyncio.run(main())
