#!/usr/bin/env bats
# --proxy-protocol (SPEC 10.1): the PROXY header of a load balancer, v1 or
# v2, read exactly and within 5 s; its addresses become the client's.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	IN=$BATS_TEST_TMPDIR/in
	unset_peer_env
}

teardown() {
	if [ -s "$BATS_TEST_TMPDIR/haproxy.pid" ]; then
		kill "$(cat "$BATS_TEST_TMPDIR/haproxy.pid")" 2>/dev/null || true
	fi
	stop_server
}

SESSION='HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n'

# v2 FAMILY SRC DST SPORT DPORT [TLV-OCTETS]: a v2 PROXY header on stdout.
v2() {
	python3 - "$@" <<-'EOF'
	import socket, struct, sys
	sig = b"\r\n\r\n\x00\r\nQUIT\n"
	if sys.argv[1] == "LOCAL":
	    sys.stdout.buffer.write(sig + bytes([0x20, 0x00]) + struct.pack("!H", 0))
	    sys.exit(0)
	fam, src, dst, sport, dport = sys.argv[1:6]
	tlv = int(sys.argv[6]) if len(sys.argv) > 6 else 0
	af, code = {"INET": (socket.AF_INET, 0x11), "INET6": (socket.AF_INET6, 0x21)}[fam]
	body = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack("!HH", int(sport), int(dport))
	if tlv:
	    body += b"\x04" + struct.pack("!H", tlv) + b"t" * tlv
	sys.stdout.buffer.write(sig + bytes([0x21, code]) + struct.pack("!H", len(body)) + body)
	EOF
}

assert_client() {
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_ADDR")" "$1"
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_PORT")" "$2"
	assert_equal "$(cat "$DUMP/1/SMTP_LOCAL_ADDR")" "$3"
	assert_equal "$(cat "$DUMP/1/SMTP_LOCAL_PORT")" "$4"
}

@test "v1 TCP4: the header's addresses reach the handler and the Received header" {
	printf "PROXY TCP4 192.0.2.7 198.51.100.1 54321 25\\r\\n$SESSION" >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	assert_client 192.0.2.7 54321 198.51.100.1 25
	run grep -c '^Received: from client.example (unknown \[192.0.2.7\])' "$DUMP/1/message"
	assert_output 1
	[[ $stderr == *'connect from 192.0.2.7 port 54321'* ]]
}

@test "v1 TCP6, sent one byte per read" {
	printf "PROXY TCP6 2001:db8::7 2001:db8::1 4242 587\\r\\n$SESSION" >"$IN"
	run --separate-stderr feed --bytewise "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_client 2001:db8::7 4242 2001:db8::1 587
}

@test "v1 UNKNOWN keeps the connection's own addresses" {
	export TCPREMOTEIP=203.0.113.5 TCPREMOTEPORT=999
	printf "PROXY UNKNOWN ffff::1 ffff::2 1 2\\r\\n$SESSION" >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_ADDR")" 203.0.113.5
}

@test "v2 INET and INET6, with 3000 octets of TLVs skipped, byte by byte" {
	{ v2 INET 192.0.2.9 198.51.100.2 40000 25; printf "$SESSION"; } >"$IN"
	run --separate-stderr feed --bytewise "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_client 192.0.2.9 40000 198.51.100.2 25
	rm -rf "${DUMP:?}"/*
	{ v2 INET6 2001:db8::9 2001:db8::2 40001 465 3000; printf "$SESSION"; } >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	assert_client 2001:db8::9 40001 2001:db8::2 465
}

@test "v2 LOCAL keeps the connection's own addresses" {
	export TCPREMOTEIP=203.0.113.6 TCPREMOTEPORT=998
	{ v2 LOCAL; printf "$SESSION"; } >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_ADDR")" 203.0.113.6
}

@test "a header followed at once by EHLO in the same write: not one byte of EHLO is lost" {
	printf 'PROXY TCP4 192.0.2.7 198.51.100.1 54321 25\r\nEHLO c\r\nQUIT\r\n' >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 221 '
}

# refused INPUT...: each input gets 421 4.3.0 instead of a greeting, exit 1.
refused() {
	local input
	for input in "$@"; do
		printf "$input" >"$IN"
		run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
		assert_failure 1
		assert_output $'421 4.3.0 mx.test Error: PROXY protocol header expected\r'
		[[ $stderr == *'no valid PROXY header'* ]]
	done
	assert_no_message
}

@test "no header, or a malformed one: 421 4.3.0 and exit 1, no greeting" {
	refused 'EHLO client.example\r\n' 'GET / HTTP/1.0\r\n\r\n' \
	    'PROXY TCP4 192.0.2.7 198.51.100.1 54321\r\n' \
	    'PROXY TCP4 192.0.2.7 198.51.100.1 54321 25 extra\r\n' \
	    'PROXY TCP4 2001:db8::7 198.51.100.1 54321 25\r\n' \
	    'PROXY TCP4 192.0.2.7 198.51.100.1 054321 25\r\n' \
	    'PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n' \
	    'PROXY TCP4 192.0.2.7  198.51.100.1 1 25\r\n' \
	    'PROXY TCP4 192.0.2.7 198.51.100.1 1 25\n' \
	    'PROXY UDP4 192.0.2.7 198.51.100.1 1 25\r\n' \
	    'PROXY \r\n' 'proxy TCP4 192.0.2.7 198.51.100.1 1 25\r\n' \
	    '\r\n\r\n\000\r\nQUIX\n\041\021\000\000'
}

@test "an overlong v1 header (no LF within 107 octets) gets 421 4.3.0" {
	refused "PROXY TCP4 $(printf '1%.0s' $(seq 120))\r\n"
}

@test "v2 with a version, a command or a length that lies gets 421 4.3.0" {
	refused '\r\n\r\n\000\r\nQUIT\n\061\021\000\014abcdefghijkl' \
	    '\r\n\r\n\000\r\nQUIT\n\042\021\000\014abcdefghijkl' \
	    '\r\n\r\n\000\r\nQUIT\n\041\041\000\014abcdefghijkl' \
	    '\r\n\r\n\000\r\nQUIT\n\041\021\000\004abcd'
}

@test "EOF inside the header ends the session silently, exit 0" {
	local input
	for input in 'PROXY TCP4 192.0.2.7' 'PROX' '\r\n\r\n\000\r\nQUIT\n\041\021\000\014abc'; do
		printf "$input" >"$IN"
		run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
		assert_success
		assert_output ''
	done
}

# tcp_first_line [FILE]: a client on $PORT that sends the bytes of FILE,
# if given, and prints the first line the server sends (30 s at most).
tcp_first_line() {
	python3 -c 'import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if len(sys.argv) > 2:
    s.sendall(open(sys.argv[2], "rb").read())
s.settimeout(30)
print(s.recv(100).decode().strip())' "$PORT" "$@"
}

@test "over TCP: a late header gets 421 4.3.0 after 5 s, exit 1" {
	SERVER_EXIT=1
	start_server --proxy-protocol "$HANDLERS/dump"
	run tcp_first_line
	assert_success
	assert_output '421 4.3.0 mx.test Error: PROXY protocol header expected'
}

@test "over TCP: a v2 length that claims more than comes gets 421 4.3.0" {
	SERVER_EXIT=1
	start_server --proxy-protocol "$HANDLERS/dump"
	# A v2 header of length 500 (\001\364), 12 octets of it, then a command.
	{
		printf '\r\n\r\n\000\r\nQUIT\n\041\021\001\364'
		head -c 12 /dev/zero
		printf 'EHLO c\r\n'
	} >"$IN"
	run tcp_first_line "$IN"
	assert_success
	assert_output '421 4.3.0 mx.test Error: PROXY protocol header expected'
}

@test "over TCP: bytes after the header before the greeting are early talk, 554 5.5.0" {
	SERVER_EXIT=1
	start_server --proxy-protocol "$HANDLERS/dump"
	printf 'PROXY TCP4 192.0.2.7 198.51.100.1 54321 25\r\nEHLO early\r\n' >"$IN"
	run tcp_first_line "$IN"
	assert_success
	assert_output --regexp '^554 5\.5\.0 '
}

# start_haproxy MODE: HAProxy in the foreground with a private config,
# listening on $HAPORT and passing connections to smtpd-stdio on $PORT
# with MODE (send-proxy or send-proxy-v2).
start_haproxy() {
	HAPORT=$(free_port)
	cat >"$BATS_TEST_TMPDIR/haproxy.cfg" <<-EOF
	global
	    log stderr format raw local0
	defaults
	    mode tcp
	    timeout connect 5s
	    timeout client 60s
	    timeout server 60s
	frontend smtp
	    bind 127.0.0.1:$HAPORT
	    default_backend mx
	backend mx
	    server mx1 127.0.0.1:$PORT $1
	EOF
	timeout -k 5 300 haproxy -db -f "$BATS_TEST_TMPDIR/haproxy.cfg" >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/haproxy.pid"
	wait_for 10 port_listening "$HAPORT"
}

# peer_through_haproxy MODE: a message through HAProxy with MODE to
# smtpd-stdio --proxy-protocol; the handler saw the client's own address
# and port, and HAProxy's port as the local one.
peer_through_haproxy() {
	start_server --proxy-protocol "$HANDLERS/dump"
	start_haproxy "$1"
	run send_through_haproxy
	assert_success
	read -r addr port <<<"$output"
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_ADDR")" "$addr"
	assert_equal "$(cat "$DUMP/1/SMTP_REMOTE_PORT")" "$port"
	assert_equal "$(cat "$DUMP/1/SMTP_LOCAL_PORT")" "$HAPORT"
}

# smtplib through HAProxy; prints the client's own address and port.
send_through_haproxy() {
	smtp_client "$HAPORT" a@example.org b@example.net $'Subject: via haproxy\r\n\r\nhello\r\n'
}

@test "a real HAProxy with send-proxy: the handler sees the client's own address and port" {
	peer_through_haproxy send-proxy
}

@test "a real HAProxy with send-proxy-v2: the handler sees the client's own address and port" {
	peer_through_haproxy send-proxy-v2
	grep -q 'Subject: via haproxy' "$DUMP/1/message"
}

@test "v2 with a transport other than a stream, or an undefined family byte, gets 421 4.3.0" {
	# INET/UNSPEC, INET/DGRAM, INET/undefined, INET6/DGRAM, UNIX/DGRAM,
	# UNSPEC/STREAM, an undefined family (HAProxy's spec 2.2: reject).
	local b
	for b in '\020' '\022' '\023' '\042' '\062' '\001' '\101'; do
		refused "\\r\\n\\r\\n\\000\\r\\nQUIT\\n\\041$b\\000\\014abcdefghijkl"
	done
}

@test "v2 AF_UNIX and AF_UNSPEC keep the connection's own addresses" {
	export TCPREMOTEIP=203.0.113.6 TCPREMOTEPORT=998
	# AF_UNIX over a stream: two 108-octet paths.
	{ printf '\r\n\r\n\000\r\nQUIT\n\041\061\000\330'
	  head -c 216 /dev/zero; printf "$SESSION"; } >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_client 203.0.113.6 998 '' ''
	rm -r "$DUMP"/1
	# AF_UNSPEC with an address block that is skipped.
	{ printf '\r\n\r\n\000\r\nQUIT\n\041\000\000\004abcd'; printf "$SESSION"; } >"$IN"
	run --separate-stderr feed "$IN" --proxy-protocol "$HANDLERS/dump"
	assert_success
	assert_client 203.0.113.6 998 '' ''
}

@test "a v1 TCP4/TCP6 header with a space before its CRLF gets 421 4.3.0" {
	# Single spaces between the fields, none after the last (HAProxy's
	# proxy-protocol.txt 2.1), as a doubled space inside is refused.
	refused 'PROXY TCP4 192.0.2.7 198.51.100.1 54321 25 \r\n' \
	    'PROXY TCP6 2001:db8::7 2001:db8::1 54321 25 \r\n'
}
