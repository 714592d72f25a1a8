#!/usr/bin/env bats
# RCPT-time checks (SPEC 10.2): --rcpt-check PROGRAM, and --policy ADDR
# speaking Postfix's policy delegation protocol to a server of our own,
# to a real postgrey and to a real policyd-spf.

setup() {
	load test_helper/common
	common_setup
	unset TCPREMOTEIP TCPREMOTEPORT TCPLOCALIP TCPLOCALPORT TCPREMOTEHOST REMOTE_ADDR REMOTE_PORT
	CHECK=$FIXTURES/rcpt-check
	POLICY_LOG=$BATS_TEST_TMPDIR/policy.log
	SOCK=$BATS_TEST_TMPDIR/policy.sock
	export CHECKS=$BATS_TEST_TMPDIR/checks
	mkdir -p "$CHECKS"
}

teardown() {
	local f
	for f in "$BATS_TEST_TMPDIR"/*.pid; do
		[ -s "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
}

# A session of one message from a@example.org to each address given.
rcpt_session() {
	local r
	{
		printf 'EHLO client.example\nMAIL FROM:<%s>\n' "${FROM:-a@example.org}"
		for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
		printf 'DATA\nSubject: t\n\nbody\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

@test "--rcpt-check: exit 67 refuses that recipient with 550 5.1.1, the others are delivered" {
	rcpt_session one@example.net nobody@example.net two@example.net
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^550 5\.1\.1 ' 2
	assert_reply_after RCPT 250 3
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'one@example.net\ntwo@example.net')"
	run cat "$DUMP/1/SMTP_RCPT_COUNT"
	assert_output 2
}

@test "--rcpt-check: environment as far as known, no arguments, stdin /dev/null" {
	rcpt_session one@example.net 'two@example.net> NOTIFY=NEVER'
	sed -i 's/^RCPT TO:<two@example.net> NOTIFY=NEVER>$/RCPT TO:<two@example.net> NOTIFY=NEVER/' "$BATS_TEST_TMPDIR/in"
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after . 250
	run cat "$CHECKS/2/env"
	assert_line 'SMTP_RCPT=two@example.net'
	assert_line 'SMTP_RCPT_OPTION=NOTIFY=NEVER'
	assert_line 'SMTP_RCPT_TO=one@example.net'
	assert_line 'SMTP_RCPT_COUNT=1'
	assert_line 'SMTP_MAIL_FROM=a@example.org'
	assert_line 'SMTP_HELO=client.example'
	assert_line 'SMTP_PROTOCOL=ESMTP'
	run cat "$CHECKS/1/env"
	assert_line 'SMTP_RCPT_COUNT=0'
	assert_line 'SMTP_RCPT_OPTION='
	run cat "$CHECKS/1/argv"
	assert_output ''
	run stat -c %s "$CHECKS/1/stdin"
	assert_output 0
}

@test "--rcpt-check: its own reply on stdout; every recipient refused means no DATA" {
	rcpt_session say@example.net nobody@example.net
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^550 5\.1\.6 moved away$' 1
	assert_reply RCPT '^550 5\.1\.1 ' 2
	assert_reply_after DATA 503
	assert_no_message
}

@test "--rcpt-check: a program past --handler-timeout or not there gives 451 4.3.0" {
	rcpt_session slow@example.net one@example.net
	run smtp_session --handler-timeout 1 --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.0 ' 1
	assert_reply_after RCPT 250 2
	rm -r "$DUMP"/1
	rcpt_session one@example.net
	run smtp_session --rcpt-check "$BATS_TEST_TMPDIR/absent" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^451 4\.3\.0 ' 1
	assert_no_message
}

@test "--rcpt-check and --policy: bad values are usage errors" {
	run smtpd --rcpt-check '' "$HANDLERS/dump"
	assert_failure 64
	for a in nowhere unix: inet:127.0.0.1 inet:127.0.0.1:0 inet:127.0.0.1:99999 inet::25 exec:; do
		run smtpd --policy "$a" "$HANDLERS/dump"
		assert_failure 64
		assert_output --partial 'want unix:PATH, inet:HOST:PORT or exec:PROGRAM'
	done
}
