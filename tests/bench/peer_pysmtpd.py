"""Peer: Python 3.11's smtpd module, the way its users write a server.

An SMTPServer subclass whose process_message runs the sink with
subprocess, then asyncore.loop().  usage: peer_pysmtpd.py PORT SINK
"""
import asyncore
import subprocess
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
import smtpd  # noqa: E402  (deprecated in 3.11, removed in 3.12)


class SinkServer(smtpd.SMTPServer):
    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        r = subprocess.run([SINK], input=data)
        return None if r.returncode == 0 else "451 4.3.0 sink failed"


PORT, SINK = int(sys.argv[1]), sys.argv[2]
SinkServer(("127.0.0.1", PORT), None, data_size_limit=64 * 1024 * 1024,
           decode_data=False)
asyncore.loop()
