#!/usr/bin/env bats
# The relay handler never lets a client smuggle a second message to its
# upstream (issue 8 item 1, the pattern of CVE-2023-51764): whatever the
# bytes, the upstream gets canonical CRLF with every leading dot stuffed.
# A raw recorder (relay-upstream.py) ends data at the first ".\r\n" line
# after any LF, as a lenient upstream would, so a smuggled transaction
# would show as a second MAIL.

setup() {
	load test_helper/common
	common_setup
	IN=$BATS_TEST_TMPDIR/in
}

teardown() {
	if [ -s "$BATS_TEST_TMPDIR/upstream.pid" ]; then
		kill "$(cat "$BATS_TEST_TMPDIR/upstream.pid")" 2>/dev/null || true
	fi
}

# relay_session [smtpd options]: $IN through smtpd-stdio and the relay
# handler to a fresh upstream; the client must get one 250 for one message.
relay_session() {
	start_upstream
	run --separate-stderr feed "$IN" --relay "127.0.0.1:$UPSTREAM_PORT" "$@" \
	    "$ROOT/src/handlers/relay"
	stop_upstream
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
}

# relays_once SEQ: in every mode, one message upstream, canonical and whole.
relays_once() {
	local mode
	smuggling_input "$1"
	for mode in "" --crlf --no-received "--crlf --no-received"; do
		# shellcheck disable=SC2086
		relay_session $mode
		run python3 "$FIXTURES/check-relayed.py" "$UPSTREAM" before \
		    'MAIL FROM:<evil@attacker.example>' 'Subject: smuggled' smuggled RSET after
		assert_success
	done
}

@test "relay: the issue's first line ending in CR does not switch the upstream to bare LFs" {
	printf 'EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nSubject: x\r\r\n\r\nhello\r\n..\r\r\nRSET\r\n.\r\nQUIT\r\n' >"$IN"
	for mode in --no-received "--no-received --crlf" ""; do
		# shellcheck disable=SC2086
		relay_session $mode
		run python3 "$FIXTURES/check-relayed.py" "$UPSTREAM" 'Subject: x' hello RSET
		assert_success
	done
}

@test 'relay: <LF>.<LF> reaches the upstream as data' { relays_once '\n.\n'; }
@test 'relay: <LF>.<CRLF> reaches the upstream as data' { relays_once '\n.\r\n'; }
@test 'relay: <CR>.<CR> reaches the upstream as data' { relays_once '\r.\r'; }
@test 'relay: <CRLF>.<LF> reaches the upstream as data' { relays_once '\r\n.\n'; }
@test 'relay: <CRLF>.<CR><CRLF> reaches the upstream as data' { relays_once '\r\n.\r\r\n'; }
@test 'relay: <CRLF>.<NUL><CRLF> reaches the upstream as data' { relays_once '\r\n.\000\r\n'; }
@test 'relay: <CRLF><NUL>.<CRLF> reaches the upstream as data' { relays_once '\r\n\000.\r\n'; }
@test 'relay: <LF>.<CR> reaches the upstream as data' { relays_once '\n.\r'; }
@test 'relay: <CR>.<CRLF> reaches the upstream as data' { relays_once '\r.\r\n'; }
@test 'relay: <CRLF>.<CR> reaches the upstream as data' { relays_once '\r\n.\r'; }
@test 'relay: <CRLF>.<LF><CRLF> reaches the upstream as data' { relays_once '\r\n.\n\r\n'; }
@test 'relay: <CRLF>..<CRLF> (a stuffed dot) reaches the upstream as data' { relays_once '\r\n..\r\n'; }

@test "relay: NUL and 8-bit bytes pass unchanged, line ends made CRLF" {
	printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: bin\r\n\r\na\000b\377c\nd\re\r\n.\r\nQUIT\r\n' >"$IN"
	relay_session --no-received
	run python3 "$FIXTURES/check-relayed.py" "$UPSTREAM" 'Subject: bin'
	assert_success
	cmp "$UPSTREAM/1/data" <(printf 'Subject: bin\r\n\r\na\000b\377c\r\nd\r\ne\r\n')
}

@test "relay: a message without a final line end gets one upstream" {
	printf 'Subject: t\n\nno end' >"$BATS_TEST_TMPDIR/msg"
	start_upstream
	SMTP_RELAY=127.0.0.1:$UPSTREAM_PORT SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
	    SMTP_LINE_ENDS=LF run "$ROOT/src/handlers/relay" <"$BATS_TEST_TMPDIR/msg"
	stop_upstream
	assert_success
	cmp "$UPSTREAM/1/data" <(printf 'Subject: t\r\n\r\nno end\r\n')
}

@test "relay: without SMTP_LINE_ENDS the message is taken as LF-ended" {
	printf 'Subject: t\r\n\r\n.dot\r\n' >"$BATS_TEST_TMPDIR/msg"
	start_upstream
	SMTP_RELAY=127.0.0.1:$UPSTREAM_PORT SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
	    run env -u SMTP_LINE_ENDS "$ROOT/src/handlers/relay" <"$BATS_TEST_TMPDIR/msg"
	stop_upstream
	assert_success
	# Each CR is bare in LF mode: a line end of its own.
	cmp "$UPSTREAM/1/data" <(printf 'Subject: t\r\n\r\n\r\n\r\n..dot\r\n\r\n')
}

# --- one --relay syntax in smtpd-stdio and in the handler (item 6) -----------

@test "--relay and the handler's SMTP_RELAY check agree on every value" {
	local v c h
	for v in my_host:25 host:025 -relay.example relay-.example a..b x:0 x:65536 \
	    '[::1]:25x' '[::1]x' ::1 '[]' '[::g]' 999.1.1.1 1.2.3.04 1.2.3.4.5 \
	    relay.example:+25 relay.example. relay.example:99999999999999 user@host:25 \
	    "$(printf 'a%.0s' $(seq 64)).example" \
	    -e -Mstrict -host -host:25 \
	    relay.example mx-1.example.net:587 a.1b 127.0.0.1 127.0.0.1:2525 '[::1]' \
	    '[::1]:2525' '[2001:db8::1]:65535' '[::ffff:1.2.3.4]:25' localhost:1; do
		c=0 h=0
		"$SMTPD" --relay "$v" "$HANDLERS/accept" </dev/null >/dev/null 2>&1 || c=$?
		SMTP_RELAY=$v "$ROOT/src/handlers/relay" --check >/dev/null 2>&1 || h=$?
		case $c/$h in
		0/0 | 64/78) ;;
		*) fail "--relay '$v': smtpd-stdio exits $c, the handler $h" ;;
		esac
	done
}

@test "relay --check prints the URL of the upstream" {
	SMTP_RELAY='[::1]:2525' run "$ROOT/src/handlers/relay" --check
	assert_success
	assert_output 'smtp://[::1]:2525'
	SMTP_RELAY=relay.example run "$ROOT/src/handlers/relay" --check
	assert_output 'smtp://relay.example:25'
}

# --- relay paths no test took (item 17) -------------------------------------

@test "relay --relay [::1]:PORT delivers to an upstream on IPv6 loopback" {
	start_upstream --bind ::1
	printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: six\r\n\r\nover v6\r\n.\r\nQUIT\r\n' >"$IN"
	run --separate-stderr feed "$IN" --relay "[::1]:$UPSTREAM_PORT" --no-received "$ROOT/src/handlers/relay"
	stop_upstream
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	cmp "$UPSTREAM/1/data" <(printf 'Subject: six\r\n\r\nover v6\r\n')
}

@test "relay --relay: an upstream greeting with 421 gives 451 4.3.0" {
	relay_messages 1 --greeting '421 4.3.2 upstream.test going down'
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
}

@test "relay --relay: an upstream answering MAIL with 421 gives 451 4.3.0, not its 421" {
	relay_messages 1 --mail '421 4.3.2 upstream.test closing'
	assert_success
	assert_regex "$(reply_after .)" '^451 4\.3\.0( |$)'
	assert_reply_after QUIT 221
}

@test "relay --relay: the upstream's 4xx to RCPT reaches the client" {
	relay_messages 1 --rcpt '450 4.2.1 <b@example.net>: mailbox busy'
	assert_success
	assert_equal "$(reply_after .)" '450 4.2.1 <b@example.net>: mailbox busy'
}

@test "relay: an SMTP_LINE_ENDS that is neither LF nor CRLF exits 78 and sends nothing" {
	printf 'Subject: t\n\nbody\n' >"$BATS_TEST_TMPDIR/msg"
	start_upstream
	SMTP_RELAY=127.0.0.1:$UPSTREAM_PORT SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
	    SMTP_LINE_ENDS=CR run "$ROOT/src/handlers/relay" <"$BATS_TEST_TMPDIR/msg"
	stop_upstream
	assert_failure 78
	assert [ ! -e "$UPSTREAM/1" ]
}

@test "relay: a reply of more than 100 lines is read to its end, so the next reply is the next command's" {
	# 120 EHLO lines: the relay used to stop at 100 and take the 101st
	# for MAIL's reply, every reply after it one behind: 451 for ever.
	start_upstream --ehlo "$(printf '250 upstream.test'; for i in $(seq 119); do printf '\n250 X-EXT%d' "$i"; done)"
	run --separate-stderr smtp_transaction -- --no-received --relay "127.0.0.1:$UPSTREAM_PORT" "$ROOT/src/handlers/relay"
	stop_upstream
	assert_success
	assert_reply_after . 250
	assert_regex "$stderr" 'relay: upstream: 250 2\.0\.0 Ok: queued as UP1'
}
