#!/usr/bin/env bats
# Issue 18 review: the handler's environment is filtered once per session
# (env.c) and the message's variables are set again for each message.
# What changes between the messages of one session must be current in
# each handler, set once, and inherited stale copies must stay out; the
# same for the entries one redis-worker runs.

setup_file() {
	load test_helper/common
	load test_helper/tls
	mkdir -p "$BATS_FILE_TMPDIR/pki"
	pki_self_signed "$BATS_FILE_TMPDIR/pki" ec mx mx.example.test \
		DNS:mx.example.test
}

setup() {
	load test_helper/common
	load test_helper/tls
	load test_helper/tcp
	load test_helper/redis
	redis_setup
	unset_peer_env
	tls_setup mx
}

teardown() {
	redis_teardown
}

# var N NAME: the value of NAME the handler of message N saw.
var() {
	cat "$DUMP/$1/$2"
}

# The dump handler, after saving the environment exactly as execve gave
# it (/proc/PID/environ): a shell keeps one of two copies of a name.
RAWDUMP=(/bin/sh -c 'tr "\0" "\n" </proc/$$/environ >"$DUMP/raw.$SMTP_ID"
exec "$0" "$@"')

# raw N: message N's environment as execve gave it, one a line.
raw() {
	cat "$DUMP/raw.$(var "$1" SMTP_ID)"
}

# once N NAME: NAME is set exactly once in message N's environment.
once() {
	run grep -c "^$2=" "$DUMP/raw.$(var "$1" SMTP_ID)"
	assert_output 1
}

@test "three messages in one session: each handler sees its own HELO, envelope, size and id, set once, never an inherited copy" {
	export SMTP_HELO=stale.example SMTP_RCPT_TO=stale@example.com \
		SMTP_SIZE=1 SMTP_ID=stale SMTP_MAIL_OPTIONS=X=1 \
		SMTP_AUTH_USER=mallory SMTP_TLS_PROTOCOL=TLSv0 \
		SMTPD_TEST_MARKER=kept
	run --separate-stderr smtp_session --relay relay.example:2525 \
		"${RAWDUMP[@]}" "$HANDLERS/dump" <<-EOF
	EHLO first.example
	MAIL FROM:<a@example.org> BODY=8BITMIME
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net> NOTIFY=NEVER
	DATA
	one
	.
	MAIL FROM:<d@example.org> SIZE=100
	RCPT TO:<e@example.net>
	DATA
	second message, longer
	.
	EHLO second.example
	MAIL FROM:<>
	RCPT TO:<f@example.net>
	DATA
	3
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250 1
	assert_reply_after . 250 2
	assert_reply_after . 250 3
	assert_equal "$(var 1 SMTP_HELO)" first.example
	assert_equal "$(var 2 SMTP_HELO)" first.example
	assert_equal "$(var 3 SMTP_HELO)" second.example
	assert_equal "$(var 1 SMTP_MAIL_FROM)" a@example.org
	assert_equal "$(var 2 SMTP_MAIL_FROM)" d@example.org
	assert_equal "$(var 3 SMTP_MAIL_FROM)" ''
	assert_equal "$(var 1 SMTP_RCPT_TO)" $'b@example.net\nc@example.net'
	assert_equal "$(var 2 SMTP_RCPT_TO)" e@example.net
	assert_equal "$(var 3 SMTP_RCPT_TO)" f@example.net
	assert_equal "$(var 1 SMTP_RCPT_COUNT)" 2
	assert_equal "$(var 2 SMTP_RCPT_COUNT)" 1
	assert_equal "$(var 1 SMTP_RCPT_OPTIONS)" $'\nNOTIFY=NEVER'
	assert_equal "$(var 2 SMTP_RCPT_OPTIONS)" ''
	assert_equal "$(var 1 SMTP_MAIL_OPTIONS)" BODY=8BITMIME
	assert_equal "$(var 2 SMTP_MAIL_OPTIONS)" SIZE=100
	assert_equal "$(var 3 SMTP_MAIL_OPTIONS)" ''
	# The size is the spooled message's, Received header included.
	assert_equal "$(var 1 SMTP_SIZE)" "$(wc -c <"$DUMP/1/message")"
	assert_equal "$(var 2 SMTP_SIZE)" "$(wc -c <"$DUMP/2/message")"
	assert_equal "$(var 3 SMTP_SIZE)" "$(wc -c <"$DUMP/3/message")"
	assert_equal "$(var 1 SMTP_RELAY)" relay.example:2525
	assert_equal "$(var 3 SMTP_RELAY)" relay.example:2525
	# Three ids, each the one its reply gave.
	assert_equal "$(for n in 1 2 3; do var "$n" SMTP_ID; echo; done |
		sort -u | wc -l)" 3
	assert_equal "$(reply_in_dialogue . 2 text)" \
		"250 2.0.0 OK: queued as $(var 2 SMTP_ID)"
	for n in 1 2 3; do
		for v in SMTP_ID SMTP_HELO SMTP_MAIL_FROM SMTP_RCPT_TO \
		    SMTP_RCPT_COUNT SMTP_MAIL_OPTIONS SMTP_SIZE SMTP_RELAY \
		    SMTP_AUTH_USER SMTP_TLS_PROTOCOL; do
			once "$n" "$v"
		done
		run grep -x -e 'SMTP_AUTH_USER=' -e 'SMTP_TLS_PROTOCOL=' \
			-e SMTPD_TEST_MARKER=kept "$DUMP/raw.$(var "$n" SMTP_ID)"
		assert_equal "${#lines[@]}" 3
		run grep -c -e stale -e mallory -e TLSv0 -e X=1 \
			"$DUMP/raw.$(var "$n" SMTP_ID)"
		assert_output 0
	done
}

@test "AUTH between two messages of one session: the first handler has no user and ESMTP, the second alice and ESMTPA" {
	run --separate-stderr smtp_session --auth-plaintext \
		--auth "checkpassword:$FIXTURES/checkpassword" \
		"${RAWDUMP[@]}" "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	before
	.
	AUTH PLAIN AGFsaWNlAHNlY3JldA==
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	after
	.
	QUIT
	EOF
	assert_success
	assert_reply_after AUTH 235
	assert_reply_after . 250 2
	run raw 1
	assert_line SMTP_AUTH_USER=
	assert_equal "$(var 1 SMTP_PROTOCOL)" ESMTP
	run raw 2
	assert_line SMTP_AUTH_USER=alice
	assert_equal "$(var 2 SMTP_PROTOCOL)" ESMTPA
	once 2 SMTP_AUTH_USER
}

@test "STARTTLS between two messages of one session: TLS variables empty and ESMTP before, set once and ESMTPS after" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.example.test \
	    --log stderr "${TLS[@]}" "${RAWDUMP[@]}" "$HANDLERS/dump" <<'EOF'
c = Client.pipe(sys.argv[1:])
c.reply()
c.cmd("EHLO client.example")
for line in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"):
    c.cmd(line)
print(c.code("before\r\n."))
print(c.code("STARTTLS"))
c.starttls(client_context(), server_hostname="mx.example.test")
c.cmd("EHLO client.example")
for line in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"):
    c.cmd(line)
print(c.code("after\r\n."))
print(c.code("QUIT"))
print("exit", c.wait())
EOF
	assert_success
	assert_output $'250\n220\n250\n221\nexit 0'
	run raw 1
	assert_line SMTP_PROTOCOL=ESMTP
	assert_line SMTP_TLS_PROTOCOL=
	assert_line SMTP_TLS_SNI=
	run raw 2
	assert_line SMTP_PROTOCOL=ESMTPS
	assert_line SMTP_TLS_PROTOCOL=TLSv1.3
	assert_line SMTP_TLS_SNI=mx.example.test
	assert_line SMTP_TLS_RESUMED=0
	for v in SMTP_PROTOCOL SMTP_TLS_PROTOCOL SMTP_TLS_CIPHER SMTP_TLS_SNI \
	    SMTP_TLS_RESUMED SMTP_ID; do
		once 2 "$v"
	done
}

@test "redis-worker: the variables of one entry's fields do not reach the next entry's handler; each is set once" {
	start_redis
	rcli XADD mail '*' id m1 mail_from a@example.org rcpt_to b@example.net \
		quarantine spam auth_user alice foo bar message one >/dev/null
	rcli XADD mail '*' id m2 mail_from c@example.org rcpt_to d@example.net \
		message two >/dev/null
	SMTP_QUARANTINE=stale SMTP_AUTH_USER=stale start_worker w1 \
		"${RAWDUMP[@]}" "$HANDLERS/dump"
	wait_for 10 is 0 pending
	wait_for 10 test -e "$DUMP/raw.m2"
	run cat "$DUMP/raw.m1"
	assert_line SMTP_QUARANTINE=spam
	assert_line SMTP_AUTH_USER=alice
	assert_line SMTP_FOO=bar
	run grep -c -e '^SMTP_QUARANTINE=' -e '^SMTP_AUTH_USER=' -e '^SMTP_FOO=' \
		"$DUMP/raw.m2"
	assert_output 0
	run cat "$DUMP/raw.m2"
	assert_line SMTP_MAIL_FROM=c@example.org
	assert_line SMTP_RCPT_TO=d@example.net
	for v in SMTP_ID SMTP_MAIL_FROM SMTP_RCPT_TO; do
		run grep -c "^$v=" "$DUMP/raw.m2"
		assert_output 1
	done
	assert_equal "$(cat "$DUMP/2/message")" two
}
