#!/usr/bin/env bats
# Deadlines against slow clients (SPEC 10.3): --timeout for a whole command
# line, --min-data-rate in a message, --session-timeout for the session.
# Each test's client trickles far longer than the deadline and reports how
# far it got before the server cut it off with 421 4.4.2: a condition, not
# a measured time.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
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
	    elif mode == "data":
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
}

@test "--timeout: complete commands keep the session alive, each answered in time" {
	SERVER_EXIT=1
	start_server --timeout 2 --session-timeout 8 "$HANDLERS/accept"
	run trickle noop
	assert_success
	# Only the session deadline ends it: NOOPs every 0.5 s beat --timeout 2.
	assert_output --regexp '^cut after ([5-9]|[1-9][0-9]+) steps: 421 4\.4\.2 '
}

@test "--min-data-rate: a message trickled at 80 B/s is cut after the grace period" {
	SERVER_EXIT=1
	start_server --min-data-rate 1000 "$HANDLERS/dump"
	run trickle data
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
	assert_no_message
}

@test "--min-data-rate covers BDAT: 40-octet chunks, one a second, are cut after the grace period" {
	SERVER_EXIT=1
	start_server --min-data-rate 1000 "$HANDLERS/dump"
	run trickle bdat
	assert_success
	# Each chunk answered in time beats --timeout; the rate from the first
	# BDAT on does not.
	assert_output --regexp '^cut after ([1-9][0-9]) steps: 421 4\.4\.2 '
	assert_no_message
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
	# Cut by the session deadline only, long after the 10 s grace.
	assert_output --regexp '^cut after ([2-9][0-9]|1[0-9][0-9]) steps: 421 4\.4\.2 '
}

@test "--session-timeout caps the session whatever the client does" {
	SERVER_EXIT=1
	start_server --session-timeout 3 "$HANDLERS/accept"
	run trickle noop
	assert_success
	assert_output --regexp '^cut after [0-9]+ steps: 421 4\.4\.2 '
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
