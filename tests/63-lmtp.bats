#!/usr/bin/env bats
# LMTP (RFC 2033, SPEC 11): --lmtp answers LHLO, and after the end of the
# message one reply per accepted recipient, in RCPT order.  Postfix's lmtp
# client is the real client here.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	export IN=$BATS_TEST_TMPDIR/in
	PF=
	PF_PID=
}

teardown() {
	local p
	if [ -n "$PF_PID" ]; then
		# postfix start-fg is a shell whose child is the master: both
		# are stopped, even when the master never wrote its pid file.
		for p in $(pgrep -P "$PF_PID") "$PF_PID"; do
			kill "$p" 2>/dev/null || true
			wait_for 10 process_gone "$p" || kill -KILL "$p" 2>/dev/null || true
		done
		wait "$PF_PID" 2>/dev/null || true
	fi
	[ -z "$PF" ] || rm -rf "$PF"
	stop_server
}

THREE='LHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<r2@example.net>\r\nRCPT TO:<r3@example.net>\r\n'

# run_in [options] handler: --lmtp on $IN through a pipe, replies without CR.
run_in() {
	run --separate-stderr bash -c 'set -o pipefail; "$@" <"$IN" | tr -d "\r"' sh \
	    timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr --lmtp "$@"
}

# The replies after the last RCPT's 250 2.1.5, but for the final 221.
final_replies() {
	printf '%s\n' "$output" | awk '/^250 2\.1\.5 /{ n = NR } { l[NR] = $0 }
	    END { for (i = n + 1; i <= NR; i++) if (l[i] !~ /^221 /) print l[i] }'
}

@test "--lmtp: greeting says LMTP, LHLO answers like EHLO, HELO and EHLO are unknown" {
	printf 'HELO client.example\r\nEHLO client.example\r\nLHLO client.example\r\nQUIT\r\n' >"$IN"
	run_in "$HANDLERS/dump"
	assert_success
	assert_line --index 0 '220 mx.test LMTP smtpd-stdio'
	assert_line --index 1 '500 5.5.2 Error: command not recognized'
	assert_line --index 2 '500 5.5.2 Error: command not recognized'
	assert_line --index 3 '250-mx.test'
	assert_line '250-CHUNKING'
	assert_line '250 ENHANCEDSTATUSCODES'
	# Without --lmtp, LHLO is the unknown command.
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	LHLO client.example
	QUIT
	EOF
	assert_reply LHLO '^500 5\.5\.2 '
	assert_line --index 0 $'220 mx.test ESMTP smtpd-stdio\r'
}

@test "--lmtp: MAIL before LHLO gets 503 5.5.1" {
	printf 'MAIL FROM:<a@example.org>\r\nQUIT\r\n' >"$IN"
	run_in "$HANDLERS/dump"
	assert_line --index 1 '503 5.5.1 Error: send HELO/EHLO first'
}

@test "three recipients, three handler lines: each recipient its own reply, in RCPT order" {
	printf "${THREE}DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n" >"$IN"
	run_in "$HANDLERS/say" 0 '250 2.0.0 r1 ok\n452 4.2.2 r2 over quota\n550 5.1.1 r3 unknown\n'
	assert_success
	run final_replies
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n250 2.0.0 r1 ok\n452 4.2.2 r2 over quota\n550 5.1.1 r3 unknown')"
}

@test "the same after BDAT LAST" {
	printf "${THREE}BDAT 4 LAST\r\nhi\r\nQUIT\r\n" >"$IN"
	run_in "$HANDLERS/say" 0 '250 one\r\n550 two\r\n250 2.0.0 three\r\n'
	run final_replies
	assert_output "$(printf '250 2.0.0 one\n550 5.0.0 two\n250 2.0.0 three')"
}

@test "a per-recipient 2xx line counts only with exit 0: else that recipient gets the exit status's reply" {
	printf "${THREE}BDAT 4 LAST\r\nhi\r\nQUIT\r\n" >"$IN"
	run_in "$HANDLERS/say" 67 '250 ok\n550 5.1.1 gone\n250 ok\n'
	run final_replies
	assert_output "$(printf '550 5.1.1 Error: recipient unknown\n550 5.1.1 gone\n550 5.1.1 Error: recipient unknown')"
}

@test "one handler result for all: exit 0 without output, a single line, or a wrong number of lines" {
	printf "${THREE}BDAT 4 LAST\r\nhi\r\nQUIT\r\n" >"$IN"
	run_in "$HANDLERS/dump"
	run final_replies
	assert_equal "${#lines[@]}" 3
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" 1
	assert_line --index 0 "250 2.0.0 OK: queued as $(cat "$DUMP/1/SMTP_ID")"
	assert_equal "$(cat "$DUMP/1/SMTP_PROTOCOL")" LMTP
	grep -q '^	by mx\.test (smtpd-stdio) with LMTP id ' "$DUMP/1/message"
	run_in "$HANDLERS/say" 0 '554 5.7.1 no\n'
	run final_replies
	assert_output "$(printf '554 5.7.1 no\n554 5.7.1 no\n554 5.7.1 no')"
	# Two lines for three recipients: not per recipient, and as one reply
	# they mix codes, so exit 0 with no valid reply: 451 4.3.0 for all.
	run_in "$HANDLERS/say" 0 '250 a\n550 b\n'
	run final_replies
	assert_equal "$(printf '%s\n' "${lines[@]}" | sort -u)" '451 4.3.0 Error: temporary handler failure, try again later'
	assert_equal "${#lines[@]}" 3
	# A multi-line reply of three lines is no set of one-line replies.
	run_in "$HANDLERS/say" 0 '250-a\n250-b\n250 c\n'
	run final_replies
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^250 2\.0\.0 c$')" 3
}

@test "a refusal before the handler (size, --7bit) is repeated for every recipient" {
	printf "${THREE}DATA\r\n0123456789\r\n.\r\nQUIT\r\n" >"$IN"
	run_in --size-limit 5 "$HANDLERS/dump"
	run final_replies
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n552 5.3.4 Error: message size exceeds fixed limit\n552 5.3.4 Error: message size exceeds fixed limit\n552 5.3.4 Error: message size exceeds fixed limit')"
	printf "${THREE}BDAT 3 LAST\r\n\351\r\nQUIT\r\n" >"$IN"
	run_in --7bit "$HANDLERS/dump"
	run final_replies
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^554 5\.6\.0 ')" 3
	assert_no_message
}

@test "only accepted recipients get a reply" {
	printf 'LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<bad address>\r\nRCPT TO:<r3@example.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n' >"$IN"
	run_in "$HANDLERS/say" 0 '250 first\n451 second\n'
	run final_replies
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n250 2.0.0 first\n451 4.0.0 second')"
}

# pf_start PORT: a private Postfix (its own config and queue directory
# under $PF, no smtpd, no listener) whose default transport is LMTP to
# 127.0.0.1:PORT; bounces to @bounces.test are discarded.
pf_start() {
	# Postfix's daemons run as user postfix: their queue is in a
	# world_dir, not below the bats run directory (mode 0700).
	PF=$(world_dir postfix) || return
	mkdir -p "$PF/etc" "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	cat >"$PF/etc/main.cf" <<-CF
	compatibility_level = 3.6
	queue_directory = $PF/queue
	data_directory = $PF/data
	command_directory = /usr/sbin
	daemon_directory = /usr/lib/postfix/sbin
	shlib_directory = /usr/lib/postfix
	meta_directory = /etc/postfix
	mail_owner = postfix
	setgid_group = postdrop
	myhostname = postfix.test
	mydomain = test
	myorigin = postfix.test
	mydestination =
	inet_interfaces = loopback-only
	inet_protocols = ipv4
	alias_maps =
	alias_database =
	lmtp_host_lookup = native
	default_transport = lmtp:inet:127.0.0.1:$1
	relay_transport = lmtp:inet:127.0.0.1:$1
	transport_maps = inline:{bounces.test=discard:}
	maillog_file = $PF/maillog
	maillog_file_prefixes = $PF
	CF
	cat >"$PF/etc/master.cf" <<-CF
	pickup    unix  n       -       n       60      1       pickup
	cleanup   unix  n       -       n       -       0       cleanup
	qmgr      unix  n       -       n       300     1       qmgr
	rewrite   unix  -       -       n       -       -       trivial-rewrite
	bounce    unix  -       -       n       -       0       bounce
	defer     unix  -       -       n       -       0       bounce
	trace     unix  -       -       n       -       0       bounce
	verify    unix  -       -       n       -       1       verify
	flush     unix  n       -       n       1000?   0       flush
	proxymap  unix  -       -       n       -       -       proxymap
	error     unix  -       -       n       -       -       error
	retry     unix  -       -       n       -       -       error
	discard   unix  -       -       n       -       -       discard
	lmtp      unix  -       -       n       -       -       lmtp
	anvil     unix  -       -       n       -       1       anvil
	scache    unix  -       -       n       -       1       scache
	postlog   unix-dgram n  -       n       -       1       postlogd
	showq     unix  n       -       n       -       -       showq
	CF
	postfix -c "$PF/etc" start-fg </dev/null >"$PF/start.log" 2>&1 3>&- &
	PF_PID=$!
	wait_for 30 test -s "$PF/queue/pid/master.pid" || { cat "$PF/start.log" "$PF/maillog" >&2; return 1; }
	wait_for 30 grep -q 'daemon started' "$PF/maillog"
}

# lmtp_done: Postfix has logged a delivery status for three recipients.
lmtp_done() {
	[ "$(grep -c 'postfix/lmtp\[.*status=' "$PF/maillog")" -ge 3 ]
}

@test "Postfix's lmtp client: one message to 3 recipients, one refused, per-recipient status in its log" {
	cat >"$BATS_TEST_TMPDIR/mailbox" <<-'EOF'
	#!/bin/sh
	# One reply per recipient: r2 has no mailbox.
	cat >"$DUMP/message"
	printf '%s\n' "$SMTP_RCPT_TO" | while read -r r; do
		case $r in
		r2@*) echo "550 5.1.1 <$r>: no such mailbox" ;;
		*) echo "250 2.0.0 <$r> delivered" ;;
		esac
	done
	EOF
	chmod +x "$BATS_TEST_TMPDIR/mailbox"
	start_server --lmtp "$BATS_TEST_TMPDIR/mailbox"
	pf_start "$PORT"
	printf 'Subject: lmtp\n\nhello\n' |
	    sendmail -C "$PF/etc" -f a@bounces.test r1@example.net r2@example.net r3@example.net
	wait_for 60 lmtp_done
	run grep 'postfix/lmtp\[' "$PF/maillog"
	assert_line --regexp "to=<r1@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PORT, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 <r1@example\.net> delivered\)"
	assert_line --regexp 'to=<r2@example\.net>, .*dsn=5\.1\.1, status=bounced \(host .* said: 550 5\.1\.1 <r2@example\.net>: no such mailbox'
	assert_line --regexp 'to=<r3@example\.net>, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 <r3@example\.net> delivered\)'
	assert_equal "$(grep -c 'status=' <<<"$output")" 3
	grep -q '^hello$' "$DUMP/message"
	grep -q 'with LMTP id' "$DUMP/message"
}

@test "--lmtp: a policy refusal at the end of the message, or a spool failure, is repeated for every recipient" {
	local sock=$BATS_TEST_TMPDIR/policy.sock
	python3 "$FIXTURES/policy-server.py" unix "$sock" "$BATS_TEST_TMPDIR/policy.log" 3>&- &
	local pol=$!
	wait_for 10 test -S "$sock"
	# The fixture refuses at END-OF-MESSAGE for the sender eomreject@.
	printf 'LHLO client.example\r\nMAIL FROM:<eomreject@example.org>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<r2@example.net>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n' >"$IN"
	run_in --policy "unix:$sock" "$HANDLERS/dump"
	kill "$pol"
	assert_success
	run final_replies
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n554 5.7.1 Not wanted here\n554 5.7.1 Not wanted here')"
	assert_no_message
	printf "${THREE}DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n" >"$IN"
	TMPDIR=/nonexistent run_in "$HANDLERS/dump"
	assert_success
	run final_replies
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n452 4.3.1 Error: insufficient system storage\n452 4.3.1 Error: insufficient system storage\n452 4.3.1 Error: insufficient system storage')"
	assert_no_message
}
