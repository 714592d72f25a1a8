"""Drive smtpd-stdio through STARTTLS or implicit TLS, over pipes or TCP.

Python's ssl module with memory BIOs, so the same client code talks TLS
over a pair of pipes (the server's stdin/stdout) and over a socket.  The
tests in 83-tls.bats and 84-auth.bats import it:

    from tlsdrive import *
    c = Client.pipe(argv)            # or Client.tcp(port)
    c.reply()                        # the greeting
    c.cmd("EHLO x"); c.cmd("STARTTLS")
    c.starttls(client_context())
    c.cmd("EHLO x") ...
"""
import os
import select
import socket
import ssl
import subprocess
import sys
import time

TIMEOUT = 20.0          # no test waits longer for one reply


def client_context(cafile=None, cert=None, key=None, maximum=None,
                   minimum=None):
    """A client context; without cafile it does not verify."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if maximum:
        ctx.maximum_version = maximum
    if minimum:
        ctx.minimum_version = minimum
    return ctx


class Client:
    """One SMTP client connection, plaintext until starttls()."""

    def __init__(self, rfd, wfd, proc=None, sock=None):
        self.rfd, self.wfd, self.proc, self.sock = rfd, wfd, proc, sock
        self.tls = None
        self.pending = b""          # plaintext (or decrypted) bytes read
        self.eof = False

    @classmethod
    def pipe(cls, argv, stderr=None):
        """The server's stderr goes to $LOG (appended) when it is set."""
        if stderr is None and os.environ.get("LOG"):
            stderr = open(os.environ["LOG"], "a")
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr)
        return cls(proc.stdout.fileno(), proc.stdin.fileno(), proc=proc)

    @classmethod
    def tcp(cls, port, host="127.0.0.1"):
        s = socket.create_connection((host, port), timeout=TIMEOUT)
        return cls(s.fileno(), s.fileno(), sock=s)

    # -- raw transport --------------------------------------------------
    def raw_write(self, data):
        while data:
            n = os.write(self.wfd, data)
            data = data[n:]

    def raw_read(self, timeout=TIMEOUT):
        """Bytes from the server, b"" at EOF, None at timeout."""
        r, _, _ = select.select([self.rfd], [], [], timeout)
        if not r:
            return None
        try:
            return os.read(self.rfd, 65536)
        except ConnectionResetError:
            return b""

    def close_write(self):
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_WR)
        else:
            self.proc.stdin.close()

    # -- TLS over memory BIOs -------------------------------------------
    def _flush_tls(self):
        out = self.outgoing.read()
        if out:
            self.raw_write(out)

    def starttls(self, ctx, server_hostname=None, session=None):
        """Handshake; the bytes read so far must be none (RFC 3207)."""
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing,
                                server_hostname=server_hostname,
                                session=session)
        while True:
            try:
                self.tls.do_handshake()
                self._flush_tls()
                return self.tls
            except ssl.SSLWantReadError:
                self._flush_tls()
                data = self.raw_read()
                if not data:
                    raise ConnectionError("EOF or timeout in handshake")
                self.incoming.write(data)

    def unwrap(self):
        """Send close_notify and go back to plaintext, as a liar would."""
        try:
            self.tls.unwrap()
        except ssl.SSLError:
            pass
        self._flush_tls()
        self.tls = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.tls is None:
            self.raw_write(data)
            return
        self.tls.write(data)
        self._flush_tls()

    def _read_more(self, timeout):
        if self.tls is None:
            data = self.raw_read(timeout)
            if data:
                self.pending += data
            return data
        while True:
            try:
                data = self.tls.read(65536)
                self.pending += data
                return data
            except ssl.SSLWantReadError:
                raw = self.raw_read(timeout)
                if not raw:
                    if raw == b"":
                        self.incoming.write_eof()
                    return raw
                self.incoming.write(raw)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                return b""

    def reply(self, timeout=TIMEOUT):
        """One whole reply as text (lines joined by \\n), "" at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.pending.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) < 4 or line[3:4] == b" ":
                    text = b"\n".join(lines[:i + 1])
                    self.pending = b"\r\n".join(lines[i + 1:])
                    return text.decode("ascii", "replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply; have %r" % self.pending)
            data = self._read_more(left)
            if not data:
                rest = self.pending.decode("ascii", "replace")
                self.pending = b""
                return rest

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def code(self, line):
        return self.cmd(line)[:3]

    def wait(self):
        """The server's exit status (pipes only)."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        return self.proc.wait(timeout=TIMEOUT)

    def close(self):
        if self.sock is not None:
            self.sock.close()


def info(tls):
    """One line a test can grep: version, cipher, resumed."""
    return "version=%s cipher=%s resumed=%d" % (
        tls.version(), tls.cipher()[0], tls.session_reused)


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def dev_log():
    """The syslog socket, /run/systemd/journal/dev-log, bound by us: run
    under unshare -m with a tmpfs of our own on /run."""
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind("/run/systemd/journal/dev-log")
    return log


def print_syslog(log):
    """Prints "syslog MESSAGE" for each message on log: the first within
    10 s, then those already there."""
    r, _, _ = select.select([log], [], [], 10)
    while r:
        print("syslog", log.recv(4096).decode(errors="replace"))
        r, _, _ = select.select([log], [], [], 0)
