#!/usr/bin/env bats
# The log (SPEC 6): one line per message whatever became of it, fields a
# key=value parser can trust, whole handler stderr lines, -v replies.

setup() {
	load test_helper/common
	common_setup
}

# fields KEY [REGEX]: the values of field KEY in the log lines in $stderr.
fields() {
	printf '%s\n' "$stderr" | python3 "$FIXTURES/logfields.py" "$@"
}

# message [options] handler [args]: one EHLO transaction, then QUIT.
message() {
	smtp_transaction --body 'Subject: logged\r\n\r\nbody\r\n' -- "$@"
}

@test "a HELO cannot forge fields of the message's log line" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	HELO x from=<ceo@bank.example> rcpts=1 reply=250 "q\\
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	body
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	run fields from 'rcpts='
	assert_output a@example.org
	run fields rcpts 'rcpts='
	assert_output 1
	run fields helo 'rcpts='
	assert_output 'x from=<ceo@bank.example> rcpts=1 reply=250 "q\'
}

@test "a quoted local part with spaces and quotes stays one from= field" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<"x\\" reply=550 y"@example.org>
	RCPT TO:<b@example.net>
	DATA
	body
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	run fields from 'rcpts='
	assert_output '"x\" reply=550 y"@example.org'
	run fields reply 'rcpts='
	assert_output 250
}

@test "the null sender is logged as from=\"\"" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<>
	RCPT TO:<b@example.net>
	DATA
	body
	.
	QUIT
	EOF
	assert_success
	[[ $stderr == *' from="" rcpts=1 '* ]]
}

@test "a delivered message's line carries id, sender, handler status and reply" {
	run --separate-stderr message "$HANDLERS/exit" 67
	assert_success
	assert_reply_after . 550
	id=$(fields handler 'rcpts=' >/dev/null; printf '%s\n' "$stderr" | sed -n 's/^smtpd-stdio\[[0-9]*\]: \([^:]*\): client=.*/\1/p')
	[ -n "$id" ]
	run fields handler 'rcpts='
	assert_output exit:67
	run fields reply 'rcpts='
	assert_output 550
	run fields from 'rcpts='
	assert_output a@example.org
}

@test "a message refused for its size is logged with its id and sender, handler=none" {
	run --separate-stderr message --size-limit 10 "$HANDLERS/dump"
	assert_success
	assert_reply_after . 552
	assert_no_message
	run fields handler 'rcpts='
	assert_output none
	run fields reply 'rcpts='
	assert_output 552
	run fields from 'rcpts='
	assert_output a@example.org
	[[ $stderr =~ \]:\ [0-9A-F]+\.[0-9A-F]+\.[0-9]+\.[0-9a-f]{10}:\ client= ]]
}

@test "a message refused for 8-bit data under --7bit is logged with handler=none reply=554" {
	run --separate-stderr smtp_transaction --ehlo c --body '\xc3\xa9\r\n' -- --7bit "$HANDLERS/dump"
	assert_success
	assert_reply_after . 554
	run fields handler 'rcpts='
	assert_output none
	run fields reply 'rcpts='
	assert_output 554
}

@test "a message refused for a spool failure is logged with handler=none reply=452" {
	[ -w /dev/full ]
	chmod 0555 "$TMPDIR"
	export TMPDIR=/dev/full
	run --separate-stderr message "$HANDLERS/dump"
	assert_success
	assert_reply_after . 452
	run fields handler 'rcpts='
	assert_output none
	run fields reply 'rcpts='
	assert_output 452
	run fields from 'rcpts='
	assert_output a@example.org
}

@test "-v logs the handler's reply as sent, line by line" {
	run --separate-stderr message -v "$HANDLERS/say" 1 '550-first line\n550 second line\n'
	assert_success
	assert_reply_after . 550
	[[ $stderr == *': > 550-5.0.0 first line'* ]]
	[[ $stderr == *': > 550 5.0.0 second line'* ]]
	[[ $stderr == *': < DATA'* ]]
	[[ $stderr == *': > 354 '* ]]
}

@test "-v logs a refusal of ours at the final dot" {
	run --separate-stderr message -v --size-limit 10 "$HANDLERS/dump"
	assert_success
	[[ $stderr == *': > 552 5.3.4 '* ]]
}

@test "without -v no command or reply is logged" {
	run --separate-stderr message "$HANDLERS/accept"
	assert_success
	[[ $stderr != *': < '* ]]
	[[ $stderr != *': > '* ]]
}

@test "a 3000-octet handler stderr line is logged whole, in numbered parts" {
	local long
	long=$(python3 -c 'print("".join(chr(65 + i % 26) for i in range(3000)))')
	run --separate-stderr message "$HANDLERS/complain" "$long\\nshort\\n"
	assert_success
	assert_reply_after . 250
	got=$(printf '%s\n' "$stderr" | sed -n 's/^smtpd-stdio\[[0-9]*\]: [^:]*: handler\( (part [0-9]*)\)\{0,1\}: //p' | head -n 3 | tr -d '\n')
	assert_equal "$got" "$long"
	[[ $stderr == *': handler (part 2): '* ]]
	[[ $stderr == *': handler (part 3): '* ]]
	[[ $stderr == *': handler: short'* ]]
}

@test "an escaped handler stderr line is not cut either" {
	run --separate-stderr message "$HANDLERS/complain" "$(printf 'x\\001%.0s' $(seq 300))\\n"
	assert_success
	assert_reply_after . 250
	got=$(printf '%s\n' "$stderr" | sed -n 's/^smtpd-stdio\[[0-9]*\]: [^:]*: handler: //p')
	assert_equal "$got" "$(printf 'x\\001%.0s' $(seq 300))"
}
