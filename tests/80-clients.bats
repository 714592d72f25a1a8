#!/usr/bin/env bats
# Real clients over TCP (SPEC 1, 3, 5.1): Python's smtplib, curl and swaks
# talk to smtpd-stdio run per connection by systemd-socket-activate.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
}

# dumped N VAR: what the dump handler saw as VAR for message N.
dumped() {
	cat "$DUMP/$1/$2"
}

@test "smtplib: a message to two recipients reaches the handler with the TCP peer" {
	start_server --no-received "$HANDLERS/dump"
	msg=$'Subject: two\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\n.\r\nlast\r\n'
	run smtp_client "$PORT" a@example.org b@example.net,c@example.net "$msg"
	assert_success
	read -r _ client_port <<<"$output"
	size=${#msg}
	refute_output --partial refused
	assert_equal "$(dumped 1 SMTP_REMOTE_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_REMOTE_PORT)" "$client_port"
	assert_equal "$(dumped 1 SMTP_LOCAL_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_LOCAL_PORT)" "$PORT"
	assert_equal "$(dumped 1 SMTP_PROTOCOL)" ESMTP
	assert_equal "$(dumped 1 SMTP_HELO)" client.example
	assert_equal "$(dumped 1 SMTP_MAIL_FROM)" a@example.org
	assert_equal "$(dumped 1 SMTP_RCPT_TO)" $'b@example.net\nc@example.net'
	assert_equal "$(dumped 1 SMTP_RCPT_COUNT)" 2
	assert_equal "$(dumped 1 SMTP_MAIL_OPTIONS)" "SIZE=$size"
	printf 'Subject: two\n\nline one\n.leading dot\n..two dots\n.\nlast\n' >"$BATS_TEST_TMPDIR/expected"
	cmp "$BATS_TEST_TMPDIR/expected" "$DUMP/1/message"
	assert_spool_empty
}

@test "smtplib: the client gets the 250 with the handler's SMTP_ID" {
	start_server "$HANDLERS/dump"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: id\r\n\r\nhello\r\n'
	assert_success
	assert_line --index 1 "250 2.0.0 OK: queued as $(dumped 1 SMTP_ID)"
}

@test "smtplib: a handler exiting 65 makes sendmail raise SMTPDataError 554" {
	start_server "$HANDLERS/exit" 65
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: no\r\n\r\nno\r\n'
	assert_success
	assert_line --index 1 --regexp '^554 5\.6\.0( |$)'
}

@test "smtplib: two messages in one session are two handler runs on one connection" {
	start_server --no-received "$HANDLERS/dump"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: 1\r\n\r\none\r\n' \
	    c@example.org d@example.net $'Subject: 2\r\n\r\ntwo\r\n'
	assert_success
	read -r _ client_port <<<"$output"
	assert_equal "$(dumped 1 SMTP_REMOTE_PORT)" "$client_port"
	assert_equal "$(dumped 2 SMTP_REMOTE_PORT)" "$client_port"
	assert_equal "$(dumped 1 SMTP_MAIL_FROM)" a@example.org
	assert_equal "$(dumped 2 SMTP_MAIL_FROM)" c@example.org
	assert_equal "$(cat "$DUMP/1/message")" $'Subject: 1\n\none'
	assert_equal "$(cat "$DUMP/2/message")" $'Subject: 2\n\ntwo'
	refute [ "$(dumped 1 SMTP_ID)" = "$(dumped 2 SMTP_ID)" ]
}

@test "smtplib: the Received header names the HELO, the TCP peer and the one recipient" {
	start_server "$HANDLERS/dump"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: r\r\n\r\nhello\r\n'
	assert_success
	# The first header, unfolded.
	received=$(awk 'NR > 1 && !/^[ \t]/ { exit } { sub(/^[ \t]+/, " "); printf "%s", $0 }' "$DUMP/1/message")
	id=$(dumped 1 SMTP_ID)
	assert_regex "$received" "^Received: from client\\.example \\([^ ]+ \\[127\\.0\\.0\\.1\\]\\) by mx\\.test \\(smtpd-stdio\\) with ESMTP id ${id//./\\.} for <b@example\\.net>; "
}

@test "an IPv4 client of an IPv6 socket is shown as IPv4" {
	LISTEN='[::]' start_server "$HANDLERS/dump"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: v4\r\n\r\nhello\r\n'
	assert_success
	assert_equal "$(dumped 1 SMTP_REMOTE_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_LOCAL_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_LOCAL_PORT)" "$PORT"
}

@test "an IPv6 client is shown as IPv6" {
	LISTEN='[::1]' start_server "$HANDLERS/dump"
	run smtp_client --host ::1 "$PORT" a@example.org b@example.net $'Subject: v6\r\n\r\nhello\r\n'
	assert_success
	assert_equal "$(dumped 1 SMTP_REMOTE_ADDR)" ::1
	assert_equal "$(dumped 1 SMTP_LOCAL_ADDR)" ::1
	assert_equal "$(dumped 1 SMTP_LOCAL_PORT)" "$PORT"
}

@test "on a socket, getpeername()/getsockname() win over UCSPI and systemd variables" {
	SERVER_ENV='TCPREMOTEIP=192.0.2.1 TCPREMOTEPORT=1 TCPLOCALIP=192.0.2.2 TCPLOCALPORT=2 REMOTE_ADDR=192.0.2.3 REMOTE_PORT=3' \
	    start_server "$HANDLERS/dump"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: peer\r\n\r\nhello\r\n'
	assert_success
	read -r _ client_port <<<"$output"
	assert_equal "$(dumped 1 SMTP_REMOTE_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_REMOTE_PORT)" "$client_port"
	assert_equal "$(dumped 1 SMTP_LOCAL_ADDR)" 127.0.0.1
	assert_equal "$(dumped 1 SMTP_LOCAL_PORT)" "$PORT"
}

@test "curl delivers a message with smtp:// and --upload-file" {
	start_server --no-received "$HANDLERS/dump"
	printf 'Subject: curl\r\n\r\nhello from curl\r\n.dotted line\r\n' >"$BATS_TEST_TMPDIR/msg"
	run curl -sS --max-time 30 --url "smtp://127.0.0.1:$PORT/client.example" \
	    --mail-from a@example.org --mail-rcpt b@example.net \
	    --upload-file "$BATS_TEST_TMPDIR/msg"
	assert_success
	assert_equal "$(dumped 1 SMTP_HELO)" client.example
	assert_equal "$(dumped 1 SMTP_PROTOCOL)" ESMTP
	assert_equal "$(dumped 1 SMTP_MAIL_FROM)" a@example.org
	assert_equal "$(dumped 1 SMTP_RCPT_TO)" b@example.net
	printf 'Subject: curl\n\nhello from curl\n.dotted line\n' >"$BATS_TEST_TMPDIR/expected"
	cmp "$BATS_TEST_TMPDIR/expected" "$DUMP/1/message"
}

@test "curl reports a handler's 550 as a failure" {
	start_server "$HANDLERS/exit" 77
	printf 'Subject: curl\r\n\r\nhello\r\n' >"$BATS_TEST_TMPDIR/msg"
	run --separate-stderr curl -v --max-time 30 --url "smtp://127.0.0.1:$PORT/client.example" \
	    --mail-from a@example.org --mail-rcpt b@example.net \
	    --upload-file "$BATS_TEST_TMPDIR/msg"
	# curl says "(8) Weird server reply" for a refused message.
	assert_failure 8
	assert_regex "$stderr" '< 550 5\.7\.1 '
}

@test "swaks delivers a message to two recipients" {
	start_server --no-received "$HANDLERS/dump"
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 \
	    --from a@example.org --to b@example.net,c@example.net \
	    --header 'Subject: swaks' --body 'hello from swaks'
	assert_success
	assert_output --regexp '<-  250 2\.0\.0 OK: queued as '
	assert_equal "$(dumped 1 SMTP_RCPT_TO)" $'b@example.net\nc@example.net'
	assert_equal "$(dumped 1 SMTP_HELO)" client.example
	grep -q '^hello from swaks$' "$DUMP/1/message"
	grep -q '^Subject: swaks$' "$DUMP/1/message"
}

@test "swaks with --pipeline delivers a message" {
	start_server --no-received "$HANDLERS/dump"
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 --pipeline \
	    --from a@example.org --to b@example.net --body 'pipelined'
	assert_success
	assert_output --regexp '<-  250 2\.0\.0 OK: queued as '
	grep -q '^pipelined$' "$DUMP/1/message"
}

@test "swaks sees a handler's 554 as a rejected message" {
	start_server "$HANDLERS/exit" 69
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 \
	    --from a@example.org --to b@example.net --body 'no'
	assert_failure
	assert_output --regexp '<\*\* +554 5\.3\.0'
}

@test "the handler has no socket: only 0-2 are open, none of them the client" {
	start_server "$HANDLERS/fds"
	run smtp_client "$PORT" a@example.org b@example.net $'Subject: fds\r\n\r\nhello\r\n'
	assert_success
	run cut -d' ' -f1 "$DUMP/fds"
	assert_output $'0\n1\n2'
	run grep -c socket: "$DUMP/fds"
	assert_output 0
}

@test "with fd 2 the client socket (inetd), no log line reaches the client" {
	STDERR_IS_SOCKET=1 start_server -v "$HANDLERS/errflood"
	run python3 - "$PORT" "$FIXTURES" <<-'EOF'
	import re, sys
	sys.path.insert(0, sys.argv[2])
	import rfc2920
	s, got = rfc2920.ehlo(sys.argv[1])
	got += rfc2920.envelope(s)
	s.sendall(b"hello\r\n.\r\nFOO\r\nQUIT\r\n")
	got += rfc2920.rest(s)
	bad = [l for l in got.split(b"\r\n")[:-1] if not re.match(rb"^[2-5][0-9][0-9][ -]", l)]
	print("lines=%d bad=%d" % (got.count(b"\r\n"), len(bad)))
	for l in bad[:5]:
	    print(repr(l))
	EOF
	assert_success
	assert_line --index 0 --regexp '^lines=[0-9]+ bad=0$'
}

@test "a client that goes away in the middle of DATA: handler not run, connection closed" {
	start_server "$HANDLERS/dump"
	run python3 - "$PORT" "$FIXTURES" <<-'EOF'
	import socket, sys
	sys.path.insert(0, sys.argv[2])
	import rfc2920
	s, got = rfc2920.ehlo(sys.argv[1])
	got += rfc2920.envelope(s)
	s.sendall(b"Subject: cut\r\n\r\nhalf a message\r\n.")
	s.shutdown(socket.SHUT_WR)
	got += rfc2920.rest(s)
	print(" ".join(l[:3].decode() for l in got.split(b"\r\n")[:-1] if l[3:4] != b"-"))
	EOF
	assert_success
	assert_output '220 250 250 250 354'
	run ls -A "$DUMP"
	assert_output ''
	assert_spool_empty
}

@test "pipelined replies are flushed before the server waits, and the handler's reply follows" {
	# The MAIL, RCPT, DATA batch is answered before the server waits for the
	# message; the handler waits until the client has seen every reply.
	start_server "$HANDLERS/gate"
	run python3 - "$PORT" "$DUMP/go" "$FIXTURES" <<-'EOF'
	import sys
	sys.path.insert(0, sys.argv[3])
	import rfc2920
	s, got = rfc2920.ehlo(sys.argv[1])
	got += rfc2920.envelope(s)
	s.sendall(b"Subject: gate\r\n\r\nhello\r\n.\r\n")
	open(sys.argv[2], "w").close()
	s.sendall(b"QUIT\r\n")
	got += rfc2920.rest(s)
	print(" ".join(l[:3].decode() for l in got.split(b"\r\n")[:-1] if l[3:4] != b"-"))
	EOF
	assert_success
	assert_output '220 250 250 250 354 250 221'
}
