#!/usr/bin/env bats
# Real clients over TLS and AUTH (SPEC 8, 9): swaks, curl, msmtp, Python's
# smtplib and a private Postfix instance deliver over STARTTLS and over
# implicit TLS, authenticated against a checkpassword script, to
# smtpd-stdio run per connection by systemd-socket-activate.

setup_file() {
	local d=$BATS_FILE_TMPDIR
	# A throwaway CA and a server certificate for mx.example.test, and a
	# second CA that signed nothing (a client trusting only it must fail).
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -days 2 -subj "/CN=smtpd-stdio test $ca" \
		    -addext basicConstraints=critical,CA:TRUE \
		    -addext keyUsage=critical,keyCertSign \
		    -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -subj /CN=mx.example.test -keyout "$d/mx.key" -out "$d/mx.csr" 2>/dev/null
	printf 'subjectAltName=DNS:mx.example.test\nextendedKeyUsage=serverAuth\n' >"$d/mx.ext"
	openssl x509 -req -in "$d/mx.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
	    -CAcreateserial -days 2 -extfile "$d/mx.ext" -out "$d/mx.pem" 2>/dev/null
	openssl verify -CAfile "$d/ca.pem" "$d/mx.pem" >/dev/null
	# checkpassword (qmail): login\0password\0timestamp\0 on fd 3;
	# alice/secret runs argv[1] (/bin/true), anything else exits 1.
	cat >"$d/checkpassword" <<-'EOF'
	#!/bin/sh
	creds=$(dd bs=512 count=1 <&3 2>/dev/null | tr '\0' '\n')
	user=$(printf '%s\n' "$creds" | sed -n 1p)
	pass=$(printf '%s\n' "$creds" | sed -n 2p)
	if [ "$user" = alice ] && [ "$pass" = secret ]; then
		exec "$@"
	fi
	exit 1
	EOF
	chmod 0755 "$d/checkpassword"
}

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/postfix
	common_setup
	CA=$BATS_FILE_TMPDIR/ca.pem
	MSG=$BATS_TEST_TMPDIR/msg
	# Date and Message-ID, so that no client adds its own.
	printf 'Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <tls@client.example>\r\nSubject: tls\r\nFrom: a@example.org\r\n\r\nhello over TLS\r\n.dotted line\r\n' >"$MSG"
	# swaks sends CRLF . CRLF after its --data: without the last CRLF.
	head -c -2 "$MSG" >"$MSG.swaks"
	EXPECTED=$BATS_TEST_TMPDIR/expected
	tr -d '\r' <"$MSG" >"$EXPECTED"
}

teardown() {
	stop_postfix
	stop_server
}

# start_tls_server [smtpd options]: start_server with the certificate,
# the checkpassword backend and the dump handler.
start_tls_server() {
	start_server --tls-cert "$BATS_FILE_TMPDIR/mx.pem" \
	    --tls-key "$BATS_FILE_TMPDIR/mx.key" \
	    --auth "checkpassword:$BATS_FILE_TMPDIR/checkpassword" "$@" \
	    "$HANDLERS/dump"
}

# env_of N VAR: the value of VAR in the environment of the handler run
# for message N.
env_of() {
	sed -n "s/^$2=//p" "$DUMP/$1/env"
}

# assert_delivered_tls N: message N came over TLS 1.3 from alice, with
# ESMTPSA and the TLS details in its Received header, and its bytes after
# that header are $EXPECTED.
assert_delivered_tls() {
	local n=$1 received id
	[ -f "$DUMP/$n/env" ] || fail "no message $n reached the handler"
	assert_equal "$(env_of "$n" SMTP_PROTOCOL)" ESMTPSA
	assert_equal "$(env_of "$n" SMTP_AUTH_USER)" alice
	assert_equal "$(env_of "$n" SMTP_TLS_PROTOCOL)" TLSv1.3
	assert_equal "$(env_of "$n" SMTP_TLS_CIPHER)" TLS_AES_256_GCM_SHA384
	assert_equal "$(env_of "$n" SMTP_MAIL_FROM)" a@example.org
	assert_equal "$(env_of "$n" SMTP_RCPT_TO)" b@example.net
	# The first header, unfolded, then the rest of the message.
	received=$(awk 'NR > 1 && !/^[ \t]/ { exit } { sub(/^[ \t]+/, " "); printf "%s", $0 }' "$DUMP/$n/message")
	id=$(env_of "$n" SMTP_ID)
	assert_regex "$received" "^Received: from [^ ]+ \\([^ ]+ \\[127\\.0\\.0\\.1\\]\\) \\(TLSv1\\.3 cipher TLS_AES_256_GCM_SHA384\\) by mx\\.test \\(smtpd-stdio\\) with ESMTPSA id ${id//./\\.} for <b@example\\.net>; "
	awk 'body { print; next } NR > 1 && !/^[ \t]/ { body = 1; print }' \
	    "$DUMP/$n/message" >"$BATS_TEST_TMPDIR/got"
	diff -u "$EXPECTED" "$BATS_TEST_TMPDIR/got"
}

@test "swaks --tls (STARTTLS) with AUTH PLAIN, the CA verified" {
	start_tls_server
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 \
	    --tls --tls-verify --tls-ca-path "$CA" --tls-sni mx.example.test \
	    --auth PLAIN --auth-user alice --auth-password secret \
	    --from a@example.org --to b@example.net --data "$MSG.swaks"
	assert_success
	assert_output --partial '<-  220 2.0.0 Ready to start TLS'
	assert_output --partial '<~  235 2.7.0 Authentication successful'
	assert_output --regexp '<~  250 2\.0\.0 OK: queued as '
	assert_delivered_tls 1
	assert_equal "$(env_of 1 SMTP_TLS_SNI)" mx.example.test
	assert_equal "$(env_of 1 SMTP_HELO)" client.example
}

@test "swaks --tls-verify refuses a server its CA did not sign" {
	start_tls_server
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 \
	    --tls --tls-verify --tls-ca-path "$BATS_FILE_TMPDIR/other-ca.pem" \
	    --tls-sni mx.example.test \
	    --auth PLAIN --auth-user alice --auth-password secret \
	    --from a@example.org --to b@example.net --data "$MSG.swaks"
	assert_failure
	assert_no_message
	# The handshake fails on the client's side: the server logs it, exit 1.
	SERVER_EXIT="0 1"
}

@test "swaks --tlsc (implicit TLS, --tls) with AUTH LOGIN" {
	start_tls_server --tls
	run swaks --server "127.0.0.1:$PORT" --helo client.example --timeout 30 \
	    --tlsc --tls-verify --tls-ca-path "$CA" --tls-sni mx.example.test \
	    --auth LOGIN --auth-user alice --auth-password secret \
	    --from a@example.org --to b@example.net --data "$MSG.swaks"
	assert_success
	assert_output --partial '<~  334 VXNlcm5hbWU6'
	assert_output --partial '<~  334 UGFzc3dvcmQ6'
	assert_output --partial '<~  235 2.7.0 Authentication successful'
	refute_output --partial STARTTLS
	assert_delivered_tls 1
}

@test "curl smtp:// --ssl-reqd --user (STARTTLS, AUTH), the CA verified" {
	start_tls_server --require-tls --require-auth
	run --separate-stderr curl -sS --max-time 30 --ssl-reqd --cacert "$CA" \
	    --resolve "mx.example.test:$PORT:127.0.0.1" \
	    --url "smtp://mx.example.test:$PORT/client.example" --user alice:secret \
	    --mail-from a@example.org --mail-rcpt b@example.net --upload-file "$MSG"
	assert_success
	assert_delivered_tls 1
	assert_equal "$(env_of 1 SMTP_HELO)" client.example
	assert_equal "$(env_of 1 SMTP_TLS_SNI)" mx.example.test
}

@test "curl smtps:// --user against --tls (implicit TLS, AUTH)" {
	start_tls_server --tls --require-auth
	run --separate-stderr curl -sS --max-time 30 --cacert "$CA" \
	    --resolve "mx.example.test:$PORT:127.0.0.1" \
	    --url "smtps://mx.example.test:$PORT/client.example" --user alice:secret \
	    --mail-from a@example.org --mail-rcpt b@example.net --upload-file "$MSG"
	assert_success
	assert_delivered_tls 1
}

@test "curl --user with a wrong password gets no message through" {
	start_tls_server --require-auth
	run --separate-stderr curl -v --max-time 30 --ssl-reqd --cacert "$CA" \
	    --resolve "mx.example.test:$PORT:127.0.0.1" \
	    --url "smtp://mx.example.test:$PORT/client.example" --user alice:wrong \
	    --mail-from a@example.org --mail-rcpt b@example.net --upload-file "$MSG"
	# curl: (67) Login denied.
	assert_failure 67
	assert_regex "$stderr" '< 535 5\.7\.8 '
	assert_no_message
}

# msmtp_send STARTTLS(on|off) PASSWORD: msmtp with its own configuration
# file (0600, as msmtp wants one with a password) sends $MSG.
msmtp_send() {
	local conf=$BATS_TEST_TMPDIR/msmtprc
	cat >"$conf" <<-EOF
	account test
	host 127.0.0.1
	port $PORT
	domain client.example
	from a@example.org
	timeout 30
	tls on
	tls_starttls $1
	tls_trust_file $CA
	tls_host_override mx.example.test
	auth on
	user alice
	password $2
	EOF
	chmod 0600 "$conf"
	msmtp -C "$conf" -a test -f a@example.org b@example.net <"$MSG"
}

@test "msmtp tls on, tls_starttls on, auth on" {
	start_tls_server --require-tls
	run msmtp_send on secret
	assert_success
	assert_delivered_tls 1
	assert_equal "$(env_of 1 SMTP_HELO)" client.example
}

@test "msmtp tls on, tls_starttls off (implicit TLS), auth on" {
	start_tls_server --tls
	run msmtp_send off secret
	assert_success
	assert_delivered_tls 1
}

@test "msmtp with a wrong password fails with the server's 535" {
	start_tls_server
	run msmtp_send on wrong
	assert_failure
	assert_output --partial '535 5.7.8'
	assert_no_message
}

# smtplib_send PASSWORD: smtplib over STARTTLS, trusting only $CA for
# mx.example.test, login() as alice, one message; prints the code of the
# last reply, or "auth CODE" when login() raised SMTPAuthenticationError.
smtplib_send() {
	python3 - "$PORT" "$CA" "$1" "$MSG" <<-'PY'
	import smtplib, ssl, sys
	port, ca, password, msg = sys.argv[1:]
	class SMTP(smtplib.SMTP):
	    # mx.example.test is 127.0.0.1; starttls() checks that name.
	    def _get_socket(self, host, port, timeout):
	        return super()._get_socket("127.0.0.1", port, timeout)
	ctx = ssl.create_default_context(cafile=ca)
	with SMTP("mx.example.test", int(port), local_hostname="client.example",
	          timeout=30) as s:
	    s.ehlo()
	    s.starttls(context=ctx)
	    s.ehlo()
	    try:
	        s.login("alice", password)
	    except smtplib.SMTPAuthenticationError as e:
	        print("auth", e.smtp_code, e.smtp_error.decode())
	        sys.exit(0)
	    with open(msg, "rb") as f:
	        s.sendmail("a@example.org", ["b@example.net"], f.read())
	    print(s.noop()[0])
	PY
}

@test "smtplib starttls() with the CA, login(), sendmail()" {
	start_tls_server --require-tls --require-auth
	run smtplib_send secret
	assert_success
	assert_output 250
	assert_delivered_tls 1
	assert_equal "$(env_of 1 SMTP_TLS_RESUMED)" 0
}

@test "smtplib login() with a wrong password raises SMTPAuthenticationError 535" {
	start_tls_server
	run smtplib_send wrong
	assert_success
	assert_output --regexp '^auth 535 5\.7\.8 '
	assert_no_message
}

# ---- Postfix as the sending MTA ----

# start_postfix [PASSWORD]: a private Postfix instance in $PF (its own
# config and queue directories, its log in $PF/maillog; no smtpd in its
# master.cf, so it listens nowhere) that relays everything to
# [127.0.0.1]:$PORT, with TLS required and SASL as alice (password
# PASSWORD, default secret).  Its daemons run as the postfix user, who
# cannot enter bats's 0700 run directory: $PF is a world_dir, removed by
# stop_postfix.
start_postfix() {
	PF=$(world_dir postfix) || return
	# The services a relaying client needs besides the usual.
	pf_configure "$PF/conf" \
	    'tlsmgr    unix  -       -       n       1000?   1       tlsmgr' \
	    'smtp      unix  -       -       n       -       -       smtp' \
	    'relay     unix  -       -       n       -       -       smtp' <<-EOF
	myhostname = client.example
	myorigin = client.example
	local_recipient_maps =
	relayhost = [127.0.0.1]:$PORT
	smtp_helo_name = client.example
	smtp_tls_security_level = encrypt
	smtp_tls_CAfile = $CA
	smtp_tls_loglevel = 1
	smtp_sasl_auth_enable = yes
	smtp_sasl_password_maps = static:alice:${1:-secret}
	smtp_sasl_security_options = noanonymous
	smtp_sasl_tls_security_options = noanonymous
	EOF
	postfix -c "$PF/conf" start >"$PF/start.log" 2>&1 ||
		{ cat "$PF/start.log" "$PF/maillog" | batslib_decorate "postfix did not start" | fail; return 1; }
	wait_for 10 test -s "$PF/queue/pid/master.pid"
	PF_PID=$(tr -d ' ' <"$PF/queue/pid/master.pid")
}

# stop_postfix: the private instance is stopped, its master killed by PID
# if it is still there.
stop_postfix() {
	# A master that started but was not waited for is stopped too.
	if [ -z "${PF_PID-}" ] && [ -s "${PF-}/queue/pid/master.pid" ]; then
		PF_PID=$(tr -d ' ' <"$PF/queue/pid/master.pid")
	fi
	if [ -n "${PF_PID-}" ]; then
		postfix -c "$PF/conf" stop >/dev/null 2>&1 || true
		wait_for 10 process_gone "$PF_PID" ||
			kill -9 "$PF_PID" 2>/dev/null || true
		PF_PID=
	fi
	if [ -n "${PF-}" ]; then
		rm -rf "$PF"
		PF=
	fi
}

# postfix_done: the log has a final status for the message.
postfix_done() {
	grep -Eq 'status=(sent|bounced|deferred)' "$PF/maillog"
}

@test "Postfix relays with smtp_tls_security_level = encrypt and SASL" {
	start_tls_server --require-tls --require-auth
	start_postfix
	tr -d '\r' <"$MSG" | sendmail -C "$PF/conf" -f a@example.org b@example.net
	wait_for 30 postfix_done || fail "no delivery status in $(cat "$PF/maillog")"
	run grep -E 'postfix/smtp\[' "$PF/maillog"
	assert_output --regexp 'Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:[0-9]+: TLSv1\.3'
	assert_output --regexp "to=<b@example\\.net>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:$PORT, .* status=sent \\(250 2\\.0\\.0 OK: queued as $(env_of 1 SMTP_ID | sed 's/\./\\./g')\\)"
	assert_equal "$(env_of 1 SMTP_PROTOCOL)" ESMTPSA
	assert_equal "$(env_of 1 SMTP_AUTH_USER)" alice
	assert_equal "$(env_of 1 SMTP_TLS_PROTOCOL)" TLSv1.3
	assert_equal "$(env_of 1 SMTP_HELO)" client.example
	assert_equal "$(env_of 1 SMTP_MAIL_FROM)" a@example.org
	# Postfix adds its own Received, Message-Id and Date; ours is first,
	# and the body is the bytes sent.
	received=$(awk 'NR > 1 && !/^[ \t]/ { exit } { sub(/^[ \t]+/, " "); printf "%s", $0 }' "$DUMP/1/message")
	assert_regex "$received" '^Received: from client\.example \([^ ]+ \[127\.0\.0\.1\]\) \(TLSv1\.3 cipher TLS_AES_256_GCM_SHA384\) by mx\.test \(smtpd-stdio\) with ESMTPSA id '
	grep -q '^Received: by client\.example (Postfix' "$DUMP/1/message"
	grep -q '^Subject: tls$' "$DUMP/1/message"
	assert_equal "$(sed '1,/^$/d' "$DUMP/1/message")" $'hello over TLS\n.dotted line'
}

@test "Postfix with a wrong SASL password defers the message" {
	start_tls_server --require-tls --require-auth
	start_postfix wrong
	tr -d '\r' <"$MSG" | sendmail -C "$PF/conf" -f a@example.org b@example.net
	wait_for 30 postfix_done || fail "no delivery status in $(cat "$PF/maillog")"
	run grep -E 'postfix/smtp\[' "$PF/maillog"
	assert_output --partial 'SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8 '
	refute_output --partial status=sent
	assert_no_message
}
