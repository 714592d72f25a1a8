#!/usr/bin/env bats
# The lingering close (SPEC 4): after the last reply the server half-closes
# and reads what the client still sends, 1 s and 64 KiB at most, however
# it trickles, so that a reset cannot destroy that reply.  The server
# logs (--verbose) how its lingering close ended: the order of events,
# not a measured time.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
}

# linger_log: the server's lingering-close log line, once it is there.
linger_log() {
	wait_for 10 grep -q 'lingering close: ' "$SERVER_LOG" || return
	grep -o 'lingering close: .*' "$SERVER_LOG"
}

@test "unread bytes behind QUIT: the 554 arrives whole and the close is clean, no reset" {
	SERVER_EXIT=1
	start_server --verbose "$HANDLERS/accept"
	run python3 - "$PORT" <<-'EOF'
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	f = s.makefile("rb")
	f.readline()
	# QUIT and 10 KiB behind it in one write (a synchronization error),
	# then our end of file: what the server did not read of it when it
	# closes would make the kernel reset the connection.
	s.sendall(b"QUIT\r\n" + b"x" * 10240)
	s.shutdown(socket.SHUT_WR)
	got = b""
	while True:
	    chunk = s.recv(4096)
	    if not chunk:
	        break
	    got += chunk
	print(got.decode().strip())
	EOF
	assert_success
	assert_output '554 5.5.0 Error: SMTP protocol synchronization'
	run linger_log
	assert_output --regexp '^lingering close: [0-9]+ octets read, stopped at end of input$'
}

@test "a client trickling bytes after QUIT cannot hold the lingering close open" {
	start_server --verbose "$HANDLERS/accept"
	run python3 - "$PORT" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	f = s.makefile("rb")
	f.readline()
	s.sendall(b"QUIT\r\n")
	assert f.readline().startswith(b"221"), "no 221"
	assert f.read(1) == b"", "no half-close after the 221"
	# One byte every 0.1 s, 300 at most: each of the server's reads
	# succeeds at once, so only its total deadline ends the linger.
	for i in range(300):
	    try:
	        s.send(b"x")
	    except OSError as e:
	        print("closed after %d bytes (%s)" % (i, e.__class__.__name__))
	        sys.exit(0)
	    time.sleep(0.1)
	print("still open after 300 bytes")
	sys.exit(1)
	EOF
	assert_success
	assert_output --regexp '^closed after [0-9]+ bytes'
	# Cut by the deadline: a linger that waited for the client's 300
	# bytes would have stopped at their end instead.
	run linger_log
	assert_output --regexp '^lingering close: ([0-9]|[1-9][0-9]|[12][0-9][0-9]) octets read, stopped at the deadline$'
}

@test "a client flooding after QUIT is read 64 KiB at most" {
	SERVER_EXIT=1
	start_server --verbose "$HANDLERS/accept"
	run python3 - "$PORT" <<-'EOF'
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	s.makefile("rb").readline()
	# 64 KiB may go with QUIT into the session's own read; 256 KiB more
	# are there for the linger, at once.  Then read until the server has
	# closed: its reset, once it stops reading, ends the send or the read.
	try:
	    s.sendall(b"QUIT\r\n" + b"x" * (320 * 1024))
	    while s.recv(4096):
	        pass
	except OSError:
	    pass
	EOF
	assert_success
	run linger_log
	assert_output 'lingering close: 65536 octets read, stopped at the cap'
}
