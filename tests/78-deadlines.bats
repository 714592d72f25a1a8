#!/usr/bin/env bats
# Deadlines against slow clients (SPEC 10.3): --timeout for a whole command
# line, --min-data-rate in a message, --session-timeout for the session.
# Each test's client trickles far longer than the deadline until the
# server cuts it off with 421 4.4.2; the server's log names the deadline
# that did it: the order of events, not a count of the client's steps.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
}

# cut_by: the server's log line naming the deadline that ended the
# session ("timeout: WHICH[, N octets in M ms of the message]").
cut_by() {
	wait_for 10 grep -q ']: timeout: ' "$SERVER_LOG" || return
	grep -o ']: timeout: .*' "$SERVER_LOG" | cut -c4-
}

# assert_rate_cut_after_grace: cut by --min-data-rate, and not before the
# 10 s grace counted from the message's start (a lower bound: it cannot
# fail because the machine is slow).
assert_rate_cut_after_grace() {
	local ms
	run cut_by
	assert_output --regexp '^timeout: data rate \(--min-data-rate\), [0-9]+ octets in [0-9]+ ms of the message$'
	ms=$(sed 's/.* octets in \([0-9]*\) ms .*/\1/' <<<"$output")
	[ "$ms" -ge 10000 ] || fail "cut after $ms ms, inside the 10 s grace"
}

# trickle MODE: a client over TCP to $PORT; prints what ended it.
trickle() {
	python3 - "$PORT" "$1" <<-'EOF'
	import socket, sys, time
	port, mode = int(sys.argv[1]), sys.argv[2]
	s = socket.create_connection(("127.0.0.1", port))
	buf = b""
	def line(timeout):
	    """The next reply line, b"" at EOF, None if none came in time."""
	    global buf
	    end = time.monotonic() + timeout
	    while b"\n" not in buf:
	        left = end - time.monotonic()
	        if left <= 0:
	            return None
	        s.settimeout(left)
	        try:
	            got = s.recv(4096)
	        except socket.timeout:
	            return None
	        except OSError:
	            got = b""
	        if not got:
	            return b""
	        buf += got
	    i = buf.index(b"\n") + 1
	    out, buf = buf[:i], buf[i:]
	    return out
	def reply(timeout=10):
	    while True:
	        l = line(timeout)
	        if not l or l[3:4] != b"-":
	            return l
	reply()
	if mode == "credit":
	    # A first message of 100 kB at once: at 1000 B/s, credit for
	    # 100 s, which must not carry over to the next message.
	    for cmd in (b"EHLO c", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA"):
	        s.sendall(cmd + b"\r\n")
	        reply()
	    # Its end and the next envelope in one write (RFC 2920), so that
	    # the server never waits outside a message in between.
	    s.sendall((b"y" * 998 + b"\r\n") * 100 + b".\r\nMAIL FROM:<a@example.org>\r\n"
	              b"RCPT TO:<b@example.net>\r\nDATA\r\n")
	    assert reply().startswith(b"250"), "first message refused"
	    for i in range(3):
	        reply()
	if mode in ("data", "data-fast", "bdat"):
	    for cmd in (b"EHLO c", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.net>", b"DATA"):
	        if cmd == b"DATA" and mode == "bdat":
	            break
	        s.sendall(cmd + b"\r\n")
	        reply()
	# Each step sends a little, then looks for a reply for 0.5 s.
	# data-fast: 15 s, past the 10 s grace; the others 60 s at most.
	for i in range(30 if mode == "data-fast" else 120):
	    if mode == "line":
	        chunk = b"N"                  # one command line, never ended
	    elif mode == "noop":
	        chunk = b"NOOP\r\n"           # complete commands, for ever
	    elif mode in ("data", "credit"):
	        chunk = b"x" * 40             # 80 B/s: below the rate
	    elif mode == "bdat" and i % 2 == 0:
	        chunk = b"BDAT 40\r\n"       # a chunk of 40 per second:
	    elif mode == "bdat":
	        chunk = b"x" * 40             # each answered, rate too low
	    else:
	        chunk = b"x" * 4000 + b"\r\n" # 8 kB/s: above it
	    try:
	        s.sendall(chunk)
	    except OSError:
	        print("cut after %d steps: reset" % i)
	        sys.exit(0)
	    l = line(0.5)
	    if l is None or (mode in ("noop", "bdat") and l.startswith(b"250")):
	        if mode in ("noop", "bdat") and l is not None:
	            time.sleep(0.5)
	        continue
	    print("cut after %d steps: %s" % (i, l.decode().strip()))
	    sys.exit(0)
	if mode == "data-fast":
	    s.sendall(b"\r\n.\r\nQUIT\r\n")
	    print("kept up: %s" % reply().decode().strip())
	    sys.exit(0)
	print("never cut")
	sys.exit(1)
	EOF
}

@test "--timeout is a deadline for a whole command line: a byte every 0.5 s is cut" {
	SERVER_EXIT=1
	start_server --timeout 2 "$HANDLERS/accept"
	run trickle line
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 mx\.test Error: timeout exceeded$'
	run cut_by
	assert_output 'timeout: command line (--timeout)'
}

@test "--timeout: complete commands keep the session alive, each answered in time" {
	SERVER_EXIT=1
	start_server --timeout 2 --session-timeout 8 "$HANDLERS/accept"
	run trickle noop
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	# Only the session deadline ends it: NOOPs every 0.5 s beat --timeout 2.
	run cut_by
	assert_output 'timeout: session (--session-timeout)'
}

@test "--min-data-rate: a message trickled at 80 B/s is cut after the grace period" {
	SERVER_EXIT=1
	start_server --min-data-rate 1000 "$HANDLERS/dump"
	run trickle data
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	assert_no_message
	assert_rate_cut_after_grace
}

@test "--min-data-rate covers BDAT: 40-octet chunks, one a second, are cut after the grace period" {
	SERVER_EXIT=1
	start_server --min-data-rate 1000 "$HANDLERS/dump"
	run trickle bdat
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	assert_no_message
	# Each chunk answered in time beats --timeout; the rate from the first
	# BDAT on does not.
	assert_rate_cut_after_grace
}

@test "--min-data-rate: a client sending 8 kB/s keeps up and its message is delivered" {
	start_server --min-data-rate 1000 "$HANDLERS/dump"
	run trickle data-fast
	assert_success
	assert_output --regexp '^kept up: 250 2\.0\.0 '
}

@test "--min-data-rate 0 turns the rate check off" {
	SERVER_EXIT=1
	start_server --min-data-rate 0 --session-timeout 15 "$HANDLERS/dump"
	run trickle data
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	# Cut by the session deadline only, long after the 10 s grace.
	run cut_by
	assert_output --regexp '^timeout: session \(--session-timeout\), '
}

@test "--session-timeout caps the session whatever the client does" {
	SERVER_EXIT=1
	start_server --session-timeout 3 "$HANDLERS/accept"
	run trickle noop
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	run cut_by
	assert_output 'timeout: session (--session-timeout)'
}

@test "--session-timeout never cuts a running handler: its reply comes, then 421" {
	cat >"$BATS_TEST_TMPDIR/slow" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	exec sleep 3
	EOF
	chmod +x "$BATS_TEST_TMPDIR/slow"
	run --separate-stderr smtp_session --session-timeout 1 "$BATS_TEST_TMPDIR/slow" <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	NOOP
	EOF
	assert_failure 1
	assert_reply_after . 250
	assert_line --index -1 $'421 4.4.2 mx.test Error: timeout exceeded\r'
}

@test "--session-timeout and --min-data-rate take numbers like the others" {
	run --separate-stderr "$SMTPD" --session-timeout 0 "$HANDLERS/accept" </dev/null
	assert_failure 64
	run --separate-stderr "$SMTPD" --min-data-rate -1 "$HANDLERS/accept" </dev/null
	assert_failure 64
}

@test "--min-data-rate: a large first message gives the next one no credit" {
	SERVER_EXIT=1
	start_server --min-data-rate 1000 --session-timeout 50 "$HANDLERS/dump"
	run trickle credit
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	# By the rate of the second message alone, not by the session.
	assert_rate_cut_after_grace
	assert_equal "$(ls "$DUMP")" 1
}

@test "--min-data-rate: the clock restarts at the next 354, after a handler that ran past the grace" {
	# The handler's run is the scenario: longer than the 10 s grace.
	cat >"$BATS_TEST_TMPDIR/slow" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	exec sleep 11
	EOF
	chmod +x "$BATS_TEST_TMPDIR/slow"
	start_server --min-data-rate 1000 "$BATS_TEST_TMPDIR/slow"
	run python3 -c "import sys
sys.path.insert(0, '$FIXTURES')
from rfc2920 import ehlo, envelope, until, rest
s, got = ehlo($PORT)
got += envelope(s)
# The first message's end and the next envelope, pipelined.
s.sendall(b'one\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n')
got += until(s, b'354 End data with <CR><LF>.<CR><LF>\r\n')
s.sendall(b'two\r\n.\r\nQUIT\r\n')
got += rest(s)
print(' '.join(l[:3].decode() for l in got.split(b'\r\n')[:-1] if l[3:4] != b'-'))"
	assert_success
	assert_output '220 250 250 250 354 250 250 250 354 250 221'
}

@test "--session-timeout cuts a client that does not read its replies, on a socket" {
	SERVER_EXIT=1
	start_server --session-timeout 3 "$HANDLERS/accept"
	# EHLO, then NOOPs without end and never a read: the replies fill
	# both socket buffers and the server's write waits.
	timeout -k 5 60 python3 - "$PORT" <<-'EOF' 3>&- &
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	f = s.makefile("rb")
	f.readline()
	s.sendall(b"EHLO c\r\n")
	while not f.readline().startswith(b"250 "):
	    pass
	try:
	    while True:
	        s.sendall(b"NOOP\r\n" * 1000)
	except OSError:
	    pass
	EOF
	local client=$!
	# The server ends by itself, long before the 60 s of its timeout(1).
	wait_for 60 grep -q 'exit=1' "$SERVER_LOG"
	kill "$client" 2>/dev/null || true
	wait "$client" 2>/dev/null || true
	run grep -c 'write to client: timeout' "$SERVER_LOG"
	assert_output 1
}

@test "--session-timeout cuts a client that does not read its replies, over pipes" {
	printf 'EHLO c\r\n' >"$BATS_TEST_TMPDIR/in"
	yes NOOP | head -n 200000 | sed 's/$/\r/' >>"$BATS_TEST_TMPDIR/in"
	# fd 1 is a pipe whose reader never reads.
	run --separate-stderr python3 -c 'import os, subprocess, sys
r, w = os.pipe()
p = subprocess.Popen(sys.argv[2:], stdin=open(sys.argv[1], "rb"), stdout=w)
os.close(w)
print(p.wait())' "$BATS_TEST_TMPDIR/in" timeout -k 5 60 "$SMTPD" --hostname mx.test \
	    --log stderr --session-timeout 3 "$HANDLERS/accept"
	assert_success
	assert_output 1
	assert_regex "$stderr" 'write to client: timeout'
}

@test "--min-data-rate: a first BDAT chunk sent with the envelope counts, a pause after it that its octets pay for is no cut" {
	# 40000 octets at once behind MAIL, RCPT and BDAT (one read, before
	# the transaction's clock started), then a 12 s pause: by the average
	# since the first BDAT the client is 40 s ahead.  They counted as 0.
	run --separate-stderr python3 - "$SMTPD" "$HANDLERS/accept" <<-'PY'
	import socket, subprocess, sys, time
	lsn = socket.create_server(("127.0.0.1", 0))
	cli = socket.create_connection(lsn.getsockname(), timeout=50)
	srv, _ = lsn.accept()
	p = subprocess.Popen(["timeout", "-k", "5", "60", sys.argv[1], "--hostname", "mx.test",
	    "--log", "stderr", "--min-data-rate", "1000", sys.argv[2]], stdin=srv, stdout=srv)
	srv.close()
	f = cli.makefile("rb")
	def reply():
	    while True:
	        l = f.readline()
	        if l[3:4] != b"-":
	            return l[:3].decode() or "EOF"
	got = [reply()]
	cli.sendall(b"EHLO c\r\n")
	got.append(reply())
	cli.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 40000\r\n" + b"x" * 40000)
	got += [reply(), reply(), reply()]
	time.sleep(12)	# the scenario: longer than the 10 s grace
	try:
	    cli.sendall(b"BDAT 2 LAST\r\nyz")
	    got.append(reply())
	    cli.sendall(b"QUIT\r\n")
	    got.append(reply())
	except OSError as e:
	    got.append(type(e).__name__)
	print(" ".join(got), "exit", p.wait())
	PY
	assert_success
	assert_output '220 250 250 250 250 250 221 exit 0'
}
