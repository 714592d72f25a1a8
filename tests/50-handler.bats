#!/usr/bin/env bats
# The handler (SPEC 5): how it runs, and how its result becomes the reply.

setup() {
	load test_helper/common
	common_setup
}

teardown() {
	# Processes a fixture left behind if a test failed half-way.
	local pid
	for pid in $(cat "$DUMP/pids" "$DUMP/bgpid" 2>/dev/null); do
		if grep -q -a -e sleep -e hang -e yes "/proc/$pid/cmdline" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

# status_gives STATUS REGEX: the first of two messages, handled by a
# handler exiting STATUS without output, gets a one-line reply matching
# "^REGEX( |$)"; the session goes on and the second message is delivered.
status_gives() {
	run --separate-stderr send_messages 2 "$HANDLERS/once" "$HANDLERS/exit" "$1"
	assert_success
	assert_regex "$(reply_after . 1)" "^$2( |\$)"
	assert_reply_after . 250 2
	assert_reply_after QUIT 221
	assert_spool_empty
}

# says STATUS FORMAT EXPECTED: a handler printing FORMAT (printf escapes)
# and exiting STATUS gets exactly the reply EXPECTED (lines without CR).
says() {
	run --separate-stderr send_messages 1 "$HANDLERS/say" "$1" "$2"
	assert_success
	assert_equal "$(reply_after . 1)" "$3"
	assert_reply_after NOOP 250
}

# --- SPEC 5.2, the exit status table: one test per row -----------------

@test "exit 0 without output gives 250 2.0.0 OK: queued as SMTP_ID" {
	run --separate-stderr send_messages 1 "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_after . 1)" "250 2.0.0 OK: queued as $(cat "$DUMP/1/SMTP_ID")"
}

@test "each message has its own id, in its 250 reply" {
	run --separate-stderr send_messages 2 "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_after . 1)" "250 2.0.0 OK: queued as $(cat "$DUMP/1/SMTP_ID")"
	assert_equal "$(reply_after . 2)" "250 2.0.0 OK: queued as $(cat "$DUMP/2/SMTP_ID")"
	refute [ "$(cat "$DUMP/1/SMTP_ID")" = "$(cat "$DUMP/2/SMTP_ID")" ]
}

@test "the message id is in the log" {
	run --separate-stderr send_messages 1 "$HANDLERS/dump"
	assert_success
	assert_regex "$stderr" "$(cat "$DUMP/1/SMTP_ID")"

}

@test "exit 65 (EX_DATAERR) gives 554 5.6.0 and the session goes on" {
	status_gives 65 '554 5\.6\.0'
}

@test "exit 67 (EX_NOUSER) gives 550 5.1.1 and the session goes on" {
	status_gives 67 '550 5\.1\.1'
}

@test "exit 68 (EX_NOHOST) gives 550 5.1.2 and the session goes on" {
	status_gives 68 '550 5\.1\.2'
}

@test "exit 69 (EX_UNAVAILABLE) gives 554 5.3.0 and the session goes on" {
	status_gives 69 '554 5\.3\.0'
}

@test "exit 76 (EX_PROTOCOL) gives 554 5.5.0 and the session goes on" {
	status_gives 76 '554 5\.5\.0'
}

@test "exit 77 (EX_NOPERM) gives 550 5.7.1 and the session goes on" {
	status_gives 77 '550 5\.7\.1'
}

@test "exit 100 (qmail permanent error) gives 554 5.3.0 and the session goes on" {
	status_gives 100 '554 5\.3\.0'
}

@test "exit 78 (EX_CONFIG) gives 451 4.3.5 and the session goes on" {
	status_gives 78 '451 4\.3\.5'
}

@test "exit 75 (EX_TEMPFAIL) gives 451 4.3.0 and the session goes on" {
	status_gives 75 '451 4\.3\.0'
}

@test "exit 111 (qmail temporary error) gives 451 4.3.0 and the session goes on" {
	status_gives 111 '451 4\.3\.0'
}

@test "exit 64 (EX_USAGE) gives 451 4.3.0 and the session goes on" {
	status_gives 64 '451 4\.3\.0'
}

@test "exit 66 (EX_NOINPUT) gives 451 4.3.0 and the session goes on" {
	status_gives 66 '451 4\.3\.0'
}

@test "exit 70 (EX_SOFTWARE) gives 451 4.3.0 and the session goes on" {
	status_gives 70 '451 4\.3\.0'
}

@test "exit 71 (EX_OSERR) gives 451 4.3.0 and the session goes on" {
	status_gives 71 '451 4\.3\.0'
}

@test "exit 72 (EX_OSFILE) gives 451 4.3.0 and the session goes on" {
	status_gives 72 '451 4\.3\.0'
}

@test "exit 73 (EX_CANTCREAT) gives 451 4.3.0 and the session goes on" {
	status_gives 73 '451 4\.3\.0'
}

@test "exit 74 (EX_IOERR) gives 451 4.3.0 and the session goes on" {
	status_gives 74 '451 4\.3\.0'
}

@test "exit 1 gives 451 4.3.0 and the session goes on" {
	status_gives 1 '451 4\.3\.0'
}

@test "exit 2 gives 451 4.3.0 and the session goes on" {
	status_gives 2 '451 4\.3\.0'
}

@test "exit 3 (any other status) gives 451 4.3.0 and the session goes on" {
	status_gives 3 '451 4\.3\.0'
}

@test "exit 255 (any other status) gives 451 4.3.0 and the session goes on" {
	status_gives 255 '451 4\.3\.0'
}

@test "a handler killed by SIGSEGV gives 451 4.3.0 and the session goes on" {
	run --separate-stderr send_messages 2 "$HANDLERS/once" "$HANDLERS/signal" SEGV
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_reply_after . 250 2
	assert_reply_after QUIT 221
	assert_spool_empty
}

@test "a handler killed by SIGKILL gives 451 4.3.0 and the session goes on" {
	run --separate-stderr send_messages 2 "$HANDLERS/once" "$HANDLERS/signal" KILL
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_reply_after . 250 2
	assert_spool_empty
}

@test "a handler that does not exist gives 451 4.3.0 for every message and the session goes on" {
	run --separate-stderr send_messages 2 "$BATS_TEST_TMPDIR/no-such-handler"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_regex "$(reply_after . 2)" '^451 4\.3\.0( |$)'
	assert_reply_after NOOP 250 2
	assert_reply_after QUIT 221
	assert_spool_empty
}

@test "a handler that is not executable gives 451 4.3.0 and the session goes on" {
	printf '#!/bin/sh\nexit 0\n' >"$BATS_TEST_TMPDIR/not-executable"
	chmod 644 "$BATS_TEST_TMPDIR/not-executable"
	run --separate-stderr send_messages 2 "$BATS_TEST_TMPDIR/not-executable"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_regex "$(reply_after . 2)" '^451 4\.3\.0( |$)'
	assert_reply_after QUIT 221
}

# --- SPEC 5.2, the handler's own reply text ----------------------------

@test "handler text 250 with exit 0 is the reply, with 2.0.0 added" {
	says 0 '250 custom text\n' '250 2.0.0 custom text'
}

@test "a multi-line handler reply with exit 1 is sent whole, each line with 5.0.0" {
	says 1 '550-a\n550 b\n' $'550-5.0.0 a\n550 5.0.0 b'
}

@test "an enhanced status code the handler gives is kept" {
	says 1 '550 5.7.1 go away\n' '550 5.7.1 go away'
}

@test "an enhanced status code is added only to the lines that lack one" {
	says 1 '550-5.1.1 first\n550 second\n' $'550-5.1.1 first\n550 5.0.0 second'
}

@test "a 4xx handler reply counts with exit 0" {
	says 0 '452 4.2.2 mailbox full\n' '452 4.2.2 mailbox full'
}

@test "a 4xx handler reply counts with a non-zero exit" {
	says 75 '450 try later\n' '450 4.0.0 try later'
}

@test "handler text 250 with exit 65 gives 554 5.6.0, never a 2xx" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 65 '250 all fine\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^554 5\.6\.0( |$)'
}

@test "handler text 250 with exit 75 gives 451 4.3.0, never a 2xx" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 75 '250 2.0.0 all fine\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
}

@test "exit 0 with output that is not a reply gives 451 4.3.0 and the output is logged" {
	run --separate-stderr send_messages 2 "$HANDLERS/once" "$HANDLERS/say" 0 'hello world\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_regex "$stderr" 'hello world'
	refute_output --partial 'hello world'
	assert_reply_after . 250 2
}

@test "exit 65 with output that is not a reply gives 554 5.6.0 by the table" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 65 'no such thing\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^554 5\.6\.0( |$)'
	refute_output --partial 'no such thing'
}

@test "a 3xx handler reply is not a reply: exit 0 gives 451 4.3.0" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 0 '354 go ahead\n'
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	refute_output --partial 'go ahead'
}

@test "handler lines with different codes are not a reply: exit 0 gives 451 4.3.0" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 0 '250-fine\n550 not fine\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	refute_output --partial 'fine'
}

@test "handler lines with different codes are not a reply: exit 69 gives 554 5.3.0" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 69 '550-no\n450 maybe\n'
	assert_success
	assert_regex "$(reply_after . 1)" '^554 5\.3\.0( |$)'
}

@test "CRLF line ends in handler output are normalised to one CRLF" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 1 '550-a\r\n550 b\r\n'
	assert_success
	# HELO client.example: greeting, HELO, MAIL, RCPT, DATA, then the reply.
	assert_line --index 5 $'550-5.0.0 a\r'
	assert_line --index 6 $'550 5.0.0 b\r'
	assert_line --index 7 --regexp $'^250 2\\.0\\.0 .*\r$'
}

@test "control characters in handler output are dropped" {
	says 0 '250 a\001b\033c\177d\000e\bf\n' '250 2.0.0 abcdef'
}

@test "8-bit bytes and C1 controls in handler output are dropped: replies are ASCII" {
	says 1 '550 a\377\376\302\205 b\233c\303\251d\n' '550 5.0.0 a bcd'
	# Not a byte >= 0x80 anywhere in what the client got.
	assert_equal "$(printf '%s' "$output" | LC_ALL=C tr -d ' -~\r\n' | od -An -c)" ''
}

@test "exit 0 with output of nothing but dropped bytes gives 451 4.3.0, not 250" {
	says 0 '\001\033\n' '451 4.3.0 Error: temporary handler failure, try again later'
	says 0 '\377\302\205\n' '451 4.3.0 Error: temporary handler failure, try again later'
}

@test "handler reply lines are capped at 512 octets including CRLF" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 1 "550-$(printf 'x%.0s' {1..1000})\n550 $(printf 'y%.0s' {1..2000})\n"
	assert_success
	assert_line --index 5 --regexp '^550-5\.0\.0 xxxxx*'$'\r''$'
	assert_line --index 6 --regexp '^550 5\.0\.0 yyyyy*'$'\r''$'
	[ "${#lines[5]}" -le 511 ] # 512 with the LF that bats strips
	[ "${#lines[5]}" -ge 400 ]
	[ "${#lines[6]}" -le 511 ]
	[ "${#lines[6]}" -ge 400 ]
	assert_line --index 7 --regexp '^250 2\.0\.0 '
}

@test "only the first 4096 bytes of handler stdout count: a reply there is used" {
	run --separate-stderr send_messages 1 --handler-timeout 20 "$HANDLERS/bigout" 550 1
	assert_success
	reply=$(reply_after . 1)
	refute_regex "$reply" 'not part'
	assert_equal "$(printf '%s\n' "$reply" | grep -c '^550-5\.0\.0 0\{59\}$')" 63
	assert_equal "$(printf '%s\n' "$reply" | tail -n 1)" "550 5.0.0 $(printf '%059d' 0)"
	assert_reply_after NOOP 250
}

@test "a 2xx reply in the first 4096 bytes counts with exit 0 and 100 KiB more output" {
	run --separate-stderr send_messages 1 --handler-timeout 20 "$HANDLERS/bigout" 250 0
	assert_success
	assert_equal "$(reply_after . 1 | tail -n 1)" "250 2.0.0 $(printf '%059d' 0)"
	refute_output --partial 'not part'
}

@test "5 MiB on handler stderr does not hang, and its lines are logged with the id" {
	run --separate-stderr send_messages 1 --handler-timeout 20 "$HANDLERS/once" \
	    "$HANDLERS/errflood"
	assert_success
	assert_reply_after . 250
	id=$(reply_after . 1)
	id=${id##* }
	assert_regex "$stderr" "$id[^"$'\n'"]*errflood: first line"
}

@test "handler stderr is never sent to the client" {
	run --separate-stderr send_messages 1 "$HANDLERS/errflood"
	assert_success
	refute_output --partial errflood
	refute_output --partial eeeee
}

# --- SPEC 5.2: timeouts ------------------------------------------------

@test "a handler past --handler-timeout gives 451 4.3.0 and the session goes on" {
	run --separate-stderr send_messages 2 --handler-timeout 1 "$HANDLERS/once" "$HANDLERS/hang"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_reply_after . 250 2
	assert_reply_after QUIT 221
	assert_spool_empty
}

@test "a timed-out handler's whole process group is gone afterwards" {
	run --separate-stderr send_messages 1 --handler-timeout 1 "$HANDLERS/hang"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	read -r pid child <"$DUMP/pids"
	wait_for 5 process_gone "$pid"
	wait_for 5 process_gone "$child"
}

@test "a timed-out handler gets SIGTERM first" {
	run --separate-stderr send_messages 1 --handler-timeout 1 "$HANDLERS/hang" note-term
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_equal "$(cat "$DUMP/term")" TERM
}

@test "a timed-out handler that ignores SIGTERM is killed 2 s later, with its group" {
	# It notes the SIGTERM and lives on; its child ignores it: only the
	# SIGKILL that follows can end them (the grace is timed by make bench).
	cat >"$BATS_TEST_TMPDIR/stubborn" <<-'EOF'
	#!/bin/sh
	trap 'echo TERM >>"$DUMP/term"' TERM
	(trap '' TERM; exec sleep 300) &
	echo "$$ $!" >"$DUMP/pids.tmp"
	mv "$DUMP/pids.tmp" "$DUMP/pids"
	while :; do wait; done
	EOF
	chmod +x "$BATS_TEST_TMPDIR/stubborn"
	run --separate-stderr send_messages 2 --handler-timeout 1 "$HANDLERS/once" \
	    "$BATS_TEST_TMPDIR/stubborn"
	assert_success
	assert_regex "$(reply_after . 1)" '^451 4\.3\.0( |$)'
	assert_reply_after . 250 2
	assert_equal "$(cat "$DUMP/term")" TERM
	read -r pid child <"$DUMP/pids"
	wait_for 5 process_gone "$pid"
	wait_for 5 process_gone "$child"
	run grep -c ': handler timed out after 1s, sending SIGTERM$' <<<"$stderr"
	assert_output 1
}

@test "a background child keeping stdout open does not delay the reply" {
	message_dialogue 2
	run --separate-stderr timeout 10 "$SMTPD" --hostname mx.test --log stderr \
	    "$HANDLERS/bgchild" <"$DIALOGUE"
	assert_success
	assert_reply_after . 250 1
	assert_reply_after . 250 2
	assert_reply_after QUIT 221
}

@test "a background child that keeps stdout open and floods stderr does not delay the reply" {
	message_dialogue 2
	run --separate-stderr timeout 10 "$SMTPD" --hostname mx.test --log stderr \
	    "$HANDLERS/bgchild" write <"$DIALOGUE"
	assert_success
	assert_reply_after . 250 1
	assert_reply_after . 250 2
	assert_reply_after QUIT 221
	refute_output --partial 'from the background'
}

# --- SPEC 5.1: how the handler runs -------------------------------------

@test "handler stdin is a regular file at offset 0" {
	run --separate-stderr send_messages 1 "$HANDLERS/seekable"
	assert_success
	assert_reply_after . 250
	run cat "$DUMP/stdin"
	assert_line --index 0 regular
	assert_line --index 1 offset=0
}

@test "handler stdin can be read twice with a seek, and holds SMTP_SIZE bytes" {
	run --separate-stderr send_messages 1 "$HANDLERS/seekable"
	assert_success
	run cat "$DUMP/stdin"
	assert_line reread=same
	size=$(sed -n 's/^size=//p' "$DUMP/stdin")
	[ "$size" -gt 0 ]
	assert_line "smtp_size=$size"
}

@test "a process the handler leaves behind reads its own message, not the next one" {
	run --separate-stderr smtp_session "$HANDLERS/bglater" <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<first@example.net>
	DATA
	Subject: first

	the first message
	.
	MAIL FROM:<a@example.org>
	RCPT TO:<second@example.net>
	DATA
	Subject: second

	the second message, which is longer than the first
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250 1
	assert_reply_after . 250 2
	touch "$DUMP/go"
	wait_for 30 test -e "$DUMP/bg-first@example.net"
	wait_for 30 test -e "$DUMP/bg-second@example.net"
	run grep -c 'the first message$' "$DUMP/bg-first@example.net"
	assert_output 1
	run grep -c 'second' "$DUMP/bg-first@example.net"
	assert_output 0
	run grep -c 'the second message, which is longer' "$DUMP/bg-second@example.net"
	assert_output 1
}

@test "handler stdin is an unlinked file" {
	run --separate-stderr send_messages 1 "$HANDLERS/seekable"
	assert_success
	run cat "$DUMP/stdin"
	assert_line links=0
}

@test "the handler has no descriptors beyond 0-2, even when smtpd-stdio inherited some" {
	run --separate-stderr send_messages 1 "$HANDLERS/fds" 5</dev/null 7>"$BATS_TEST_TMPDIR/extra" 9<"$BATS_TEST_TMPDIR/extra"
	assert_success
	assert_reply_after . 250
	run cut -d' ' -f1 "$DUMP/fds"
	assert_output $'0\n1\n2'
}

@test "handler stdout and stderr are pipes" {
	run --separate-stderr send_messages 1 "$HANDLERS/fds"
	assert_success
	run cat "$DUMP/fds"
	assert_line --index 1 --regexp '^1 pipe:'
	assert_line --index 2 --regexp '^2 pipe:'
}

@test "the handler starts with SIGPIPE at its default, even if smtpd-stdio's parent ignored it" {
	ignoring_sigpipe() { (trap '' PIPE && "$@"); }
	run --separate-stderr ignoring_sigpipe send_messages 1 "$HANDLERS/sigstate"
	assert_success
	ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "$DUMP/sig")
	[ -n "$ign" ]
	# SIGPIPE is signal 13: bit 12 of the mask.
	[ $((0x$ign & 0x1000)) -eq 0 ]
}

@test "the handler starts with no signal blocked" {
	run --separate-stderr send_messages 1 "$HANDLERS/sigstate"
	assert_success
	assert_equal "$(sed -n 's/^SigBlk:[[:space:]]*//p' "$DUMP/sig")" 0000000000000000
}

@test "the handler runs in a process group of its own" {
	run --separate-stderr send_messages 1 "$HANDLERS/sigstate"
	assert_success
	run sed -n 's/^pid=//p' "$DUMP/sig"
	assert_output --regexp '^[0-9]+ pgid=[0-9]+$'
	pid=${output%% *}
	assert_equal "${output##*=}" "$pid"
}

@test "{sender} and {recipients} arguments are expanded" {
	run --separate-stderr smtp_session "$HANDLERS/dump" -f '{sender}' -- '{recipients}' <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	run cat "$DUMP/1/argv"
	assert_output $'-f\na@example.org\n--\nb@example.net\nc@example.net'
}

@test "SMTP_* variables in smtpd-stdio's environment are replaced, others passed on" {
	export SMTP_MAIL_FROM=forged@example.com SMTP_RELAY=evil.example SMTP_OTHER=kept
	run --separate-stderr send_messages 1 "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/1/SMTP_MAIL_FROM")" a@example.org
	run cat "$DUMP/1/env"
	refute_line --regexp '^SMTP_RELAY='
	assert_line SMTP_OTHER=kept
}

@test "the client --timeout does not run while the handler runs" {
	run --separate-stderr send_messages 1 --timeout 1 --handler-timeout 20 "$HANDLERS/slow" 2.5
	assert_success
	assert_reply_after . 250
	assert_reply_after NOOP 250
	assert_reply_after QUIT 221
}

@test "200 messages in one session leak no descriptor (ulimit -n 16)" {
	with_fd_limit() { (ulimit -n 16 && "$@"); }
	run --separate-stderr with_fd_limit send_messages 200 "$HANDLERS/accept"
	assert_success
	assert_equal "$(printf '%s\n' "$output" | grep -c '^250 2\.0\.0 OK: queued as ')" 200
	assert_reply_after QUIT 221
}

@test "exit 0 with one reply line longer than the 4096 octets that count gives 451 4.3.0, never 250" {
	# The cut line is no reply line (SPEC 5.1), but the handler did say
	# something: exit 0 with output that is not a reply (SPEC 5.2 rule 3).
	says 0 "550 5.7.1 $(printf 'x%.0s' {1..5000})\n" '451 4.3.0 Error: temporary handler failure, try again later'
	says 0 "\n\n$(printf 'y%.0s' {1..5000})" '451 4.3.0 Error: temporary handler failure, try again later'
}

@test "a handler's 421 is sent, then the session ends, exit 0 (RFC 5321 3.8)" {
	run --separate-stderr smtp_session "$HANDLERS/say" 75 '421 4.3.2 going away\n' <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply_after . 421
	assert_line --index -1 $'421 4.3.2 going away\r'
}
