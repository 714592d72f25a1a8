#!/usr/bin/env bats
# --milter (SPEC 13) with the real filter daemons, each started here in a
# private configuration under the test's directory, on a UNIX socket,
# and killed by PID: OpenDKIM signing what authenticated users submit
# (verified with dkimpy), rspamd's verdicts and headers.

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
	D=$BATS_TEST_TMPDIR
	# A client from outside, so no filter takes it for a local one.
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=40000
	AUTH_OPTS=(--auth "checkpassword:$FIXTURES/checkpassword" --auth-plaintext)
}

teardown() {
	kill_pidfiles "$D"
}

# OpenDKIM in sign mode for example.org, selector "test", key made here.
start_opendkim() {
	opendkim-genkey -D "$D" -d example.org -s test
	cat >"$D/opendkim.conf" <<-EOF
	Syslog no
	Background no
	Socket local:$D/opendkim.sock
	Mode s
	Domain example.org
	Selector test
	KeyFile $D/test.private
	Canonicalization relaxed/relaxed
	RequireSafeKeys no
	EOF
	opendkim -f -x "$D/opendkim.conf" &
	echo $! >"$D/opendkim.pid"
	wait_for 20 test -S "$D/opendkim.sock"
}

# A message from alice@example.org, with AUTH PLAIN first when $1 is "auth".
submission() {
	{
		printf 'EHLO client.example\n'
		[ "$1" != auth ] || printf 'AUTH PLAIN %s\n' "$(printf '\0alice\0secret' | base64)"
		printf 'MAIL FROM:<alice@example.org>\nRCPT TO:<bob@example.net>\nDATA\n'
		printf 'From: Alice <alice@example.org>\nTo: bob@example.net\n'
		printf 'Subject: signed\nDate: Mon, 07 Dec 2026 01:00:00 +0000\n\nhello\n.\nQUIT\n'
	} >"$D/in"
}

@test "OpenDKIM: a message submitted with AUTH reaches the handler with a DKIM-Signature that verifies" {
	start_opendkim
	submission auth
	run smtp_session "${AUTH_OPTS[@]}" --require-auth --milter "unix:$D/opendkim.sock" \
		"$HANDLERS/dump" <"$D/in"
	assert_success
	assert_reply_after AUTH 235
	assert_reply_after . 250
	run grep -c '^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=test;' "$DUMP/1/message"
	assert_output 1
	run "$FIXTURES/dkim-verify.py" "$DUMP/1/message" "$D/test.txt"
	assert_success
	assert_output pass
	# The signature covers the body: a changed body fails.
	sed 's/^hello$/hellO/' "$DUMP/1/message" >"$D/changed"
	run "$FIXTURES/dkim-verify.py" "$D/changed" "$D/test.txt"
	assert_failure
}

@test "OpenDKIM: a message without AUTH is not signed" {
	start_opendkim
	submission
	run smtp_session "${AUTH_OPTS[@]}" --milter "unix:$D/opendkim.sock" "$HANDLERS/dump" <"$D/in"
	assert_success
	assert_reply_after . 250
	run grep -c '^DKIM-Signature:' "$DUMP/1/message"
	assert_output 0
	# Behind --require-auth it does not even get that far.
	run smtp_session "${AUTH_OPTS[@]}" --require-auth --milter "unix:$D/opendkim.sock" \
		"$HANDLERS/dump" <"$D/in"
	assert_reply_after MAIL 530
	run ls "$DUMP"
	assert_output 1
}

# clamd with one signature of our own (no download, no official
# database: clamd runs from a local .ndb alone) and clamav-milter.
start_clamav() {
	mkdir -p "$D/clamdb"
	# Body bytes "smtpdstdio-virus-test", in hex, anywhere in a file.
	printf 'SMTPDSTDIO.Test.Sig:0:*:%s\n' \
		"$(printf smtpdstdio-virus-test | od -An -tx1 | tr -d ' \n')" >"$D/clamdb/local.ndb"
	cat >"$D/clamd.conf" <<-EOF
	LocalSocket $D/clamd.sock
	DatabaseDirectory $D/clamdb
	Foreground yes
	LogFile $D/clamd.log
	TemporaryDirectory $D
	User root
	EOF
	cat >"$D/clamav-milter.conf" <<-EOF
	MilterSocket unix:$D/clamav-milter.sock
	ClamdSocket unix:$D/clamd.sock
	Foreground yes
	OnInfected Reject
	AddHeader Replace
	LogFile $D/clamav-milter.log
	User root
	EOF
	clamd -c "$D/clamd.conf" &
	echo $! >"$D/clamd.pid"
	wait_for 60 test -S "$D/clamd.sock"
	clamav-milter -c "$D/clamav-milter.conf" &
	echo $! >"$D/clamav-milter.pid"
	wait_for 20 test -S "$D/clamav-milter.sock"
}

@test "clamav-milter: a message carrying the test signature is refused, a clean one gets its headers" {
	start_clamav
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n'
		printf 'Subject: infected\n\nhere it is: smtpdstdio-virus-test\n.\n'
		printf 'MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n'
		printf 'Subject: clean\n\nhello\n.\nQUIT\n'
	} >"$D/in"
	run smtp_session --milter "unix:$D/clamav-milter.sock" "$HANDLERS/dump" <"$D/in"
	assert_success
	assert_reply . '^550 5\.7\.1 ' 1
	assert_reply_after . 250 2
	run ls "$DUMP"
	assert_output 1
	run grep -c -e '^X-Virus-Status: Clean$' -e '^Subject: clean$' "$DUMP/1/message"
	assert_output 2
}
