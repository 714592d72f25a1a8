#!/usr/bin/env bats
# The envelope (SPEC 3, 4, 5.1): what MAIL and RCPT accept and refuse, and
# how the sender, recipients, parameters and peer reach the handler through
# SMTP_* variables and {sender}/{recipients} arguments.

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
}

# deliver [options] handler [args]: one EHLO transaction from a@example.org
# to b@example.net and c@example.net, then QUIT; it must be accepted.
deliver() {
	run --separate-stderr smtp_transaction --to b@example.net --to c@example.net -- "$@"
	assert_success
	assert_reply . '^250 2\.0\.0 '
}

# assert_var NAME VALUE: the first message's handler had NAME set to
# exactly VALUE (an unset NAME counts as empty).
assert_var() {
	printf '%s' "$2" | cmp -s - "$DUMP/1/$1" ||
		batslib_print_kv_single_or_multi 8 "variable" "$1" "expected" "$2" \
			"got" "$(cat "$DUMP/1/$1")" | batslib_decorate "handler variable" | fail
}

# assert_argv ARG...: the first message's handler got exactly these
# arguments.
assert_argv() {
	printf '%s\n' "$@" | cmp -s - "$DUMP/1/argv" ||
		batslib_print_kv_single_or_multi 8 "expected" "$(printf '%s\n' "$@")" \
			"got" "$(cat "$DUMP/1/argv")" | batslib_decorate "handler argv" | fail
}

# --- SMTP_* variables --------------------------------------------------------

@test "SMTP_ID is the id in the 'queued as' reply" {
	deliver "$HANDLERS/dump"
	local reply
	reply=$(reply_after .)
	[[ $reply =~ ^250\ 2\.0\.0\ OK:\ queued\ as\ ([0-9A-Za-z.-]+)$ ]] ||
		fail "unexpected reply: $reply"
	assert_var SMTP_ID "${BASH_REMATCH[1]}"
}

@test "SMTP_REMOTE_ADDR/PORT come from TCPREMOTEIP/TCPREMOTEPORT" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 192.0.2.7
	assert_var SMTP_REMOTE_PORT 54321
}

@test "SMTP_LOCAL_ADDR/PORT come from TCPLOCALIP/TCPLOCALPORT" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=198.51.100.1 TCPLOCALPORT=25
	deliver "$HANDLERS/dump"
	assert_var SMTP_LOCAL_ADDR 198.51.100.1
	assert_var SMTP_LOCAL_PORT 25
}

@test "SMTP_REMOTE_ADDR/PORT come from REMOTE_ADDR/REMOTE_PORT without UCSPI variables" {
	export REMOTE_ADDR=203.0.113.9 REMOTE_PORT=4242
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 203.0.113.9
	assert_var SMTP_REMOTE_PORT 4242
}

@test "the UCSPI variables win over REMOTE_ADDR/REMOTE_PORT" {
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=54321 REMOTE_ADDR=203.0.113.9 REMOTE_PORT=4242
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 192.0.2.7
	assert_var SMTP_REMOTE_PORT 54321
}

@test "an IPv4-mapped IPv6 client address is given as IPv4" {
	export TCPREMOTEIP=::ffff:192.0.2.7 TCPREMOTEPORT=54321
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 192.0.2.7
}

@test "an IPv4-mapped IPv6 local address is given as IPv4" {
	export TCPREMOTEIP=::ffff:192.0.2.7 TCPREMOTEPORT=54321 TCPLOCALIP=::ffff:198.51.100.1 TCPLOCALPORT=25
	deliver "$HANDLERS/dump"
	assert_var SMTP_LOCAL_ADDR 198.51.100.1
}

@test "an IPv4-mapped address from REMOTE_ADDR is given as IPv4" {
	export REMOTE_ADDR=::ffff:203.0.113.9 REMOTE_PORT=4242
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 203.0.113.9
}

@test "a TCPREMOTEIP that is not an address is not passed on as SMTP_REMOTE_ADDR" {
	export TCPREMOTEIP=$'192.0.2.7\nSMTP_EVIL=1' TCPREMOTEPORT=54321
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR ''
}

@test "address variables that only look like addresses are dropped (inet_pton decides)" {
	local v
	for v in cafe 1.2.3.4x ::g 999.1.1.1 1.2.3 :::: 2001:db8::7%eth0; do
		rm -rf "${DUMP:?}"/*
		export TCPREMOTEIP=$v TCPREMOTEPORT=54321 TCPLOCALIP=$v TCPLOCALPORT=25
		deliver "$HANDLERS/dump"
		assert_var SMTP_REMOTE_ADDR ''
		assert_var SMTP_LOCAL_ADDR ''
		run grep -c '\[' "$DUMP/1/message"
		assert_output 0
	done
	unset TCPREMOTEIP TCPLOCALIP
	export REMOTE_ADDR=cafe REMOTE_PORT=4242
	rm -rf "${DUMP:?}"/*
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR ''
}

@test "port variables outside 1-65535 are dropped" {
	local v
	for v in 0 65536 99999999999999999999 -1 25x; do
		rm -rf "${DUMP:?}"/*
		export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=$v TCPLOCALIP=192.0.2.8 TCPLOCALPORT=$v
		deliver "$HANDLERS/dump"
		assert_var SMTP_REMOTE_ADDR 192.0.2.7
		assert_var SMTP_REMOTE_PORT ''
		assert_var SMTP_LOCAL_PORT ''
	done
}

@test "an address variable is given in canonical form" {
	export TCPREMOTEIP=2001:0DB8:0:0::7 TCPREMOTEPORT=54321
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 2001:db8::7
}

@test "an IPv6 client address is given as is" {
	export TCPREMOTEIP=2001:db8::7 TCPREMOTEPORT=54321
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR 2001:db8::7
}

@test "peer and local address are empty when nothing tells them" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_REMOTE_ADDR ''
	assert_var SMTP_REMOTE_PORT ''
	assert_var SMTP_LOCAL_ADDR ''
	assert_var SMTP_LOCAL_PORT ''
}

@test "SMTP_HELO is the EHLO argument" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_HELO client.example
}

@test "SMTP_HELO is the latest HELO argument, and SMTP_PROTOCOL is SMTP after HELO" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO first.example
	HELO [192.0.2.7]
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply . '^250 '
	assert_var SMTP_HELO '[192.0.2.7]'
	assert_var SMTP_PROTOCOL SMTP
}

@test "SMTP_PROTOCOL is ESMTP after EHLO" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_PROTOCOL ESMTP
}

@test "SMTP_MAIL_FROM is the reverse-path without angle brackets" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_MAIL_FROM a@example.org
}

@test "SMTP_MAIL_FROM is empty for the null sender <>" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply . '^250 '
	assert_var SMTP_MAIL_FROM ''
	grep -qx 'SMTP_MAIL_FROM=' "$DUMP/1/env"
}

@test "SMTP_RCPT_TO holds the recipients in order, LF-joined, no trailing LF" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_RCPT_TO $'b@example.net\nc@example.net'
}

@test "SMTP_RCPT_COUNT is the number of accepted recipients" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RCPT TO:<bad@@example.net>
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^553 ' 2
	assert_var SMTP_RCPT_COUNT 3
	assert_var SMTP_RCPT_TO $'b@example.net\nc@example.net\nd@example.net'
}

@test "SMTP_MAIL_OPTIONS: keywords upper-cased, values as sent, the client's order" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> size=1234 body=8bitmime Ret=hdrs envid=Q+2Bx auth=<>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 '
	assert_var SMTP_MAIL_OPTIONS 'SIZE=1234 BODY=8bitmime RET=hdrs ENVID=Q+2Bx AUTH=<>'
}

@test "SMTP_MAIL_OPTIONS is empty without parameters" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_MAIL_OPTIONS ''
}

@test "SMTP_MAIL_OPTIONS carries SMTPUTF8 with --smtputf8" {
	run --separate-stderr smtp_session --smtputf8 "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME smtputf8
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_var SMTP_MAIL_OPTIONS 'BODY=8BITMIME SMTPUTF8'
}

@test "SMTP_RCPT_OPTIONS: one line per recipient, an empty line for none" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> notify=SUCCESS,FAILURE
	RCPT TO:<c@example.net>
	RCPT TO:<d@example.net> ORCPT=rfc822;d@example.net NOTIFY=never
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_var SMTP_RCPT_OPTIONS $'NOTIFY=SUCCESS,FAILURE\n\nORCPT=rfc822;d@example.net NOTIFY=never'
}

@test "SMTP_RCPT_OPTIONS keeps the empty line of a last recipient without parameters" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> NOTIFY=DELAY
	RCPT TO:<c@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_var SMTP_RCPT_OPTIONS $'NOTIFY=DELAY\n'
}

@test "SMTP_SIZE is the number of bytes on the handler's stdin" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_SIZE "$(wc -c <"$DUMP/1/message" | tr -d ' ')"
}

@test "SMTP_SIZE is the number of bytes on the handler's stdin with --crlf --no-received" {
	deliver --crlf --no-received "$HANDLERS/dump"
	assert_var SMTP_SIZE 24
	assert_equal "$(wc -c <"$DUMP/1/message")" 24
}

@test "SMTP_LINE_ENDS says LF, and CRLF with --crlf" {
	deliver "$HANDLERS/dump"
	assert_var SMTP_LINE_ENDS LF
	rm -rf "${DUMP:?}"/*
	deliver --crlf "$HANDLERS/dump"
	assert_var SMTP_LINE_ENDS CRLF
}

@test "SMTP_RELAY is the --relay value" {
	deliver --relay smtp.example.net:2525 "$HANDLERS/dump"
	assert_var SMTP_RELAY smtp.example.net:2525
}

@test "SMTP_RELAY is not set without --relay" {
	deliver "$HANDLERS/dump"
	run grep -c '^SMTP_RELAY=' "$DUMP/1/env"
	assert_output 0
}

@test "SMTP_* variables inherited by smtpd-stdio are replaced by the session's" {
	export SMTP_ID=fake SMTP_HELO=evil.example SMTP_REMOTE_ADDR=203.0.113.66 \
		SMTP_MAIL_FROM=evil@example.com SMTP_RCPT_TO=evil@example.com SMTP_RCPT_COUNT=9 \
		SMTP_MAIL_OPTIONS=X=1 SMTP_RCPT_OPTIONS=X=2 SMTP_SIZE=1 SMTP_PROTOCOL=LMTP
	deliver "$HANDLERS/dump"
	refute [ "$(cat "$DUMP/1/SMTP_ID")" = fake ]
	assert_var SMTP_HELO client.example
	assert_var SMTP_REMOTE_ADDR ''
	assert_var SMTP_MAIL_FROM a@example.org
	assert_var SMTP_RCPT_TO $'b@example.net\nc@example.net'
	assert_var SMTP_RCPT_COUNT 2
	assert_var SMTP_MAIL_OPTIONS ''
	assert_var SMTP_RCPT_OPTIONS $'\n'
	refute [ "$(cat "$DUMP/1/SMTP_SIZE")" = 1 ]
	assert_var SMTP_PROTOCOL ESMTP
}

@test "an inherited SMTP_RELAY does not reach the handler without --relay" {
	export SMTP_RELAY=evil.example.com
	deliver "$HANDLERS/dump"
	run grep -c '^SMTP_RELAY=' "$DUMP/1/env"
	assert_output 0
}

@test "other inherited variables reach the handler" {
	export SMTPD_TEST_MARKER=kept
	deliver /bin/sh -c 'cat >/dev/null; printf %s "$SMTPD_TEST_MARKER" >"$DUMP/marker"'
	assert_equal "$(cat "$DUMP/marker")" kept
}

# --- handler arguments -------------------------------------------------------

@test "{sender} and {recipients} expand to the sender and one argument per recipient" {
	deliver "$HANDLERS/dump" -f '{sender}' -- '{recipients}'
	assert_argv -f a@example.org -- b@example.net c@example.net
}

@test "{sender} is an empty argument for the null sender" {
	run --separate-stderr smtp_session "$HANDLERS/dump" -f '{sender}' -- '{recipients}' <<-EOF
	EHLO client.example
	MAIL FROM:<>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply . '^250 '
	assert_argv -f '' -- b@example.net
}

@test "{recipients} with one recipient gives one argument" {
	run --separate-stderr smtp_session "$HANDLERS/dump" '{recipients}' end <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_argv b@example.net end
}

@test "{sender} and {recipients} inside a larger argument are not expanded" {
	deliver "$HANDLERS/dump" '-f{sender}' 'x{recipients}' '{sender} ' '{Recipients}'
	assert_argv '-f{sender}' 'x{recipients}' '{sender} ' '{Recipients}'
}

@test "literal handler arguments are passed untouched, spaces and all" {
	deliver "$HANDLERS/dump" 'two words' '' '*' '$HOME' '-x'
	assert_argv 'two words' '' '*' '$HOME' '-x'
}

@test "{recipients} may be given twice and {sender} anywhere" {
	deliver "$HANDLERS/dump" '{recipients}' '{sender}' '{recipients}'
	assert_argv b@example.net c@example.net a@example.org b@example.net c@example.net
}

# --- MAIL and RCPT syntax ----------------------------------------------------

@test "MAIL FROM: <a@b> with a space after the colon is accepted" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM: <a@example.org>
	RCPT TO: <b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM a@example.org
	assert_var SMTP_RCPT_TO b@example.net
}

@test "paths without angle brackets are accepted" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:a@example.org
	RCPT TO:b@example.net
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM a@example.org
	assert_var SMTP_RCPT_TO b@example.net
}

@test "RCPT TO:<postmaster> without a domain is accepted" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<postmaster>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_RCPT_TO postmaster
}

@test "RCPT TO:<Postmaster> is accepted in any case" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<PostMaster>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^250 2\.1\.5 '
}

@test "a domain-less local part other than postmaster gets 553 5.1.3" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<root>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^553 5\.1\.3 '
}

@test "a quoted-string local part is accepted and passed as sent" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<"john q. public"@example.org>
	RCPT TO:<"a\\"b"@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM '"john q. public"@example.org'
	assert_var SMTP_RCPT_TO '"a\"b"@example.net'
}

@test "address literals (IPv4 and IPv6) are accepted" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@[192.0.2.1]>
	RCPT TO:<b@[IPv6:2001:db8::1]>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM 'a@[192.0.2.1]'
	assert_var SMTP_RCPT_TO 'b@[IPv6:2001:db8::1]'
}

# rcpts_get REGEX ADDRESS...: each ADDRESS as a RCPT of one transaction
# gets a reply matching REGEX.
rcpts_get() {
	local want=$1 a n
	shift
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\n'
		for a in "$@"; do printf 'RCPT TO:<b@%s>\n' "$a"; done
		printf 'QUIT\n'
	} >"$BATS_TEST_TMPDIR/rcpts"
	run --separate-stderr smtp_session "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/rcpts"
	assert_success
	for n in $(seq "$#"); do
		assert_reply RCPT "$want" "$n"
	done
}

@test "IPv6 literals of all four RFC 5321 forms are accepted, IPv4 tail with leading zeros too" {
	# IPv6-full, IPv6-comp (6 groups besides "::" at most, "::" alone),
	# IPv6v4-full, IPv6v4-comp (4 groups besides "::" at most); the last
	# one inet_pton(3) refuses, but Snum is 1*3DIGIT.
	rcpts_get '^250 2\.1\.5 ' '[IPv6:1:2:3:4:5:6:7:8]' '[IPv6:1:2:3:4:5:6::]' \
	    '[IPv6:::3:4:5:6:7:8]' '[IPv6:1:2:3::6:7:8]' '[IPv6:::]' \
	    '[ipv6:2001:DB8::a]' '[IPv6:1:2:3:4:5:6:192.0.2.1]' \
	    '[IPv6:1:2:3:4::192.0.2.1]' '[IPv6:::192.0.2.1]' \
	    '[IPv6:::ffff:192.0.2.001]'
}

@test "IPv6 literals outside RFC 5321's grammar get 553 5.1.3, even those inet_pton accepts" {
	# The first four inet_pton(3) accepts: "::" there stands for one
	# group, and RFC 5321 4.1.3 wants at least two.
	rcpts_get '^553 5\.1\.3 ' '[IPv6:1:2:3:4:5:6:7::]' '[IPv6:::2:3:4:5:6:7:8]' \
	    '[IPv6:1::3:4:5:6:7:8]' '[IPv6:1:2:3:4:5::192.0.2.1]' \
	    '[IPv6:1:2:3:4:5:6:7]' '[IPv6:12345::1]' '[IPv6:1::2::3]' \
	    '[IPv6:1:2:3:4:5:6:7:8:9]' '[IPv6::1:2:3:4:5:6:7]' '[IPv6:1:]' \
	    '[IPv6:::1.2.3]' '[IPv6:::1.2.3.256]' '[IPv6:1:2:3:4:5:6:7:1.2.3.4]' \
	    '[IPv6:]' '[IPv6:g::1]' '[IPv6:1.2.3.4]'
}

@test "a domain label of 63 octets is accepted, one of 64 gets 501 5.1.7 / 553 5.1.3" {
	local l63 l64
	l63=$(printf 'a%.0s' {1..63})
	l64=${l63}b
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@$l64.example>
	MAIL FROM:<a@@$l64.example:a@example.org>
	MAIL FROM:<a@x.$l63.example>
	RCPT TO:<b@$l64>
	RCPT TO:<b@example.$l64>
	RCPT TO:<b@$l63.example>
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^501 5\.1\.7 ' 1
	assert_reply MAIL '^501 5\.1\.7 ' 2
	assert_reply MAIL '^250 2\.1\.0 ' 3
	assert_reply RCPT '^553 5\.1\.3 ' 1
	assert_reply RCPT '^553 5\.1\.3 ' 2
	assert_reply RCPT '^250 2\.1\.5 ' 3
}

@test "a source route is accepted and dropped" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<@relay.example:a@example.org>
	RCPT TO:<@r1.example,@r2.example:b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM a@example.org
	assert_var SMTP_RCPT_TO b@example.net
}

@test "AUTH=<>, RET= and ENVID= on MAIL are accepted without --dsn" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> AUTH=<> RET=FULL ENVID=QQ314159
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_var SMTP_MAIL_OPTIONS 'AUTH=<> RET=FULL ENVID=QQ314159'
}

@test "NOTIFY= and ORCPT= on RCPT are accepted without --dsn" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@example.net
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_RCPT_OPTIONS 'NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@example.net'
}

@test "a bad RET= value gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> RET=ALL
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^501 5\.5\.4 '
}

@test "a bad NOTIFY= value gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> NOTIFY=NEVER,SUCCESS
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^501 5\.5\.4 '
}

@test "an unknown MAIL parameter gets 555 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> FOO=bar
	RCPT TO:<b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^555 5\.5\.4 '
	assert_reply RCPT '^503 5\.5\.1 '
}

@test "an unknown RCPT parameter gets 555 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> XFORWARD=1
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^555 5\.5\.4 '
}

@test "SMTPUTF8 on MAIL without --smtputf8 gets 555 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> SMTPUTF8
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^555 5\.5\.4 '
}

@test "BODY=8BITMIME with --7bit gets 555 5.5.4" {
	run --separate-stderr smtp_session --7bit "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^555 5\.5\.4 '
}

@test "BODY=7BIT with --7bit is accepted" {
	run --separate-stderr smtp_session --7bit "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=7BIT
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
}

@test "with --smtputf8 and SMTPUTF8, UTF-8 addresses are accepted and passed as sent" {
	run --separate-stderr smtp_session --smtputf8 "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<jörg@bücher.example> SMTPUTF8
	RCPT TO:<θσερ@παράδειγμα.example>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^250 2\.1\.0 '
	assert_reply RCPT '^250 2\.1\.5 '
	assert_var SMTP_MAIL_FROM 'jörg@bücher.example'
	assert_var SMTP_RCPT_TO 'θσερ@παράδειγμα.example'
}

@test "with --smtputf8, a UTF-8 sender without SMTPUTF8 on MAIL gets 553 5.6.7" {
	run --separate-stderr smtp_session --smtputf8 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<jörg@example.org>
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^553 5\.6\.7 '
}

@test "with --smtputf8, a UTF-8 recipient without SMTPUTF8 on MAIL gets 553 5.6.7" {
	run --separate-stderr smtp_session --smtputf8 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<jörg@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^553 5\.6\.7 '
}

@test "without --smtputf8, a UTF-8 recipient gets 553 5.6.7" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@bücher.example>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^553 5\.6\.7 '
}

@test "with SMTPUTF8, bytes that are not valid UTF-8 in an address are refused" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<j\xf6rg@example.net>\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd --smtputf8 "$HANDLERS/accept" <"$DIALOGUE"
	assert_success
	assert_reply MAIL '^250 '
	assert_reply RCPT '^553 5\.'
}

@test "bad sender addresses get 501 5.1.7" {
	local addr
	for addr in '<a@>' '<@example.org>' '<a..b@example.org>' '<a b@example.org>' \
	    '<a@example..org>' '<a@-example.org>' '<a@example.org' '<a@[300.1.1.1]>' \
	    '<"unterminated@example.org>' '<a@b@example.org>'; do
		run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
		EHLO client.example
		MAIL FROM:$addr
		QUIT
		EOF
		assert_success
		assert_reply MAIL '^501 5\.1\.7 '
	done
}

@test "bad recipient addresses get 553 5.1.3" {
	local addr
	for addr in '<>' '<b@>' '<@example.net>' '<b..c@example.net>' '<b c@example.net>' \
	    '<b@example..net>' '<b@[300.1.1.1]>' '<b@c@example.net>'; do
		run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
		EHLO client.example
		MAIL FROM:<a@example.org>
		RCPT TO:$addr
		QUIT
		EOF
		assert_success
		assert_reply RCPT '^553 5\.1\.3 '
	done
}

@test "MAIL without FROM: gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL <a@example.org>
	MAIL FROM:
	QUIT
	EOF
	assert_success
	assert_reply MAIL '^501 5\.5\.4 '
	assert_reply MAIL '^501 5\.5\.4 ' 2
}

@test "RCPT without TO: gets 501 5.5.4" {
	run --separate-stderr smtp_session "$HANDLERS/accept" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT <b@example.net>
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^501 5\.5\.4 '
}

@test "a control character in the sender gets 501 and never reaches the handler" {
	printf 'EHLO client.example\r\nMAIL FROM:<a\001b@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply MAIL '^501 5\.'
	assert_reply MAIL '^250 ' 2
	assert_var SMTP_MAIL_FROM a@example.org
}

@test "a control character in a recipient is refused and never reaches the handler" {
	# SPEC 4 says 501 for a control character in an address and 553 5.1.3
	# for a bad RCPT address; 70-hostile pins the exact code.
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b\tc@example.net>\r\nRCPT TO:<d@exa\033mple.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n' >"$DIALOGUE"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_reply RCPT '^(501|553) 5\.'
	assert_reply RCPT '^(501|553) 5\.' 2
	assert_reply RCPT '^250 ' 3
	assert_var SMTP_RCPT_TO b@example.net
}

@test "a refused recipient does not end the transaction" {
	run --separate-stderr smtp_session "$HANDLERS/dump" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net> FOO=1
	RCPT TO:<c@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply RCPT '^555 '
	assert_reply . '^250 '
	assert_var SMTP_RCPT_TO c@example.net
}
