#!/usr/bin/env bats
# Limits (SPEC 2, 4): message size (RFC 1870 counting), recipients,
# messages and errors per session, command line length, idle timeout.

setup() {
	load test_helper/common
	common_setup
}

# The DATA part of a message whose RFC 1870 size is 28: dot-unstuffed,
# every line end (CRLF or bare LF) counted as CRLF, a bare CR as one octet:
# "12345678" CRLF (10) ".ab" CRLF (5) "cd" LF (4) "ef" CRLF (4) "g" CR "h"
# CRLF (5).
BODY28='12345678\r\n..ab\r\ncd\nef\r\ng\rh\r\n'

# sized_session BODY [options] handler [args]: an EHLO transaction with
# the DATA bytes printf BODY, then NOOP and QUIT, in $DIALOGUE, run.
sized_session() {
	local body=$1
	shift
	run --separate-stderr smtp_transaction --body "$body" --then NOOP -- "$@"
}

# big_session [options] handler [args]: like sized_session with a message
# of RFC 1870 size 33554433 (one octet over the default limit): 32767 lines
# of 1022 "x" and a line of 1023.
big_session() {
	{
		printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
		python3 -c '
import sys
line = b"x" * 1022 + b"\r\n"
sys.stdout.buffer.write(line * 32767 + b"x" * 1023 + b"\r\n")'
		printf '.\r\nNOOP\r\nQUIT\r\n'
	} >"$DIALOGUE"
	run --separate-stderr smtpd "$@" <"$DIALOGUE"
}

# line_of N PREFIX: PREFIX padded with "a" to N octets, then CRLF (N + 2
# octets in all).
line_of() {
	local pad=$(($1 - ${#2}))
	printf '%s' "$2"
	head -c "$pad" /dev/zero | tr '\0' a
	printf '\r\n'
}

# fifo_client: opens $FIFO read-write on fd 5, so that a server reading it
# never sees EOF while this test runs.
fifo_client() {
	FIFO=$BATS_TEST_TMPDIR/fifo
	mkfifo "$FIFO"
	exec 5<>"$FIFO"
}

# --- size ------------------------------------------------------------------

@test "EHLO advertises SIZE with the --size-limit value" {
	run --separate-stderr smtp_session --size-limit 28 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	assert_line $'250-SIZE 28\r'
}

@test "SIZE= over the limit at MAIL gets 552 5.3.4" {
	run --separate-stderr smtp_session --size-limit 28 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=29
	RCPT TO:<b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^552 5\.3\.4 '
	assert_reply RCPT '^503 5\.5\.1 '
}

@test "SIZE= equal to the limit at MAIL is accepted" {
	run --separate-stderr smtp_session --size-limit 28 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=28
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
}

@test "SIZE= above the default limit 33554432 gets 552 5.3.4, at it 250" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=33554433
	MAIL FROM:<a@example.org> SIZE=33554432
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^552 5\.3\.4 '
	assert_reply MAIL '^250 2\.1\.0 ' 2
}

@test "a message exactly at the limit (RFC 1870 count) is accepted" {
	sized_session "$BODY28" --size-limit 28 "$HANDLERS/dump"
	assert_success
	assert_reply . '^250 2\.0\.0 '
	# What the handler got is larger (LF ends, the Received: header).
	[ "$(cat "$DUMP/1/SMTP_SIZE")" -gt 28 ]
}

@test "a message one octet over the limit gets 552 5.3.4, the handler does not run" {
	sized_session "$BODY28" --size-limit 27 "$HANDLERS/dump"
	assert_success
	assert_reply . '^552 5\.3\.4 '
	assert_reply NOOP '^250 '
	assert_spool_empty
	assert_no_message
}

@test "a message one octet over the limit with --crlf --no-received is refused too" {
	sized_session "$BODY28" --size-limit 27 --crlf --no-received "$HANDLERS/dump"
	assert_success
	assert_reply . '^552 5\.3\.4 '
	assert_no_message
}

@test "a message at the limit whose SIZE= was right is accepted" {
	{
		printf 'EHLO client.example\r\nMAIL FROM:<a@example.org> SIZE=28\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
		# shellcheck disable=SC2059
		printf "$BODY28"
		printf '.\r\nQUIT\r\n'
	} >"$DIALOGUE"
	run --separate-stderr smtpd --size-limit 28 "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply . '^250 2\.0\.0 '
}

@test "a message over the limit is read to its end: the next transaction works" {
	{
		printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
		# shellcheck disable=SC2059
		printf "$BODY28"
		printf 'MAIL FROM:<x@example.org>\r\n.\r\n'
		printf 'MAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n'
	} >"$DIALOGUE"
	run --separate-stderr smtpd --size-limit 28 "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 552 250 250 354 250 221 '
	run ls "$DUMP"
	assert_output 1
	assert_equal "$(cat "$DUMP/1/SMTP_MAIL_FROM")" c@example.org
}

@test "a message one octet over the default limit gets 552 5.3.4" {
	big_session "$HANDLERS/dump"
	assert_success
	assert_reply . '^552 5\.3\.4 '
	assert_reply NOOP '^250 '
	assert_no_message
}

@test "--size-limit 0: a message over the default limit is accepted" {
	big_session --size-limit 0 --no-received "$HANDLERS/dump"
	assert_success
	assert_reply . '^250 2\.0\.0 '
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" $((33554433 - 32768))
}

@test "--size-limit 0: any SIZE= is accepted" {
	run --separate-stderr smtp_session --size-limit 0 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=99999999999999
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
}

# --- recipients --------------------------------------------------------------

@test "--max-recipients 2: the third RCPT gets 452 4.5.3, the message goes to two" {
	run --separate-stderr smtp_session --max-recipients 2 "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net>
	RCPT TO:<e@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^250 2\.1\.5 ' 2
	assert_reply RCPT '^452 4\.5\.3 ' 3
	assert_reply RCPT '^452 4\.5\.3 ' 4
	assert_reply . '^250 2\.0\.0 '
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_COUNT")" 2
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_TO")" $'b@example.net\nc@example.net'
}

# envelope_dialogue N LAST: $DIALOGUE gets a session with N-1 recipients of
# 140 octets and one of LAST octets (all distinct), then a message.
envelope_dialogue() {
	python3 - "$1" "$2" >"$DIALOGUE" <<-'PY'
	import sys
	n, last = int(sys.argv[1]), int(sys.argv[2])
	def addr(i, size):
	    local = "r%06d" % i
	    left = size - len(local) - 1
	    labels = []
	    while left > 0:
	        take = min(62, left)
	        labels.append("a" * take)
	        left -= take + 1
	    domain = ".".join(labels)
	    assert len(local) + 1 + len(domain) == size, (i, size)
	    return local + "@" + domain
	out = ["EHLO client.example", "MAIL FROM:<a@example.org>"]
	for i in range(n):
	    out.append("RCPT TO:<%s>" % addr(i, 140 if i < n - 1 else last))
	out += ["DATA", "hello", ".", "QUIT"]
	sys.stdout.write("".join(l + "\r\n" for l in out))
	PY
}

# SPEC 2: SMTP_RCPT_TO may reach Linux's 128 KiB per string, not more.
# 13 octets of name, 928 x 141 and one recipient: 131072 with the NUL at
# a last recipient of 210 octets.
@test "recipients up to exactly 128 KiB of SMTP_RCPT_TO are accepted and delivered" {
	envelope_dialogue 929 210
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply RCPT '^250 2\.1\.5 ' 929
	assert_reply . '^250 2\.0\.0 '
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_COUNT")" 929
	assert_equal "$(printf 'SMTP_RCPT_TO=%s' "$(cat "$DUMP/1/SMTP_RCPT_TO")" | wc -c)" 131071
}

@test "the RCPT that would push SMTP_RCPT_TO past 128 KiB gets 452 4.5.3, the message goes to the rest" {
	envelope_dialogue 929 211
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply RCPT '^250 2\.1\.5 ' 928
	assert_reply RCPT '^452 4\.5\.3 ' 929
	assert_reply . '^250 2\.0\.0 '
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_COUNT")" 928
}

# Twenty {recipients} arguments: the total argv+env limit (ARG_MAX) is
# reached long before the 128 KiB of one string.
@test "{recipients} arguments count against the total exec limit: refused at RCPT, never 451 after DATA" {
	local args=() i n
	for i in $(seq 20); do args+=({recipients}); done
	envelope_dialogue 900 140
	run --separate-stderr smtpd "$HANDLERS/dump" "${args[@]}" <"$DIALOGUE"
	assert_success
	assert_reply . '^250 2\.0\.0 '
	n=$(cat "$DUMP/1/SMTP_RCPT_COUNT")
	[ "$n" -lt 900 ]
	assert_reply RCPT '^250 2\.1\.5 ' "$n"
	assert_reply RCPT '^452 4\.5\.3 ' $((n + 1))
	assert_equal "$(wc -l <"$DUMP/1/argv")" $((20 * n))
}

@test "--max-recipients counts per transaction" {
	run --separate-stderr smtp_session --max-recipients 1 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RSET
	MAIL FROM:<a@example.org>
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^250 2\.1\.5 ' 2
	assert_reply RCPT '^452 4\.5\.3 ' 3
}

@test "refused recipients do not count against --max-recipients" {
	run --separate-stderr smtp_session --max-recipients 1 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@@example.net>
	RCPT TO:<c@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^553 ' 1
	assert_reply RCPT '^250 2\.1\.5 ' 2
}

# --- messages per session ----------------------------------------------------

@test "--max-messages 1: the MAIL after the first message gets 421 4.7.0, exit 0" {
	run --separate-stderr smtp_session --max-messages 1 "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	first
	.
	NOOP
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	second
	.
	QUIT
	EOF
	assert_success
	assert_reply . '^250 2\.0\.0 '
	assert_reply NOOP '^250 '
	assert_reply MAIL '^421 4\.7\.0 ' 2
	assert_equal "$(reply_codes | tail -n 1)" 421
	run ls "$DUMP"
	assert_output 1
}

@test "--max-messages counts only accepted messages" {
	run --separate-stderr smtp_session --max-messages 1 "$HANDLERS/once" "$HANDLERS/exit" 75 <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	refused by the handler
	.
	MAIL FROM:<a@example.org>
	RSET
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	accepted
	.
	MAIL FROM:<a@example.org>
	QUIT
	EOF
	assert_success
	assert_reply . '^451 ' 1
	assert_reply MAIL '^250 ' 2
	assert_reply MAIL '^250 ' 3
	assert_reply . '^250 2\.0\.0 ' 2
	assert_reply MAIL '^421 4\.7\.0 ' 4
}

# --- errors per session ------------------------------------------------------

@test "--max-errors 3: the third 5xx is followed by 421 4.7.0 and exit 1" {
	run --separate-stderr smtp_session --max-errors 3 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	FROB
	FROB
	FROB
	NOOP
	QUIT
	EOF
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 500 500 500 421 '
	assert_line --index -1 --regexp '^421 4\.7\.0 '
}

@test "--max-errors: 500, 501, 503 and 555 all count" {
	run --separate-stderr smtp_session --max-errors 4 "$HANDLERS/accept" <<-EOF
	MAIL FROM:<a@example.org>
	HELO
	EHLO client.example
	MAIL FROM:<a@example.org> FOO=1
	FROB
	NOOP
	EOF
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 503 501 250 555 500 421 '
}

@test "--max-errors: bad addresses (501 5.1.7, 553 5.1.3) count" {
	run --separate-stderr smtp_session --max-errors 2 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@@example.org>
	MAIL FROM:<a@example.org>
	RCPT TO:<b@@example.net>
	NOOP
	EOF
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 501 250 553 421 '
}

@test "--max-errors: 552 for SIZE= over the limit counts" {
	run --separate-stderr smtp_session --max-errors 1 --size-limit 28 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=29
	NOOP
	EOF
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 552 421 '
}

@test "--max-errors: 4xx replies and handler 5xx replies do not count" {
	run --separate-stderr smtp_session --max-errors 2 --max-recipients 1 "$HANDLERS/exit" 65 <<-EOF
	EHLO client.example
	FROB
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net>
	DATA
	one
	.
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	two
	.
	NOOP
	QUIT
	EOF
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 500 250 250 452 452 354 554 250 250 354 554 250 221 '
}

@test "--max-errors: handler 5xx text replies do not count" {
	run --separate-stderr smtp_session --max-errors 1 "$HANDLERS/exit" 1 '550 no such user here' <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	one
	.
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply . '^550 '
	assert_reply NOOP '^250 '
	assert_reply QUIT '^221 '
}

@test "the default error limit is 20" {
	{
		printf 'EHLO client.example\r\n'
		printf 'FROB\r\n%.0s' $(seq 19)
		printf 'NOOP\r\nFROB\r\nNOOP\r\n'
	} >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_failure 1
	assert_reply NOOP '^250 '
	assert_equal "$(reply_codes | tail -n 3 | tr '\n' ' ')" '250 500 421 '
}

# --- command line length -----------------------------------------------------

@test "a 512-octet command line (CRLF included) is accepted" {
	line_of 510 'NOOP ' >"$DIALOGUE"
	printf 'QUIT\r\n' >>"$DIALOGUE"
	assert_equal "$(head -n 1 "$DIALOGUE" | wc -c)" 512
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 221 '
}

@test "a 513-octet command line gets 500 5.5.2 and the session goes on" {
	line_of 511 'NOOP ' >"$DIALOGUE"
	printf 'NOOP\r\nQUIT\r\n' >>"$DIALOGUE"
	assert_equal "$(head -n 1 "$DIALOGUE" | wc -c)" 513
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 500 250 221 '
	assert_line --index 1 --regexp '^500 5\.5\.2 '
}

@test "a 513-octet HELO line is not interpreted: MAIL after it gets 503" {
	line_of 511 'HELO ' >"$DIALOGUE"
	printf 'MAIL FROM:<a@example.org>\r\nQUIT\r\n' >>"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 500 503 221 '
}

@test "a 2048-octet MAIL line is accepted" {
	{
		printf 'EHLO client.example\r\n'
		line_of 2046 'MAIL FROM:<a@example.org> AUTH='
		printf 'RCPT TO:<b@example.net>\r\nQUIT\r\n'
	} >"$DIALOGUE"
	assert_equal "$(sed -n 2p "$DIALOGUE" | wc -c)" 2048
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
}

@test "a 2049-octet MAIL line gets 500 5.5.2 and is not interpreted" {
	{
		printf 'EHLO client.example\r\n'
		line_of 2047 'MAIL FROM:<a@example.org> AUTH='
		printf 'RCPT TO:<b@example.net>\r\nQUIT\r\n'
	} >"$DIALOGUE"
	assert_equal "$(sed -n 2p "$DIALOGUE" | wc -c)" 2049
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_reply MAIL '^500 5\.5\.2 '
	assert_reply RCPT '^503 5\.5\.1 '
}

@test "a 2048-octet RCPT line is parsed (its unknown parameter gets 555)" {
	{
		printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n'
		line_of 2046 'RCPT TO:<b@example.net> XPAD='
		printf 'QUIT\r\n'
	} >"$DIALOGUE"
	assert_equal "$(sed -n 3p "$DIALOGUE" | wc -c)" 2048
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_reply RCPT '^555 5\.5\.4 '
}

@test "a 2049-octet RCPT line gets 500 5.5.2" {
	{
		printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n'
		line_of 2047 'RCPT TO:<b@example.net> XPAD='
		printf 'QUIT\r\n'
	} >"$DIALOGUE"
	assert_equal "$(sed -n 3p "$DIALOGUE" | wc -c)" 2049
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_reply RCPT '^500 5\.5\.2 '
}

@test "the 2048-octet allowance is only for MAIL and RCPT: a 1000-octet NOOP gets 500" {
	line_of 998 'NOOP ' >"$DIALOGUE"
	printf 'QUIT\r\n' >>"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 500 221 '
}

# --- idle timeout ----------------------------------------------------------

@test "--timeout 1: a client silent after EHLO gets 421 4.4.2 and exit 1" {
	fifo_client
	printf 'EHLO client.example\r\n' >&5
	run --separate-stderr smtpd --timeout 1 "$HANDLERS/accept" <"$FIFO" 5>&-
	exec 5>&-
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 421 '
	assert_line --index -1 --regexp '^421 4\.4\.2 '
}

@test "--timeout 1: a client silent after the greeting gets 421 4.4.2 and exit 1" {
	fifo_client
	run --separate-stderr smtpd --timeout 1 "$HANDLERS/accept" <"$FIFO" 5>&-
	exec 5>&-
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 421 '
	assert_line --index -1 --regexp '^421 4\.4\.2 '
}

@test "--timeout 1: a client silent in the middle of DATA gets 421 4.4.2, the handler does not run" {
	fifo_client
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: slow\r\n\r\nhal' >&5
	run --separate-stderr smtpd --timeout 1 "$HANDLERS/dump" <"$FIFO" 5>&-
	exec 5>&-
	assert_failure 1
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 421 '
	assert_line --index -1 --regexp '^421 4\.4\.2 '
	assert_spool_empty
	assert_no_message
}

# paced_client LINE...: writes each LINE with CRLF, pausing 0.3 s after
# each (a slow but steady client; the pauses pace it, they synchronise
# nothing).
paced_client() {
	local line
	for line in "$@"; do
		printf '%s\r\n' "$line"
		sleep 0.3
	done
}

@test "--timeout 1 is an idle limit: a steady client slower than 1 s in total is served" {
	run --separate-stderr smtpd --timeout 1 "$HANDLERS/dump" < <(paced_client 'EHLO client.example' \
		'MAIL FROM:<a@example.org>' 'RCPT TO:<b@example.net>' DATA 'Subject: slow' '' \
		'line one' 'line two' . NOOP QUIT 3>&-)
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 250 221 '
	run ls "$DUMP"
	assert_output 1
}
