#!/usr/bin/env bats
# Clients that go away at any moment: nothing half-done survives.

setup() {
	load test_helper/common
	common_setup
}

@test "a client gone at every byte offset of a session: a handler run only after the final dot, nothing left" {
	printf 'EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: x\r\n\r\n..hello\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/session"
	local total end k runs status
	total=$(wc -c <"$BATS_TEST_TMPDIR/session")
	# The message ends with the CRLF after the final dot: only QUIT follows.
	end=$((total - 6))
	for ((k = 0; k <= total; k++)); do
		rm -rf "$DUMP" && mkdir "$DUMP"
		head -c "$k" "$BATS_TEST_TMPDIR/session" >"$BATS_TEST_TMPDIR/cut"
		status=0
		smtpd "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/cut" >/dev/null 2>&1 || status=$?
		runs=$(find "$DUMP" -mindepth 1 -maxdepth 1 | wc -l)
		if [ "$status" -ne 0 ] || { [ "$k" -lt "$end" ] && [ "$runs" -ne 0 ]; } ||
		    { [ "$k" -ge "$end" ] && [ "$runs" -ne 1 ]; }; then
			fail "cut after $k of $total bytes (end of data at $end): exit $status, $runs handler runs"
		fi
		[ -z "$(ls -A "$TMPDIR")" ] || fail "cut after $k bytes: spool not empty"
	done
	# The message delivered from the full session is the unstuffed one.
	run grep -c '^\.hello$' "$DUMP/1/message"
	assert_output 1
}

@test "a client idle past --timeout gets 421 4.4.2 and exit 1, in the middle of DATA too" {
	mkfifo "$BATS_TEST_TMPDIR/in"
	# The writer keeps the FIFO open (no EOF) until the server is done.
	{ printf 'HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\npart of a message\r\n'; exec sleep 30; } >"$BATS_TEST_TMPDIR/in" &
	local writer=$!
	run --separate-stderr smtpd --timeout 1 "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	kill "$writer" 2>/dev/null || true
	assert_failure 1
	assert_line --index 5 --regexp '^421 4\.4\.2 '
	run ls -A "$DUMP"
	assert_output ''
	assert_spool_empty
}

@test "a TCP client that pipelines a flood and never reads is dropped after --timeout" {
	load test_helper/tcp
	SERVER_EXIT=1
	start_server --timeout 2 "$HANDLERS/accept"
	run python3 -c "import socket
s = socket.create_connection(('127.0.0.1', $PORT), timeout=30)
s.recv(100)                                    # the greeting
s.sendall(b'EHLO c\r\n'); s.recv(1000)
sent = 0
try:
    while sent < 200 * 1024 * 1024:            # bounded: 200 MiB at most
        sent += s.send(b'NOOP\r\n' * 10000)
except OSError as e:
    print('dropped after', sent // 1024, 'KiB:', type(e).__name__)"
	stop_server
	assert_success
	assert_output --regexp '^dropped after [0-9]+ KiB: (ConnectionResetError|BrokenPipeError|TimeoutError)'
	run grep -c 'write to client: timeout' "$SERVER_LOG"
	assert_output 1
	run grep -c 'exit=1' "$SERVER_LOG"
	assert_output 1
}
