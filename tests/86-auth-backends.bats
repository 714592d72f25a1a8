#!/usr/bin/env bats
# The AUTH backends' test daemons: a private Dovecot auth service
# (test_helper/dovecot) and the checkpassword fixture, each asked directly
# and through smtpd-stdio, so that the file tests the server too.

setup() {
	load test_helper/common
	load test_helper/dovecot
	common_setup
}

teardown() {
	stop_dovecot
}

# auth_reply BACKEND USER PASSWORD: the reply smtpd-stdio (over a pipe,
# --auth-plaintext) gives to AUTH PLAIN of USER and PASSWORD with
# --auth BACKEND, without its CR.
auth_reply() {
	local plain
	plain=$(printf '\0%s\0%s' "$2" "$3" | base64 -w0)
	printf 'EHLO client.example\r\nAUTH PLAIN %s\r\nQUIT\r\n' "$plain" |
	    smtpd --auth-plaintext --auth "$1" "$HANDLERS/dump" |
	    tr -d '\r' | sed -n '/^250 /,$p' | sed -n 2p
}

@test "dovecot: start_dovecot serves alice and bob on its auth-client socket" {
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	run doveadm -c "$DOVECOT_CONF" auth test -a "$DOVECOT_AUTH" alice secret
	assert_success
	assert_line 'passdb: alice auth succeeded'
	run doveadm -c "$DOVECOT_CONF" auth test -a "$DOVECOT_AUTH" bob hunter2
	assert_success
	assert_line 'passdb: bob auth succeeded'
	run doveadm -c "$DOVECOT_CONF" auth test -a "$DOVECOT_AUTH" alice hunter2
	assert_failure 77
	assert_line 'passdb: alice auth failed'
	run --separate-stderr auth_reply "dovecot:$DOVECOT_AUTH" alice secret
	assert_output '235 2.7.0 Authentication successful'
	run --separate-stderr auth_reply "dovecot:$DOVECOT_AUTH" alice hunter2
	assert_output '535 5.7.8 Error: authentication failed'
}

@test "dovecot: the magic user temp is a temporary failure" {
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	run doveadm -c "$DOVECOT_CONF" auth test -a "$DOVECOT_AUTH" temp x
	assert_failure 77
	assert_line 'passdb: temp auth failed'
	assert_line '  code=temp_fail'
	assert_line '  user=temp'
	run grep -c 'checkpassword(temp): Child [0-9]* exited with status 111' "$DOVECOT_LOG"
	assert_output 1
	run --separate-stderr auth_reply "dovecot:$DOVECOT_AUTH" temp x
	assert_output '454 4.7.0 Temporary authentication failure'
}

@test "dovecot: stop_dovecot leaves no Dovecot process and no socket user" {
	local pid children c
	start_dovecot "$BATS_TEST_TMPDIR/dovecot"
	pid=$DOVECOT_PID
	children=$(pgrep -P "$pid")
	[ -n "$children" ]
	stop_dovecot
	process_gone "$pid"
	for c in $children; do process_gone "$c"; done
}

@test "checkpassword fixture: alice/secret runs its argument, exit 0" {
	run "$FIXTURES/checkpassword" /bin/echo ran 3< <(printf 'alice\0secret\0123\0')
	assert_success
	assert_output ran
	run --separate-stderr auth_reply "checkpassword:$FIXTURES/checkpassword" alice secret
	assert_output '235 2.7.0 Authentication successful'
}

@test "checkpassword fixture: a wrong password or user exits 1" {
	run "$FIXTURES/checkpassword" /bin/true 3< <(printf 'alice\0secreT\0123\0')
	assert_failure 1
	run "$FIXTURES/checkpassword" /bin/true 3< <(printf 'bob\0secret\0123\0')
	assert_failure 1
	run --separate-stderr auth_reply "checkpassword:$FIXTURES/checkpassword" alice secreT
	assert_output '535 5.7.8 Error: authentication failed'
}

@test "checkpassword fixture: temp exits 111, misuse 2, crash dies of SIGSEGV" {
	run "$FIXTURES/checkpassword" /bin/true 3< <(printf 'temp\0x\0123\0')
	assert_failure 111
	run "$FIXTURES/checkpassword" /bin/true 3< <(printf 'misuse\0x\0123\0')
	assert_failure 2
	run "$FIXTURES/checkpassword" /bin/true 3< <(printf 'crash\0x\0123\0')
	assert_failure 139
	for user in temp misuse crash; do
		run --separate-stderr auth_reply "checkpassword:$FIXTURES/checkpassword" "$user" x
		assert_output '454 4.7.0 Temporary authentication failure'
	done
}
