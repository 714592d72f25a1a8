#!/usr/bin/env bats
# The handlers shipped in src/handlers/: maildir, debug and relay, run by a
# real smtpd-stdio.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	SHIPPED=$ROOT/src/handlers
	MAILDIR=$BATS_TEST_TMPDIR/Maildir
}

teardown() {
	if [ -s "$BATS_TEST_TMPDIR/upstream.pid" ]; then
		kill "$(cat "$BATS_TEST_TMPDIR/upstream.pid")" 2>/dev/null || true
	fi
}

# One message from a@example.org to b@example.net, with a dot-stuffed line.
one_message() {
	smtp_transaction --body 'Subject: exact\r\n\r\n..leading dot\r\nlast\r\n' -- "$@"
}

# What the handler reads for one_message with --no-received.
expected_message() {
	printf 'Subject: exact\n\n.leading dot\nlast\n'
}

# --- maildir -------------------------------------------------------------

@test "maildir delivers the message into new/ byte for byte" {
	run --separate-stderr one_message --no-received "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	assert_reply_after . 250
	run ls "$MAILDIR/new"
	assert_equal "${#lines[@]}" 1
	cmp "$MAILDIR/new/${lines[0]}" <(expected_message)
	assert_spool_empty
}

@test "maildir keeps the Received header first" {
	run --separate-stderr one_message "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	assert_reply_after . 250
	run cat "$MAILDIR"/new/*
	assert_line --index 0 --regexp '^Received: from client\.example '
	assert_equal "$(tail -n 4 "$MAILDIR"/new/*)" "$(expected_message)"
}

@test "maildir creates a missing Maildir, its parents and tmp, new, cur, mode 0700" {
	MAILDIR=$BATS_TEST_TMPDIR/home/user/Maildir
	run --separate-stderr one_message "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	assert_reply_after . 250
	run stat -c '%a %F' "$MAILDIR" "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
	assert_output "$(printf '700 directory\n%.0s' 1 2 3 4)"
	run stat -c '%a' "$MAILDIR"/new/*
	assert_output 600
}

@test "maildir leaves tmp/ empty and nothing in cur/" {
	run --separate-stderr one_message "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	run find "$MAILDIR/tmp" "$MAILDIR/cur" -mindepth 1
	assert_output ''
}

@test "maildir names the file TIME.MUSECPPID_ID.HOST after SMTP_ID, without dots or colons" {
	run --separate-stderr one_message "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	id=$(reply_after . | sed -n 's/^250 2\.0\.0 OK: queued as //p')
	[ -n "$id" ]
	run ls "$MAILDIR/new"
	assert_output --regexp "^[0-9]+\.M[0-9]{6}P[0-9]+_${id//./_}\.[^:/]+\$"
}

@test "maildir puts two messages in two distinct files" {
	run --separate-stderr send_messages 2 "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	assert_reply_after . 250 1
	assert_reply_after . 250 2
	run ls "$MAILDIR/new"
	assert_equal "${#lines[@]}" 2
	run cat "$MAILDIR"/new/*
	assert_line 'body 1'
	assert_line 'body 2'
	run ls -A "$MAILDIR/tmp"
	assert_output ''
}

@test "maildir into a regular file gives 451 4.3.0 (exit 75) and the session goes on" {
	: >"$MAILDIR"
	run --separate-stderr send_messages 1 "$SHIPPED/maildir" "$MAILDIR"
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
	assert_reply_after NOOP 250
	assert_equal "$(stat -c %s "$MAILDIR")" 0
	assert_spool_empty
}

@test "maildir without a directory argument gives 451 4.3.5 (exit 78)" {
	run --separate-stderr send_messages 1 "$SHIPPED/maildir"
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.5( |$)'
}

# cat_spy: a cat first in PATH that saves the listing of $MAILDIR/tmp in
# $BATS_TEST_TMPDIR/tmp-seen, then runs the real cat.  The shell creates
# the file of `cat >FILE` before it runs cat, so the listing shows it.
cat_spy() {
	mkdir -p "$BATS_TEST_TMPDIR/spy"
	cat >"$BATS_TEST_TMPDIR/spy/cat" <<-EOF
	#!/bin/sh
	ls -A "$MAILDIR/tmp" >"$BATS_TEST_TMPDIR/tmp-seen"
	exec $(command -v cat) "\$@"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/spy/cat"
}

@test "maildir writes into tmp/, then renames that same name into new/" {
	mkdir -p "$MAILDIR"
	cat_spy
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR/spy:$PATH" SMTP_ID=X1.a \
		"$SHIPPED/maildir" "$MAILDIR" <<<'body'
	assert_success
	run cat "$BATS_TEST_TMPDIR/tmp-seen"
	assert_output --regexp '^[0-9]+\.M[0-9]{6}P[0-9]+_X1_a\.[^:/]+$'
	assert_equal "$(ls -A "$MAILDIR/new")" "$output"
	assert_equal "$(ls -A "$MAILDIR/tmp")" ''
}

@test "maildir removes its tmp file when the write fails, and exits 75" {
	mkdir -p "$MAILDIR"
	cat_spy
	# A directory on stdin: the file in tmp/ is created, then cat fails.
	run --separate-stderr env PATH="$BATS_TEST_TMPDIR/spy:$PATH" SMTP_ID=X1 \
		"$SHIPPED/maildir" "$MAILDIR" <"$BATS_TEST_TMPDIR"
	assert_failure 75
	assert_regex "$stderr" 'maildir: cannot write '
	run cat "$BATS_TEST_TMPDIR/tmp-seen"
	assert_output --regexp '^[0-9]+\.M[0-9]{6}P[0-9]+_X1\.[^:/]+$'
	# Both empty (listed one at a time: ls of two names prints the
	# directory names, which hold random letters such as "X1").
	assert_equal "$(ls -A "$MAILDIR/tmp")" ''
	assert_equal "$(ls -A "$MAILDIR/new")" ''
}

# --- debug -----------------------------------------------------------------

@test "debug logs the envelope and the message and answers 250" {
	run --separate-stderr one_message "$SHIPPED/debug"
	assert_success
	assert_reply_after . 250
	id=$(reply_after . | sed -n 's/^250 2\.0\.0 OK: queued as //p')
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --partial "$id: handler: SMTP_ID: $id"
	assert_line --partial "$id: handler: SMTP_HELO: client.example"
	assert_line --partial "$id: handler: SMTP_MAIL_FROM: a@example.org"
	assert_line --partial "$id: handler: SMTP_RCPT_TO: b@example.net"
	assert_line --partial "$id: handler: Subject: exact"
	assert_line --partial "$id: handler: .leading dot"
}

@test "debug logs each of several recipients on its own line" {
	run --separate-stderr smtp_session "$SHIPPED/debug" <<-EOF
	HELO client.example
	MAIL FROM:<>
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	DATA
	hi
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp 'handler: SMTP_MAIL_FROM: ?$'
	assert_line --regexp 'handler: SMTP_RCPT_TO: b@example\.net$'
	assert_line --regexp 'handler: SMTP_RCPT_TO: c@example\.net$'
}

# --- relay through sendmail --------------------------------------------------

@test "relay without SMTP_RELAY runs SENDMAIL -i -f SENDER -- RECIPIENTS with the message" {
	export SENDMAIL=$FIXTURES/relay-sendmail
	run --separate-stderr one_message --no-received "$SHIPPED/relay"
	assert_success
	assert_reply_after . 250
	assert_equal "$(cat "$DUMP/sendmail.argv")" "$(printf '%s\n' -i -f a@example.org -- b@example.net)"
	cmp "$DUMP/sendmail.stdin" <(expected_message)
}

@test "relay gives sendmail the null sender as -f '' and each recipient as one argument" {
	export SENDMAIL=$FIXTURES/relay-sendmail
	run --separate-stderr smtp_session "$SHIPPED/relay" <<-EOF
	HELO client.example
	MAIL FROM:<>
	RCPT TO:<"john *  doe"@example.net>
	RCPT TO:<-oi@example.net>
	RCPT TO:<postmaster>
	DATA
	hi
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	assert_equal "$(cat "$DUMP/sendmail.argv")" \
	    "$(printf '%s\n' -i -f '' -- '"john *  doe"@example.net' -oi@example.net postmaster)"
}

@test "relay passes sendmail's exit status on: 67 gives 550 5.1.1" {
	export SENDMAIL=$FIXTURES/relay-sendmail SENDMAIL_EXIT=67
	run --separate-stderr send_messages 1 "$SHIPPED/relay"
	assert_success
	assert_regex "$(reply_after .)" '^550 5\.1\.1( |$)'
}

@test "relay passes sendmail's exit status on: 75 gives 451 4.3.0" {
	export SENDMAIL=$FIXTURES/relay-sendmail SENDMAIL_EXIT=75
	run --separate-stderr send_messages 1 "$SHIPPED/relay"
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
}

@test "relay without a sendmail gives 451 4.3.0" {
	export SENDMAIL=$BATS_TEST_TMPDIR/no-such-sendmail
	run --separate-stderr send_messages 1 "$SHIPPED/relay"
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
	assert_regex "$stderr" 'no-such-sendmail: not found'
}

# --- relay over SMTP (--relay) -------------------------------------------------

@test "relay --relay refuses BODY=BINARYMIME with 554 5.6.1: it sends no BDAT" {
	start_upstream
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\nBDAT 5 LAST\r\na\000b\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line $'554 5.6.1 BODY=BINARYMIME cannot be relayed\r'
	assert_regex "$stderr" 'relay: BODY=BINARYMIME: no BDAT to the upstream'
	stop_upstream
	assert_equal "$(ls -A "$UPSTREAM" | grep -v '^port$')" ''
}

@test "relay --relay forwards envelope and message to the upstream, CRLF and dot-stuffed" {
	start_upstream
	run --separate-stderr one_message --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	assert_success
	assert_reply_after . 250
	run grep -E '^(MAIL|RCPT)' "$UPSTREAM/1/commands"
	assert_output "$(printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r')"
	cmp "$UPSTREAM/1/data" <(expected_message | sed 's/^\./../; s/$/\r/')
	assert_regex "$stderr" 'relay: upstream: 250 2\.0\.0 Ok: queued as UP1'
}

@test "relay --relay sends the same bytes when smtpd-stdio runs with --crlf" {
	start_upstream
	run --separate-stderr one_message --crlf --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	assert_success
	assert_reply_after . 250
	cmp "$UPSTREAM/1/data" <(expected_message | sed 's/^\./../; s/$/\r/')
}

@test "relay --relay sends the null sender and every recipient" {
	start_upstream
	run --separate-stderr smtp_session --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay" <<-EOF
	HELO client.example
	MAIL FROM:<>
	RCPT TO:<"john doe"@example.net>
	RCPT TO:<c@example.net>
	DATA
	hi
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	run grep -E '^(MAIL|RCPT)' "$UPSTREAM/1/commands"
	assert_output "$(printf 'MAIL FROM:<>\r\nRCPT TO:<"john doe"@example.net>\r\nRCPT TO:<c@example.net>\r')"
}

@test "relay --relay: the upstream's 550 to RCPT reaches the client" {
	relay_messages 2 --rcpt '550 5.1.1 <b@example.net>: no such user'
	assert_success
	assert_equal "$(reply_after . 1)" '550 5.1.1 <b@example.net>: no such user'
	assert_reply_after NOOP 250
	assert_reply_after . 550 2
}

@test "relay --relay: the upstream's 554 to the data reaches the client" {
	relay_messages 1 --end $'554-5.7.1 rejected\n554 5.7.1 as spam'
	assert_success
	assert_equal "$(reply_after .)" $'554-5.7.1 rejected\n554 5.7.1 as spam'
}

@test "relay --relay: the upstream's 451 to MAIL gives 451" {
	relay_messages 1 --mail '451 4.7.1 greylisted'
	assert_success
	assert_equal "$(reply_after .)" '451 4.7.1 greylisted'
}

@test "relay --relay: an upstream refusing the connection with 554 gives 451, not 5xx" {
	relay_messages 1 --greeting '554 5.3.2 not now'
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
}

@test "relay --relay: an upstream asking for authentication (530) gives 451" {
	relay_messages 1 --mail '530 5.7.0 Authentication required'
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
}

@test "relay --relay: an unreachable upstream gives 451 4.3.0 and the session goes on" {
	run --separate-stderr send_messages 2 --relay "127.0.0.1:$(free_port)" "$SHIPPED/relay"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_regex "$(reply_after . 2)" '^451 4\.3\.0( |$)'
	assert_reply_after QUIT 221
	assert_regex "$stderr" 'relay: cannot connect to smtp://127\.0\.0\.1:[0-9]+: Connection refused'
}

@test "relay with an SMTP_RELAY that is not HOST[:PORT] exits 78 (451 4.3.5)" {
	# Run directly: smtpd-stdio may come to refuse such a --relay itself.
	local relay
	for relay in user@host:25 host/path:25 host:0 host:65536 host:x -host '[::1' '[x]:25'; do
		printf 'hi\n' >"$BATS_TEST_TMPDIR/msg"
		SMTP_RELAY=$relay SMTP_RCPT_TO=b@example.net \
		    run --separate-stderr "$SHIPPED/relay" <"$BATS_TEST_TMPDIR/msg"
		assert_failure 78
		assert_output ''
	done
}

@test "relay accepts HOST:PORT and [IPV6]:PORT in SMTP_RELAY" {
	start_upstream
	local relay n=0
	for relay in "127.0.0.1:$UPSTREAM_PORT" "[::ffff:127.0.0.1]:$UPSTREAM_PORT"; do
		n=$((n + 1))
		printf 'hi\n' >"$BATS_TEST_TMPDIR/msg"
		SMTP_RELAY=$relay SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
		    run --separate-stderr "$SHIPPED/relay" <"$BATS_TEST_TMPDIR/msg"
		assert_success
		assert_equal "$(cat "$UPSTREAM/$n/data")" "$(printf 'hi\r')"
	done
}

@test "debug logs SMTP_LINE_ENDS, SMTP_AUTH_USER and the SMTP_TLS_* variables" {
	run --separate-stderr one_message --crlf "$SHIPPED/debug"
	assert_success
	assert_reply_after . 250
	output=$stderr lines=("${stderr_lines[@]}")
	assert_line --regexp 'handler: SMTP_LINE_ENDS: CRLF$'
	# Set, and empty, without AUTH or TLS.
	assert_line --regexp 'handler: SMTP_AUTH_USER: ?$'
	assert_line --regexp 'handler: SMTP_TLS_PROTOCOL: ?$'
	run --separate-stderr env SMTP_LINE_ENDS=LF SMTP_AUTH_USER=alice \
	    SMTP_TLS_PROTOCOL=TLSv1.3 SMTP_TLS_CIPHER=TLS_AES_256_GCM_SHA384 \
	    SMTP_TLS_SNI=mx.example SMTP_TLS_RESUMED=0 \
	    SMTP_TLS_CLIENT_SUBJECT=/CN=client SMTP_TLS_CLIENT_HASH=SHA256:ab12 \
	    "$SHIPPED/debug" </dev/null
	assert_success
	output=$stderr
	assert_equal "$(grep -E '^SMTP_(LINE_ENDS|AUTH_USER|TLS_)' <<<"$stderr")" \
	    "$(printf '%s\n' 'SMTP_LINE_ENDS: LF' 'SMTP_AUTH_USER: alice' \
	    'SMTP_TLS_PROTOCOL: TLSv1.3' 'SMTP_TLS_CIPHER: TLS_AES_256_GCM_SHA384' \
	    'SMTP_TLS_SNI: mx.example' 'SMTP_TLS_RESUMED: 0' \
	    'SMTP_TLS_CLIENT_SUBJECT: /CN=client' 'SMTP_TLS_CLIENT_HASH: SHA256:ab12')"
}

# --- relay: MAIL and RCPT parameters upstream (issue 16 item 14) -------------

# A transaction with BODY, SMTPUTF8 and the DSN parameters, in $DIALOGUE.
dsn_transaction() {
	smtp_session --dsn --smtputf8 --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 SIZE=40
	RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net
	RCPT TO:<c@example.net> NOTIFY=NEVER
	DATA
	Subject: caf$(printf '\303\251')

	body
	.
	QUIT
	EOF
}

@test "relay --relay carries BODY, SMTPUTF8, RET, ENVID, NOTIFY and ORCPT to an upstream that offers them" {
	start_upstream --ehlo $'250-upstream.test\n250-8BITMIME\n250-SMTPUTF8\n250-SIZE 1000000\n250 DSN'
	run --separate-stderr dsn_transaction
	stop_upstream
	assert_success
	assert_reply_after . 250
	run grep -E '^(MAIL|RCPT)' "$UPSTREAM/1/commands"
	assert_output "$(printf '%s\r\n' 'MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159' \
	    'RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net' \
	    'RCPT TO:<c@example.net> NOTIFY=NEVER')"
	cmp "$UPSTREAM/1/data" <(printf 'Subject: caf\303\251\r\n\r\nbody\r\n')
}

@test "relay --relay: an SMTPUTF8 message to an upstream without SMTPUTF8 gets 554 5.6.7; DSN parameters it cannot take are logged" {
	start_upstream --ehlo $'250-upstream.test\n250 8BITMIME'
	run --separate-stderr dsn_transaction
	stop_upstream
	assert_success
	assert_equal "$(reply_after .)" '554 5.6.7 SMTPUTF8 message: the upstream does not offer SMTPUTF8'
	run grep -c '^MAIL' "$UPSTREAM/1/commands"
	assert_output 0
	# Without SMTPUTF8 it goes, with BODY, the DSN parameters logged.
	start_upstream --ehlo $'250-upstream.test\n250 8BITMIME'
	run --separate-stderr smtp_session --dsn --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME RET=FULL
	RCPT TO:<b@example.net> NOTIFY=SUCCESS
	DATA
	hi
	.
	QUIT
	EOF
	stop_upstream
	assert_reply_after . 250
	run grep -E '^(MAIL|RCPT)' "$UPSTREAM/1/commands"
	assert_output "$(printf 'MAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@example.net>\r')"
	assert_regex "$stderr" 'relay: RET=FULL not passed on: the upstream does not offer DSN'
	assert_regex "$stderr" 'relay: NOTIFY=SUCCESS not passed on: the upstream does not offer DSN'
}

@test "relay without SMTP_RELAY gives sendmail -B for BODY, and logs the DSN parameters it cannot pass" {
	export SENDMAIL=$FIXTURES/relay-sendmail
	run --separate-stderr smtp_session --dsn --no-received "$SHIPPED/relay" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME RET=HDRS SIZE=10
	RCPT TO:<b@example.net> NOTIFY=SUCCESS
	DATA
	hi
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	assert_equal "$(cat "$DUMP/sendmail.argv")" "$(printf '%s\n' -B 8BITMIME -i -f a@example.org -- b@example.net)"
	assert_regex "$stderr" 'relay: RET=HDRS not passed on: no portable sendmail flag'
	assert_regex "$stderr" 'relay: NOTIFY=SUCCESS not passed on: no portable sendmail flag'
	refute_regex "$stderr" 'SIZE=10'
}

@test "relay --relay: an upstream that takes 100 recipients per transaction (452 4.5.3) gets the rest in a second one" {
	# RFC 5321 4.5.3.1.10: 452 to RCPT is "too many"; the client sends
	# the rest in another transaction.  Taken as a 451 for the whole
	# message, a message to 150 recipients would never be delivered.
	start_upstream --max-rcpt 100
	local to=() i
	for i in $(seq 150); do to+=(--to "r$i@example.net"); done
	run --separate-stderr smtp_transaction "${to[@]}" \
	    --body 'Subject: many\r\n\r\n..dot\r\nbye\r\n' -- \
	    --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	stop_upstream
	assert_success
	assert_reply_after . 250
	run grep -c '^MAIL FROM:<a@example.org>' "$UPSTREAM/1/commands"
	assert_output 2
	# Each recipient accepted once, in order, none lost.
	run sh -c "grep '^RCPT' '$UPSTREAM/1/commands' | tr -d '\r' | sed 's/^RCPT TO:<\(.*\)>$/\1/' | uniq"
	assert_output "$(for i in $(seq 150); do echo "r$i@example.net"; done)"
	cmp "$UPSTREAM/1/data" <(printf 'Subject: many\r\n\r\n..dot\r\nbye\r\n')
	cmp "$UPSTREAM/1/data.2" "$UPSTREAM/1/data"
}

@test "relay --relay: 452 to the first recipient of a transaction is passed on, a temporary failure" {
	start_upstream --rcpt '452 4.5.3 Too many recipients'
	run --separate-stderr smtp_transaction --to b@example.net --to c@example.net -- \
	    --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	stop_upstream
	assert_success
	assert_equal "$(reply_after .)" '452 4.5.3 Too many recipients'
	run grep -c '^MAIL' "$UPSTREAM/1/commands"
	assert_output 1
}

@test "relay --relay: 552 5.5.3 (RFC 821's too many recipients) after others were taken gets the rest in a second transaction; 552 5.2.2 fails the message" {
	# RFC 5321 4.5.3.1.10: clients should take the old 552 for too many
	# recipients as 452.  Its enhanced code tells it from a full mailbox.
	start_upstream --max-rcpt 2 --too-many '552 5.5.3 Too many recipients'
	run --separate-stderr smtp_transaction --to b@example.net --to c@example.net --to d@example.net -- \
	    --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	stop_upstream
	assert_success
	assert_reply_after . 250
	run grep -c '^MAIL' "$UPSTREAM/1/commands"
	assert_output 2
	cmp "$UPSTREAM/1/data.2" "$UPSTREAM/1/data"
	start_upstream --max-rcpt 2 --too-many '552 5.2.2 Mailbox full'
	run --separate-stderr smtp_transaction --to b@example.net --to c@example.net --to d@example.net -- \
	    --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$SHIPPED/relay"
	stop_upstream
	assert_success
	assert_equal "$(reply_after .)" '552 5.2.2 Mailbox full'
	run grep -c '^MAIL' "$UPSTREAM/1/commands"
	assert_output 1
}
