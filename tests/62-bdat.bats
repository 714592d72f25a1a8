#!/usr/bin/env bats
# CHUNKING and BINARYMIME (RFC 3030, SPEC 11): BDAT n [LAST] carries
# exactly n octets, no dot-stuffing, no end-of-data marker; its octets are
# always read, whatever its reply.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	export IN=$BATS_TEST_TMPDIR/in
}

teardown() {
	stop_server
}

HEAD='EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n'

# input FORMAT [ARG...]: printf FORMAT (escapes as printf(1)) into $IN,
# after an EHLO, MAIL and RCPT unless FORMAT starts with "-".
input() {
	local fmt=$1
	shift
	case $fmt in
	-*) fmt=${fmt#-} ;;
	*) fmt=$HEAD$fmt ;;
	esac
	# shellcheck disable=SC2059 # FORMAT is a format on purpose
	printf "$fmt" "$@" >"$IN"
}

# run_in [options] handler: the server on $IN through one pipe; replies
# in $output without CR.
run_in() {
	run --separate-stderr bash -c 'set -o pipefail; "$@" <"$IN" | tr -d "\r"' sh \
	    timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@"
}

# The replies after the EHLO reply.
after_ehlo() {
	printf '%s\n' "$output" | sed '1,/^250 ENHANCEDSTATUSCODES$/d'
}

@test "BDAT n LAST: the chunk is the message, the handler's reply answers it" {
	input 'BDAT 14 LAST\r\nSubject: x\r\n\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	assert_equal "$status" 0
	run after_ehlo
	assert_line --index 0 '250 2.1.0 OK'
	assert_line --index 1 '250 2.1.5 OK'
	assert_line --index 2 --regexp '^250 2\.0\.0 OK: queued as '
	assert_line --index 3 '221 2.0.0 Bye'
	assert_equal "$(cat "$DUMP/1/message")" "$(printf 'Subject: x\n')"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'Subject: x\n\n' | od -An -c | tr -s ' ')"
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" 12
	assert_spool_empty
}

@test "each BDAT without LAST gets 250 2.0.0 n octets received" {
	input 'BDAT 5\r\nhelloBDAT 7\r\n world\nBDAT 0 LAST\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 '250 2.0.0 5 octets received'
	assert_line --index 3 '250 2.0.0 7 octets received'
	assert_line --index 4 --regexp '^250 2\.0\.0 OK: queued as '
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'hello world\n' | od -An -c | tr -s ' ')"
}

@test "BDAT content: CRLF and bare LF become LF, a bare CR stays, no dot is unstuffed" {
	input 'BDAT 22 LAST\r\n..dot\r\n.\r\nbare\rcr\nlf\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf '..dot\n.\nbare\rcr\nlf\n' | od -An -c | tr -s ' ')"
	assert_equal "$(cat "$DUMP/1/SMTP_LINE_ENDS")" LF
}

@test "BDAT content with --crlf: every line end is CRLF, as with DATA" {
	input 'BDAT 11 LAST\r\none\ntwo\r\nx\rQUIT\r\n'
	run_in --no-received --crlf "$HANDLERS/dump"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'one\r\ntwo\r\nx\r' | od -An -c | tr -s ' ')"
}

@test "a CR at the end of one chunk and an LF at the start of the next are one line end" {
	input 'BDAT 3\r\nab\rBDAT 3 LAST\r\n\ncdQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'ab\ncd' | od -An -c | tr -s ' ')"
}

@test "a CR that ends the last chunk, even before BDAT 0 LAST, is data" {
	input 'BDAT 3\r\nab\rBDAT 0 LAST\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'ab\r' | od -An -c | tr -s ' ')"
}

@test "split invariance: the same content in two chunks split at every point is delivered the same" {
	local body=$'a.\r\n.\r\n..b\rc\nd\r\r\ne\r' k n want
	n=${#body}
	for ((k = 0; k <= n; k++)); do
		rm -rf "$DUMP" && mkdir "$DUMP"
		{
			printf "$HEAD"
			printf 'BDAT %d\r\n%s' "$k" "${body:0:k}"
			printf 'BDAT %d LAST\r\n%s' "$((n - k))" "${body:k}"
			printf 'QUIT\r\n'
		} >"$IN"
		run_in --no-received "$HANDLERS/dump"
		run after_ehlo
		assert_line --index 2 "250 2.0.0 $k octets received"
		assert_line --index 3 --regexp '^250 2\.0\.0 OK: queued as '
		got=$(od -An -c "$DUMP/1/message")
		[ -n "${want-}" ] || want=$got
		assert_equal "$got" "$want"
	done
	assert_equal "$want" "$(printf 'a.\n.\n..b\rc\nd\r\ne\r' | od -An -c)"
}

@test "split invariance: a BDAT dialogue read one byte at a time gives the same replies and bytes" {
	input 'BDAT 6\r\nab\r\n.\rBDAT 5\r\n\n.\r\n\rNOOP\r\nBDAT 10\r\nMAIL FROM\rBDAT 2 LAST\r\n\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nBDAT 4 LAST\r\nxyz\nQUIT\r\n'
	run --separate-stderr feed "$IN" --no-received "$HANDLERS/dump"
	assert_success
	local whole=$output
	mv "$DUMP" "$BATS_TEST_TMPDIR/whole" && mkdir "$DUMP"
	run --separate-stderr feed --bytewise "$IN" --no-received "$HANDLERS/dump"
	assert_success
	assert_equal "$(printf '%s' "$output" | sed 's/queued as .*//')" "$(printf '%s' "$whole" | sed 's/queued as .*//')"
	cmp "$BATS_TEST_TMPDIR/whole/1/message" "$DUMP/1/message"
	cmp "$BATS_TEST_TMPDIR/whole/2/message" "$DUMP/2/message"
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'ab\n.\n.\n\rMAIL FROM\r\n' | od -An -c | tr -s ' ')"
}

@test "BDAT 0 LAST: an empty message, but for the Received header" {
	input 'BDAT 0 LAST\r\nQUIT\r\n'
	run_in "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 --regexp '^250 2\.0\.0 OK: queued as '
	run cat "$DUMP/1/message"
	assert_line --index 0 --regexp '^Received: from client\.example '
	assert_equal "$(grep -c '' "$DUMP/1/message")" "$(grep -c '^\(Received\|	\)' "$DUMP/1/message")"
}

@test "1000 tiny chunks make one message, each chunk answered" {
	local i
	{
		printf "$HEAD"
		for ((i = 0; i < 1000; i++)); do
			printf 'BDAT 1\r\n%s' "$((i % 10))"
		done
		printf 'BDAT 1 LAST\r\n\nQUIT\r\n'
	} >"$IN"
	run_in --no-received "$HANDLERS/dump"
	assert_equal "$(after_ehlo | grep -c '^250 2\.0\.0 1 octets received$')" 1000
	assert_equal "$(wc -c <"$DUMP/1/message")" 1001
	assert_equal "$(head -c 12 "$DUMP/1/message")" 012345678901
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" 1001
}

@test "BODY=BINARYMIME: NUL, bare CR and bare LF reach the handler unchanged" {
	input '-EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\nBDAT 6\r\na\000b\rc\nBDAT 5 LAST\r\n\r\n.\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 '250 2.0.0 6 octets received'
	assert_line --index 3 --regexp '^250 2\.0\.0 OK: queued as '
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" "$(printf 'a\000b\rc\n\r\n.\r\n' | od -An -c | tr -s ' ')"
	assert_equal "$(cat "$DUMP/1/SMTP_MAIL_OPTIONS")" BODY=BINARYMIME
}

@test "BODY=BINARYMIME with DATA gets 503 5.5.1, and with --7bit 555 5.5.4" {
	input '-EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\nDATA\r\nQUIT\r\n'
	run_in "$HANDLERS/dump"
	assert_line --regexp '^503 5\.5\.1 .*BINARYMIME'
	assert_line '221 2.0.0 Bye'
	assert_no_message
	input '-EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nQUIT\r\n'
	run_in --7bit "$HANDLERS/dump"
	assert_line '555 5.5.4 BODY=BINARYMIME not supported'
}

@test "DATA after BDAT gets 503 5.5.1 and RCPT after BDAT too; the BDAT transaction goes on" {
	input 'BDAT 3\r\nab\nDATA\r\nRCPT TO:<c@example.net>\r\nBDAT 2 LAST\r\ncd\r\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 '250 2.0.0 3 octets received'
	assert_line --index 3 '503 5.5.1 Error: DATA after BDAT'
	assert_line --index 4 '503 5.5.1 Error: RCPT after BDAT'
	assert_line --index 5 --regexp '^250 2\.0\.0 OK: queued as '
	assert_equal "$(cat "$DUMP/1/message")" "$(printf 'ab\ncd')"
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_TO")" b@example.net
}

@test "BDAT without RCPT: its octets are read and dropped, then 503 5.5.1" {
	input '-EHLO client.example\r\nBDAT 6\r\nQUIT\r\nMAIL FROM:<a@example.org>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\nQUIT\r\n'
	run_in "$HANDLERS/dump"
	assert_success
	run after_ehlo
	assert_line --index 0 '503 5.5.1 Error: need MAIL command'
	assert_line --index 1 '250 2.1.0 OK'
	assert_line --index 2 '503 5.5.1 Error: need RCPT command'
	assert_line --index 3 '250 2.0.0 OK'
	assert_line --index 4 '221 2.0.0 Bye'
	assert_no_message
}

@test "BDAT before EHLO: octets read and dropped, 503 5.5.1" {
	input '-BDAT 6 LAST\r\nQUIT\r\nNOOP\r\nQUIT\r\n'
	run_in "$HANDLERS/dump"
	assert_line --index 1 '503 5.5.1 Error: send HELO/EHLO first'
	assert_line --index 2 '250 2.0.0 OK'
	assert_line --index 3 '221 2.0.0 Bye'
}

@test "RSET between chunks drops the transaction" {
	input 'BDAT 3\r\nabcRSET\r\nBDAT 2 LAST\r\nxyQUIT\r\n'
	run_in "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 '250 2.0.0 3 octets received'
	assert_line --index 3 '250 2.0.0 OK'
	assert_line --index 4 '503 5.5.1 Error: need MAIL command'
	assert_no_message
}

@test "size limit: octets as sent; a chunk past it gets 552 5.3.4, so does every later one, LAST ends it" {
	input 'BDAT 6\r\n12345\nBDAT 6\r\n67890\nBDAT 4 LAST\r\nabc\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nBDAT 10 LAST\r\n123456789\nQUIT\r\n'
	run_in --size-limit 10 --no-received "$HANDLERS/dump"
	assert_success
	run after_ehlo
	assert_line --index 2 '250 2.0.0 6 octets received'
	assert_line --index 3 '552 5.3.4 Error: message size exceeds fixed limit'
	assert_line --index 4 '552 5.3.4 Error: message size exceeds fixed limit'
	assert_line --index 5 '250 2.1.0 OK'
	assert_line --index 6 '250 2.1.5 OK'
	assert_line --index 7 --regexp '^250 2\.0\.0 OK: queued as '
	assert_equal "$(ls "$DUMP")" 1
	assert_equal "$(cat "$DUMP/1/message")" 123456789
}

@test "a BDAT whose n exceeds the limit many times over is read and discarded, never buffered" {
	{
		printf "$HEAD"
		printf 'BDAT 3000000 LAST\r\n'
		head -c 3000000 /dev/zero
		printf 'NOOP\r\nQUIT\r\n'
	} >"$IN"
	run_in --size-limit 1000 "$HANDLERS/dump"
	assert_success
	run after_ehlo
	assert_line --index 2 '552 5.3.4 Error: message size exceeds fixed limit'
	assert_line --index 3 '250 2.0.0 OK'
	assert_no_message
	assert_spool_empty
}

@test "--7bit: a byte >= 0x80 in a BDAT chunk fails the message with 554 5.6.0" {
	input 'BDAT 3\r\na\351\nBDAT 2 LAST\r\nb\nQUIT\r\n'
	run_in --7bit "$HANDLERS/dump"
	run after_ehlo
	assert_line --index 2 '554 5.6.0 Error: 8-bit data refused (7-bit only)'
	assert_line --index 3 '554 5.6.0 Error: 8-bit data refused (7-bit only)'
	assert_no_message
}

@test "a BDAT line that does not parse gets 501 5.5.4, then 421 4.5.0 and exit 1, nothing more read" {
	local bad
	for bad in 'BDAT' 'BDAT x' 'BDAT -1' 'BDAT +5' 'BDAT 5x' 'BDAT 5 LASTX' 'BDAT 5 LAST junk' \
	    'BDAT 5 FIRST' 'BDAT 18446744073709551616' 'BDAT 99999999999999999999999' 'bdat 5 last x'; do
		input "$bad\\r\\nNOOP\\r\\nQUIT\\r\\n"
		run_in "$HANDLERS/dump"
		assert_equal "$status" 1
		run after_ehlo
		assert_output "$(printf '250 2.1.0 OK\n250 2.1.5 OK\n501 5.5.4 Syntax: BDAT chunk-size [LAST]\n421 4.5.0 mx.test Error: BDAT out of step, closing')"
	done
	# A BDAT line too long, or with a bare CR, does not parse either.
	input "BDAT 5 $(printf '%600s' '')\\r\\nhelloNOOP\\r\\n"
	run_in "$HANDLERS/dump"
	assert_equal "$status" 1
	assert_line '421 4.5.0 mx.test Error: BDAT out of step, closing'
	input 'BDAT 5\r\r\nhelloNOOP\r\n'
	run_in "$HANDLERS/dump"
	assert_equal "$status" 1
	assert_line '421 4.5.0 mx.test Error: BDAT out of step, closing'
	# A TAB for the space: its octets (a RCPT here) are not a command.
	input 'BDAT\t30\r\nRCPT TO:<evil@attacker.example>\r\nBDAT 3 LAST\r\nabc'
	run_in "$HANDLERS/dump"
	assert_equal "$status" 1
	run after_ehlo
	assert_output "$(printf '250 2.1.0 OK\n250 2.1.5 OK\n501 5.5.4 Syntax: BDAT chunk-size [LAST]\n421 4.5.0 mx.test Error: BDAT out of step, closing')"
	assert_no_message
	# n with the largest value that parses is a chunk like any other.
	input 'BDAT 18446744073709551615\r\nabc'
	run_in "$HANDLERS/dump"
	assert_equal "$status" 0
	refute_line --partial '421'
	assert_no_message
}

@test "bytes that look like commands or an end of data inside a chunk are just data" {
	input 'BDAT 95 LAST\r\nSubject: one\r\n\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nx\r\n.\nQUIT\r\n'
	run_in --no-received "$HANDLERS/dump"
	assert_success
	run after_ehlo
	assert_equal "${#lines[@]}" 4
	assert_line --index 2 --regexp '^250 2\.0\.0 OK: queued as '
	assert_equal "$(ls "$DUMP")" 1
	assert_equal "$(cat "$DUMP/1/SMTP_RCPT_TO")" b@example.net
	assert_equal "$(sed -n 5p "$DUMP/1/message")" 'RCPT TO:<victim@example.net>'
}

@test "EOF inside a chunk: the handler never runs, exit 0" {
	input 'BDAT 100 LAST\r\nonly a part'
	run_in "$HANDLERS/dump"
	assert_equal "$status" 0
	assert_no_message
	assert_spool_empty
}

@test "--timeout inside a chunk: 421 4.4.2, exit 1, no handler" {
	input 'BDAT 100 LAST\r\nonly a part'
	# The client's side of the pipe stays open until the server is gone:
	# only the server's deadline can end the session.
	run --separate-stderr python3 -c 'import subprocess, sys
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.write(open(sys.argv[1], "rb").read())
p.stdin.flush()
sys.stdout.write(p.stdout.read().decode().replace("\r", ""))
sys.exit(p.wait())' "$IN" timeout -k 5 60 "$SMTPD" --hostname mx.test \
	    --log stderr --timeout 1 "$HANDLERS/dump"
	assert_failure 1
	assert_line '421 4.4.2 mx.test Error: timeout exceeded'
	assert_no_message
}

@test "TCP: MAIL, RCPT, BDAT LAST and the message in one write pass the synchronization check" {
	start_server --no-received "$HANDLERS/dump"
	printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 5\r\nhelloBDAT 3 LAST\r\n\r\n!MAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nBDAT 2 LAST\r\nokQUIT\r\n' >"$IN"
	run python3 "$FIXTURES/bdat-client.py" "$PORT" "$IN"
	assert_success
	run after_ehlo
	assert_line --index 0 '250 2.1.0 OK'
	assert_line --index 1 '250 2.1.5 OK'
	assert_line --index 2 '250 2.0.0 5 octets received'
	assert_line --index 3 --regexp '^250 2\.0\.0 OK: queued as '
	assert_line --index 6 --regexp '^250 2\.0\.0 OK: queued as '
	assert_line --index 7 '221 2.0.0 Bye'
	assert_equal "$(cat "$DUMP/1/message")" "$(printf 'hello\n!')"
	assert_equal "$(cat "$DUMP/2/message")" ok
}

@test "TCP: a BDAT line that does not parse ends the session with 421 4.5.0, exit 1" {
	SERVER_EXIT=1
	start_server "$HANDLERS/dump"
	printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 5 LAST x\r\nhelloQUIT\r\n' >"$IN"
	run python3 "$FIXTURES/bdat-client.py" "$PORT" "$IN"
	assert_success
	run after_ehlo
	assert_line --index 2 '501 5.5.4 Syntax: BDAT chunk-size [LAST]'
	assert_line --index 3 '421 4.5.0 mx.test Error: BDAT out of step, closing'
	assert_equal "${#lines[@]}" 4
	assert_no_message
}

@test "TCP: DATA pipelined behind a BDAT chunk is still refused by the synchronization check" {
	SERVER_EXIT=1
	start_server "$HANDLERS/dump"
	printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 2\r\nabDATA\r\nQUIT\r\n' >"$IN"
	run python3 "$FIXTURES/bdat-client.py" "$PORT" "$IN"
	run after_ehlo
	assert_line --index 2 '250 2.0.0 2 octets received'
	assert_line --index 3 '554 5.5.0 Error: SMTP protocol synchronization'
}

# peak_rss FILE [options]: peak RSS (KiB, from wait4) of a session on FILE.
peak_rss() {
	python3 - "$@" <<-'PY'
	import os, subprocess, sys
	f, args = sys.argv[1], sys.argv[2:]
	with open(f, "rb") as stdin, open(os.devnull, "wb") as out:
	    p = subprocess.Popen(args, stdin=stdin, stdout=out)
	    _, status, ru = os.wait4(p.pid, 0)
	sys.exit("exit %d" % status) if status else print(ru.ru_maxrss)
	PY
}

@test "a 32 MiB message in 1 MiB chunks arrives byte-identical, RSS grows by less than 1 MiB" {
	local big=$BATS_TEST_TMPDIR/big want=$BATS_TEST_TMPDIR/want rss_small rss_big
	python3 - "$big" "$want" "$HEAD" <<-'PY'
	import sys
	head = sys.argv[3].encode().decode("unicode_escape").encode()
	line = bytes(33 + (i % 90) for i in range(998)) + b"\r\n"
	mib = 1024 * 1024
	body = (line * (32 * mib // len(line) + 1))[:32 * mib]
	with open(sys.argv[1], "wb") as f:
	    f.write(head)
	    for i in range(32):
	        f.write(b"BDAT %d%s\r\n" % (mib, b" LAST" if i == 31 else b""))
	        f.write(body[i * mib:(i + 1) * mib])
	    f.write(b"QUIT\r\n")
	with open(sys.argv[2], "wb") as f:
	    f.write(body.replace(b"\r\n", b"\n"))
	PY
	input 'BDAT 5 LAST\r\nsmallQUIT\r\n'
	run --separate-stderr peak_rss "$IN" timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr --no-received "$HANDLERS/dump"
	assert_success
	rss_small=$output
	assert_equal "$(cat "$DUMP/1/message")" small
	rm -rf "$DUMP" && mkdir "$DUMP"
	run --separate-stderr peak_rss "$big" timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr --no-received "$HANDLERS/dump"
	assert_success
	rss_big=$output
	cmp "$want" "$DUMP/1/message"
	[ $((rss_big - rss_small)) -lt 1024 ] ||
		fail "peak RSS grew by $((rss_big - rss_small)) KiB ($rss_small -> $rss_big)"
}

# assert_bdat_line_refused: the BDAT line of $IN gets 501, then 421 and
# exit 1, whether $IN comes in one read or byte by byte; no message.
assert_bdat_line_refused() {
	run_in "$HANDLERS/dump"
	assert_equal "$status" 1
	run after_ehlo
	assert_output "$(printf '250 2.1.0 OK\n250 2.1.5 OK\n501 5.5.4 Syntax: BDAT chunk-size [LAST]\n421 4.5.0 mx.test Error: BDAT out of step, closing')"
	run --separate-stderr feed --bytewise "$IN" "$HANDLERS/dump"
	assert_failure 1
	assert_equal "$(reply_codes | tail -n 2 | tr '\n' ' ')" '501 421 '
	assert_no_message
}

@test "a BDAT line over 2048 octets gets 501 and 421 whether it comes in one read or byte by byte" {
	# Its chunk would be RSET and NOOP: neither may run.
	input "BDAT 12 $(printf '%3000s' '')\\r\\nRSET\\r\\nNOOP\\r\\n"
	assert_bdat_line_refused
}

@test "BODY=BINARYMIME: the Received and PREPEND lines we add end in CRLF, SMTP_LINE_ENDS=CRLF" {
	# A policy program that PREPENDs a header at RCPT.
	cat >"$BATS_TEST_TMPDIR/pol" <<-'EOF'
	#!/bin/sh
	while read -r line; do
		[ -z "$line" ] || continue
		printf 'action=PREPEND X-Policy: checked\n\n'
	done
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	input '-EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\nBDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\nQUIT\r\n'
	run_in --policy "rcpt:exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump"
	assert_success
	assert_equal "$(cat "$DUMP/1/SMTP_LINE_ENDS")" CRLF
	# Every line of the message ends in CRLF, ours (Received: folded
	# over lines, X-Policy:) and the client's alike.
	run grep -c $'\r$' "$DUMP/1/message"
	assert_output "$(wc -l <"$DUMP/1/message")"
	run grep -c '^X-Policy: checked' "$DUMP/1/message"
	assert_output 1
	head -n 1 "$DUMP/1/message" | grep -q '^Received: '
	# Without BINARYMIME, the handler gets LF and so do our lines.
	input 'BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\nQUIT\r\n'
	rm -r "$DUMP"/1
	run_in "$HANDLERS/dump"
	assert_equal "$(cat "$DUMP/1/SMTP_LINE_ENDS")" LF
	run grep -c $'\r$' "$DUMP/1/message"
	assert_output 0
}

@test "BDAT after a spool failure: every chunk gets the failure's reply, its octets are never commands, LAST ends it" {
	input 'BDAT 5\r\nhelloBDAT 6\r\nNOOP\r\nBDAT 2 LAST\r\nxyNOOP\r\nQUIT\r\n'
	TMPDIR=/nonexistent run_in "$HANDLERS/dump"
	assert_success
	run after_ehlo
	assert_output "$(printf '250 2.1.0 OK\n250 2.1.5 OK\n'
	    printf '%s\n' "$NO_SPOOL" "$NO_SPOOL" "$NO_SPOOL"
	    printf '250 2.0.0 OK\n221 2.0.0 Bye')"
	assert_no_message
}

@test "BODY=BINARYMIME with --crlf: the bytes reach the handler unchanged, bare LF and CR too, SMTP_LINE_ENDS=CRLF" {
	input '-EHLO client.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.net>\r\nBDAT 8 LAST\r\na\nb\rc\r\n\nQUIT\r\n'
	run_in --crlf --no-received "$HANDLERS/dump"
	assert_success
	assert_equal "$(od -An -c "$DUMP/1/message" | tr -s ' ')" ' a \n b \r c \r \n \n'
	assert_equal "$(cat "$DUMP/1/SMTP_LINE_ENDS")" CRLF
}

@test "a BDAT line over 2048 octets with a TAB for its space gets 501 and 421, as a short one does; its chunk is no command" {
	# Short, "BDAT<TAB>12 LAST" is out of step; long, it got 500 and its
	# chunk, RSET and NOOP, ran as commands.
	input "BDAT\\t12 LAST$(printf '%3000s' '')\\r\\nRSET\\r\\nNOOP\\r\\n"
	assert_bdat_line_refused
}
