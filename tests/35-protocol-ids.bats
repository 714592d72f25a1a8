#!/usr/bin/env bats
# The protocol name (SPEC 3) and message ids unique across hosts (SPEC 12).

setup() {
	load test_helper/common
	common_setup
}

utf8_message() {
	smtp_session "$@" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SMTPUTF8
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
}

@test "a transaction with SMTPUTF8 is UTF8SMTP in SMTP_PROTOCOL and the Received header (RFC 6531 3.7.3)" {
	run --separate-stderr utf8_message --smtputf8 "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/1/SMTP_PROTOCOL")" UTF8SMTP
	run grep -c 'with UTF8SMTP id ' "$DUMP/1/message"
	assert_output 1
}

@test "the next transaction without SMTPUTF8 is ESMTP again" {
	run --separate-stderr utf8_message --smtputf8 "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/2/SMTP_PROTOCOL")" ESMTP
	run grep -c 'with ESMTP id ' "$DUMP/2/message"
	assert_output 1
}

@test "a message id is time, pid, counter and 40 random bits, safe in file names" {
	run --separate-stderr send_messages 2 "$HANDLERS/dump"
	assert_success
	[[ $(cat "$DUMP/1/SMTP_ID") =~ ^[0-9A-F]+\.[0-9A-F]+\.1\.[0-9a-f]{10}$ ]]
	[[ $(cat "$DUMP/2/SMTP_ID") =~ ^[0-9A-F]+\.[0-9A-F]+\.2\.[0-9a-f]{10}$ ]]
}

# Hosts share no pid space: two hosts can run the same pid with the same
# counter at the same microsecond.  Four processes with the same pid (each
# is pid 1 in a fresh pid namespace) stand for four hosts; their ids must
# still differ in the random part alone.  (The clock cannot be stopped for
# a static executable, so the random part is checked on its own.)
@test "the same pid and counter on four hosts still give four ids, by their random bits" {
	local i
	message_dialogue 1
	for i in 1 2 3 4; do
		unshare --pid --fork "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/dump" \
		    <"$DIALOGUE" >/dev/null 2>&1 &
	done
	wait
	[ "$(ls "$DUMP" | wc -l)" -eq 4 ]
	# The same pid and counter in all four ...
	run sh -c "for f in '$DUMP'/*/SMTP_ID; do cat \"\$f\"; echo; done | cut -d. -f2,3 | sort -u"
	assert_output 1.1
	# ... and four different random parts of 40 bits.
	run sh -c "for f in '$DUMP'/*/SMTP_ID; do cat \"\$f\"; echo; done | cut -d. -f4 | grep -E '^[0-9a-f]{10}\$' | sort -u | wc -l"
	assert_output 4
}

@test "50 sessions started at once give 50 distinct ids" {
	local i
	message_dialogue 1
	for i in $(seq 50); do
		"$SMTPD" --hostname mx.test --log stderr "$HANDLERS/dump" <"$DIALOGUE" >/dev/null 2>&1 &
	done
	wait
	[ "$(ls "$DUMP" | wc -l)" -eq 50 ]
	run sh -c "for f in '$DUMP'/*/SMTP_ID; do cat \"\$f\"; echo; done | sort -u | wc -l"
	assert_output 50
}

@test "under TLS and AUTH: LMTPS, LMTPA, LMTPSA, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA (RFC 3848, RFC 6531)" {
	load test_helper/tls
	local d=$BATS_TEST_TMPDIR/pki mode n=0
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	    -subj /CN=mx.example.test -keyout "$d/mx.key" -out "$d/mx.pem" 2>/dev/null
	for mode in 'lmtp tls' 'lmtp auth' 'lmtp tls auth' 'utf8 tls' 'utf8 auth' 'utf8 tls auth'; do
		MODE=$mode run --separate-stderr drive timeout -k 5 60 "$SMTPD" \
		    --hostname mx.test --log stderr --smtputf8 \
		    --tls-cert "$d/mx.pem" --tls-key "$d/mx.key" --auth-plaintext \
		    --auth "checkpassword:$FIXTURES/checkpassword" \
		    $([ "${mode%% *}" = lmtp ] && echo --lmtp) "$HANDLERS/dump" <<-'PY'
		m = os.environ["MODE"].split()
		c = Client.pipe(sys.argv[1:])
		hello = "LHLO a" if "lmtp" in m else "EHLO a"
		c.reply(); c.cmd(hello)
		if "tls" in m:
		    c.cmd("STARTTLS"); c.starttls(client_context()); c.cmd(hello)
		if "auth" in m:
		    print(c.code("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), end=" ")
		mail = "MAIL FROM:<a@example.org>" + (" SMTPUTF8" if "utf8" in m else "")
		print(*[c.code(l) for l in (mail, "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
		PY
		assert_output --regexp '^(235 )?250 250 354 250 0$'
		n=$((n + 1))
		printf '%s\n' "$(cat "$DUMP/$n/SMTP_PROTOCOL")" >>"$BATS_TEST_TMPDIR/names"
		grep -q "with $(cat "$DUMP/$n/SMTP_PROTOCOL") id " "$DUMP/$n/message"
	done
	run cat "$BATS_TEST_TMPDIR/names"
	assert_output $'LMTPS\nLMTPA\nLMTPSA\nUTF8SMTPS\nUTF8SMTPA\nUTF8SMTPSA'
}
