#!/usr/bin/env bats
# The SMTP dialogue (SPEC 4): greeting, EHLO/HELO, the verbs and their
# replies, sequence and syntax errors, line ends, pipelining, HTTP, the end
# of a session.

setup() {
	load test_helper/common
	common_setup
}

# ehlo_keywords: the extension keywords of the first EHLO reply in $output
# (every line after the hostname line), without CR, one per line, sorted.
ehlo_keywords() {
	printf '%s\n' "$output" | tr -d '\r' |
		awk 'NR == 1 { next } /^250-/ && !seen++ { next }
			/^250[- ]/ { print substr($0, 5) } /^250 / { exit }' | sort
}

# --- greeting, EHLO, HELO --------------------------------------------------

@test "the greeting is exactly '220 HOSTNAME ESMTP smtpd-stdio' with CRLF" {
	run --separate-stderr smtpd "$HANDLERS/accept" </dev/null
	assert_success
	assert_output $'220 mx.test ESMTP smtpd-stdio\r'
	smtpd "$HANDLERS/accept" </dev/null >"$BATS_TEST_TMPDIR/out" 2>/dev/null
	printf '220 mx.test ESMTP smtpd-stdio\r\n' | cmp - "$BATS_TEST_TMPDIR/out"
}

@test "EHLO: first line 250-HOSTNAME, last line '250 ' and every line 250" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	assert_line --index 1 $'250-mx.test\r'
	run reply_after EHLO
	assert_output --regexp $'^(250-[^\n]*\n)+250 [^\n]*$'
}

@test "EHLO advertises PIPELINING, SIZE 33554432, 8BITMIME, CHUNKING, BINARYMIME, ENHANCEDSTATUSCODES by default" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_output "$(printf '%s\n' 8BITMIME BINARYMIME CHUNKING ENHANCEDSTATUSCODES PIPELINING 'SIZE 33554432')"
}

@test "EHLO advertises the --size-limit value with SIZE" {
	run --separate-stderr smtp_session --size-limit 12345 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_line 'SIZE 12345'
}

@test "EHLO advertises a bare SIZE with --size-limit 0" {
	run --separate-stderr smtp_session --size-limit 0 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_line 'SIZE'
	refute_line --regexp '^SIZE '
}

@test "EHLO does not advertise 8BITMIME or BINARYMIME with --7bit" {
	run --separate-stderr smtp_session --7bit "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_output "$(printf '%s\n' CHUNKING ENHANCEDSTATUSCODES PIPELINING 'SIZE 33554432')"
}

@test "EHLO advertises SMTPUTF8 only with --smtputf8" {
	run --separate-stderr smtp_session --smtputf8 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_output "$(printf '%s\n' 8BITMIME BINARYMIME CHUNKING ENHANCEDSTATUSCODES PIPELINING 'SIZE 33554432' SMTPUTF8)"
}

@test "EHLO advertises DSN only with --dsn" {
	run --separate-stderr smtp_session --dsn "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	run ehlo_keywords
	assert_output "$(printf '%s\n' 8BITMIME BINARYMIME CHUNKING DSN ENHANCEDSTATUSCODES PIPELINING 'SIZE 33554432')"
}

@test "HELO gets one line: 250 HOSTNAME" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	HELO client.example
	QUIT
	EOF
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_line --index 1 $'250 mx.test\r'
	assert_line --index 2 --regexp '^221 2\.0\.0 '
}

@test "HELO without an argument gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	HELO
	QUIT
	EOF
	assert_success
	assert_reply HELO '^501 5\.5\.4 '
}

@test "EHLO without an argument gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO
	QUIT
	EOF
	assert_success
	assert_reply EHLO '^501 5\.5\.4 '
}

@test "HELO without an argument does not open the session: MAIL still gets 503" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	HELO
	MAIL FROM:<a@example.org>
	QUIT
	EOF
	assert_success
	assert_reply_after MAIL 503
}

@test "commands are case-insensitive" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	ehlo client.example
	mail from:<a@example.org>
	RcPt To:<b@example.net>
	data
	hello
	.
	Noop
	rset
	vrfy someone
	help
	quit
	EOF
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 250 250 252 214 221 '
}

# --- the simple verbs ------------------------------------------------------

@test "VRFY gets 252 2.5.0" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	VRFY postmaster
	QUIT
	EOF
	assert_success
	assert_reply VRFY '^252 2\.5\.0 '
}

@test "EXPN gets 502 5.5.1" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	EXPN staff
	QUIT
	EOF
	assert_success
	assert_reply EXPN '^502 5\.5\.1 '
}

@test "HELP gets 214 2.0.0" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	HELP
	QUIT
	EOF
	assert_success
	assert_reply HELP '^214 2\.0\.0 '
}

@test "NOOP gets 250 2.0.0" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply NOOP '^250 2\.0\.0 '
}

@test "NOOP with an argument gets 250 2.0.0" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	NOOP are you there?
	QUIT
	EOF
	assert_success
	assert_reply NOOP '^250 2\.0\.0 '
}

@test "an unknown command gets 500 5.5.2 and the session goes on" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	FROB x
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply FROB '^500 5\.5\.2 '
	assert_reply_after NOOP 250
}

@test "an empty command line gets 500 5.5.2" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example

	QUIT
	EOF
	assert_success
	assert_reply '' '^500 5\.5\.2 '
	assert_reply_after QUIT 221
}

@test "RSET gets 250 2.0.0 and ends the transaction: RCPT then gets 503" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RSET
	RCPT TO:<b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RSET '^250 2\.0\.0 '
	assert_reply_after RCPT 503
}

@test "RSET keeps the HELO: a new MAIL after RSET gets 250" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RSET
	MAIL FROM:<c@example.org>
	QUIT
	EOF
	assert_success
	assert_reply_after MAIL 250 2
}

@test "RSET with an argument gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	RSET now
	QUIT
	EOF
	assert_success
	assert_reply RSET '^501 5\.5\.4 '
}

@test "QUIT with an argument gets 501 5.5.4 and the session goes on" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT now
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply QUIT '^501 5\.5\.4 '
	assert_reply_after NOOP 250
}

@test "DATA with an argument gets 501 5.5.4 and no 354" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA now
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply DATA '^501 5\.5\.4 '
	assert_reply_after NOOP 250
	assert_equal "$(ls "$DUMP")" ''
}

# --- sequence ----------------------------------------------------------------

@test "MAIL before HELO/EHLO gets 503 5.5.1" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	MAIL FROM:<a@example.org>
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^503 5\.5\.1 '
}

@test "RCPT before MAIL gets 503 5.5.1" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	RCPT TO:<b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^503 5\.5\.1 '
}

@test "DATA before MAIL gets 503 5.5.1" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	DATA
	QUIT
	EOF
	assert_success
	assert_reply DATA '^503 5\.5\.1 '
}

@test "DATA before RCPT gets 503 5.5.1, and the message lines are commands" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	DATA
	NOOP
	QUIT
	EOF
	assert_success
	assert_reply DATA '^503 5\.5\.1 '
	assert_reply_after NOOP 250
	assert_equal "$(ls "$DUMP")" ''
}

@test "DATA after only refused RCPTs gets 503 5.5.1" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@@example.net>
	DATA
	QUIT
	EOF
	assert_success
	assert_reply_after RCPT 553
	assert_reply_after DATA 503
}

@test "a second MAIL in a transaction gets 503 5.5.1 and the first one stands" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	MAIL FROM:<c@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^503 5\.5\.1 ' 2
	assert_reply_after . 250
	assert_equal "$(cat "$DUMP/1/SMTP_MAIL_FROM")" a@example.org
}

@test "EHLO again resets the transaction: RCPT after it gets 503" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	EHLO client.example
	RCPT TO:<b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply_after MAIL 250
	assert_reply_after EHLO 250 2
	assert_reply_after RCPT 503
}

@test "HELO again resets the transaction: DATA after it gets 503" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	HELO client.example
	DATA
	QUIT
	EOF
	assert_success
	assert_reply_after HELO 250 2
	assert_reply_after DATA 503
	assert_equal "$(ls "$DUMP")" ''
}

# --- end of the session ----------------------------------------------------

@test "QUIT gets 221 2.0.0 and exit 0, and nothing after it is read" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	NOOP
	EOF
	assert_success
	assert_reply QUIT '^221 2\.0\.0 '
	assert_equal "${#lines[@]}" 9
}

@test "EOF after the greeting: exit 0" {
	run --separate-stderr smtpd "$HANDLERS/accept" </dev/null
	assert_success
	assert_equal "${#lines[@]}" 1
}

@test "EOF after a command: exit 0, every command answered" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	NOOP
	EOF
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 '
}

@test "EOF in the middle of a command line: exit 0, the partial line not answered" {
	printf 'EHLO client.example\r\nNOOP' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 '
}

@test "EOF after RCPT: exit 0 and the handler does not run" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	EOF
	assert_success
	assert_equal "$(ls "$DUMP")" ''
}

@test "EOF in the middle of DATA: exit 0, the handler does not run, spool empty" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	Subject: cut short

	hello
	EOF
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 '
	assert_equal "$(ls "$DUMP")" ''
	assert_spool_empty
}

# --- line ends and pipelining ---------------------------------------------

@test "a bare LF ends a command line" {
	printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nNOOP\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 250 221 '
}

@test "a whole transaction with bare LF command lines is delivered" {
	printf 'HELO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\r\nhello\r\n.\r\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_TO")" b@example.net
}

@test "every reply but the greeting and HELO/EHLO carries an enhanced status code of its class" {
	run --separate-stderr smtp_session --max-recipients 2 "$HANDLERS/exit" 0 <<-EOF
	EHLO client.example
	NOOP
	NOOP with text
	VRFY someone
	EXPN list
	HELP
	HELP MAIL
	FROB
	DATA
	RCPT TO:<b@example.net>
	MAIL FROM:<a@example.org> FOO=bar
	MAIL FROM:<a@@example.org>
	MAIL FROM:<a@example.org> SIZE=999999999999
	MAIL FROM:<a@example.org> SMTPUTF8
	MAIL FROM:<a@example.org>
	MAIL FROM:<a@example.org>
	RCPT TO:<b@@example.net>
	RCPT TO:<b@example.net> FOO=bar
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net>
	DATA x
	DATA
	hello
	.
	RSET x
	RSET
	QUIT x
	QUIT
	EOF
	assert_success
	# Everything after the EHLO reply, but the 354.
	printf '%s\n' "$output" | tr -d '\r' | sed '1,/^250 /d' | grep -v '^354 ' >"$BATS_TEST_TMPDIR/replies"
	assert_equal "$(reply_codes | tr '\n' ' ')" \
		'220 250 250 250 252 502 214 214 500 503 503 555 501 552 555 250 503 553 555 250 250 452 501 354 250 501 250 501 221 '
	run grep -v -E '^(2[0-9][0-9][- ]2|4[0-9][0-9][- ]4|5[0-9][0-9][- ]5)\.[0-9]{1,3}\.[0-9]{1,3}( |$)' "$BATS_TEST_TMPDIR/replies"
	assert_output ''
}

@test "replies are the same whether the dialogue comes in one write or byte by byte" {
	printf '%s\r\n' 'EHLO client.example' 'NOOP' 'FROB' 'MAIL FROM:<a@example.org> SIZE=100' \
		'RCPT TO:<b@example.net>' 'RCPT TO:<b@@example.net>' 'DATA' 'Subject: one' '' \
		'..dotted' 'hello' '.' 'VRFY x' 'MAIL FROM:<>' 'RCPT TO:<postmaster>' 'DATA' \
		'two' '.' 'RSET' 'HELO client.example' 'MAIL FROM:<c@example.org>' 'RCPT TO:<d@example.net>' \
		'DATA' '.' 'QUIT' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr feed "$BATS_TEST_TMPDIR/in" "$HANDLERS/accept"
	assert_success
	local whole=$output
	run --separate-stderr feed --bytewise "$BATS_TEST_TMPDIR/in" "$HANDLERS/accept"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" \
		'220 250 250 500 250 250 553 354 250 252 250 250 354 250 250 250 250 250 354 250 221 '
	assert_equal "$(printf '%s\n' "$output" | sed 's/queued as .*/queued as ID/')" \
		"$(printf '%s\n' "$whole" | sed 's/queued as .*/queued as ID/')"
}

# --- HTTP --------------------------------------------------------------------

@test "an HTTP GET as the first command gets 421 4.7.0 and exit 1" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	GET / HTTP/1.1
	Host: mx.test

	EOF
	assert_failure 1
	assert_equal "${#lines[@]}" 2
	assert_reply GET '^421 4\.7\.0 '
}

@test "an HTTP GET after EHLO gets 421 4.7.0 and exit 1, nothing after it answered" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	GET / HTTP/1.1
	NOOP
	QUIT
	EOF
	assert_failure 1
	assert_equal "${#lines[@]}" 9
	assert_reply GET '^421 4\.7\.0 '
}

@test "HEAD, POST and CONNECT as the first command get 421 4.7.0 and exit 1" {
	local verb
	for verb in 'HEAD / HTTP/1.0' 'POST /x HTTP/1.1' 'CONNECT mx.test:25 HTTP/1.1'; do
		run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
		$verb
		QUIT
		EOF
		assert_failure 1
		assert_equal "${#lines[@]}" 2
		assert_line --index 1 --regexp '^421 4\.7\.0 '
	done
}

@test "an HTTP GET in the middle of a transaction: handler never runs" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	GET / HTTP/1.1
	DATA
	hello
	.
	EOF
	assert_failure 1
	assert_reply GET '^421 4\.7\.0 '
	assert_equal "$(ls "$DUMP")" ''
}

# --- replies are flushed before the server waits ------------------------------

# converse_start [options] handler [args]: starts the server in the
# background with its stdin and stdout on FIFOs held by this test: send
# writes to it (fd 5), get_reply reads from it (fd 6).
converse_start() {
	mkfifo "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	exec 5<>"$BATS_TEST_TMPDIR/in"
	smtpd "$@" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
		2>"$BATS_TEST_TMPDIR/stderr" 3>&- 5>&- &
	SERVER=$!
	exec 6<"$BATS_TEST_TMPDIR/out"
}

# send LINE...: each LINE with CRLF to the server.
send() {
	printf '%s\r\n' "$@" >&5
}

# get_reply: reads one whole reply (up to its "DDD " line, 10 s at most)
# and prints its last line without CR.
get_reply() {
	local line
	while IFS= read -r -t 10 -u 6 line; do
		line=${line%$'\r'}
		case $line in
		[0-9][0-9][0-9]-*) ;;
		*) printf '%s\n' "$line"; return 0 ;;
		esac
	done
	echo "no reply"
	return 1
}

@test "each reply is sent before the server waits for the next command" {
	converse_start "$HANDLERS/accept"
	run get_reply
	assert_output '220 mx.test ESMTP smtpd-stdio'
	send 'EHLO client.example'
	run get_reply
	assert_output '250 ENHANCEDSTATUSCODES'
	send 'MAIL FROM:<a@example.org>'
	run get_reply
	assert_output --regexp '^250 2\.1\.0 '
	send 'RCPT TO:<b@example.net>'
	run get_reply
	assert_output --regexp '^250 2\.1\.5 '
	send DATA
	run get_reply
	assert_output --regexp '^354 '
	send hello .
	run get_reply
	assert_output --regexp '^250 2\.0\.0 OK: queued as '
	send QUIT
	run get_reply
	assert_output --regexp '^221 2\.0\.0 '
	exec 5>&- 6<&-
	local rc=0
	wait "$SERVER" || rc=$?
	assert_equal "$rc" 0
}

@test "pipelined commands in one write are all answered before the server waits" {
	converse_start "$HANDLERS/accept"
	run get_reply
	assert_output --regexp '^220 '
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n' >&5
	local want
	for want in '^250 ENHANCEDSTATUSCODES$' '^250 2\.1\.0 ' '^250 2\.1\.5 ' '^250 2\.1\.5 ' '^354 '; do
		run get_reply
		assert_output --regexp "$want"
	done
	exec 5>&- 6<&-
	local rc=0
	wait "$SERVER" || rc=$?
	assert_equal "$rc" 0
}
