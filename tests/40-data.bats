#!/usr/bin/env bats
# The message (SPEC 3, 4, 5.1): the bytes the handler reads on stdin after
# DATA — dot-unstuffing, line ends, the Received: header, 8-bit data — and
# nothing left behind.

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
	EXPECTED=$BATS_TEST_TMPDIR/expected
}

# send_data BODY [options] handler [args]: one EHLO transaction whose DATA
# is the bytes of printf BODY (escapes as printf(1)), followed by ".\r\n"
# and QUIT, written to $DIALOGUE and run; it must end with 221 and exit 0.
send_data() {
	local body=$1
	shift
	run --separate-stderr smtp_transaction --body "$body" -- "$@"
	assert_success
	assert_reply QUIT '^221 '
}

# expect BYTES: writes printf BYTES (escapes as printf(1)) to $EXPECTED.
expect() {
	# shellcheck disable=SC2059
	printf "$1" >"$EXPECTED"
}

# assert_message [N]: the Nth (default first) message the dump handler got
# is byte for byte $EXPECTED.
assert_message() {
	cmp "$EXPECTED" "$DUMP/${1:-1}/message" || {
		od -c "$DUMP/${1:-1}/message" | head -n 40
		fail "message ${1:-1} differs from the expected bytes"
	}
}

# received_header: the Received: header of the first message, unfolded
# (each folding line break and the white space after it become one space),
# without line end.
received_header() {
	tr -d '\r' <"$DUMP/1/message" | awk '
		NR == 1 { h = $0; next }
		/^[ \t]/ { sub(/^[ \t]+/, " "); h = h $0; next }
		{ exit }
		END { print h }'
}

# after_received: the first message without its Received: header.
after_received() {
	awk 'NR == 1 { next } !body && /^[ \t]/ { next } { body = 1; print }' "$DUMP/1/message"
}

DATE_RE='(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}'

# --- bytes of the message ----------------------------------------------------

@test "a simple message reaches the handler with LF line ends" {
	send_data 'Subject: test\r\n\r\nline one\r\nline two\r\n' --no-received "$HANDLERS/dump"
	expect 'Subject: test\n\nline one\nline two\n'
	assert_message
}

@test "--crlf gives the handler CRLF line ends" {
	send_data 'Subject: test\r\n\r\nline one\r\nline two\r\n' --no-received --crlf "$HANDLERS/dump"
	expect 'Subject: test\r\n\r\nline one\r\nline two\r\n'
	assert_message
}

@test "a leading dot is unstuffed: ..x gives .x" {
	send_data '..x\r\n...\r\n..\r\n' --no-received "$HANDLERS/dump"
	expect '.x\n..\n.\n'
	assert_message
}

@test "dots that do not start a line are left alone" {
	send_data 'a.b\r\n .x\r\nend..\r\n' --no-received "$HANDLERS/dump"
	expect 'a.b\n .x\nend..\n'
	assert_message
}

@test "a line '..' becomes '.' and does not end the message" {
	send_data 'before\r\n..\r\nafter\r\n' --no-received "$HANDLERS/dump"
	assert_reply . '^250 '
	expect 'before\n.\nafter\n'
	assert_message
}

@test "a dot right at the start of the data is unstuffed" {
	send_data '..first\r\nsecond\r\n' --no-received "$HANDLERS/dump"
	expect '.first\nsecond\n'
	assert_message
}

@test "a bare LF in the body is a line end for the handler" {
	send_data 'one\ntwo\r\nthree\n\r\n' --no-received "$HANDLERS/dump"
	expect 'one\ntwo\nthree\n\n'
	assert_message
}

@test "a bare LF in the body becomes CRLF with --crlf" {
	send_data 'one\ntwo\r\n' --no-received --crlf "$HANDLERS/dump"
	expect 'one\r\ntwo\r\n'
	assert_message
}

@test "a dot after a bare LF is unstuffed" {
	send_data 'one\n..two\r\n' --no-received "$HANDLERS/dump"
	expect 'one\n.two\n'
	assert_message
}

@test "a bare CR in the body is kept" {
	send_data 'one\rtwo\r\nthree\r\r\n' --no-received "$HANDLERS/dump"
	expect 'one\rtwo\nthree\r\n'
	assert_message
}

@test "a bare CR in the body is kept with --crlf" {
	send_data 'one\rtwo\r\n' --no-received --crlf "$HANDLERS/dump"
	expect 'one\rtwo\r\n'
	assert_message
}

@test "8-bit bytes 0x80-0xFF are delivered unchanged" {
	local bytes
	bytes=$(printf '\\%03o' $(seq 128 255))
	send_data "8bit: ${bytes}\r\n" --no-received "$HANDLERS/dump"
	assert_reply . '^250 '
	expect "8bit: ${bytes}\n"
	assert_message
}

@test "NUL and other control bytes in the body are delivered unchanged" {
	send_data 'ctl: \000\001\002\t\013\014\016\037\177 end\r\n' --no-received "$HANDLERS/dump"
	assert_reply . '^250 '
	expect 'ctl: \000\001\002\t\013\014\016\037\177 end\n'
	assert_message
}

@test "an empty message reaches the handler as an empty file" {
	send_data '' --no-received "$HANDLERS/dump"
	assert_reply . '^250 2\.0\.0 '
	expect ''
	assert_message
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" 0
}

@test "an empty message with the Received: header is only the header" {
	send_data '' "$HANDLERS/dump"
	assert_reply . '^250 2\.0\.0 '
	run after_received
	assert_output ''
	assert_equal "$(head -c 10 "$DUMP/1/message")" 'Received: '
}

@test "--7bit: a message with an 8-bit byte gets 554 5.6.0, the handler does not run" {
	send_data 'caf\351\r\n' --7bit "$HANDLERS/dump"
	assert_reply . '^554 5\.6\.0 '
	assert_no_message
	assert_spool_empty
}

@test "--7bit: the session goes on after a refused 8-bit message" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\ncaf\351\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\ncafe\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd --7bit --no-received "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply . '^554 5\.6\.0 ' 1
	assert_reply . '^250 2\.0\.0 ' 2
	expect 'cafe\n'
	assert_message
}

@test "a long line (100 KiB) is delivered whole" {
	head -c 102400 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/long"
	send_data "$(cat "$BATS_TEST_TMPDIR/long")"'\r\n' --no-received "$HANDLERS/dump"
	{ cat "$BATS_TEST_TMPDIR/long"; echo; } >"$EXPECTED"
	assert_message
}

@test "--no-received: the handler gets exactly the body" {
	send_data 'From: a@example.org\r\nTo: b@example.net\r\nSubject: exact\r\n\r\nbody\r\n' --no-received "$HANDLERS/dump"
	expect 'From: a@example.org\nTo: b@example.net\nSubject: exact\n\nbody\n'
	assert_message
}

# --- Received: header --------------------------------------------------------

@test "Received: without peer information: from HELO (unknown) by HOSTNAME ... for <RCPT>; DATE" {
	send_data 'Subject: test\r\n\r\nhello\r\n' "$HANDLERS/dump"
	local id
	id=$(cat "$DUMP/1/SMTP_ID")
	run received_header
	assert_output --regexp "^Received: from client\\.example \\(unknown\\) by mx\\.test \\(smtpd-stdio\\) with ESMTP id ${id//./\\.} for <b@example\\.net>; ${DATE_RE}\$"
}

@test "Received: its first line starts 'Received: from client.example (unknown)'" {
	send_data 'hello\r\n' "$HANDLERS/dump"
	run head -n 1 "$DUMP/1/message"
	assert_output --regexp '^Received: from client\.example \(unknown\)'
}

@test "Received: the header comes first and the body follows it unchanged" {
	send_data 'Subject: test\r\n\r\nhello\r\n' "$HANDLERS/dump"
	expect 'Subject: test\n\nhello\n'
	after_received | cmp "$EXPECTED" -
}

@test "Received: continuation lines start with white space and no line is longer than 998" {
	send_data 'hello\r\n' "$HANDLERS/dump"
	local n
	n=$(grep -c '' "$DUMP/1/message")
	run awk 'NR > 1 && !/^[ \t]/ { print NR; exit }' "$DUMP/1/message"
	# The first line that is not a continuation is the body's "hello".
	assert_output "$n"
	run awk 'length($0) > 998' "$DUMP/1/message"
	assert_output ''
}

@test "Received: the date is RFC 5322 and close to now" {
	send_data 'hello\r\n' "$HANDLERS/dump"
	local header when
	header=$(received_header)
	[[ $header =~ \;\ (${DATE_RE})$ ]] || fail "no RFC 5322 date at the end: $header"
	when=$(date -d "${BASH_REMATCH[1]}" +%s)
	(( when - $(date +%s) < 300 && $(date +%s) - when < 300 )) ||
		fail "date ${BASH_REMATCH[1]} is not now"
}

@test "Received: with TCPREMOTEIP: (unknown [ADDR])" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=198.51.100.1 TCPLOCALPORT=25
	send_data 'hello\r\n' "$HANDLERS/dump"
	run received_header
	assert_output --regexp '^Received: from client\.example \(unknown \[192\.0\.2\.7\]\) by mx\.test \(smtpd-stdio\) with ESMTP id '
}

@test "Received: with TCPREMOTEIP and TCPREMOTEHOST: (HOST [ADDR])" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=198.51.100.1 TCPLOCALPORT=25 \
		TCPREMOTEHOST=client.host.example
	send_data 'hello\r\n' "$HANDLERS/dump"
	run received_header
	assert_output --regexp '^Received: from client\.example \(client\.host\.example \[192\.0\.2\.7\]\) by mx\.test '
}

@test "Received: an IPv4-mapped address is shown as IPv4" {
	export TCPREMOTEIP=::ffff:192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=::ffff:198.51.100.1 TCPLOCALPORT=25
	send_data 'hello\r\n' "$HANDLERS/dump"
	run received_header
	assert_output --regexp '^Received: from client\.example \(unknown \[192\.0\.2\.7\]\) by '
}

@test "Received: a TCPREMOTEHOST with CR LF cannot add a header line" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=198.51.100.1 TCPLOCALPORT=25 \
		TCPREMOTEHOST=$'evil.example\r\nX-Injected: yes'
	send_data 'hello\r\n' "$HANDLERS/dump"
	assert_reply . '^250 '
	run grep -c -a -e '^X-Injected' -e $'\r' "$DUMP/1/message"
	assert_output 0
	run after_received
	assert_output hello
}

@test "Received: with HELO the protocol is SMTP" {
	run --separate-stderr smtp_transaction --helo client.example --body 'hello\r\n' -- "$HANDLERS/dump"
	assert_success
	run received_header
	assert_output --regexp '^Received: from client\.example \(unknown\) by mx\.test \(smtpd-stdio\) with SMTP id '
}

@test "Received: with two recipients there is no 'for'" {
	run --separate-stderr smtp_transaction --to b@example.net --to c@example.net --body 'hello\r\n' -- "$HANDLERS/dump"
	assert_success
	local id
	id=$(cat "$DUMP/1/SMTP_ID")
	run received_header
	assert_output --regexp "^Received: from client\\.example \\(unknown\\) by mx\\.test \\(smtpd-stdio\\) with ESMTP id ${id//./\\.}; ${DATE_RE}\$"
}

@test "Received: with --crlf every line of the header ends in CRLF" {
	send_data 'hello\r\n' --crlf "$HANDLERS/dump"
	run grep -c -v $'\r$' "$DUMP/1/message"
	assert_output 0
	run tail -c 7 "$DUMP/1/message"
	assert_output $'hello\r'
}

# --- several messages, and what is left behind -------------------------------

@test "two messages in one session are each delivered once" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nfirst\r\n.\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd --no-received "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply . '^250 2\.0\.0 ' 1
	assert_reply . '^250 2\.0\.0 ' 2
	run ls "$DUMP"
	assert_output "$(printf '1\n2')"
	expect 'first\n'
	assert_message 1
	expect 'second\n'
	assert_message 2
	assert_equal "$(cat "$DUMP/2/SMTP_MAIL_FROM")" c@example.org
	assert_equal "$(cat "$DUMP/2/SMTP_RCPT_TO")" d@example.net
}

@test "the second message of a session does not carry the first one's recipients" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\nfirst\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.net>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_equal "$(cat "$DUMP/2/SMTP_RCPT_COUNT")" 1
	assert_equal "$(cat "$DUMP/2/SMTP_RCPT_TO")" d@example.net
}

@test "two messages get different ids" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nfirst\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	refute [ "$(cat "$DUMP/1/SMTP_ID")" = "$(cat "$DUMP/2/SMTP_ID")" ]
}

@test "the spool directory is empty after a session with a message" {
	send_data 'Subject: test\r\n\r\nhello\r\n' "$HANDLERS/dump"
	assert_reply . '^250 '
	assert_spool_empty
}

@test "a message not ended before EOF never reaches the handler, exit 0, spool empty" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: cut\r\n\r\nalmost done\r\n.' >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 '
	assert_spool_empty
	assert_no_message
}

@test "command lines inside a message are data" {
	send_data 'RSET\r\nQUIT\r\n' --no-received "$HANDLERS/dump"
	assert_reply . '^250 '
	expect 'RSET\nQUIT\n'
	assert_message
	run ls "$DUMP"
	assert_output 1
}
