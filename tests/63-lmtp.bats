#!/usr/bin/env bats
# LMTP (RFC 2033, SPEC 11): --lmtp answers LHLO, and after the end of the
# message one reply per accepted recipient, in RCPT order.  Postfix's lmtp
# client is the real client here.

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/postfix
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
	pf_configure "$PF/etc" \
	    'discard   unix  -       -       n       -       -       discard' \
	    'lmtp      unix  -       -       n       -       -       lmtp' <<-CF
	command_directory = /usr/sbin
	daemon_directory = /usr/lib/postfix/sbin
	shlib_directory = /usr/lib/postfix
	meta_directory = /etc/postfix
	myhostname = postfix.test
	mydomain = test
	myorigin = postfix.test
	lmtp_host_lookup = native
	default_transport = lmtp:inet:127.0.0.1:$1
	relay_transport = lmtp:inet:127.0.0.1:$1
	transport_maps = inline:{bounces.test=discard:}
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

# ---- Beyond 4096 octets of handler output (issue 16 item 13) ----

# lmtp_rcpts N [COMMAND...]: on $IN an LMTP session with N recipients
# r1@example.net ... rN@example.net, a one-line message, then the
# COMMANDs (default QUIT).
lmtp_rcpts() {
	local n=$1 i=1
	shift
	{
		printf 'LHLO client.example\r\nMAIL FROM:<a@example.org>\r\n'
		while [ "$i" -le "$n" ]; do
			printf 'RCPT TO:<r%d@example.net>\r\n' "$i"
			i=$((i + 1))
		done
		printf 'DATA\r\nSubject: many\r\n\r\nhi\r\n.\r\n'
		printf '%s\r\n' "${@:-QUIT}"
	} >"$IN"
}

# A handler that answers each recipient with a line of its own: "250
# 2.0.0 <r> delivered to its mailbox" padded with PAD octets (default
# none), and "552 5.2.2 <r> mailbox full" for the last.
per_rcpt_handler() {
	cat >"$BATS_TEST_TMPDIR/per-rcpt" <<-EOF
	#!/bin/sh
	cat >/dev/null
	pad=\$(printf '%${1:-0}s' '' | tr ' ' x)
	printf '%s\n' "\$SMTP_RCPT_TO" | {
		n=0
		while read -r r; do
			n=\$((n + 1))
			if [ "\$n" -eq "\$SMTP_RCPT_COUNT" ]; then
				echo "552 5.2.2 <\$r> mailbox full"
			else
				echo "250 2.0.0 <\$r> delivered to its mailbox\${pad:+ \$pad}"
			fi
		done
	}
	EOF
	chmod +x "$BATS_TEST_TMPDIR/per-rcpt"
}

# The replies per_rcpt_handler's lines should give, for N recipients.
per_rcpt_want() {
	local n=$1 i=1 pad
	pad=$(printf "%${2:-0}s" '' | tr ' ' x)
	echo '354 End data with <CR><LF>.<CR><LF>'
	while [ "$i" -lt "$n" ]; do
		echo "250 2.0.0 <r$i@example.net> delivered to its mailbox${pad:+ $pad}"
		i=$((i + 1))
	done
	echo "552 5.2.2 <r$n@example.net> mailbox full"
}

@test "200 recipients, a line each past 4096 octets: the last gets its 552, each other its own line" {
	per_rcpt_handler
	lmtp_rcpts 200
	run_in "$BATS_TEST_TMPDIR/per-rcpt"
	assert_success
	run final_replies
	assert_equal "${#lines[@]}" 201
	assert_output "$(per_rcpt_want 200)"
}

# lmtp_peak_rss N HANDLER: runs $IN (without its QUIT) through
# smtpd-stdio --lmtp; once N+1 replies have followed the 354 it reads the
# server's VmHWM (KiB) from /proc, prints it, and sends QUIT.  The
# replies go to $BATS_TEST_TMPDIR/replies.
lmtp_peak_rss() {
	python3 - "$1" "$IN" "$BATS_TEST_TMPDIR/replies" "$SMTPD" --hostname mx.test --log stderr --lmtp "${@:2}" <<-'PY'
	import os, re, subprocess, sys
	n, dialogue, replies, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
	p = subprocess.Popen(["timeout", "-k", "5", "120"] + cmd, stdin=subprocess.PIPE,
	                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
	with open(dialogue, "rb") as f:
	    p.stdin.write(f.read().replace(b"QUIT\r\n", b""))
	p.stdin.flush()
	got, after = [], None
	while after is None or len(got) - after < n:
	    line = p.stdout.readline()
	    if not line:
	        sys.exit("server ended after %d replies" % len(got))
	    got.append(line.decode().rstrip("\r\n"))
	    if line.startswith(b"354 "):
	        after = len(got)
	kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
	status = open("/proc/%s/status" % kids[0]).read()
	print(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
	p.stdin.write(b"QUIT\r\n")
	p.stdin.close()
	got += [l.decode().rstrip("\r\n") for l in p.stdout]
	open(replies, "w").write("\n".join(got[after:-1]) + "\n")
	sys.exit(p.wait())
	PY
}

# assert_rss_growth ONE MANY: peak RSS grew by less than 4 MiB, or 64 MiB
# under ASan, whose quarantine keeps freed blocks resident (what was
# broken grew by 8 MiB of reply, or 1 GiB once per-copy cuts are gone).
assert_rss_growth() {
	local max=4096
	if ldd "$SMTPD" 2>/dev/null | grep -q libasan; then
		max=65536
	fi
	echo "# peak RSS $1 -> $2 KiB" >&3
	[ $(($2 - $1)) -lt "$max" ] ||
		fail "peak RSS grew by $(($2 - $1)) KiB ($1 -> $2), limit $max"
}

@test "1000 recipients: each its own line, and the server's peak RSS stays within 4 MiB of a one-recipient session's" {
	local one many
	per_rcpt_handler 440
	lmtp_rcpts 1
	run --separate-stderr lmtp_peak_rss 1 "$BATS_TEST_TMPDIR/per-rcpt" 440
	assert_success
	one=$output
	assert_equal "$(cat "$BATS_TEST_TMPDIR/replies")" '552 5.2.2 <r1@example.net> mailbox full'
	lmtp_rcpts 1000
	run --separate-stderr lmtp_peak_rss 1000 "$BATS_TEST_TMPDIR/per-rcpt" 440
	assert_success
	many=$output
	# 999 lines of about 500 octets: past 4096 by far, within 512 each.
	run per_rcpt_want 1000 440
	assert_equal "$(cat "$BATS_TEST_TMPDIR/replies")" "$(printf '%s\n' "${lines[@]:1}")"
	assert_rss_growth "$one" "$many"
}

@test "1000 recipients and a handler flooding stdout with a multi-line reply: one result for all, each copy within 512 octets, RSS bounded" {
	local one many
	cat >"$BATS_TEST_TMPDIR/flood" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	yes '452 4.2.2 over quota' | head -n 100000
	EOF
	chmod +x "$BATS_TEST_TMPDIR/flood"
	lmtp_rcpts 2
	run --separate-stderr lmtp_peak_rss 2 "$BATS_TEST_TMPDIR/flood"
	assert_success
	one=$output
	lmtp_rcpts 1000
	run --separate-stderr lmtp_peak_rss 1000 "$BATS_TEST_TMPDIR/flood"
	assert_success
	many=$output
	assert_rss_growth "$one" "$many"
	# Each copy: as many 22-octet lines as fit in 512, i.e. 23.
	run env LC_ALL=C sort -u "$BATS_TEST_TMPDIR/replies"
	assert_output "$(printf '452 4.2.2 over quota\n452-4.2.2 over quota')"
	assert_equal "$(grep -c '^452 ' "$BATS_TEST_TMPDIR/replies")" 1000
	assert_equal "$(grep -c '^452-' "$BATS_TEST_TMPDIR/replies")" 22000
}

@test "a line cut by the output limit never counts: not under --lmtp, nor with SMTP" {
	# 4096 = 273 lines of 15 octets and "5": the limit cuts the 274th
	# line inside its code.  Counted, "5" would make the output no reply.
	printf 'LHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n' >"$IN"
	run_in "$HANDLERS/say" 0 "$(printf '552 5.2.2 full\\n%.0s' $(seq 300))"
	run final_replies
	assert_equal "${lines[1]}" '552-5.2.2 full'
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^552.5\.2\.2 full$')" 273
	assert_equal "${lines[273]}" '552 5.2.2 full'
	run --separate-stderr smtp_session "$HANDLERS/say" 0 "$(printf '552 5.2.2 full\\n%.0s' $(seq 300))" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	x
	.
	QUIT
	EOF
	assert_reply_after . 552
	# Ten recipients: 5120 octets count; 341 lines and "55" of the next.
	lmtp_rcpts 10
	run_in "$HANDLERS/say" 0 "$(printf '552 5.2.2 full\\n%.0s' $(seq 400))"
	run final_replies
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^552 5\.2\.2 full$')" 10
}

@test "exit 0 with one refusal line past the output limit is 451 for every recipient, never 250" {
	# 3 recipients: 4096 octets count; the one 550 line is longer.
	lmtp_rcpts 3
	run_in "$HANDLERS/say" 0 "550 5.7.1 $(printf 'x%.0s' {1..5000})\n"
	run final_replies
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^451 4\.3\.0 ')" 3
	refute_output --partial '250 '
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
	assert_output "$(printf '354 End data with <CR><LF>.<CR><LF>\n'
	    printf '%s\n' "$NO_SPOOL" "$NO_SPOOL" "$NO_SPOOL")"
	assert_no_message
}
