#!/usr/bin/env bats
# REQUIRETLS (RFC 8689, SPEC 8): offered and taken only under TLS, handed
# to the handler, and honoured by the shipped relay handler, which relays
# such a message only over verified TLS.

setup_file() {
	local d=$BATS_FILE_TMPDIR/pki
	load test_helper/common
	load test_helper/tls
	mkdir -p "$d"
	pki_self_signed "$d" ec ca Test-CA
	# The upstream, as curl reaches it: 127.0.0.1, signed by the CA.
	pki_signed "$d" ec up 127.0.0.1 IP:127.0.0.1
	# One nobody vouches for.
	pki_self_signed "$d" ec self 127.0.0.1 IP:127.0.0.1
}

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/tls
	common_setup
	tls_setup up
}

teardown() {
	stop_server
	stop_upstream 2>/dev/null || true
}

@test "REQUIRETLS: offered only under TLS; in cleartext 555 5.5.4; under TLS SMTP_REQUIRETLS=1 and in SMTP_MAIL_OPTIONS" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply()
	print("REQUIRETLS" in c.cmd("EHLO a"))
	print(c.cmd("MAIL FROM:<a@example.org> REQUIRETLS"))
	c.cmd("STARTTLS")
	c.starttls(client_context())
	print("250-REQUIRETLS" in c.cmd("EHLO a").split("\n"))
	print(c.cmd("MAIL FROM:<a@example.org> REQUIRETLS=yes"))
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org> REQUIRETLS", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")])
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_success
	assert_line --index 0 False
	assert_line --index 1 '555 5.5.4 REQUIRETLS needs TLS: issue STARTTLS first'
	assert_line --index 2 True
	assert_line --index 3 '501 5.5.4 REQUIRETLS takes no value'
	assert_line --index 4 '250 250 354 250'
	assert_line --index 5 '250 250 354 250 0'
	run cat "$DUMP/1/env"
	assert_line 'SMTP_REQUIRETLS=1'
	assert_line 'SMTP_MAIL_OPTIONS=REQUIRETLS'
	run cat "$DUMP/2/env"
	assert_line 'SMTP_REQUIRETLS='
	assert_line 'SMTP_MAIL_OPTIONS='
}

# relay_session PORT REQUIRETLS: a STARTTLS session into smtpd-stdio over
# pipes whose relay handler sends to 127.0.0.1:PORT; MAIL carries
# REQUIRETLS when the second argument is 1.  Prints the reply to the data.
relay_session() {
	drive "$1" "$2" "${SERVER[@]}" env RELAY_CA_FILE="$PKI/ca.pem" \
	    "$SMTPD" --hostname mx.test --log stderr --relay "127.0.0.1:$1" \
	    --tls-cert "$PKI/self.pem" --tls-key "$PKI/self.key" \
	    "$ROOT/src/handlers/relay" <<-'EOF'
	c = Client.pipe(sys.argv[3:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context())
	c.cmd("EHLO a")
	mail = "MAIL FROM:<a@example.org>" + (" REQUIRETLS" if sys.argv[2] == "1" else "")
	print(*[c.code(l) for l in (mail, "RCPT TO:<b@example.net>", "DATA")])
	print(c.cmd("Subject: t\r\n\r\nbody\r\n."))
	print(c.code("QUIT"), c.wait())
	EOF
}

@test "the relay handler: a REQUIRETLS message to an upstream without STARTTLS is refused 550 5.7.30 and never sent; without REQUIRETLS it goes" {
	start_upstream
	run relay_session "$UPSTREAM_PORT" 1
	assert_success
	assert_line --index 0 '250 250 354'
	assert_line --index 1 '550 5.7.30 REQUIRETLS support required'
	assert_line --index 2 '221 0'
	run relay_session "$UPSTREAM_PORT" 0
	assert_line --index 1 --regexp '^250 '
	stop_upstream
	run grep -rl 'body' "$UPSTREAM"
	assert_equal "${#lines[@]}" 1
}

@test "the relay handler: a REQUIRETLS message goes over TLS that verifies, and not to a certificate nobody signed" {
	start_server --tls-cert "$PKI/up.pem" --tls-key "$PKI/up.key" "$HANDLERS/dump"
	run relay_session "$PORT" 1
	assert_success
	assert_line --index 0 '250 250 354'
	assert_line --index 1 --regexp '^250 '
	run cat "$DUMP/1/env"
	assert_line 'SMTP_TLS_PROTOCOL=TLSv1.3'
	assert_line 'SMTP_REQUIRETLS=1'	# RFC 8689 4.2.1: passed on
	run tail -1 "$DUMP/1/message"
	assert_output body
	stop_server
	rm -rf "${DUMP:?}"/*
	start_server --tls-cert "$PKI/self.pem" --tls-key "$PKI/self.key" "$HANDLERS/dump"
	run relay_session "$PORT" 1
	assert_line --index 1 '550 5.7.30 REQUIRETLS support required'
	[ ! -e "$DUMP/1" ] || fail "a message went to the unverified upstream"
}
