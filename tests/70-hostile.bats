#!/usr/bin/env bats
# Hostile and broken clients (SPEC 4, 6): SMTP smuggling, over-long and
# malformed command lines, floods, huge messages, sessions cut short.

setup() {
	load test_helper/common
	common_setup
	IN=$BATS_TEST_TMPDIR/in
}

teardown() {
	# Whatever happened, no session leaves a spool file behind.
	assert_spool_empty
	if [ -n "${SMALL_FS-}" ]; then
		umount "$SMALL_FS"
	fi
}

# accept_session FORMAT: `run` of smtpd-stdio (accept handler) on the
# bytes printf FORMAT, which go to $IN.
accept_session() {
	# shellcheck disable=SC2059 # FORMAT is a format on purpose
	printf "$1" >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
}

# assert_codes LABEL CODES: the last run exited 0 and its replies had the
# codes CODES, each with a space after it; a failure names LABEL.
assert_codes() {
	assert_success
	assert_equal "$1: $(reply_codes | tr '\n' ' ')" "$1: $2"
}

# --- SMTP smuggling (SPEC 4, DATA) ---------------------------------------

# assert_one_message: the last session (on $IN) saw exactly one message,
# which carries the hidden commands as data, and gave exactly the replies
# of one transaction.
assert_one_message() {
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	run ls "$DUMP"
	assert_output 1
	local text
	for text in 'MAIL FROM:<evil@attacker.example>' 'RCPT TO:<victim@example.net>' \
	    'DATA' 'Subject: smuggled' 'smuggled' 'RSET' 'after'; do
		grep -q -a -F -e "$text" "$DUMP/1/message" ||
			fail "\"$text\" is not in the delivered message"
	done
	assert_spool_empty
}

# smuggles_once SEQ: SEQ hides nothing, sent in one write.
smuggles_once() {
	smuggling_input "$1"
	run --separate-stderr feed "$IN" "$HANDLERS/dump"
	assert_one_message
}

# smuggles_once_bytewise SEQ: SEQ hides nothing, sent one byte per read,
# and the handler gets the same bytes as when it was sent in one write.
smuggles_once_bytewise() {
	smuggling_input "$1"
	run --separate-stderr feed --bytewise "$IN" --no-received "$HANDLERS/dump"
	assert_one_message
	mv "$DUMP/1" "$BATS_TEST_TMPDIR/bytewise"
	run --separate-stderr feed "$IN" --no-received "$HANDLERS/dump"
	assert_success
	cmp "$BATS_TEST_TMPDIR/bytewise/message" "$DUMP/1/message"
}

@test 'smuggling: <LF>.<LF> is not an end of data (one write)' {
	smuggles_once '\n.\n'
}

@test 'smuggling: <LF>.<LF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\n.\n'
}

@test 'smuggling: <LF>.<CRLF> is not an end of data (one write)' {
	smuggles_once '\n.\r\n'
}

@test 'smuggling: <LF>.<CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\n.\r\n'
}

@test 'smuggling: <CR>.<CR> is not an end of data (one write)' {
	smuggles_once '\r.\r'
}

@test 'smuggling: <CR>.<CR> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r.\r'
}

@test 'smuggling: <CRLF>.<LF> is not an end of data (one write)' {
	smuggles_once '\r\n.\n'
}

@test 'smuggling: <CRLF>.<LF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n.\n'
}

@test 'smuggling: <CRLF>.<CR><CRLF> is not an end of data (one write)' {
	smuggles_once '\r\n.\r\r\n'
}

@test 'smuggling: <CRLF>.<CR><CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n.\r\r\n'
}

@test 'smuggling: <CRLF>.<NUL><CRLF> is not an end of data (one write)' {
	smuggles_once '\r\n.\0\r\n'
}

@test 'smuggling: <CRLF>.<NUL><CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n.\0\r\n'
}

@test 'smuggling: <CRLF><NUL>.<CRLF> is not an end of data (one write)' {
	smuggles_once '\r\n\0.\r\n'
}

@test 'smuggling: <CRLF><NUL>.<CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n\0.\r\n'
}

@test 'smuggling: <LF>.<CR> is not an end of data (one write)' {
	smuggles_once '\n.\r'
}

@test 'smuggling: <LF>.<CR> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\n.\r'
}

@test 'smuggling: <CR>.<CRLF> is not an end of data (one write)' {
	smuggles_once '\r.\r\n'
}

@test 'smuggling: <CR>.<CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r.\r\n'
}

@test 'smuggling: <CRLF>.<CR> is not an end of data (one write)' {
	smuggles_once '\r\n.\r'
}

@test 'smuggling: <CRLF>.<CR> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n.\r'
}

@test 'smuggling: <CRLF>.<LF><CRLF> is not an end of data (one write)' {
	smuggles_once '\r\n.\n\r\n'
}

@test 'smuggling: <CRLF>.<LF><CRLF> is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n.\n\r\n'
}

@test 'smuggling: <CRLF>..<CRLF> (a stuffed dot) is not an end of data (one write)' {
	smuggles_once '\r\n..\r\n'
}

@test 'smuggling: <CRLF>..<CRLF> (a stuffed dot) is not an end of data (byte by byte)' {
	smuggles_once_bytewise '\r\n..\r\n'
}

@test 'smuggling: .<LF> right after the DATA line is not an end of data' {
	printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n.\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n' >"$IN"
	run --separate-stderr feed --bytewise "$IN" "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 250 221 '
	run ls "$DUMP"
	assert_output 1
	grep -q -a 'MAIL FROM:<evil@attacker.example>' "$DUMP/1/message"
}

# --- Malformed command lines (SPEC 4) -------------------------------------

@test "a 100 KiB command line gets 500 5.5.2 and the session goes on" {
	{
		printf 'NOOP '
		head -c 102400 /dev/zero | tr '\0' x
		printf '\r\nNOOP\r\nQUIT\r\n'
	} >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_success
	assert_equal "${#lines[@]}" 4
	assert_line --index 1 --regexp '^500 5\.5\.2 '
	assert_line --index 2 --regexp '^250 2\.0\.0 '
	assert_line --index 3 --regexp '^221 2\.0\.0 '
}

@test "the tail of an over-long command line is never taken as a command" {
	for n in $(seq 500 520) $(seq 1015 1030) $(seq 2040 2055) 4090 4096 8192 65530; do
		{
			head -c "$n" /dev/zero | tr '\0' x
			printf 'QUIT\r\nNOOP\r\n'
		} >"$IN"
		run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
		assert_codes "$n" '220 500 250 '
	done
}

@test "the tail of an over-long command line is never taken as a command (byte by byte)" {
	for n in $(seq 505 520) 1024; do
		{
			head -c "$n" /dev/zero | tr '\0' x
			printf 'QUIT\r\nNOOP\r\n'
		} >"$IN"
		run --separate-stderr feed --bytewise "$IN" "$HANDLERS/accept"
		assert_codes "$n" '220 500 250 '
	done
}

@test "an over-long line ended by a bare LF gets 500 and the next line is read" {
	{
		head -c 600 /dev/zero | tr '\0' x
		printf '\nNOOP\nQUIT\n'
	} >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 500 250 221 '
}

@test "the tail of an over-long MAIL line is never taken as a command" {
	for n in $(seq 2000 2060) 4096; do
		{
			printf 'HELO client.example\r\nMAIL FROM:<a@example.org> X='
			head -c "$n" /dev/zero | tr '\0' x
			printf 'QUIT\r\nNOOP\r\n'
		} >"$IN"
		run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
		assert_success
		assert_regex "$n: $(reply_codes | tr '\n' ' ')" "^$n: 220 250 5[0-9][0-9] 250 \$"
	done
}

@test "a NUL in a command line gets 501 and the session goes on" {
	printf 'NOOP a\0b\r\nNOOP\r\nQUIT\r\n' >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 501 250 221 '
	assert_line --index 1 --regexp '^501 5\.5\.4 '
}

@test "a NUL in a command line never reaches a reply or the log" {
	printf 'HELO a\0b\r\nMAIL FROM:<a\0b@example.org>\r\nXYZZY\0\r\nQUIT\r\n' >"$IN"
	smtpd -v "$HANDLERS/accept" <"$IN" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	assert_equal "$(tr -cd '\000' <"$BATS_TEST_TMPDIR/out" | wc -c)" 0
	assert_equal "$(tr -cd '\000' <"$BATS_TEST_TMPDIR/err" | wc -c)" 0
	# Each line was answered and logged, its NUL escaped.
	assert_equal "$(grep -c '^501 5\.5\.4 ' "$BATS_TEST_TMPDIR/out")" 3
	run sed -n 's/^smtpd-stdio\[[0-9]*\]: < //p' "$BATS_TEST_TMPDIR/err"
	assert_output - <<-'EOF'
	HELO a\0b
	MAIL FROM:<a\0b@example.org>
	XYZZY\0
	QUIT
	EOF
}

@test "a bare CR in a command line gets 501 and does not end the line" {
	printf 'NOOP\rQUIT\r\nNOOP\r\n' >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 501 250 '
	assert_line --index 1 --regexp '^501 5\.5\.4 '
}

@test "control characters in the HELO argument get 501 and no HELO takes effect" {
	for c in '\001' '\b' '\t' '\013' '\f' '\033' '\037' '\177'; do
		accept_session "HELO a${c}b.example\r\nMAIL FROM:<a@example.org>\r\n"
		assert_codes "$c" '220 501 503 '
	done
}

@test "control characters in the EHLO argument get 501" {
	for c in '\001' '\033' '\177'; do
		accept_session "EHLO a${c}b.example\r\n"
		assert_codes "$c" '220 501 '
	done
}

@test "a control character in the MAIL address gets 501" {
	for addr in 'a\001b@example.org' 'ab@exa\033mple.org' '"a\001b"@example.org' 'a\177@example.org'; do
		accept_session "HELO client.example\r\nMAIL FROM:<$addr>\r\n"
		assert_codes "$addr" '220 250 501 '
	done
}

@test "a control character in the RCPT address gets 501" {
	for addr in 'b\001c@example.net' 'bc@exa\033mple.net' '"b\001c"@example.net'; do
		accept_session "HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<$addr>\r\n"
		assert_codes "$addr" '220 250 250 501 '
	done
}

@test "an HTTP request gets 421 4.7.0 and ends the session" {
	printf 'GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n' >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_equal "${#lines[@]}" 2
	assert_line --index 1 --regexp '^421 4\.7\.0 '
}

@test "an HTTP POST in the middle of a session gets 421 4.7.0 and ends it" {
	printf 'HELO client.example\r\nPOST /upload HTTP/1.1\r\nNOOP\r\n' >"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 421 '
}

# --- Floods and pipelining (SPEC 4, PIPELINING) ---------------------------

@test "10000 pipelined commands in one write get 10000 replies in order" {
	for i in $(seq 2500); do
		printf 'NOOP %s\r\nVRFY someone\r\nHELP\r\nRSET\r\n' "$i"
	done >"$IN"
	printf 'QUIT\r\n' >>"$IN"
	run --separate-stderr smtpd "$HANDLERS/accept" <"$IN"
	assert_success
	expected=$({
		echo 220
		for i in $(seq 2500); do printf '250\n252\n214\n250\n'; done
		echo 221
	})
	assert_equal "$(reply_codes | wc -l)" 10002
	assert_equal "$(reply_codes)" "$expected"
}

@test "pipelined replies are the same sent in one write and byte by byte" {
	cat >"$BATS_TEST_TMPDIR/dialogue" <<-'EOF'
	EHLO client.example
	MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net> NOTIFY=NEVER
	RCPT TO:<bad address>
	DATA
	Subject: one
	..leading dot

	body
	.
	NOOP
	FOO bar
	RSET
	MAIL FROM:<>
	DATA
	RCPT TO:<postmaster>
	DATA
	two
	.
	VRFY someone
	EXPN list
	HELP
	HELO again.example
	MAIL FROM:<x@example.org>
	RSET
	QUIT
	EOF
	sed 's/$/\r/' "$BATS_TEST_TMPDIR/dialogue" >"$IN"
	run --separate-stderr feed "$IN" --no-received "$HANDLERS/dump"
	assert_success
	batch=$(printf '%s\n' "$output" | sed 's/queued as .*/queued as ID/')
	mv "$DUMP" "$BATS_TEST_TMPDIR/batch" && mkdir "$DUMP"
	run --separate-stderr feed --bytewise "$IN" --no-received "$HANDLERS/dump"
	assert_success
	bytewise=$(printf '%s\n' "$output" | sed 's/queued as .*/queued as ID/')
	assert_equal "$bytewise" "$batch"
	assert_equal "$(reply_codes | wc -l)" 23
	cmp "$BATS_TEST_TMPDIR/batch/1/message" "$DUMP/1/message"
	cmp "$BATS_TEST_TMPDIR/batch/2/message" "$DUMP/2/message"
}

# --- Big messages and resources (SPEC 6) ---------------------------------

# big_message WIRE EXPECTED BYTES: writes a session carrying one message of
# about BYTES octets (RFC 1870 count) to WIRE, and to EXPECTED what the
# handler must get with --no-received: random lines, many starting with a
# dot (stuffed on the wire), some 8-bit, LF line ends.
big_message() {
	python3 - "$@" <<-'EOF'
	import os, random, sys
	wire, expected, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
	rnd = random.Random(1870)
	noise = os.urandom(1 << 20).replace(b"\r", b"r").replace(b"\n", b"n")
	lines, size = [b"Subject: big", b""], 16
	while True:
	    kind = rnd.randrange(8)
	    n = rnd.randrange(0, 120)
	    start = rnd.randrange(len(noise) - n)
	    line = noise[start:start + n]
	    if kind == 0:
	        line = b"." + line
	    elif kind == 1:
	        line = b"."
	    elif kind == 2:
	        line = b".." + line
	    if size + len(line) + 2 > target:
	        break
	    lines.append(line)
	    size += len(line) + 2
	with open(expected, "wb") as f:
	    f.write(b"\n".join(lines) + b"\n")
	with open(wire, "wb") as f:
	    f.write(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
	            b"RCPT TO:<b@example.net>\r\nDATA\r\n")
	    f.write(b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines))
	    f.write(b"\r\n.\r\nQUIT\r\n")
	EOF
}

@test "a 32 MiB message is delivered byte for byte" {
	big_message "$IN" "$BATS_TEST_TMPDIR/expected" $((32 * 1024 * 1024 - 4096))
	run --separate-stderr smtpd --no-received "$HANDLERS/dump" <"$IN"
	assert_success
	assert_equal "$(reply_codes | tail -n 3 | tr '\n' ' ')" '354 250 221 '
	cmp "$BATS_TEST_TMPDIR/expected" "$DUMP/1/message"
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" "$(stat -c %s "$BATS_TEST_TMPDIR/expected")"
	assert_spool_empty
}

# max_rss OUT INPUT ARGS...: smtpd-stdio with the usual options and ARGS
# on INPUT, under a time limit, its stdout in OUT; prints its peak RSS in
# KiB.  SPEC 6 bounds our memory, in both builds: under AddressSanitizer
# its quarantine of freed blocks is turned off, so that blocks we freed
# do not count (measured: 32 MiB through the ASan build, +0.4 MiB).
max_rss() {
	local out=$1 in=$2
	shift 2
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
	    /usr/bin/time -o "$BATS_TEST_TMPDIR/rss" -f %M \
	    timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@" \
	    <"$in" >"$out" 2>/dev/null
	cat "$BATS_TEST_TMPDIR/rss"
}

@test "peak memory grows by less than 1 MiB while a 32 MiB message passes" {
	printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/small"
	big_message "$IN" "$BATS_TEST_TMPDIR/expected" $((32 * 1024 * 1024 - 4096))
	small=$(max_rss "$BATS_TEST_TMPDIR/out-small" "$BATS_TEST_TMPDIR/small" "$HANDLERS/accept")
	big=$(max_rss "$BATS_TEST_TMPDIR/out-big" "$IN" "$HANDLERS/accept")
	grep -q '^250 2\.0\.0 OK' "$BATS_TEST_TMPDIR/out-big"
	echo "max RSS: small message ${small} KiB, 32 MiB message ${big} KiB"
	[ $((big - small)) -lt 1024 ]
}

@test "a 32 MiB message sent in one pipe read after another arrives whole" {
	big_message "$IN" "$BATS_TEST_TMPDIR/expected" $((32 * 1024 * 1024 - 4096))
	run --separate-stderr feed "$IN" --no-received "$HANDLERS/dump"
	assert_success
	cmp "$BATS_TEST_TMPDIR/expected" "$DUMP/1/message"
}

@test "a message that is one 32 MiB line is delivered whole, in bounded memory" {
	{
		printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
		head -c $((32 * 1024 * 1024 - 16)) /dev/zero | tr '\0' x
		printf '\r\n.\r\nQUIT\r\n'
	} >"$IN"
	printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/small"
	small=$(max_rss /dev/null "$BATS_TEST_TMPDIR/small" "$HANDLERS/accept")
	big=$(max_rss "$BATS_TEST_TMPDIR/out" "$IN" --no-received "$HANDLERS/dump")
	grep -q '^250 2\.0\.0 OK' "$BATS_TEST_TMPDIR/out"
	assert_equal "$(stat -c %s "$DUMP/1/message")" $((32 * 1024 * 1024 - 15))
	assert_equal "$(tr -d x <"$DUMP/1/message")" ''
	echo "max RSS: small message ${small} KiB, one 32 MiB line ${big} KiB"
	[ $((big - small)) -lt 1024 ]
}

# --- Sessions cut short (SPEC 4, EOF) -------------------------------------

# cut_short TAIL: a session whose client goes away after the message bytes
# "hello" + TAIL (printf escapes), with no end of data.
cut_short() {
	# shellcheck disable=SC2059
	printf "HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nhello$1" >"$IN"
	run --separate-stderr feed "$IN" "$HANDLERS/dump"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 '
	run ls -A "$DUMP"
	assert_output ''
	assert_spool_empty
}

@test "EOF in the middle of a message line: handler not run, exit 0" {
	cut_short ''
}

@test "EOF after <CRLF>. : handler not run, exit 0" {
	cut_short '\r\n.'
}

@test "EOF after <CRLF>.<CR> : handler not run, exit 0" {
	cut_short '\r\n.\r'
}

@test "EOF after <CRLF>.<LF> : handler not run, exit 0" {
	cut_short '\r\n.\n'
}

@test "EOF in the middle of a 32 MiB message: handler not run, spool empty" {
	big_message "$IN" "$BATS_TEST_TMPDIR/expected" $((32 * 1024 * 1024 - 4096))
	head -c $((20 * 1024 * 1024)) "$IN" >"$BATS_TEST_TMPDIR/cut"
	run --separate-stderr feed "$BATS_TEST_TMPDIR/cut" "$HANDLERS/dump"
	assert_success
	run ls -A "$DUMP"
	assert_output ''
	assert_spool_empty
}

@test "the spool directory is empty after a session with messages delivered and refused" {
	printf 'HELO client.example\r\n' >"$IN"
	for i in 1 2 3; do
		printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nmessage %s\r\n.\r\n' "$i"
	done >>"$IN"
	printf 'QUIT\r\n' >>"$IN"
	run --separate-stderr smtpd "$HANDLERS/once" "$HANDLERS/exit" 65 <"$IN"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 554 250 250 354 250 250 250 354 250 221 '
	assert_spool_empty
}

@test "a client that is gone when a reply is written ends the session with exit 1, not SIGPIPE" {
	printf 'HELO client.example\r\nNOOP\r\nQUIT\r\n' >"$IN"
	# fd 1 is a pipe nobody reads; SIGPIPE at its default, as a shell leaves it.
	run --separate-stderr python3 -c '
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
with open(sys.argv[1], "rb") as f:
    p = subprocess.run(sys.argv[2:], stdin=f, stdout=w, restore_signals=True)
print(p.returncode)' "$IN" timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/accept"
	assert_success
	assert_output 1
}

@test "a full spool file system gives 452 4.3.1 after the whole message, and the session goes on" {
	SMALL_FS=$BATS_TEST_TMPDIR/small-fs
	mkdir "$SMALL_FS"
	mount -t tmpfs -o size=64k tmpfs "$SMALL_FS" 2>/dev/null ||
		{ SMALL_FS=; fail "cannot mount a small tmpfs (needs root)"; }
	export TMPDIR=$SMALL_FS
	{
		printf 'HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n'
		for i in $(seq 2000); do printf '%0100d\r\n' "$i"; done
		printf '.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n'
	} >"$IN"
	run --separate-stderr smtpd "$HANDLERS/dump" <"$IN"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" '220 250 250 250 354 452 250 250 354 250 221 '
	assert_line --index 5 --regexp '^452 4\.3\.1 '
	run ls "$DUMP"
	assert_output 1
	grep -q '^small$' "$DUMP/1/message"
}
