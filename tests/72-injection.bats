#!/usr/bin/env bats
# Injection: client bytes must never become commands, options, headers,
# replies or log lines of their own.

setup() {
	load test_helper/common
	common_setup
	CANARY=$BATS_TEST_TMPDIR/canary
}

# One message from SENDER to RCPT, the handler given {sender} {recipients}.
deliver_to_argv() {
	run --separate-stderr smtp_transaction --ehlo c --from "$1" --to "$2" --body 'x\r\n' -- \
	    "$HANDLERS/dump" -- {sender} {recipients}
}

@test "shell metacharacters in addresses reach argv verbatim and run nothing" {
	# A dot-atom has no space, so the recipient's canary spells it ${IFS}:
	# each canary fires if its address ever goes through sh -c.
	deliver_to_argv "\"\$(touch $CANARY.from)\"@example.org" "a\`touch\${IFS}$CANARY.rcpt\`|b&c@example.net"
	assert_success
	assert_reply_after . 250
	run cat "$DUMP/1/argv"
	assert_output "--
\"\$(touch $CANARY.from)\"@example.org
a\`touch\${IFS}$CANARY.rcpt\`|b&c@example.net"
	[ ! -e "$CANARY.from" ]
	[ ! -e "$CANARY.rcpt" ]
}

@test "option-looking addresses stay single arguments after the handler's --" {
	# A handler that takes -o FILE (and creates it), then dumps its argv.
	cat >"$BATS_TEST_TMPDIR/opts" <<-EOF
	#!/bin/sh
	while getopts o: c; do [ "\$c" = o ] && : >"\$OPTARG"; done
	exec "$HANDLERS/dump" "\$@"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/opts"
	run --separate-stderr smtp_transaction --ehlo c --from "-o$CANARY@example.org" --to --help@x.example \
	    --body 'x\r\n' -- "$BATS_TEST_TMPDIR/opts" -- {sender} {recipients}
	assert_success
	run cat "$DUMP/1/argv"
	assert_output "--
-o$CANARY@example.org
--help@x.example"
	[ ! -e "$CANARY@example.org" ]
}

@test "HELO cannot add a header: a bare CR or LF in it is refused, parentheses stay inside Received" {
	printf 'HELO evil\rX-Injected: 1\r\nHELO x) (by trusted.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line --index 1 --regexp '^501 '
	run grep -c '^X-Injected' "$DUMP/1/message"
	assert_output 0
	run head -n 1 "$DUMP/1/message"
	assert_output 'Received: from x) (by trusted.example (unknown)'
	run cat "$DUMP/1/SMTP_HELO"
	assert_output 'x) (by trusted.example'
}

@test "a TCPREMOTEHOST with line breaks or spaces is not put into Received" {
	TCPREMOTEIP=192.0.2.1 TCPREMOTEHOST=$'evil.example\nX-Injected: 1' \
	    run --separate-stderr smtp_transaction --helo c --from a@b.example --to c@d.example \
	    --body 'body\r\n' -- "$HANDLERS/dump"
	assert_success
	run head -n 1 "$DUMP/1/message"
	assert_output 'Received: from c (unknown [192.0.2.1])'
	run grep -c 'X-Injected' "$DUMP/1/message"
	assert_output 0
}

@test "handler output with two replies in it is one reply, and the dialogue stays in step" {
	run --separate-stderr smtp_session "$HANDLERS/exit" 0 $'250 ok\r\n250 ok' <<-EOF
	HELO c
	MAIL FROM:<a@b.example>
	RCPT TO:<c@d.example>
	DATA
	body
	.
	NOOP
	QUIT
	EOF
	assert_success
	assert_line --index 5 $'250-2.0.0 ok\r'
	assert_line --index 6 $'250 2.0.0 ok\r'
	assert_line --index 7 $'250 2.0.0 OK\r'
	assert_line --index 8 $'221 2.0.0 Bye\r'
	assert_equal "${#lines[@]}" 9
}

@test "handler output with a 3xx or mixed codes is no reply: 451" {
	run --separate-stderr smtp_session "$HANDLERS/exit" 0 $'354 go ahead\n250 ok' <<-EOF
	HELO c
	MAIL FROM:<a@b.example>
	RCPT TO:<c@d.example>
	DATA
	body
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 451
	assert_equal "${#lines[@]}" 7
}

@test "client text in the log is escaped: one line per event" {
	printf 'HELO c\r\nMAIL FROM:<"a\\\\\\"\xc3\xa9 x"@b.example> SMTPUTF8\r\nRCPT TO:<c@d.example>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd --smtputf8 "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	# connect, one message line, disconnect: nothing split, no raw 8-bit.
	assert_equal "$(printf '%s\n' "$stderr" | grep -c '^smtpd-stdio\[')" 3
	assert_equal "$(printf '%s\n' "$stderr" | wc -l)" 3
	run grep -c $'\xc3' <<<"$stderr"
	assert_output 0
	# The sender is there, quoted: quotes and backslashes escaped, 8-bit in octal.
	run grep -cF ' from="\"a\\\\\\\"\303\251 x\"@b.example" rcpts=1 ' <<<"$stderr"
	assert_output 1
}
