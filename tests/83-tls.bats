#!/usr/bin/env bats
# TLS (SPEC 8): STARTTLS and implicit TLS through GnuTLS, over pipes and
# over TCP, with a throwaway CA made here.  The client is Python's ssl on
# memory BIOs (test_helper/tlsdrive.py), so the same code speaks TLS over
# the server's stdin/stdout pipes and over a socket.

setup_file() {
	local d=$BATS_FILE_TMPDIR/pki name
	load test_helper/common
	load test_helper/tls
	mkdir -p "$d"
	pki_self_signed "$d" rsa ca Test-CA
	for name in mx other; do
		pki_signed "$d" rsa "$name" "$name.example.test" "DNS:$name.example.test"
	done
	pki_self_signed "$d" ec client client.example.test
	head -c 96 /dev/urandom >"$d/tickets"
}

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/tls
	common_setup
	tls_setup mx
}

teardown() {
	stop_server
}

# A whole STARTTLS session over pipes; prints what the client saw.
STARTTLS_SESSION='
c = Client.pipe(sys.argv[1:])
print(c.reply())
print(c.cmd("EHLO client.example"))
print(c.cmd("STARTTLS"))
t = c.starttls(client_context(os.environ["PKI"] + "/ca.pem"), "mx.example.test")
print(info(t))
print(c.cmd("EHLO client.example"))
print(c.code("MAIL FROM:<a@example.org>"), c.code("RCPT TO:<b@example.net>"), c.code("DATA"))
print(c.cmd("Subject: tls\r\n\r\nsecret body\r\n."))
print(c.cmd("QUIT"))
print("exit", c.wait())
'

@test "STARTTLS over pipes: handshake, a fresh session, ESMTPS, TLS in the Received header and the environment" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.example.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<<"$STARTTLS_SESSION"
	assert_success
	assert_line --index 0 '220 mx.example.test ESMTP smtpd-stdio'
	assert_line '250-STARTTLS'
	assert_line '220 2.0.0 Ready to start TLS'
	assert_line --regexp '^version=TLSv1\.3 cipher=TLS_[A-Z0-9_]+ resumed=0$'
	assert_line '250 250 354'
	assert_line --regexp '^250 2\.0\.0 OK: queued as '
	assert_line 'exit 0'
	# After the handshake EHLO no longer offers STARTTLS.
	[ "$(printf '%s\n' "$output" | grep -c '^250-STARTTLS$')" -eq 1 ]
	run cat "$DUMP/1/env"
	assert_line 'SMTP_PROTOCOL=ESMTPS'
	assert_line 'SMTP_TLS_PROTOCOL=TLSv1.3'
	assert_line --regexp '^SMTP_TLS_CIPHER=TLS_[A-Z0-9_]+$'
	assert_line 'SMTP_TLS_SNI=mx.example.test'
	assert_line 'SMTP_TLS_RESUMED=0'
	assert_line 'SMTP_TLS_CLIENT_SUBJECT='
	assert_line 'SMTP_TLS_CLIENT_HASH='
	assert_line 'SMTP_AUTH_USER='
	run head -3 "$DUMP/1/message"
	assert_line --index 0 'Received: from client.example (unknown)'
	assert_line --index 1 --regexp $'^\t\\(TLSv1\\.3 cipher TLS_[A-Z0-9_]+\\)$'
	assert_line --index 2 --regexp $'^\tby mx\\.example\\.test \\(smtpd-stdio\\) with ESMTPS id '
	run grep -c 'secret body' "$DUMP/1/message"
	assert_output 1
}

@test "without TLS the SMTP_TLS_* variables are set and empty" {
	smtp_transaction -- "$HANDLERS/dump" >/dev/null
	run cat "$DUMP/1/env"
	assert_line 'SMTP_PROTOCOL=ESMTP'
	for v in PROTOCOL CIPHER SNI RESUMED CLIENT_SUBJECT CLIENT_HASH; do
		assert_line "SMTP_TLS_$v="
	done
	assert_line 'SMTP_AUTH_USER='
}

@test "STARTTLS: unknown without a certificate, 503 before EHLO, in a transaction or under TLS, 501 with an argument" {
	run smtp_session "$HANDLERS/accept" <<-EOF
	EHLO a
	STARTTLS
	QUIT
	EOF
	refute_line --partial STARTTLS
	assert_reply_after STARTTLS 500
	run smtp_session "${TLS[@]}" "$HANDLERS/accept" <<-EOF
	STARTTLS
	EHLO a
	STARTTLS now
	MAIL FROM:<a@example.org>
	STARTTLS
	QUIT
	EOF
	assert_reply_after STARTTLS 503 1
	assert_reply_after STARTTLS 501 2
	assert_reply_after STARTTLS 503 3
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/accept" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context())
	c.cmd("EHLO a")
	print(c.cmd("STARTTLS"))
	EOF
	assert_output '503 5.5.1 Error: TLS already active'
}

@test "STARTTLS over pipes: commands sent behind it are discarded and logged, never run (CVE-2011-0411)" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a")
	# One write: the injected transaction arrives in the same read.
	c.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\n")
	print(c.reply())
	c.starttls(client_context())
	print(c.cmd("RCPT TO:<victim@example.net>"))
	c.cmd("EHLO a")
	print(c.cmd("RCPT TO:<victim@example.net>"))
	print(c.cmd("DATA"))
	print("exit", c.wait())
	EOF
	assert_success
	assert_line --index 0 '220 2.0.0 Ready to start TLS'
	assert_line --index 1 '503 5.5.1 Error: send HELO/EHLO first'
	assert_line --index 2 '503 5.5.1 Error: need MAIL command'
	assert_line --index 3 '503 5.5.1 Error: need RCPT command'
	assert_line --index 4 'exit 0'
	run grep -c 'STARTTLS: 60 bytes behind the command discarded' "$LOG"
	assert_output 1
	[ ! -e "$DUMP/1" ]
}

@test "STARTTLS over TCP: a command behind it is a synchronization error, 554 and exit 1" {
	start_server "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<-'EOF'
	c = Client.tcp(int(sys.argv[1]))
	c.reply(); c.cmd("EHLO a")
	c.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
	print(c.reply())
	print(repr(c.reply()))
	EOF
	assert_line --index 0 '554 5.5.0 Error: SMTP protocol synchronization'
	assert_line --index 1 "''"
	SERVER_EXIT=1 stop_server
	[ ! -e "$DUMP/1" ]
}

@test "STARTTLS over TCP: the whole session, then a plain QUIT after close_notify is never read" {
	start_server "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<-'EOF'
	c = Client.tcp(int(sys.argv[1]))
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context(os.environ["PKI"] + "/ca.pem"), "mx.example.test")
	c.cmd("EHLO a")
	print(c.code("MAIL FROM:<a@example.org>"), c.code("RCPT TO:<b@example.net>"), c.code("DATA"))
	print(c.cmd("hi\r\n.")[:3])
	c.unwrap()
	c.send("MAIL FROM:<plain@example.org>\r\nQUIT\r\n")
	# What comes back is TLS records (its close_notify) or nothing,
	# never a plaintext reply, and then the connection ends.
	rest = b""
	while (data := c.raw_read()):
	    rest += data
	print("eof", data == b"", b"\r\n" in rest, all(rest[i] in (0x15, 0x17) for i in range(0, 1) if rest))
	EOF
	assert_line --index 0 '250 250 354'
	assert_line --index 1 '250'
	assert_line --index 2 "eof True False True"
	stop_server
	run cat "$DUMP/1/SMTP_PROTOCOL"
	assert_output ESMTPS
	[ ! -e "$DUMP/2" ]
}

@test "a handshake that never finishes ends at --timeout with exit 1, nothing written after the 220" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --timeout 1 "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); print(c.cmd("STARTTLS"))
	# Half a ClientHello, then silence.
	c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
	print(repr(c.raw_read(30)))
	print("exit", c.proc.wait(30))
	EOF
	assert_line --index 0 '220 2.0.0 Ready to start TLS'
	assert_line --index 1 "b''"
	assert_line --index 2 'exit 1'
	run grep -c 'TLS handshake: timeout' "$LOG"
	assert_output 1
}

@test "a client that closes inside the handshake has gone away: exit 0; garbage instead of a handshake: exit 1" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.send(b"\x16\x03\x01\x02\x00\x01")
	c.close_write()
	print("exit", c.proc.wait(30))
	EOF
	assert_output 'exit 0'
	run grep -c 'TLS handshake: client closed' "$LOG"
	assert_output 1
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.send(b"MAIL FROM:<a@example.org>\r\n" * 4)
	print(repr(c.raw_read(30)))
	print("exit", c.proc.wait(30))
	EOF
	assert_line --index 0 "b''"
	assert_line --index 1 'exit 1'
	run grep -c 'TLS handshake failed' "$LOG"
	assert_output 1
}

@test "--tls: the handshake comes first, the greeting under TLS, no STARTTLS; over TCP with the PROXY header before it" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr --tls \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.starttls(client_context())
	print(c.reply())
	print(c.cmd("EHLO a"))
	print(c.cmd("STARTTLS"))
	print(c.code("MAIL FROM:<a@example.org>"), c.code("RCPT TO:<b@example.net>"), c.code("DATA"), c.code("x\r\n."))
	print("exit", c.wait())
	EOF
	assert_line --index 0 '220 mx.test ESMTP smtpd-stdio'
	refute_line --partial '250-STARTTLS'
	assert_line '503 5.5.1 Error: TLS already active'
	assert_line '250 250 354 250'
	assert_line 'exit 0'
	run cat "$DUMP/1/SMTP_PROTOCOL"
	assert_output ESMTPS
	start_server --proxy-protocol --tls "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<-'EOF'
	c = Client.tcp(int(sys.argv[1]))
	c.send("PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\r\n")
	c.starttls(client_context())
	c.reply(); c.cmd("EHLO a")
	print(c.code("MAIL FROM:<a@example.org>"), c.code("RCPT TO:<b@example.net>"), c.code("DATA"), c.code("x\r\n."), c.code("QUIT"))
	EOF
	assert_output '250 250 354 250 221'
	stop_server
	run cat "$DUMP/2/SMTP_REMOTE_ADDR"
	assert_output 192.0.2.7
}

@test "--require-tls: MAIL and AUTH before STARTTLS get 530, after it they work" {
	run smtp_session --require-tls "${TLS[@]}" --auth checkpassword:/bin/false \
	    "$HANDLERS/accept" <<-EOF
	EHLO a
	MAIL FROM:<a@example.org>
	AUTH PLAIN AGFsaWNlAHNlY3JldA==
	QUIT
	EOF
	assert_reply_after MAIL 530
	assert_reply_after AUTH 530
	refute_line --partial 'AUTH PLAIN'
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --require-tls "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS"); c.starttls(client_context())
	c.cmd("EHLO a")
	print(c.code("MAIL FROM:<a@example.org>"), c.code("RCPT TO:<b@example.net>"), c.code("DATA"), c.code("x\r\n."))
	EOF
	assert_output '250 250 354 250'
}

@test "SNI: the second keypair is chosen by name, the first is the default; SMTP_TLS_SNI says what was asked" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" --tls-cert "$PKI/other.pem" --tls-key "$PKI/other.key" \
	    "$HANDLERS/dump" <<-'EOF'
	ca = os.environ["PKI"] + "/ca.pem"
	for name in ("other.example.test", "mx.example.test", None):
	    c = Client.pipe(sys.argv[1:])
	    c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	    ctx = client_context(ca)
	    ctx.check_hostname = False
	    t = c.starttls(ctx, name)
	    cn = dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
	    c.cmd("EHLO a")
	    codes = [c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")]
	    print(name, cn, *codes, c.wait())
	EOF
	assert_line --index 0 'other.example.test other.example.test 250 250 354 250 0'
	assert_line --index 1 'mx.example.test mx.example.test 250 250 354 250 0'
	assert_line --index 2 'None mx.example.test 250 250 354 250 0'
	run cat "$DUMP/1/env" "$DUMP/2/env" "$DUMP/3/env"
	assert_line 'SMTP_TLS_SNI=other.example.test'
	assert_line 'SMTP_TLS_SNI=mx.example.test'
	assert_line 'SMTP_TLS_SNI='
}

@test "--tls-ticket-keys: a client resumes its session in the next connection's process; without it, never" {
	# tlsdrive cannot carry a session object across processes: one Python
	# process makes both connections, each to a new smtpd-stdio.
	local script='
ca = os.environ["PKI"] + "/ca.pem"
ctx = client_context(ca)
session = None
for i in range(3):
    c = Client.tcp(int(sys.argv[1]))
    c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
    t = c.starttls(ctx, "mx.example.test", session)
    c.cmd("EHLO a")
    codes = [c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.", "QUIT")]
    session = t.session
    print(i, t.session_reused, *codes)
'
	start_server --tls-ticket-keys "$PKI/tickets" "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<<"$script"
	assert_line --index 0 '0 False 250 250 354 250 221'
	assert_line --index 1 '1 True 250 250 354 250 221'
	assert_line --index 2 '2 True 250 250 354 250 221'
	stop_server
	run cat "$DUMP/1/env" "$DUMP/2/env"
	assert_line 'SMTP_TLS_RESUMED=0'
	assert_line 'SMTP_TLS_RESUMED=1'
	rm -rf "$DUMP"/*
	start_server "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<<"$script"
	assert_line --index 1 '1 False 250 250 354 250 221'
	stop_server
}

@test "--tls-ticket-keys: a resumed session gets a new ticket, so OpenSSL's client (one use per TLS 1.3 ticket) resumes every time" {
	local i in=()
	start_server --tls-ticket-keys "$PKI/tickets" "${TLS[@]}" "$HANDLERS/dump"
	for i in 1 2 3 4; do
		run sh -c 'p=$1 out=$2; shift 2
		    printf "QUIT\r\n" | timeout -k 5 30 openssl s_client \
		    -connect "127.0.0.1:$p" -starttls smtp -servername mx.example.test \
		    -ign_eof -sess_out "$out" "$@" 2>&1' sh "$PORT" \
		    "$BATS_TEST_TMPDIR/s$i" ${in[@]+"${in[@]}"}
		assert_success
		if [ "$i" = 1 ]; then
			assert_line --regexp '^New, TLSv1\.3, '
		else
			assert_line --regexp '^Reused, TLSv1\.3, '
		fi
		assert_line --partial 'Post-Handshake New Session Ticket arrived'
		in=(-sess_in "$BATS_TEST_TMPDIR/s$i")
	done
}

@test "TLS over TCP: TCP_NODELAY from the start, so the reply behind the TLS 1.3 tickets waits for no delayed ACK" {
	start_server "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" "$SERVER_PID" "$SMTPD-tls" <<-'EOF'
	import ctypes, socket
	def nodelay():
	    # smtpd-stdio, and smtpd-stdio-tls in its place from STARTTLS on:
	    # the descendant of the listener running either
	    exes = {os.path.realpath(sys.argv[3]), os.path.realpath(sys.argv[3][:-4])}
	    kids, todo = [], [int(sys.argv[2])]
	    while todo:
	        p = todo.pop()
	        for t in os.listdir("/proc/%d/task" % p):
	            with open("/proc/%d/task/%s/children" % (p, t)) as f:
	                todo += [int(x) for x in f.read().split()]
	        if os.path.realpath("/proc/%d/exe" % p) in exes:
	            kids.append(p)
	    check(len(kids) == 1, "one smtpd-stdio: %r" % kids)
	    pidfd = os.pidfd_open(kids[0])
	    libc = ctypes.CDLL(None, use_errno=True)
	    fd = libc.syscall(438, pidfd, 1, 0)     # pidfd_getfd(pidfd, 1, 0)
	    check(fd >= 0, "pidfd_getfd: errno %d" % ctypes.get_errno())
	    os.close(pidfd)
	    s = socket.socket(fileno=fd)
	    v = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
	    s.close()
	    return int(v != 0)
	c = Client.tcp(int(sys.argv[1]))
	c.reply(); c.cmd("EHLO a")
	before = nodelay()
	c.cmd("STARTTLS")
	c.starttls(client_context(os.environ["PKI"] + "/ca.pem"), "mx.example.test")
	print(before, nodelay(), c.code("EHLO a"), c.code("QUIT"))
	EOF
	assert_success
	assert_output '1 1 250 221'
}

# ticket_session PORT OUT [IN]: one STARTTLS session by openssl s_client,
# saving the session to OUT (resuming IN); prints New or Reused.
ticket_session() {
	local in=()
	[ -z "${3-}" ] || in=(-sess_in "$3")
	printf 'QUIT\r\n' | timeout -k 5 30 openssl s_client -ign_eof \
	    -connect "127.0.0.1:$1" -starttls smtp -servername mx.example.test \
	    -sess_out "$2" ${in[@]+"${in[@]}"} 2>&1 | sed -n 's/^\(New\|Reused\), .*/\1/p'
}

@test "--tls-ticket-keys: the newest key issues tickets and opens them, and a ticket holds no run of a key's octets" {
	local d=$BATS_TEST_TMPDIR k hex ticket i
	head -c 48 /dev/urandom >"$d/old"
	head -c 48 /dev/urandom >"$d/new"
	cat "$d/old" "$d/new" >"$d/both"
	chmod 600 "$d/old" "$d/new" "$d/both"
	start_server --tls-ticket-keys "$d/both" "${TLS[@]}" "$HANDLERS/dump"
	run ticket_session "$PORT" "$d/s"
	assert_output New
	stop_server
	start_server --tls-ticket-keys "$d/new" "${TLS[@]}" "$HANDLERS/dump"
	run ticket_session "$PORT" "$d/s2" "$d/s"
	assert_output Reused
	stop_server
	start_server --tls-ticket-keys "$d/old" "${TLS[@]}" "$HANDLERS/dump"
	run ticket_session "$PORT" "$d/s3" "$d/s"
	assert_output New
	ticket=$(openssl sess_id -in "$d/s" -text -noout |
	    sed -n '/TLS session ticket:/,/^$/p' | cut -c8-54 | tr -d ' \n-')
	[ "${#ticket}" -gt 64 ] || fail "no ticket: '$ticket'"
	for k in old new; do
		hex=$(od -An -tx1 "$d/$k" | tr -d ' \n')
		for ((i = 0; i <= 88; i += 8)); do
			[[ $ticket != *"${hex:i:8}"* ]] ||
				fail "the ticket holds octets $((i / 2)).. of key $k"
		done
	done
}

@test "--tls-ask-client-cert: a self-signed client certificate is taken, never verified; its hash and subject reach the handler" {
	local want
	want=SHA256:$(openssl x509 -in "$PKI/client.pem" -outform DER |
	    sha256sum | cut -d' ' -f1)
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --tls-ask-client-cert "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	pki = os.environ["PKI"]
	for cert in (pki + "/client.pem", None):
	    c = Client.pipe(sys.argv[1:])
	    c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	    c.starttls(client_context(cert=cert, key=cert and pki + "/client.key"))
	    c.cmd("EHLO a")
	    print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_line --index 0 '250 250 354 250 0'
	assert_line --index 1 '250 250 354 250 0'
	run cat "$DUMP/1/env"
	assert_line "SMTP_TLS_CLIENT_HASH=$want"
	assert_line 'SMTP_TLS_CLIENT_SUBJECT=/CN=client.example.test'
	run cat "$DUMP/2/env"
	assert_line 'SMTP_TLS_CLIENT_HASH='
	# Without the option no certificate is asked for.
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	pki = os.environ["PKI"]
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context(cert=pki + "/client.pem", key=pki + "/client.key"))
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_output '250 250 354 250 0'
	run cat "$DUMP/3/env"
	assert_line 'SMTP_TLS_CLIENT_HASH='
}

@test "--tls-protocols and --tls-ciphers: a TLS 1.2 only server, and a client that wants 1.3 is refused" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --tls-protocols tlsv1.2 \
	    --tls-ciphers NORMAL:-CIPHER-ALL:+AES-128-GCM:-KX-ALL:+ECDHE-RSA \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	print(info(c.starttls(client_context())))
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	try:
	    c.starttls(client_context(minimum=ssl.TLSVersion.TLSv1_3))
	    print("handshake done")
	except (ssl.SSLError, ConnectionError):
	    print("refused", c.proc.wait(30))
	EOF
	assert_line --index 0 'version=TLSv1.2 cipher=ECDHE-RSA-AES128-GCM-SHA256 resumed=0'
	assert_line --index 1 '250 250 354 250 0'
	assert_line --index 2 'refused 1'
	run cat "$DUMP/1/env"
	assert_line 'SMTP_TLS_PROTOCOL=TLSv1.2'
	run head -2 "$DUMP/1/message"
	assert_line --index 1 $'\t(TLSv1.2 cipher TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)'
}

@test "a relative --tls-cert and --tls-key are looked up under \$CREDENTIALS_DIRECTORY (systemd LoadCredential=)" {
	mkdir -p "$BATS_TEST_TMPDIR/creds"
	cp "$PKI/mx.pem" "$BATS_TEST_TMPDIR/creds/cert.pem"
	cp "$PKI/mx.key" "$BATS_TEST_TMPDIR/creds/key.pem"
	run drive env CREDENTIALS_DIRECTORY="$BATS_TEST_TMPDIR/creds" \
	    "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --tls-cert cert.pem --tls-key key.pem "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); print(c.cmd("STARTTLS"))
	t = c.starttls(client_context(os.environ["PKI"] + "/ca.pem"), "mx.example.test")
	print("verified", t.version())
	EOF
	assert_line --index 0 '220 2.0.0 Ready to start TLS'
	assert_line --index 1 'verified TLSv1.3'
	cd "$BATS_TEST_TMPDIR"
	usage_error --tls-cert cert.pem --tls-key key.pem "$HANDLERS/accept"
	[[ $stderr == *cert.pem* ]]
}

@test "smtpd-stdio hands a TLS command line to smtpd-stdio-tls next to it; without one there, exit 64 before any output" {
	mkdir "$BATS_TEST_TMPDIR/alone"
	cp "$SMTPD" "$BATS_TEST_TMPDIR/alone/smtpd-stdio"
	run --separate-stderr "$BATS_TEST_TMPDIR/alone/smtpd-stdio" "${TLS[@]}" \
	    "$HANDLERS/accept" </dev/null
	assert_failure 64
	assert_output ''
	[[ $stderr == *"alone/smtpd-stdio-tls"* ]]
	# Without TLS options it needs no sibling.
	run --separate-stderr "$BATS_TEST_TMPDIR/alone/smtpd-stdio" --hostname mx.test \
	    "$HANDLERS/accept" </dev/null
	assert_success
	assert_output $'220 mx.test ESMTP smtpd-stdio\r'
	# With it, the process that answers is smtpd-stdio-tls.
	cp "$SMTPD-tls" "$BATS_TEST_TMPDIR/alone/smtpd-stdio-tls"
	run --separate-stderr "$BATS_TEST_TMPDIR/alone/smtpd-stdio" --hostname mx.test \
	    "${TLS[@]}" "$HANDLERS/accept" <<<$'EHLO a\r\nQUIT\r'
	assert_success
	assert_line $'250-STARTTLS\r'
}

@test "TLS usage errors: unpaired, missing, unreadable or mismatched files, bad lists, options without a certificate (exit 64)" {
	usage_error --tls-cert "$PKI/mx.pem" "$HANDLERS/accept"
	usage_error --tls-key "$PKI/mx.key" "$HANDLERS/accept"
	usage_error --tls "$HANDLERS/accept"
	usage_error --require-tls "$HANDLERS/accept"
	usage_error --tls-ask-client-cert "$HANDLERS/accept"
	usage_error --tls-ticket-keys "$PKI/tickets" "$HANDLERS/accept"
	usage_error --tls-cert "$PKI/nonexistent.pem" --tls-key "$PKI/mx.key" "$HANDLERS/accept"
	[[ $stderr == *nonexistent.pem* ]]
	# What only GnuTLS can judge, smtpd-stdio-tls judges at once with
	# --tls; at STARTTLS, see the next test.
	usage_error --tls --tls-cert "$PKI/mx.pem" --tls-key "$PKI/other.key" "$HANDLERS/accept"
	usage_error --tls --tls-cert "$PKI/ca.key" --tls-key "$PKI/mx.key" "$HANDLERS/accept"
	usage_error "${TLS[@]}" --tls-protocols tlsv9 "$HANDLERS/accept"
	usage_error "${TLS[@]}" --tls-protocols tlsv1.2,sslv3 "$HANDLERS/accept"
	usage_error --tls "${TLS[@]}" --tls-ciphers NO-SUCH-CIPHER "$HANDLERS/accept"
	head -c 47 /dev/urandom >"$BATS_TEST_TMPDIR/short"
	usage_error "${TLS[@]}" --tls-ticket-keys "$BATS_TEST_TMPDIR/short" "$HANDLERS/accept"
	[[ $stderr == *'not 47 octets'* ]]
	head -c 240 /dev/urandom >"$BATS_TEST_TMPDIR/five"
	usage_error "${TLS[@]}" --tls-ticket-keys "$BATS_TEST_TMPDIR/five" "$HANDLERS/accept"
	usage_error "${TLS[@]}" --tls-ticket-keys "$BATS_TEST_TMPDIR/none" "$HANDLERS/accept"
	chmod 000 "$BATS_TEST_TMPDIR/five"
	usage_error "${TLS[@]}" --tls-ticket-keys /dev/null "$HANDLERS/accept"
}

@test "a key that does not match, or a bad cipher list, found at STARTTLS: logged, 454 4.7.0, and the session goes on in plaintext" {
	local opts
	for opts in "--tls-cert $PKI/mx.pem --tls-key $PKI/other.key" \
	    "${TLS[*]} --tls-ciphers NO-SUCH-CIPHER"; do
		# shellcheck disable=SC2086 # the options are words
		run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
		    $opts "$HANDLERS/dump" <<-'EOF'
		c = Client.pipe(sys.argv[1:])
		c.reply(); c.cmd("EHLO a")
		print(c.cmd("STARTTLS"))
		print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.", "QUIT")], c.wait())
		EOF
		assert_success
		assert_line --index 0 '454 4.7.0 TLS not available due to temporary reason'
		assert_line --index 1 '250 250 354 250 221 0'
	done
	run grep -c -e '--tls-key .*other.key: ' -e '--tls-ciphers NO-SUCH-CIPHER: ' "$LOG"
	assert_output 2
	run cat "$DUMP/1/env"
	assert_line 'SMTP_HELO=a'
	assert_line 'SMTP_TLS_PROTOCOL='
}

@test "--timeout inside an established TLS session: 421 4.4.2 over TLS, exit 1" {
	run --separate-stderr drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --timeout 2 "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context())
	print(c.cmd("EHLO a").splitlines()[-1])
	# Then silence: the deadline's reply comes inside TLS.
	print(c.reply().strip())
	print("exit", c.proc.wait(30))
	EOF
	assert_output $'250 ENHANCEDSTATUSCODES\n421 4.4.2 mx.test Error: timeout exceeded\nexit 1'
	run grep -c 'timeout: command line (--timeout)' "$LOG"
	assert_output 1
}

@test "--session-timeout cuts a TLS handshake that --timeout would let run" {
	run --separate-stderr drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --tls --timeout 300 --session-timeout 2 "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	# Half a ClientHello, then silence.
	c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
	print(repr(c.raw_read(30)))
	print("exit", c.proc.wait(30))
	EOF
	assert_output $'b\'\'\nexit 1'
	run grep -c 'TLS handshake: timeout' "$LOG"
	assert_output 1
}

@test "a renewed certificate (files replaced) is the one the next connection gets" {
	local d=$BATS_TEST_TMPDIR/live want1 want2
	mkdir -p "$d"
	cp "$PKI/mx.pem" "$d/cert.pem"
	cp "$PKI/mx.key" "$d/key.pem"
	start_server --tls --tls-cert "$d/cert.pem" --tls-key "$d/key.pem" "$HANDLERS/dump"
	peer_cert() {
		python3 -c 'import hashlib, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20))
print(hashlib.sha256(s.getpeercert(True)).hexdigest())
s.recv(512)
s.sendall(b"QUIT\r\n")
s.recv(512)' "$PORT"
	}
	der_hash() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
	want1=$(der_hash "$PKI/mx.pem")
	want2=$(der_hash "$PKI/other.pem")
	run peer_cert
	assert_output "$want1"
	# Renewal as certbot does it: new files in place, no restart.
	cp "$PKI/other.pem" "$d/cert.new" && mv "$d/cert.new" "$d/cert.pem"
	cp "$PKI/other.key" "$d/key.new" && mv "$d/key.new" "$d/key.pem"
	run peer_cert
	assert_output "$want2"
}
