#!/usr/bin/env bats
# --milter (SPEC 13) against tests/fixtures/test-milter.py, a scripted
# filter that drives every reply of the milter protocol, including the
# odd ones (progress, skip, a reply nobody asked for, silence, garbage).
# The real daemons (OpenDKIM, rspamd) are in 88-milter-daemons.bats.

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
	MILTER=$FIXTURES/test-milter.py
	M1=$BATS_TEST_TMPDIR/m1.sock
	M2=$BATS_TEST_TMPDIR/m2.sock
	LOG1=$BATS_TEST_TMPDIR/m1.log
	LOG2=$BATS_TEST_TMPDIR/m2.log
}

teardown() {
	kill_pidfiles "$BATS_TEST_TMPDIR"
}

# start_milter N STAGE=ACTION...: the test milter on $BATS_TEST_TMPDIR/mN.sock,
# logging to mN.log, killed by PID in teardown.
start_milter() {
	local n=$1
	shift
	touch "$BATS_TEST_TMPDIR/m$n.log"
	rm -f "$BATS_TEST_TMPDIR/m$n.sock"
	python3 "$MILTER" "$BATS_TEST_TMPDIR/m$n.sock" "$BATS_TEST_TMPDIR/m$n.log" "$@" &
	echo $! >"$BATS_TEST_TMPDIR/m$n.pid"
	wait_for 10 test -S "$BATS_TEST_TMPDIR/m$n.sock"
}

# long_body_session WIDTH: $BATS_TEST_TMPDIR/in gets a session of one
# message whose body is 200000 "x" in lines of WIDTH.
long_body_session() {
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nSubject: t\n\n'
		head -c 200000 /dev/zero | tr '\0' 'x' | fold -w "$1"
		printf '\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

# stop_milter N: kill it and wait until it is gone.
stop_milter() {
	local pid
	pid=$(cat "$BATS_TEST_TMPDIR/m$1.pid")
	kill "$pid"
	wait_for 10 process_gone "$pid"
}

# One message from a@example.org to each address given, then QUIT.
milter_session() {
	local r
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org> SIZE=40\n'
		for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
		printf 'DATA\nSubject: test\nFrom: a@example.org\n\nhello\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

@test "--milter: a bad address or default action is a usage error" {
	usage_error --milter exec:/bin/true "$HANDLERS/dump"
	usage_error --milter rcpt:unix:/x "$HANDLERS/dump"
	usage_error --milter inet:host "$HANDLERS/dump"
	usage_error --milter-default-action discard "$HANDLERS/dump"
}

@test "--milter: every stage in order, with Postfix's macros, the body in CRLF" {
	start_milter 1
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after . 250
	run grep -v '^MACRO' "$LOG1"
	assert_line --index 0 'OPTNEG 6 255 2095103'
	assert_line --index 1 'CONNECT unknown U'
	assert_line --index 2 'HELO client.example'
	assert_line --index 3 'MAIL <a@example.org> SIZE=40'
	assert_line --index 4 'RCPT <b@example.net>'
	assert_line --index 5 'DATA'
	assert_line --index 6 --regexp '^HEADER Received: from client\.example \(unknown\)\\n.by mx\.test \(smtpd-stdio\) with ESMTP id '
	assert_line --index 7 'HEADER Subject: test'
	assert_line --index 8 'HEADER From: a@example.org'
	assert_line --index 9 'EOH'
	assert_line --index 10 'BODY 7'
	assert_line --index 11 'EOM'
	assert_line --index 12 'QUIT'
	assert_equal "${#lines[@]}" 13
	run grep '^MACRO' "$LOG1"
	assert_line 'MACRO C j=mx.test {daemon_name}=mx.test {client_name}=unknown _=unknown'
	assert_line 'MACRO M {mail_addr}=a@example.org'
	assert_line 'MACRO R {rcpt_addr}=b@example.net'
	assert_line "MACRO E i=$(cat "$DUMP/1/SMTP_ID")"
	run od -c "$LOG1.body"
	assert_output --partial 'h   e   l   l   o  \r  \n'
}

@test "--milter: the client's address, port and our address in connect and its macros" {
	start_milter 1
	milter_session b@example.net
	TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4242 TCPLOCALIP=198.51.100.1 TCPLOCALPORT=25 \
		run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	run cat "$LOG1"
	assert_line 'CONNECT unknown 4 4242 192.0.2.7'
	assert_line 'MACRO C j=mx.test {daemon_name}=mx.test {client_addr}=192.0.2.7 {client_port}=4242 {client_name}=unknown _=unknown [192.0.2.7] {if_addr}=198.51.100.1'
}

@test "--milter: reject at MAIL is 550 5.7.1, tempfail 451 4.7.1; no handler" {
	start_milter 1 mail=reject
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply MAIL '^550 5\.7\.1 Command rejected$'
	assert_reply_after RCPT 503
	assert_no_message
	stop_milter 1
	start_milter 1 mail=tempfail
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply MAIL '^451 4\.7\.1 Service unavailable - try again later$'
	assert_no_message
}

@test "--milter: SMFIR_REPLYCODE is the reply, an enhanced code added where missing" {
	start_milter 1 'mail=replycode:554 go away' 'rcpt=replycode:450-4.2.0 line one\r\n450 4.2.0 greylisted'
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply MAIL '^554 5\.0\.0 go away$'
	stop_milter 1
	start_milter 1 'rcpt=replycode:450-4.2.0 line one
450 4.2.0 greylisted'
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after MAIL 250
	run reply_after RCPT
	assert_output "$(printf '450-4.2.0 line one\n450 4.2.0 greylisted')"
	assert_no_message
}

@test "--milter: a refusal at RCPT refuses that recipient only" {
	start_milter 1 rcpt:no@example.net=reject
	milter_session one@example.net no@example.net two@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^550 5\.7\.1 Command rejected$' 2
	assert_reply_after RCPT 250 3
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'one@example.net\ntwo@example.net')"
}

@test "--milter: reject at end of message: 550, the handler never runs; under --lmtp once per recipient" {
	start_milter 1 eom=reject
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^550 5\.7\.1 Command rejected$'
	assert_no_message
	assert_spool_empty
	milter_session b@example.net c@example.net
	sed -i 's/^EHLO/LHLO/' "$BATS_TEST_TMPDIR/in"
	run smtp_session --lmtp --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	run reply_codes
	assert_output "$(printf '220\n250\n250\n250\n250\n354\n550\n550\n221')"
	assert_no_message
}

@test "--milter: discard answers 250 and runs no handler, logged with the id" {
	start_milter 1 eom=discard
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply . '^250 2\.0\.0 OK: queued as [0-9A-F]+\.'
	assert_no_message
	id=$(reply_after . | sed 's/.* as //')
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "$id: client=unknown helo=\"client.example\" from=\"a@example.org\" rcpts=1 size=45 handler=milter-discard reply=250"
}

@test "--milter: accept at MAIL skips the rest of that filter for the transaction" {
	start_milter 1 mail=accept
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c -e '^RCPT' -e '^DATA' -e '^HEADER' -e '^EOM' "$LOG1"
	assert_output 0
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output b@example.net
}

@test "--milter: a second transaction aborts the first filter transaction (RSET, refused DATA)" {
	start_milter 1
	printf 'EHLO c.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nRSET\nMAIL FROM:<c@example.org>\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	run grep -v '^MACRO' "$LOG1"
	assert_line --index 3 'MAIL <a@example.org>'
	assert_line --index 4 'RCPT <b@example.net>'
	assert_line --index 5 'ABORT'
	assert_line --index 6 'MAIL <c@example.org>'
	assert_line --index 7 'ABORT'
	assert_line --index 8 'QUIT'
}

@test "--milter: two filters in order; the first one's refusal at end of message is the answer, the second never hears the message" {
	start_milter 1 eom=reject
	start_milter 2
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" --milter "unix:$M2" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^550 5\.7\.1 '
	run grep -c '^EOM' "$LOG1"
	assert_output 1
	run grep -c -e '^HEADER' -e '^EOM' "$LOG2"
	assert_output 0
	run grep -c -e '^RCPT' -e '^DATA' "$LOG2"
	assert_output 2
}

@test "--milter: progress keeps the filter's time; skip ends its body" {
	start_milter 1 optneg=255:1024 eom=progress eom=progress body=skip
	long_body_session 100
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c '^BODY' "$LOG1"
	assert_output 1
	run grep -c '^EOM' "$LOG1"
	assert_output 1
}

@test "--milter: body chunks are at most 65535 octets, all of the body in CRLF" {
	start_milter 1
	long_body_session 99
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run awk '/^BODY/ { if ($2 > 65535) bad++; n++; sum += $2 } END { print (n > 3), bad + 0, sum }' "$LOG1"
	assert_output '1 0 204042'
	run cmp "$LOG1.body" <(sed '1,/^$/d' "$DUMP/1/message" | sed 's/$/\r/')
	assert_success
}

@test "--milter-default-action tempfail [default]: a filter that is down makes every MAIL 451 4.7.1, the session goes on" {
	printf 'EHLO c.example\nMAIL FROM:<a@example.org>\nNOOP\nMAIL FROM:<b@example.org>\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply MAIL '^451 4\.7\.1 ' 1
	assert_reply_after NOOP 250
	assert_reply MAIL '^451 4\.7\.1 ' 2
	assert_reply_after QUIT 221
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "milter unix:$M1: No such file or directory; default action tempfail"
	assert_no_message
}

@test "--milter-default-action reject: a filter that is down makes MAIL 554 5.7.1" {
	milter_session b@example.net
	run smtp_session --milter-default-action reject --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply MAIL '^554 5\.7\.1 '
	assert_no_message
}

@test "--milter-default-action accept: a filter that is down is as if absent" {
	milter_session b@example.net
	run smtp_session --milter-default-action accept --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after MAIL 250
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output b@example.net
}

@test "--milter: a filter silent past --timeout at RCPT: tempfail from then on" {
	start_milter 1 rcpt=silent
	milter_session b@example.net
	run --separate-stderr smtp_session --timeout 1 --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.7\.1 '
	assert_reply_after DATA 503
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'no reply: Connection timed out; default action tempfail'
	assert_no_message
}

@test "--milter: garbage at end of message with default accept: delivered as if the filter were absent" {
	start_milter 1 eom=garble
	milter_session b@example.net
	run --separate-stderr smtp_session --milter-default-action accept --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "reply 'Z' (0x5a) out of protocol at stage 'E'; default action accept"
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output b@example.net
}

@test "--milter: a reply with no request outstanding breaks the protocol (default reject: 554)" {
	start_milter 1 mail=unsolicited
	milter_session b@example.net
	run --separate-stderr smtp_session --milter-default-action reject --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after MAIL 250
	assert_reply RCPT '^554 5\.7\.1 '
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'reply with no request outstanding; default action reject'
	assert_no_message
}

@test "--milter: a frame length over the cap is refused before it is read" {
	start_milter 1 mail=huge
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply MAIL '^451 4\.7\.1 '
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'no reply: Message too long; default action tempfail'
}

@test "--milter: a modification the filter did not negotiate breaks the protocol" {
	start_milter 1 optneg=0:0 eom=addheader:X-Sneaky:yes
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^451 4\.7\.1 '
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "reply 'h' (0x68) out of protocol at stage 'E'"
	assert_no_message
}

@test "--milter: header changes reach the handler: add, insert, change, delete" {
	start_milter 1 eom=addheader:X-Spam:yes eom=insheader:0:X-Top:first \
		eom=chgheader:1:Subject:changed eom=chgheader:1:From: eom=addheader:X-Folded:a\\n\\tb
	milter_session b@example.net
	run smtp_session --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/message"
	assert_output "$(printf 'X-Top: first\nSubject: changed\nX-Spam: yes\nX-Folded: a\n\tb\n\nhello')"
	run cat "$DUMP/1/SMTP_SIZE"
	assert_output "$(wc -c <"$DUMP/1/message")"
}

@test "--milter: a header value whose next line is no fold (a header injection) breaks the protocol" {
	start_milter 1 'eom=addheader:X-Bad:a\nInjected: yes'
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^451 4\.7\.1 '
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "reply 'h' (0x68) out of protocol at stage 'E'"
	assert_no_message
}

@test "--milter: a new body with --crlf keeps CRLF line ends, the headers too" {
	start_milter 1 'eom=replbody:new line one\nline two\n' eom=addheader:X-A:b
	milter_session b@example.net
	run smtp_session --crlf --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run od -An -c "$DUMP/1/message"
	assert_output "$(printf 'Subject: test\r\nFrom: a@example.org\r\nX-A: b\r\n\r\nnew line one\r\nline two\r\n' | od -An -c)"
}

@test "--milter: a new body without --crlf gets LF line ends" {
	start_milter 1 'eom=replbody:new line one\nline two\n'
	milter_session b@example.net
	run smtp_session --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run od -An -c "$DUMP/1/message"
	assert_output "$(printf 'Subject: test\nFrom: a@example.org\n\nnew line one\nline two\n' | od -An -c)"
}

@test "--milter: change sender, add and delete recipients, quarantine: the handler's envelope follows" {
	start_milter 1 eom=chgfrom:\<new@example.org\> eom=addrcpt:\<added@example.net\> \
		eom=delrcpt:\<B@example.net\> eom=quarantine:looks\ spammy
	milter_session b@example.net c@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" "{sender}" "{recipients}" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_MAIL_FROM"
	assert_output new@example.org
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'c@example.net\nadded@example.net')"
	run cat "$DUMP/1/SMTP_RCPT_COUNT"
	assert_output 2
	run cat "$DUMP/1/argv"
	assert_output "$(printf 'new@example.org\nc@example.net\nadded@example.net')"
	run grep '^SMTP_QUARANTINE=' "$DUMP/1/env"
	assert_output 'SMTP_QUARANTINE=looks spammy'
}

@test "--milter: without quarantine there is no SMTP_QUARANTINE, even inherited" {
	start_milter 1
	milter_session b@example.net
	SMTP_QUARANTINE=forged run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c '^SMTP_QUARANTINE' "$DUMP/1/env"
	assert_output 0
}

@test "--milter: a filter that deletes every recipient discards the message" {
	start_milter 1 eom=delrcpt:b@example.net
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^250 2\.0\.0 '
	assert_no_message
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'handler=milter-discard'
}

@test "--milter --lmtp: recipient changes are not offered" {
	start_milter 1
	milter_session b@example.net
	sed -i 's/^EHLO/LHLO/' "$BATS_TEST_TMPDIR/in"
	run smtp_session --lmtp --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep '^OPTNEG' "$LOG1"
	assert_output 'OPTNEG 6 115 2095103'
}

# A message with Authentication-Results headers, forged and not.
forged_results() {
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n'
		printf 'Authentication-Results: mx.test; dkim=pass header.d=bank.example\n'
		printf 'Authentication-Results: other.example; spf=pass\n'
		printf 'Authentication-Results:\n\t(forged, folded) MX.Test;\n\tdmarc=pass\n'
		printf 'Subject: test\n'
		printf 'Authentication-Results: "mx.test"; arc=pass\n'
		printf 'authentication-results: mail.example.org; dkim=pass\n'
		printf '\nAuthentication-Results: mx.test; in the body, kept\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

@test "--authserv-id [--hostname]: forged Authentication-Results claiming our id never reach the handler" {
	forged_results
	run --separate-stderr smtp_session --no-received "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/message"
	assert_output "$(printf 'Authentication-Results: other.example; spf=pass\nSubject: test\nauthentication-results: mail.example.org; dkim=pass\n\nAuthentication-Results: mx.test; in the body, kept')"
	run cat "$DUMP/1/SMTP_SIZE"
	assert_output "$(wc -c <"$DUMP/1/message")"
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'removed 3 Authentication-Results headers claiming mx.test'
}

@test "--authserv-id NAME: that id is ours; the filters never see the forged one, and hear it as {daemon_name}" {
	start_milter 1
	forged_results
	run smtp_session --authserv-id mail.example.org --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -ci '^authentication-results: mail.example.org' "$DUMP/1/message"
	assert_output 0
	run grep -c '^Authentication-Results: mx.test; dkim=pass' "$DUMP/1/message"
	assert_output 1
	run grep -ci '^HEADER authentication-results: mail.example.org' "$LOG1"
	assert_output 0
	run grep -c '^HEADER Authentication-Results: ' "$LOG1"
	assert_output 4
	run grep -c '^MACRO C j=mx.test {daemon_name}=mail.example.org ' "$LOG1"
	assert_output 1
}

@test "--authserv-id: a bad name is a usage error" {
	usage_error --authserv-id 'a b' "$HANDLERS/dump"
}

@test "--milter: stages the filter declined (SMFIP_NOHDRS, SMFIP_NOBODY) are not sent" {
	start_milter 1 optneg=255:48
	milter_session b@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c -e '^HEADER' -e '^BODY' "$LOG1"
	assert_output 0
	run grep -c -e '^EOH' -e '^EOM' "$LOG1"
	assert_output 2
}

@test "--milter: no wait for a reply the filter said it would not send (SMFIP_NR_HDR)" {
	start_milter 1 optneg=255:128 header=silent
	milter_session b@example.net
	run smtp_session --timeout 2 --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c '^HEADER' "$LOG1"
	assert_output 3
}

@test "--authserv-id: a forged header behind a header longer than 64 KiB is removed too; the long one is kept whole" {
	start_milter 1 eom=addheader:X-Added:yes
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n'
		printf 'X-Long: '
		head -c 70000 /dev/zero | tr '\0' 'y'
		printf '\nAuthentication-Results: mx.test; dkim=pass\nSubject: t\n\nbody\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
	run smtp_session --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run grep -c '^Authentication-Results' "$DUMP/1/message"
	assert_output 0
	run sed -n 's/^\(X-Long: y*\)$/\1/p' "$DUMP/1/message"
	assert_equal "${#output}" 70008
	run sed 1d "$DUMP/1/message"
	assert_output "$(printf 'Subject: t\nX-Added: yes\n\nbody')"
	run grep -c '^HEADER Subject: t$' "$LOG1"
	assert_output 1
}

@test "--milter: discard at RCPT discards the whole message; the filter hears no DATA" {
	start_milter 1 rcpt=discard
	milter_session b@example.net c@example.net
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after RCPT 250 1
	assert_reply_after RCPT 250 2
	assert_reply . '^250 2\.0\.0 OK: queued as '
	assert_no_message
	run grep -c -e '^RCPT' -e '^DATA' -e '^EOM' "$LOG1"
	assert_output 1
}

@test "--milter: a refusal at DATA comes before the 354; the transaction is over" {
	start_milter 1 data=tempfail
	printf 'EHLO c.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nRCPT TO:<c@example.net>\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply DATA '^451 4\.7\.1 Service unavailable - try again later$'
	assert_reply_after RCPT 503 2
	assert_no_message
	run grep -c -e '^DATA' "$LOG1"
	assert_output 1
	run grep -c -e '^HEADER' -e '^EOM' "$LOG1"
	assert_output 0
}

@test "--milter: with BDAT (no DATA command) the DATA stage comes with the message" {
	start_milter 1
	printf 'EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 23 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run smtpd --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line --regexp '^250 2\.0\.0 OK: queued as '
	run grep -v '^MACRO' "$LOG1"
	assert_line --index 5 'DATA'
	assert_line --index 6 --regexp '^HEADER Received: '
	assert_line --index 7 'HEADER Subject: t'
	run cat "$DUMP/1/message"
	assert_output --partial "$(printf 'Subject: t\n\nhello')"
}

@test "--milter: two filters replacing the body: the last one's body is the body" {
	start_milter 1 'eom=replbody:first\n'
	start_milter 2 'eom=replbody:second\n'
	milter_session b@example.net
	run smtp_session --no-received --milter "unix:$M1" --milter "unix:$M2" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/message"
	assert_output "$(printf 'Subject: test\nFrom: a@example.org\n\nsecond')"
}

@test "--milter: a message that is only a line without its end reaches the filter's body and the handler whole" {
	start_milter 1 eom=addheader:X-A:b
	printf 'EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 5 LAST\r\nhelloQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run smtpd --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	run cat "$LOG1.body"
	assert_output hello
	run cat "$DUMP/1/message"
	assert_output "$(printf 'X-A: b\n\nhello')"
}

@test "--milter: a filter's 421 ends the session (SPEC 5.2), at MAIL and at end of message" {
	start_milter 1 'mail=replycode:421 4.7.0 going down'
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply MAIL '^421 4\.7\.0 going down'
	assert_line --index -1 $'421 4.7.0 going down\r'
	refute_line --partial '221 '
	assert_no_message
	stop_milter 1
	start_milter 1 'eom=replycode:421 4.7.0 going down'
	printf 'EHLO c.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nSubject: t\n\nhi\n.\nMAIL FROM:<a@example.org>\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line --index -1 $'421 4.7.0 going down\r'
	refute_line --partial '221 '
	assert_no_message
}

@test "--milter-default-action accept: the changes of a filter that then fails are not applied" {
	start_milter 1 eom=addheader:X-Half:yes 'eom=replbody:cut\n' eom=close
	milter_session b@example.net
	run --separate-stderr smtp_session --no-received --milter-default-action accept --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/message"
	assert_output "$(printf 'Subject: test\nFrom: a@example.org\n\nhello')"
}

@test "--milter: a recipient or sender from a filter is checked as the client's: none empty, none without a domain" {
	start_milter 1 'eom=addrcpt:<>'
	milter_session b@example.net
	run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^451 4\.3\.0 '
	assert_no_message
	stop_milter 1
	for a in 'eom=addrcpt:a>b@example.net' 'eom=addrcpt:-oQ/tmp' 'eom=chgfrom:<a@b@c>'; do
		start_milter 1 "$a"
		run --separate-stderr smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
		assert_reply . '^451 4\.3\.0 '
		assert_no_message
		stop_milter 1
	done
	start_milter 1 'eom=chgfrom:<>' 'eom=addrcpt:<c@example.net>'
	run smtp_session --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_MAIL_FROM"
	assert_output ''
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'b@example.net\nc@example.net')"
}

@test "--milter: a new body larger than --size-limit allows (and a margin) breaks the protocol; the disk is not filled" {
	start_milter 1 eom=bigbody:40
	milter_session b@example.net
	run --separate-stderr smtp_session --size-limit 100000 --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^451 4\.7\.1 '
	assert_no_message
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial "reply 'b' (0x62) out of protocol at stage 'E'"
	stop_milter 1
	start_milter 1 eom=bigbody:4
	run smtp_session --size-limit 100000 --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	[ "$(grep -c '^x' "$DUMP/1/message")" -eq 4 ]
}

@test "--milter: progress replies extend the wait up to --handler-timeout, not for ever" {
	start_milter 1 rcpt=progressloop
	milter_session b@example.net
	run --separate-stderr timeout -k 5 20 "$SMTPD" --hostname mx.test --log stderr --timeout 1 --handler-timeout 2 --milter "unix:$M1" "$HANDLERS/dump" < <(sed 's/$/\r/' "$BATS_TEST_TMPDIR/in")
	assert_success
	assert_line --regexp '^451 4\.7\.1 '
	run printf '%s\n' "${stderr_lines[@]}"
	assert_line --partial 'no reply: Connection timed out; default action tempfail'
	assert_no_message
}

@test "--authserv-id: a forged header with blanks before its colon is removed too, and the headers after it reach the filters" {
	start_milter 1
	printf 'EHLO c.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\nSubject: t\nAuthentication-Results\t : mx.test; dkim=pass; dmarc=pass\nFrom: ceo@bank.example\n\nhi\n.\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run smtp_session --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run cat "$DUMP/1/message"
	assert_output "$(printf 'Subject: t\nFrom: ceo@bank.example\n\nhi')"
	run grep '^HEADER' "$LOG1"
	assert_line 'HEADER From: ceo@bank.example'
}

@test "--authserv-id: a forged header as the message's last line, without its line end (BDAT), is removed too" {
	start_milter 1 eom=addheader:X-A:b
	printf 'EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 52 LAST\r\nSubject: t\r\nAuthentication-Results: mx.test; dkim=passQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run smtpd --no-received "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_line --regexp '^250 2\.0\.0 OK: queued as '
	run cat "$DUMP/1/message"
	assert_output 'Subject: t'
	printf 'EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 21 LAST\r\nSubject: t\r\nX-Last: zQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run smtpd --no-received --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_line --regexp '^250 2\.0\.0 OK: queued as '
	run cat "$DUMP/2/message"
	assert_output "$(printf 'Subject: t\nX-Last: z\nX-A: b')"
	run grep '^HEADER' "$LOG1"
	assert_line 'HEADER X-Last: z'
}

@test "--milter-default-action accept: a filter's refusal that is no reply we can send (too long, 5501) is still a refusal" {
	local long
	long=$(for i in $(seq 50); do printf '550-5.7.1 %0100d\r\n' 0; done; printf '550 5.7.1 end')
	start_milter 1 "eom=replycode:$long"
	milter_session b@example.net
	run smtp_session --milter-default-action accept --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^550 5\.7\.1 '
	assert_no_message
	stop_milter 1
	start_milter 1 'rcpt=replycode:4501 later'
	run smtp_session --milter-default-action accept --milter "unix:$M1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^451 4\.7\.1 '
	assert_no_message
}

# Where the spool's chunks end (one per BDAT here) must not hide a forged
# header from --authserv-id: the scan that lets the spool's read-back be
# skipped when no header can be one goes on across them.
@test "--authserv-id: a forged header right after a chunk's end is removed too" {
	local a='Authentication-Results: mx.test; a=1\r\n'
	{
		printf 'EHLO c.example\r\n'
		for c in "Subject: t\r|\n$a\r\nbody\r\n" "Subject: t\r\n|$a\r\nbody\r\n" "|$a\r\nbody\r\n" "Subject: t\r\n\r|\n$a"; do
			printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n'
			printf "BDAT %d\r\n${c%|*}" "$(printf "${c%|*}" | wc -c)"
			printf "BDAT %d LAST\r\n${c#*|}" "$(printf "${c#*|}" | wc -c)"
		done
		printf 'QUIT\r\n'
	} >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd --no-received "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_equal "$(reply_codes | tr '\n' ' ')" "220 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250 250 221 "
	run cat "$DUMP/1/message" "$DUMP/2/message"
	assert_output "$(printf 'Subject: t\n\nbody\nSubject: t\n\nbody')"
	run cat "$DUMP/3/message"
	assert_output "$(printf '\nbody')"
	run cat "$DUMP/4/message"
	assert_output "$(printf 'Subject: t\n\nAuthentication-Results: mx.test; a=1')"
	run printf '%s\n' "${stderr_lines[@]}"
	assert_equal "$(grep -c 'removed 1 Authentication-Results header claiming mx.test$' <<<"$output")" 3
}
