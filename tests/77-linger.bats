#!/usr/bin/env bats
# The lingering close (SPEC 4): after the last reply the server half-closes
# and reads what the client still sends, 1 s in all, however it trickles.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
}

teardown() {
	stop_server
}

@test "a client trickling bytes after QUIT cannot hold the lingering close open" {
	start_server "$HANDLERS/accept"
	run python3 - "$PORT" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	f = s.makefile("rb")
	f.readline()
	s.sendall(b"QUIT\r\n")
	assert f.readline().startswith(b"221"), "no 221"
	# One byte every 0.1 s: each read of the server's linger succeeds at
	# once, so only a total deadline ends it.  The half-close shows as
	# EOF; the full close as a reset on a later send.  Give up after 300
	# bytes (30 s, well inside the 60 s the test server may live).
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
}
