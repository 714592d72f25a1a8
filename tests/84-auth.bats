#!/usr/bin/env bats
# AUTH (SPEC 9): PLAIN and LOGIN, against a real Dovecot auth service and
# a qmail checkpassword program, under TLS and (with --auth-plaintext)
# without.  The dialogue rules are tested over pipes with
# --auth-plaintext; the TLS cases with test_helper/tlsdrive.py.

setup_file() {
	local d=$BATS_FILE_TMPDIR/pki
	load test_helper/common
	load test_helper/tls
	mkdir -p "$d"
	pki_self_signed "$d" ec mx mx.example.test DNS:mx.example.test
}

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/dovecot
	load test_helper/tls
	common_setup
	tls_setup mx
	CHECKPW=(--auth "checkpassword:$FIXTURES/checkpassword")
	export CHECKPW_LOG=$BATS_TEST_TMPDIR/checkpw.log
}

teardown() {
	stop_dovecot
	stop_server
}

# b64 STRING: base64 of printf STRING (so \0 makes a NUL).
b64() {
	# shellcheck disable=SC2059 # the escapes are the point
	printf "$1" | base64 -w0
}

PLAIN_ALICE=AGFsaWNlAHNlY3JldA==	# \0alice\0secret
PLAIN_WRONG=AGFsaWNlAHdyb25n	# \0alice\0wrong

# A transaction after AUTH, to see what the handler got.
MESSAGE='MAIL FROM:<a@example.org>
RCPT TO:<b@example.net>
DATA
Subject: authenticated

hello
.'

@test "AUTH usage errors: --require-auth or --auth-plaintext without --auth, --auth without TLS or plaintext, bad backends" {
	usage_error --require-auth "$HANDLERS/accept"
	usage_error --auth-plaintext "$HANDLERS/accept"
	usage_error "${CHECKPW[@]}" "$HANDLERS/accept"
	usage_error --auth nosuch:thing --auth-plaintext "$HANDLERS/accept"
	usage_error --auth dovecot: --auth-plaintext "$HANDLERS/accept"
	usage_error --auth checkpassword: --auth-plaintext "$HANDLERS/accept"
}

@test "checkpassword PLAIN: 235, then SMTP_AUTH_USER and ESMTPA; login and password reach it on fd 3, never in argv or env" {
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	$MESSAGE
	QUIT
	EOF
	assert_line $'250-AUTH PLAIN LOGIN\r'
	assert_line $'235 2.7.0 Authentication successful\r'
	assert_reply_after . 250
	run cat "$DUMP/1/env"
	assert_line 'SMTP_AUTH_USER=alice'
	assert_line 'SMTP_PROTOCOL=ESMTPA'
	refute_output --partial secret
	run cat "$CHECKPW_LOG"
	assert_output --regexp '^login=alice password_length=6 stamp=[0-9]+ argc=1 argv1=/bin/true$'
	run grep -c . "$DUMP/1/message"
	refute_output 0
	run grep 'with ESMTPA id' "$DUMP/1/message"
	assert_success
}

@test "checkpassword LOGIN: the exact prompts, the user name in the AUTH line or after it, lower-case mechanism" {
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH LOGIN
	$(b64 alice)
	$(b64 secret)
	QUIT
	EOF
	assert_line $'334 VXNlcm5hbWU6\r'
	assert_line $'334 UGFzc3dvcmQ6\r'
	assert_line $'235 2.7.0 Authentication successful\r'
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	auth login $(b64 alice)
	$(b64 secret)
	$MESSAGE
	QUIT
	EOF
	refute_line $'334 VXNlcm5hbWU6\r'
	assert_line $'334 UGFzc3dvcmQ6\r'
	assert_line $'235 2.7.0 Authentication successful\r'
	run cat "$DUMP/1/SMTP_PROTOCOL"
	assert_output ESMTPA
	# PLAIN without an initial response gets an empty challenge.
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH plain
	$PLAIN_ALICE
	QUIT
	EOF
	assert_line $'334 \r'
	assert_line $'235 2.7.0 Authentication successful\r'
}

@test "a wrong password is 535 after 1 s and counts as an error; --max-errors ends the session" {
	sed 's/$/\r/' >"$DIALOGUE" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_WRONG
	AUTH PLAIN $PLAIN_WRONG
	AUTH PLAIN $PLAIN_ALICE
	EOF
	# Traced: the order of the events shows the delay, not a clock.
	# LeakSanitizer cannot run under ptrace: off for this run only.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	    run --separate-stderr strace -f -qq -s 4096 -o "$BATS_TEST_TMPDIR/trace" \
	    -e trace=write,nanosleep,clock_nanosleep -e signal=none \
	    timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr --auth-plaintext \
	    "${CHECKPW[@]}" --max-errors 2 "$HANDLERS/dump" <"$DIALOGUE"
	assert_failure 1
	assert_reply_after AUTH 535 1
	assert_line $'535 5.7.8 Error: authentication failed\r'
	assert_line --partial '421 4.7.0 mx.test Error: too many errors'
	refute_line --partial '235'
	run grep -c 'AUTH PLAIN from unknown: user="alice" refused' <<<"$stderr"
	assert_output 2
	# Each refusal is logged, then a 1 s sleep, then the 535 goes out.
	run awk '/write\(2, .*user=\\"alice\\" refused/ { printf "refused " }
	    /nanosleep\(.*tv_sec=1, tv_nsec=0/ { printf "sleep " }
	    /write\(1, .*535 5\.7\.8/ { printf "535 " }' "$BATS_TEST_TMPDIR/trace"
	assert_output 'refused sleep refused sleep 535 '
}

@test "checkpassword status 2, 111, a signal, a hang past --handler-timeout, a missing program: 454, no delay, not an error" {
	local user
	for user in temp misuse crash hang; do
		run smtp_session --auth-plaintext "${CHECKPW[@]}" --handler-timeout 1 \
		    --max-errors 1 "$HANDLERS/dump" <<-EOF
		EHLO client.example
		AUTH PLAIN $(b64 "\\0$user\\0pw")
		NOOP
		QUIT
		EOF
		assert_success
		assert_line $'454 4.7.0 Temporary authentication failure\r'
		assert_reply_after NOOP 250
	done
	# The checkpassword past its time limit was killed, not orphaned.
	run cat "$CHECKPW_LOG.hang"
	assert_equal "${#lines[@]}" 1
	wait_for 10 process_gone "${lines[0]}"
	run smtp_session --auth-plaintext --auth checkpassword:/nonexistent/prog \
	    "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_line $'454 4.7.0 Temporary authentication failure\r'
}

@test "the SASL dialogue: * cancels (501 5.0.0), bad base64 is 501 5.5.2, unknown mechanism 504, bad PLAIN message 501" {
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH LOGIN
	*
	AUTH PLAIN
	not!base64
	AUTH PLAIN AGFsaWNl=
	AUTH CRAM-MD5
	AUTH PLAIN $(b64 'alice')
	AUTH PLAIN $(b64 '\0\0secret')
	AUTH
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_line $'501 5.0.0 Authentication cancelled\r'
	assert_line $'501 5.5.2 Error: invalid base64 data\r'
	assert_line $'504 5.5.4 Error: unrecognized authentication type\r'
	assert_line $'501 5.5.2 Error: invalid SASL response\r'
	# 334 and a SASL line are one exchange: list the codes in order.
	run reply_codes
	assert_equal "$(printf '%s ' $output)" \
	    '220 250 334 501 334 501 501 504 501 501 501 235 221 '
	# The checkpassword program only ran for the last one.
	run grep -c . "$CHECKPW_LOG"
	assert_output 1
}

@test "AUTH sequence: before EHLO, in a transaction, twice, without --auth (503); MAIL under --require-auth (530)" {
	run smtp_session --auth-plaintext --require-auth "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	AUTH PLAIN $PLAIN_ALICE
	EHLO client.example
	MAIL FROM:<a@example.org>
	AUTH PLAIN $PLAIN_ALICE
	MAIL FROM:<a@example.org>
	AUTH PLAIN $PLAIN_ALICE
	RSET
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_reply_after AUTH 503 1
	assert_reply_after MAIL 530 1
	assert_line $'530 5.7.0 Authentication required\r'
	assert_reply_after AUTH 235 2
	assert_reply_after MAIL 250 2
	assert_reply_after AUTH 503 3
	assert_line $'503 5.5.1 Error: AUTH inside a transaction\r'
	assert_reply_after AUTH 503 4
	assert_line $'503 5.5.1 Error: already authenticated\r'
	run smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	refute_line --partial '250-AUTH'
	assert_line $'503 5.5.1 Error: authentication not enabled\r'
}

@test "without --auth-plaintext AUTH is offered only under TLS: 530 before STARTTLS, 235 after it" {
	run smtp_session "${TLS[@]}" "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	refute_line --partial '250-AUTH'
	assert_line $'530 5.7.0 Must issue a STARTTLS command first\r'
	run drive "$SMTPD" --hostname mx.test --log stderr "${TLS[@]}" "${CHECKPW[@]}" \
	    "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS"); c.starttls(client_context())
	print(c.cmd("EHLO a").split("\n")[-2])
	print(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="))
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_line --index 0 '250-AUTH PLAIN LOGIN'
	assert_line --index 1 '235 2.7.0 Authentication successful'
	assert_line --index 2 '250 250 354 250 0'
	run cat "$DUMP/1/env"
	assert_line 'SMTP_PROTOCOL=ESMTPSA'
	assert_line 'SMTP_AUTH_USER=alice'
}

@test "STARTTLS forgets an AUTH done before it" {
	run drive "$SMTPD" --hostname mx.test --log stderr --auth-plaintext \
	    "${TLS[@]}" "${CHECKPW[@]}" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a")
	print(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="))
	c.cmd("STARTTLS"); c.starttls(client_context())
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_line --index 0 '235 2.7.0 Authentication successful'
	assert_line --index 1 '250 250 354 250 0'
	run cat "$DUMP/1/env"
	assert_line 'SMTP_PROTOCOL=ESMTPS'
	assert_line 'SMTP_AUTH_USER='
}

@test "a PLAIN authorization identity: empty or the user is fine, anyone else is 535 without asking the backend" {
	run smtp_session --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $(b64 'bob\0alice\0secret')
	AUTH PLAIN $(b64 'alice\0alice\0secret')
	QUIT
	EOF
	assert_reply_after AUTH 535 1
	assert_reply_after AUTH 235 2
	run grep -c . "$CHECKPW_LOG"
	assert_output 1
}

@test "passwords never reach the log, not even with -v; user names are quoted" {
	run smtp_session -v --auth-plaintext "${CHECKPW[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_WRONG
	AUTH LOGIN $(b64 'ev"il')
	$(b64 hunter2)
	AUTH	PLAIN $PLAIN_WRONG
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_reply_after AUTH 235 4
	refute_output --partial "$PLAIN_ALICE"
	refute_output --partial "$PLAIN_WRONG"
	refute_output --partial "$(b64 hunter2)"
	refute_output --partial hunter2
	refute_output --partial secret
	refute_output --partial wrong
	assert_output --partial '< AUTH data (not logged)'
	assert_output --partial 'user="ev\"il" refused'
}

@test "Dovecot over its auth-client socket: PLAIN and LOGIN over TLS; a wrong password 535; what it offers is advertised" {
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	run drive "$SMTPD" --hostname mx.test --log stderr "${TLS[@]}" \
	    --auth "dovecot:$DOVECOT_AUTH" "$HANDLERS/dump" <<-'EOF'
	import base64
	b = lambda s: base64.b64encode(s.encode()).decode()
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS"); c.starttls(client_context())
	print(c.cmd("EHLO a").split("\n")[-2])
	print(c.cmd("AUTH PLAIN " + b("\0alice\0wrong")))
	print(c.cmd("AUTH LOGIN"), c.cmd(b("bob")), c.cmd(b("hunter2")))
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS"); c.starttls(client_context())
	c.cmd("EHLO a")
	print(c.cmd("AUTH PLAIN " + b("\0alice\0secret")))
	print(c.cmd("AUTH PLAIN " + b("\0alice\0secret")))
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_line --index 0 '250-AUTH PLAIN LOGIN'
	assert_line --index 1 '535 5.7.8 Error: authentication failed'
	assert_line --index 2 '334 VXNlcm5hbWU6 334 UGFzc3dvcmQ6 235 2.7.0 Authentication successful'
	assert_line --index 3 '250 250 354 250 0'
	assert_line --index 4 '235 2.7.0 Authentication successful'
	assert_line --index 5 '503 5.5.1 Error: already authenticated'
	run cat "$DUMP/1/env" "$DUMP/2/env"
	assert_line 'SMTP_AUTH_USER=bob'
	assert_line 'SMTP_AUTH_USER=alice'
	assert_line 'SMTP_PROTOCOL=ESMTPSA'
}

@test "Dovecot: a temporary failure and an unreachable socket are 454; only its mechanisms are advertised" {
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	run smtp_session --auth-plaintext --auth "dovecot:$DOVECOT_AUTH" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $(b64 '\0temp\0pw')
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_reply_after AUTH 454 1
	assert_reply_after AUTH 235 2
	stop_dovecot
	run smtp_session --auth-plaintext --auth "dovecot:$BATS_TEST_TMPDIR/dovecot/auth-client" \
	    "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	QUIT
	EOF
	assert_reply_after AUTH 454
	assert_output --partial 'dovecot'
	# A Dovecot offering PLAIN only: LOGIN is not advertised, and refused.
	start_dovecot "$BATS_TEST_TMPDIR/dovecot2"
	stop_dovecot
	sed -i 's/^auth_mechanisms = .*/auth_mechanisms = plain/' "$BATS_TEST_TMPDIR/dovecot2/dovecot.conf"
	rm -f "$BATS_TEST_TMPDIR/dovecot2/auth-client"
	dovecot -F -c "$BATS_TEST_TMPDIR/dovecot2/dovecot.conf" </dev/null \
	    >>"$BATS_TEST_TMPDIR/dovecot2/dovecot.log" 2>&1 3>&- &
	DOVECOT_PID=$!
	wait_for 10 test -S "$BATS_TEST_TMPDIR/dovecot2/auth-client"
	run smtp_session --auth-plaintext --auth "dovecot:$BATS_TEST_TMPDIR/dovecot2/auth-client" \
	    "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH LOGIN
	QUIT
	EOF
	assert_line $'250-AUTH PLAIN\r'
	assert_reply_after AUTH 504
}

@test "Dovecot is told secured under TLS, lip and rip (the connection's addresses)" {
	DOVECOT_EXTRA='auth_debug = yes' start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4321 TCPLOCALIP=192.0.2.1 TCPLOCALPORT=587
	run --separate-stderr drive "$SMTPD" --hostname mx.test --log stderr "${TLS[@]}" \
	    --auth "dovecot:$DOVECOT_AUTH" "$HANDLERS/dump" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS"); c.starttls(client_context())
	c.cmd("EHLO a")
	print(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==").strip(), c.wait())
	EOF
	assert_output '235 2.7.0 Authentication successful 0'
	run grep -E 'client in: AUTH.*	PLAIN	' "$DOVECOT_LOG"
	assert_equal "${#lines[@]}" 1
	assert_regex "${lines[0]}" $'\tsecured(\t|$)'
	assert_regex "${lines[0]}" $'\tlip=192\\.0\\.2\\.1(\t|$)'
	assert_regex "${lines[0]}" $'\trip=192\\.0\\.2\\.7(\t|$)'
}

@test "a Dovecot that never answers: AUTH PLAIN LOGIN advertised, AUTH gets 454 4.7.0, the session goes on" {
	local p
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	# Stopped, not gone: its socket still accepts, nobody answers.
	for p in "$DOVECOT_PID" $(pgrep -P "$DOVECOT_PID"); do kill -STOP "$p"; done
	run smtp_session --auth-plaintext --timeout 2 --auth "dovecot:$DOVECOT_AUTH" \
	    "$HANDLERS/dump" <<-EOF
	EHLO client.example
	AUTH PLAIN $PLAIN_ALICE
	NOOP
	QUIT
	EOF
	for p in "$DOVECOT_PID" $(pgrep -P "$DOVECOT_PID"); do kill -CONT "$p"; done
	assert_success
	assert_line $'250-AUTH PLAIN LOGIN\r'
	assert_reply AUTH '^454 4\.7\.0 '
	assert_reply_after NOOP 250
}
