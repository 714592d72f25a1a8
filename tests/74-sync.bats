#!/usr/bin/env bats
# Protocol synchronization (RFC 2920 3.1, RFC 5321 4.3.1): on a socket, a
# client that does not wait for replies where it must is refused with
# 554 5.5.0 and the session ends (exit 1).  Over pipes the check is off.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
}

# talk SCRIPT: run a python3 client against $PORT; SCRIPT gets the socket
# as s and the helpers until(s, end) and rest(s) of tests/fixtures/rfc2920.py.
talk() {
	run python3 -c "import socket, sys
sys.path.insert(0, '$FIXTURES')
from rfc2920 import until, rest
s = socket.create_connection(('127.0.0.1', $PORT), timeout=20)
$1
print(' '.join(l[:3].decode() for l in got.split(b'\r\n')[:-1] if l[3:4] != b'-'))"
}

# early_talk [options]: the test accepts a loopback connection itself,
# the client sends EHLO, and only once those bytes wait in the accepted
# socket is smtpd-stdio started on it (fds 0 and 1), under timeout.
# Prints the client's reply codes and smtpd-stdio's exit status.
early_talk() {
	python3 - "$SMTPD" "$@" <<-'PY'
	import select, socket, subprocess, sys
	lsn = socket.create_server(("127.0.0.1", 0))
	cli = socket.create_connection(lsn.getsockname(), timeout=20)
	srv, _ = lsn.accept()
	cli.sendall(b"EHLO client.example\r\n")
	select.select([srv], [], [], 20)
	assert srv.recv(64, socket.MSG_PEEK) == b"EHLO client.example\r\n"
	p = subprocess.Popen(["timeout", "-k", "5", "60", sys.argv[1],
	    "--hostname", "mx.test", "--log", "stderr", *sys.argv[2:]],
	    stdin=srv, stdout=srv)
	srv.close()
	got = b""
	while chunk := cli.recv(65536):
	    got += chunk
	print(" ".join(l[:3].decode() for l in got.split(b"\r\n")[:-1]
	    if l[3:4] != b"-"))
	print("exit", p.wait())
	PY
}

@test "a client that talks before the greeting gets 554 5.5.0 instead of it" {
	run --separate-stderr early_talk "$HANDLERS/accept"
	assert_success
	assert_output $'554\nexit 1'
	assert_regex "$stderr" 'exit=1'
}

@test "a HELO client that pipelines MAIL behind HELO gets 554 5.5.0" {
	SERVER_EXIT=1
	start_server "$HANDLERS/accept"
	talk 'got = until(s, b"\r\n")
s.sendall(b"HELO client.example\r\nMAIL FROM:<a@example.org>\r\n")
got += rest(s)'
	assert_success
	assert_output '220 554'
}

@test "a HELO client that pipelines MAIL and RCPT gets 554 5.5.0 at MAIL" {
	SERVER_EXIT=1
	start_server "$HANDLERS/accept"
	talk 'got = until(s, b"\r\n")
s.sendall(b"HELO client.example\r\n")
got += until(s, b"\r\n")
s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
got += rest(s)'
	assert_success
	assert_output '220 250 554'
}

@test "commands pipelined behind EHLO get 554 5.5.0" {
	SERVER_EXIT=1
	start_server "$HANDLERS/accept"
	talk 'got = until(s, b"\r\n")
s.sendall(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n")
got += rest(s)'
	assert_success
	assert_output '220 554'
}

@test "after EHLO, MAIL RCPT DATA may be pipelined (RFC 2920)" {
	start_server "$HANDLERS/dump"
	talk 'got = until(s, b"\r\n")
s.sendall(b"EHLO client.example\r\n")
got += until(s, b"250 ENHANCEDSTATUSCODES\r\n")
s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
got += until(s, b"<CR><LF>.<CR><LF>\r\n")
s.sendall(b"hello\r\n.\r\nQUIT\r\n")
got += rest(s)'
	assert_success
	assert_output '220 250 250 250 354 250 221'
	run cat "$DUMP/1/message"
	assert_output --partial 'hello'
}

@test "the message sent in the same write as DATA gets 554 5.5.0, no handler run" {
	SERVER_EXIT=1
	start_server "$HANDLERS/dump"
	talk 'got = until(s, b"\r\n")
s.sendall(b"EHLO client.example\r\n")
got += until(s, b"250 ENHANCEDSTATUSCODES\r\n")
s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nhello\r\n.\r\n")
got += rest(s)'
	assert_success
	assert_output '220 250 250 250 554'
	run ls -A "$DUMP"
	assert_output ''
}

@test "over a pipe a whole dialogue may come at once" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
}

# pause_talk [options]: like early_talk, but the test starts smtpd-stdio
# on the accepted socket first, waits until it blocks in ppoll(2) while
# no greeting has come (so it is in the --greet-pause wait), and only
# then sends EHLO.  Prints the reply codes and the exit status.
pause_talk() {
	python3 - "$SMTPD" "$@" <<-'PY'
	import os, platform, select, socket, subprocess, sys, time
	PPOLL = {"x86_64": "271", "aarch64": "73"}[platform.machine()]
	lsn = socket.create_server(("127.0.0.1", 0))
	cli = socket.create_connection(lsn.getsockname(), timeout=20)
	srv, _ = lsn.accept()
	p = subprocess.Popen(["timeout", "-k", "5", "60", sys.argv[1],
	    "--hostname", "mx.test", "--log", "stderr", *sys.argv[2:]],
	    stdin=srv, stdout=srv)
	srv.close()
	def waiting():
	    try:
	        kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
	        return kids and open("/proc/%s/syscall" % kids[0]).read().split()[0] == PPOLL
	    except OSError:
	        return False
	for _ in range(1200):
	    if waiting():
	        break
	    time.sleep(0.05)
	else:
	    sys.exit("smtpd-stdio never waited")
	if select.select([cli], [], [], 0)[0]:
	    print("greeting before the wait")
	cli.sendall(b"EHLO client.example\r\n")
	got = b""
	while chunk := cli.recv(65536):
	    got += chunk
	print(" ".join(l[:3].decode() for l in got.split(b"\r\n")[:-1]
	    if l[3:4] != b"-"))
	print("exit", p.wait())
	PY
}

@test "--greet-pause: a client that talks during the pause gets 554 5.5.0 and no greeting, exit 1" {
	run --separate-stderr pause_talk --greet-pause 60000 "$HANDLERS/accept"
	assert_success
	assert_output $'554\nexit 1'
	assert_regex "$stderr" 'client talked during the 60000 ms greeting pause'
}

@test "--greet-pause: a client that waits for the greeting gets its mail through" {
	start_server --greet-pause 300 "$HANDLERS/dump"
	talk 'got = until(s, b"\r\n")
s.sendall(b"EHLO client.example\r\n")
got += until(s, b"250 ENHANCEDSTATUSCODES\r\n")
s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
got += until(s, b"<CR><LF>.<CR><LF>\r\n")
s.sendall(b"hello\r\n.\r\nQUIT\r\n")
got += rest(s)'
	assert_success
	assert_output '220 250 250 250 354 250 221'
}

@test "--greet-pause over pipes is ignored: the whole dialogue at once is served" {
	run --separate-stderr smtp_session --greet-pause 60000 "$HANDLERS/accept" <<-EOF
	HELO client.example
	QUIT
	EOF
	assert_success
	assert_output $'220 mx.test ESMTP smtpd-stdio\r\n250 mx.test\r\n221 2.0.0 Bye\r'
}

@test "--greet-pause takes 0 to 300000 ms" {
	usage_error --greet-pause -1 "$HANDLERS/accept"
	usage_error --greet-pause 300001 "$HANDLERS/accept"
	usage_error --greet-pause 1s "$HANDLERS/accept"
}

@test "--greet-pause is a wait for the client: --session-timeout ends it, the pause does not outlast the session" {
	# A silent client, a 300 s pause and a 1 s session: the session ends
	# at its limit (421, exit 1, logged as the session's timeout), not at
	# timeout(1)'s 30 s with status 124.
	run --separate-stderr python3 - "$SMTPD" <<-'PY'
	import socket, subprocess, sys
	lsn = socket.create_server(("127.0.0.1", 0))
	cli = socket.create_connection(lsn.getsockname(), timeout=50)
	srv, _ = lsn.accept()
	p = subprocess.Popen(["timeout", "-k", "5", "30", sys.argv[1],
	    "--hostname", "mx.test", "--log", "stderr", "--greet-pause", "300000",
	    "--session-timeout", "1", "true"], stdin=srv, stdout=srv)
	srv.close()
	got = b""
	while chunk := cli.recv(65536):
	    got += chunk
	print(" ".join(l[:3].decode() for l in got.split(b"\r\n")[:-1]
	    if l[3:4] != b"-"))
	print("exit", p.wait())
	PY
	assert_success
	assert_line --index 1 'exit 1'
	assert_regex "${lines[0]}" '421$'
	assert_regex "$stderr" 'timeout: session \(--session-timeout\)'
}
