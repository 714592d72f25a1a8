#!/usr/bin/env bats
# RCPT-time checks (SPEC 10.2): --rcpt-check PROGRAM, and --policy ADDR
# speaking Postfix's policy delegation protocol to a server of our own,
# to a real postgrey and to a real policyd-spf.

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
	CHECK=$FIXTURES/rcpt-check
	POLICY_LOG=$BATS_TEST_TMPDIR/policy.log
	SOCK=$BATS_TEST_TMPDIR/policy.sock
	export CHECKS=$BATS_TEST_TMPDIR/checks
	mkdir -p "$CHECKS"
}

teardown() {
	kill_pidfiles "$BATS_TEST_TMPDIR"
}

# A session of one message from a@example.org to each address given.
rcpt_session() {
	local r
	{
		printf 'EHLO client.example\n%bMAIL FROM:<%s>%s\n' "${AUTH_LINE:+$AUTH_LINE\n}" \
		    "${FROM:-a@example.org}" "${MAIL_OPTS-}"
		for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
		printf 'DATA\nSubject: t\n\nbody\n.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

@test "--rcpt-check: exit 67 refuses that recipient with 550 5.1.1, the others are delivered" {
	rcpt_session one@example.net nobody@example.net two@example.net
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^550 5\.1\.1 ' 2
	assert_reply_after RCPT 250 3
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'one@example.net\ntwo@example.net')"
	run cat "$DUMP/1/SMTP_RCPT_COUNT"
	assert_output 2
}

@test "--rcpt-check: environment as far as known, no arguments, stdin /dev/null" {
	rcpt_session one@example.net 'two@example.net> NOTIFY=NEVER'
	sed -i 's/^RCPT TO:<two@example.net> NOTIFY=NEVER>$/RCPT TO:<two@example.net> NOTIFY=NEVER/' "$BATS_TEST_TMPDIR/in"
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after . 250
	run cat "$CHECKS/2/env"
	assert_line 'SMTP_RCPT=two@example.net'
	assert_line 'SMTP_RCPT_OPTION=NOTIFY=NEVER'
	assert_line 'SMTP_RCPT_TO=one@example.net'
	assert_line 'SMTP_RCPT_COUNT=1'
	assert_line 'SMTP_MAIL_FROM=a@example.org'
	assert_line 'SMTP_HELO=client.example'
	assert_line 'SMTP_PROTOCOL=ESMTP'
	run cat "$CHECKS/1/env"
	assert_line 'SMTP_RCPT_COUNT=0'
	assert_line 'SMTP_RCPT_OPTION='
	run cat "$CHECKS/1/argv"
	assert_output ''
	run stat -c %s "$CHECKS/1/stdin"
	assert_output 0
}

@test "--rcpt-check: its own reply on stdout; every recipient refused means no DATA" {
	rcpt_session say@example.net nobody@example.net
	run smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^550 5\.1\.6 moved away$' 1
	assert_reply RCPT '^550 5\.1\.1 ' 2
	assert_reply_after DATA 503
	assert_no_message
}

@test "--rcpt-check: a program past --handler-timeout or not there gives 451 4.3.0" {
	rcpt_session slow@example.net one@example.net
	# slow@ sleeps 30 s; the limit leaves the quick check time to run on
	# a loaded machine.
	run smtp_session --handler-timeout 5 --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.0 ' 1
	assert_reply_after RCPT 250 2
	# The check past its time limit was killed, not orphaned.
	wait_for 10 process_gone "$(cat "$CHECKS/1/pid")"
	rm -r "$DUMP"/1
	rcpt_session one@example.net
	run smtp_session --rcpt-check "$BATS_TEST_TMPDIR/absent" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^451 4\.3\.0 ' 1
	assert_no_message
}

@test "--rcpt-check and --policy: bad values are usage errors" {
	run smtpd --rcpt-check '' "$HANDLERS/dump"
	assert_failure 64
	for a in nowhere unix: inet:127.0.0.1 inet:127.0.0.1:0 inet:127.0.0.1:99999 inet::25 exec:; do
		run smtpd --policy "$a" "$HANDLERS/dump"
		assert_failure 64
		assert_output --partial 'want [rcpt:|data:]unix:PATH, inet:HOST:PORT or exec:PROGRAM'
	done
}

# Our policy server on a UNIX socket, its PID for teardown.
start_policy() {
	timeout -k 5 300 python3 "$FIXTURES/policy-server.py" unix "$SOCK" "$POLICY_LOG" &
	echo $! >"$BATS_TEST_TMPDIR/policy.pid"
	wait_for 10 test -S "$SOCK"
}

@test "--policy unix: every action maps to its reply (SPEC 10.2)" {
	start_policy
	rcpt_session ok@x.test dunno@x.test reject@x.test rejectbare@x.test \
	    defer@x.test dip@x.test code@x.test code4@x.test prepend@x.test \
	    warn@x.test hold@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply_after RCPT 250 2
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 3
	assert_reply RCPT '^554 5\.7\.1 Access denied$' 4
	assert_reply RCPT '^450 4\.7\.1 try later$' 5
	assert_reply RCPT '^450 4\.7\.1 greylisted, come back$' 6
	assert_reply RCPT '^521 5\.7\.2 custom refusal$' 7
	assert_reply RCPT '^452 4\.7\.1 no room$' 8
	assert_reply_after RCPT 250 9
	assert_reply_after RCPT 250 10
	assert_reply RCPT '^451 4\.3\.5 ' 11
	assert_reply_after . 250
	assert_output --partial 'WARN looks odd'
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output "$(printf 'ok@x.test\ndunno@x.test\nprepend@x.test\nwarn@x.test')"
	# The PREPEND header comes right after our Received header.
	run sed -n '/^Received:/,$p' "$DUMP/1/message"
	assert_line --index 0 --regexp '^Received: from client\.example'
	run grep -n -e '^X-Policy: checked$' -e '^Subject: t$' "$DUMP/1/message"
	assert_output --regexp '^[0-9]+:X-Policy: checked'$'\n''[0-9]+:Subject: t$'
	# One connection for the whole session, RCPTs and END-OF-MESSAGE.
	run cat "$POLICY_LOG.conns"
	assert_output conn
}

@test "--policy: the request carries Postfix's attributes, unknown ones empty" {
	start_policy
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4321 TCPLOCALIP=192.0.2.1 TCPLOCALPORT=25
	MAIL_OPTS=' SIZE=1234' rcpt_session ok@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run python3 -c '
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
r, e = reqs
for k in ("request", "protocol_state", "protocol_name", "helo_name", "sender",
          "recipient", "recipient_count", "client_address", "client_name",
          "reverse_client_name", "client_port", "server_address", "server_port",
          "queue_id", "size", "sasl_method", "sasl_username", "encryption_protocol"):
    print(k, r[k], "|", e[k])
print(r["instance"] == e["instance"], r["instance"] != "")
' "$POLICY_LOG"
	assert_line 'request smtpd_access_policy | smtpd_access_policy'
	assert_line 'protocol_state RCPT | END-OF-MESSAGE'
	assert_line 'protocol_name ESMTP | ESMTP'
	assert_line 'helo_name client.example | client.example'
	assert_line 'sender a@example.org | a@example.org'
	assert_line 'recipient ok@x.test | ok@x.test'
	assert_line 'recipient_count 0 | 1'
	assert_line 'client_address 192.0.2.7 | 192.0.2.7'
	assert_line 'client_name unknown | unknown'
	assert_line 'reverse_client_name unknown | unknown'
	assert_line 'client_port 4321 | 4321'
	assert_line 'server_address 192.0.2.1 | 192.0.2.1'
	assert_line 'server_port 25 | 25'
	assert_line --regexp '^queue_id  \| [0-9A-F]+\.'
	assert_line --regexp '^size 1234 \| [1-9][0-9]*$'
	assert_line 'sasl_method  | '
	assert_line 'sasl_username  | '
	assert_line 'encryption_protocol  | '
	assert_line 'True True'
	# After AUTH (SPEC 9) the policy server learns who it was.
	: >"$POLICY_LOG"
	AUTH_LINE='AUTH PLAIN AGFsaWNlAHNlY3JldA==' rcpt_session ok@x.test
	run smtp_session --auth-plaintext --auth "checkpassword:$FIXTURES/checkpassword" \
	    --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["protocol_state"], r["protocol_name"], r["sasl_method"], r["sasl_username"])
' "$POLICY_LOG"
	# protocol_name is Postfix's ESMTP, not ESMTPA (SPEC 10.2).
	assert_output $'RCPT ESMTP PLAIN alice\nEND-OF-MESSAGE ESMTP PLAIN alice'
}

@test "--policy inet: a TCP policy server on loopback" {
	timeout -k 5 300 python3 "$FIXTURES/policy-server.py" inet "$BATS_TEST_TMPDIR/port" "$POLICY_LOG" &
	echo $! >"$BATS_TEST_TMPDIR/policy.pid"
	wait_for 10 test -s "$BATS_TEST_TMPDIR/port"
	rcpt_session ok@x.test reject@x.test
	run smtp_session --policy "inet:127.0.0.1:$(cat "$BATS_TEST_TMPDIR/port")" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	assert_reply_after . 250
	run cat "$POLICY_LOG.conns"
	assert_output conn
}

@test "--policy: a refusal at END-OF-MESSAGE refuses the message before the handler" {
	start_policy
	FROM=eomreject@example.org rcpt_session ok@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250
	assert_reply . '^554 5\.7\.1 Not wanted here$'
	assert_no_message
	FROM=eomdefer@example.org rcpt_session ok@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply . '^450 4\.7\.1 try later$'
	assert_no_message
}

@test "--policy: PREPEND at END-OF-MESSAGE goes into the message after RCPT's, with the handler's line ends" {
	start_policy
	FROM=eomprepend@example.org rcpt_session prepend@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run sed -n '1,/^$/p' "$DUMP/1/message"
	assert_line --index 3 'X-Policy: checked'
	assert_line --index 4 'X-Policy: checked'
	assert_line --index 5 'Subject: t'
	run tail -n 1 "$DUMP/1/message"
	assert_output body
	# SMTP_SIZE counts the headers too.
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" "$(wc -c <"$DUMP/1/message")"
	run smtp_session --crlf --no-received --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	printf 'X-Policy: checked\r\nX-Policy: checked\r\nSubject: t\r\n\r\nbody\r\n' |
	    cmp - "$DUMP/2/message"
}

@test "--policy: a list is checked in order; DUNNO and PREPEND go on, OK and refusals decide" {
	start_policy
	SOCK2=$BATS_TEST_TMPDIR/second.sock
	timeout -k 5 300 python3 "$FIXTURES/policy-server.py" unix "$SOCK2" "$BATS_TEST_TMPDIR/second.log" &
	echo $! >"$BATS_TEST_TMPDIR/second.pid"
	wait_for 10 test -S "$SOCK2"
	rcpt_session dunno@x.test ok@x.test reject@x.test prepend@x.test
	run smtp_session --policy "unix:$SOCK" --policy "unix:$SOCK2" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	# The second server saw what the first let through: DUNNO, PREPEND.
	run python3 -c 'import json,sys; print(" ".join(json.loads(l)["recipient"] for l in open(sys.argv[1]) if json.loads(l)["protocol_state"] == "RCPT"))' "$BATS_TEST_TMPDIR/second.log"
	assert_output 'dunno@x.test prepend@x.test'
	run grep -c '^X-Policy: checked$' "$DUMP/1/message"
	assert_output 2
}

@test "--policy: unreachable, slow, garbled or closing servers give 451 4.3.5, never an accept" {
	rcpt_session ok@x.test
	run smtp_session --policy "unix:$BATS_TEST_TMPDIR/none.sock" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.5 '
	run smtp_session --policy "inet:127.0.0.1:1" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^451 4\.3\.5 '
	assert_no_message
	start_policy
	rcpt_session slow@x.test garbled@x.test close@x.test die@x.test ok@x.test
	# slow@ gets its answer after 300 s; the limit leaves the others time.
	run smtp_session --timeout 5 --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.5 ' 1
	assert_reply RCPT '^451 4\.3\.5 ' 2
	assert_reply RCPT '^451 4\.3\.5 ' 3
	assert_reply RCPT '^451 4\.3\.5 ' 4
	# Each failure dropped the connection; the next check reconnected.
	assert_reply_after RCPT 250 5
	assert_reply_after . 250
	run cat "$DUMP/1/SMTP_RCPT_TO"
	assert_output ok@x.test
	run wc -l <"$POLICY_LOG.conns"
	assert_output 5
}

@test "--policy exec: started once for the session, restarted once, then 451 4.3.5" {
	cat >"$BATS_TEST_TMPDIR/pol" <<-EOF
	#!/bin/sh
	exec python3 "$FIXTURES/policy-server.py" stdio "$POLICY_LOG"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	rcpt_session ok@x.test reject@x.test dunno@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	assert_reply_after RCPT 250 3
	assert_reply_after . 250
	run wc -l <"$POLICY_LOG.starts"
	assert_output 1
	rm "$POLICY_LOG.starts"
	rm -r "$DUMP"/1
	rcpt_session die@x.test ok@x.test die@x.test ok@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^451 4\.3\.5 ' 1
	assert_reply_after RCPT 250 2
	assert_reply RCPT '^451 4\.3\.5 ' 3
	assert_reply RCPT '^451 4\.3\.5 ' 4
	# The second die@ closed the kept connection: asked once more on a
	# new one (SPEC 10.2), which died too, the second death.
	run wc -l <"$POLICY_LOG.starts"
	assert_output 3
	assert_no_message
}

# A session through postgrey from 192.0.2.7; succeeds when RCPT got 250.
# PG_POLICY may hold the --policy value (default: the socket, both stages).
# $DUMP holds only this attempt's message, the one whose replies the test
# then checks: an earlier attempt of wait_for's is not that session.
greylist_passes() {
	rm -rf "${DUMP:?}"/*
	run smtp_session --policy "${PG_POLICY:-unix:$BATS_TEST_TMPDIR/pg.sock}" \
	    "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	[ "$(reply_after RCPT | cut -c1-3)" = 250 ]
}

# start_postgrey: a private postgrey on $BATS_TEST_TMPDIR/pg.sock, delay 1 s.
start_postgrey() {
	mkdir "$BATS_TEST_TMPDIR/pgdb"
	timeout -k 5 300 postgrey --unix="$BATS_TEST_TMPDIR/pg.sock" --dbdir="$BATS_TEST_TMPDIR/pgdb" \
	    --delay=1 --user=root --group=root --auto-whitelist-clients=0 \
	    --pidfile="$BATS_TEST_TMPDIR/pg.pidfile" --syslog-facility=none \
	    --hostname=mx.test 2>"$BATS_TEST_TMPDIR/postgrey.log" &
	echo $! >"$BATS_TEST_TMPDIR/postgrey.pid"
	wait_for 20 test -S "$BATS_TEST_TMPDIR/pg.sock"
}

@test "--policy with a real postgrey: the first attempt gets 450, a retry after the delay 250" {
	start_postgrey
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4321
	rcpt_session someone@x.test
	run smtp_session --policy "unix:$BATS_TEST_TMPDIR/pg.sock" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^450 4\.2\.0 Greylisted, see http'
	assert_no_message
	wait_for 20 greylist_passes
	assert_reply_after . 250
	run grep '^X-Greylist: delayed [0-9]* seconds by postgrey' "$DUMP/1/message"
	assert_success
}

@test "--policy rcpt: postgrey is asked only at RCPT, so a message to two recipients is not greylisted again at its end" {
	start_postgrey
	export TCPREMOTEIP=192.0.2.8 TCPREMOTEPORT=4321
	rcpt_session one@x.test two@x.test
	# Asked at both stages (a bare ADDR), the END-OF-MESSAGE request with
	# no recipient is a triplet of its own, greylisted once more.
	wait_for 20 greylist_passes
	assert_reply_after RCPT 250 2
	assert_reply . '^450 4\.2\.0 Greylisted'
	assert_no_message
	# Another /24: postgrey keys on the client's network.
	export TCPREMOTEIP=198.51.100.9
	PG_POLICY="rcpt:unix:$BATS_TEST_TMPDIR/pg.sock" wait_for 20 greylist_passes
	assert_reply_after RCPT 250 2
	assert_reply_after . 250
	run grep -c '^X-Greylist: delayed' "$DUMP/1/message"
	refute_output 0
	# data: is asked only at the end: no greylisting at RCPT at all.
	export TCPREMOTEIP=203.0.113.10
	run smtp_session --policy "data:unix:$BATS_TEST_TMPDIR/pg.sock" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after RCPT 250 1
	assert_reply_after RCPT 250 2
	assert_reply . '^450 4\.2\.0 Greylisted'
}

@test "--policy exec: a real policyd-spf answers a loopback client with its local-connection PREPEND" {
	export TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=4321
	rcpt_session someone@x.test
	run smtp_session --policy exec:policyd-spf "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250
	assert_reply_after . 250
	run grep '^X-Comment: ' "$DUMP/1/message"
	assert_output 'X-Comment: SPF check N/A for local connections - client-ip=127.0.0.1; helo=client.example; envelope-from=a@example.org; receiver=x.test'
}

@test "--rcpt-check: exit 0 with one refusal line longer than 4096 octets is no accept (451 4.3.0)" {
	cat >"$BATS_TEST_TMPDIR/long-check" <<-'EOF2'
	#!/bin/sh
	case $SMTP_RCPT in
	long@*) printf '550 5.1.1 %05000d\n' 0 ;;
	esac
	exit 0
	EOF2
	chmod +x "$BATS_TEST_TMPDIR/long-check"
	rcpt_session long@example.net one@example.net
	run smtp_session --rcpt-check "$BATS_TEST_TMPDIR/long-check" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.0 ' 1
	assert_reply_after RCPT 250 2
}

@test "--policy exec: a program past --timeout is killed, and the next check restarts it" {
	# Its stderr is not the session's: a program left running must not
	# keep run waiting for its output.
	cat >"$BATS_TEST_TMPDIR/pol" <<-EOF
	#!/bin/sh
	exec python3 "$FIXTURES/policy-server.py" stdio "$POLICY_LOG" 2>>"$BATS_TEST_TMPDIR/pol.err"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	rcpt_session slow@x.test reject@x.test
	run smtp_session --timeout 5 --policy "exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.5 ' 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	run cat "$POLICY_LOG.starts"
	assert_equal "${#lines[@]}" 2
	# Both are gone: the slow one at its timeout, the second at the end.
	wait_for 10 process_gone "${lines[0]}"
	wait_for 10 process_gone "${lines[1]}"
}

@test "--policy exec: a child of the program that ignores SIGTERM is gone at the session's end" {
	# The program leaves a child that ignores SIGTERM (its pid in
	# kid.pid, its output away from run's pipes), waits for its pid,
	# then serves.
	cat >"$BATS_TEST_TMPDIR/pol" <<-EOF
	#!/bin/sh
	sh -c 'trap "" TERM; echo \$\$ >"$BATS_TEST_TMPDIR/kid.pid"; exec sleep 300' \
	    </dev/null >/dev/null 2>&1 &
	while [ ! -s "$BATS_TEST_TMPDIR/kid.pid" ]; do sleep 0.05; done
	exec python3 "$FIXTURES/policy-server.py" stdio "$POLICY_LOG" 2>>"$BATS_TEST_TMPDIR/pol.err"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	rcpt_session ok@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250
	[ -s "$BATS_TEST_TMPDIR/kid.pid" ]
	wait_for 10 process_gone "$(cat "$BATS_TEST_TMPDIR/kid.pid")"
}

@test "a 421 from a policy server or from --rcpt-check is sent, then the session ends, exit 0" {
	start_policy
	rcpt_session one@x.test bye@x.test two@x.test
	run --separate-stderr smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_line --index -1 $'421 4.3.2 going away\r'
	assert_equal "$(reply_codes | tail -n 3 | tr '\n' ' ')" '250 250 421 '
	assert_no_message
	rcpt_session one@x.test bye@x.test two@x.test
	run --separate-stderr smtp_session --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line --index -1 $'421 4.3.2 going away\r'
	assert_equal "$(reply_codes | tail -n 3 | tr '\n' ' ')" '250 250 421 '
	assert_no_message
}

@test "--policy unix and exec: a kept connection the server closed is reconnected once, the request sent again" {
	start_policy
	rcpt_session last@x.test reject@x.test last@x.test ok@x.test
	run --separate-stderr smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	assert_reply_after RCPT 250 3
	assert_reply_after RCPT 250 4
	# One connection closed after each last@.
	run wc -l <"$POLICY_LOG.conns"
	assert_output 3
	cat >"$BATS_TEST_TMPDIR/pol" <<-EOF
	#!/bin/sh
	exec python3 "$FIXTURES/policy-server.py" stdio "$POLICY_LOG" 2>>"$BATS_TEST_TMPDIR/pol.err"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	rm -r "$DUMP"/1
	run --separate-stderr smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	assert_reply_after RCPT 250 3
	assert_reply_after RCPT 250 4
	# An exit after an answer is no death: started for each request
	# after a last@, never refused with 451.
	run wc -l <"$POLICY_LOG.starts"
	assert_output 3
}

@test "--policy: a reply with no request drops the connection, the next answer is not off by one" {
	start_policy
	rcpt_session twice@x.test reject@x.test ok@x.test
	run --separate-stderr smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 2
	assert_reply_after RCPT 250 3
	assert_regex "$stderr" 'a reply with no request'
	run wc -l <"$POLICY_LOG.conns"
	assert_output 2
}

@test "--policy: a stale reply that came between two requests is not taken as the next answer" {
	start_policy
	# The client waits for late@'s 250, then for the stale REJECT to be
	# sent, and only then sends the next RCPT.
	run --separate-stderr python3 - "$SOCK" "$POLICY_LOG" "$SMTPD" "$HANDLERS/dump" <<-'PY'
	import os, subprocess, sys, time
	sock, log, smtpd, handler = sys.argv[1:5]
	p = subprocess.Popen(["timeout", "-k", "5", "60", smtpd, "--hostname", "mx.test",
	    "--log", "stderr", "--policy", "unix:" + sock, handler],
	    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
	def say(line):
	    p.stdin.write(line + b"\r\n")
	    p.stdin.flush()
	def reply():
	    while True:
	        l = p.stdout.readline()
	        if l[3:4] != b"-":
	            return l.decode().strip()
	reply()
	for cmd in (b"EHLO c", b"MAIL FROM:<a@example.org>", b"RCPT TO:<late@x.test>"):
	    say(cmd)
	    got = reply()
	print(got)
	while not os.path.exists(log + ".stale"):
	    time.sleep(0.01)
	say(b"RCPT TO:<ok@x.test>")
	print(reply())
	say(b"QUIT")
	print(reply())
	sys.exit(p.wait())
	PY
	assert_success
	assert_output $'250 2.1.5 OK\n250 2.1.5 OK\n221 2.0.0 Bye'
}

@test "DEFER_IF_PERMIT from a real postgrey, then --rcpt-check: an unknown recipient gets its 550, a known one the greylisting" {
	start_postgrey
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4321
	rcpt_session nobody@example.net one@example.net
	run smtp_session --policy "unix:$BATS_TEST_TMPDIR/pg.sock" --rcpt-check "$CHECK" \
	    "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^550 5\.1\.1 ' 1
	assert_reply RCPT '^450 4\.2\.0 Greylisted, see http' 2
	assert_no_message
	# --rcpt-check ran for both: the greylisting waited for its verdict.
	assert_equal "$(ls "$CHECKS" | wc -l)" 2
}

@test "DEFER_IF_REJECT: a later 5xx becomes its 450; DEFER_IF_PERMIT: a later refusal is the reply" {
	cat >"$BATS_TEST_TMPDIR/pol" <<-'EOF'
	#!/bin/sh
	# DEFER_IF_REJECT for dir@, DEFER_IF_PERMIT for dip@, else DUNNO.
	while read -r line; do
		case $line in
		recipient=dir@*) a='DEFER_IF_REJECT 4.7.9 held for a 5xx' ;;
		recipient=dip@*) a='DEFER_IF_PERMIT maybe later' ;;
		recipient=*) a=DUNNO ;;
		'') printf 'action=%s\n\n' "$a" ;;
		esac
	done
	EOF
	chmod +x "$BATS_TEST_TMPDIR/pol"
	start_policy
	rcpt_session dir@x.test dip@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" --rcpt-check "$CHECK" \
	    "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	# Neither is refused by --rcpt-check: DEFER_IF_REJECT has nothing to
	# turn, DEFER_IF_PERMIT applies.
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^450 4\.7\.1 maybe later$' 2
	rm -r "$DUMP"/1
	# Now the recipients are ones --rcpt-check refuses (nobody@ 550).
	sed -i 's/recipient=dir@\*/recipient=nobody@*/' "$BATS_TEST_TMPDIR/pol"
	rcpt_session nobody@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" --rcpt-check "$CHECK" \
	    "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^450 4\.7\.9 held for a 5xx$' 1
	# DEFER_IF_PERMIT, then a later policy server's REJECT: the REJECT.
	sed -i 's/recipient=dip@\*/recipient=reject@*/' "$BATS_TEST_TMPDIR/pol"
	rcpt_session reject@x.test
	run smtp_session --policy "exec:$BATS_TEST_TMPDIR/pol" --policy "unix:$SOCK" \
	    "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 1
}

@test "--policy: protocol_name SMTP/ESMTP/LMTP, recipient_count 0 at every RCPT, instance new at each MAIL, across RSET and processes" {
	start_policy
	# Two transactions (the first cut by RSET), two recipients each, HELO.
	printf 'HELO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<one@x.test>\nRCPT TO:<two@x.test>\nRSET\nMAIL FROM:<a@example.org>\nRCPT TO:<one@x.test>\nRCPT TO:<two@x.test>\nDATA\nSubject: t\n\nbody\n.\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	# The same dialogue in a second process.
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_reply_after . 250
	run python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["protocol_state"], r["protocol_name"], r["recipient_count"], r["instance"])
' "$POLICY_LOG"
	assert_equal "${#lines[@]}" 10
	# Per process: RCPT RCPT (RSET) RCPT RCPT EOM.
	assert_equal "$(printf '%s\n' "${lines[@]}" | cut -d' ' -f1-3 | sort | uniq -c | tr -s ' ')" \
	    "$(printf ' 2 END-OF-MESSAGE SMTP 2\n 8 RCPT SMTP 0')"
	local i=() l
	for l in "${lines[@]}"; do i+=("${l##* }"); done
	# Within a transaction one instance; a new one after RSET, and in
	# the second process.
	assert_equal "${i[0]}" "${i[1]}"
	assert_equal "${i[2]}" "${i[3]}"
	assert_equal "${i[3]}" "${i[4]}"
	[ "${i[1]}" != "${i[2]}" ]
	assert_equal "$(printf '%s\n' "${i[@]}" | sort -u | wc -l)" 4
	# Under --lmtp: LMTP.
	: >"$POLICY_LOG"
	printf 'LHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<one@x.test>\nQUIT\n' >"$BATS_TEST_TMPDIR/in"
	run smtp_session --lmtp --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	run python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["protocol_name"])' "$POLICY_LOG"
	assert_output LMTP
}

@test "--policy over TLS: the cipher's bits, the client certificate's subject and issuer CNs, its SHA-256 fingerprint in colon hex" {
	load test_helper/tls
	local d=$BATS_TEST_TMPDIR/pki fp
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	    -subj '/O=Example/CN=Policy Test CA' -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	    -subj /CN=mx.example.test -keyout "$d/mx.key" -out "$d/mx.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -subj '/O=Example/CN=client.example.test/OU=mail' \
	    -keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
	openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
	    -CAcreateserial -days 2 -out "$d/client.pem" 2>/dev/null
	fp=$(openssl x509 -in "$d/client.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
	start_policy
	export PKI=$d
	run --separate-stderr drive timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr \
	    --tls-cert "$d/mx.pem" --tls-key "$d/mx.key" --tls-ask-client-cert \
	    --policy "unix:$SOCK" "$HANDLERS/dump" <<-'EOF'
	pki = os.environ["PKI"]
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context(cert=pki + "/client.pem", key=pki + "/client.key"))
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<ok@x.test>", "DATA", "x\r\n.")], c.wait())
	EOF
	assert_output '250 250 354 250 0'
	run python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
for k in ("protocol_name", "encryption_protocol", "encryption_cipher", "encryption_keysize",
          "ccert_subject", "ccert_issuer", "ccert_fingerprint"):
    print(k, r[k])
' "$POLICY_LOG"
	assert_line 'protocol_name ESMTP'
	assert_line 'encryption_protocol TLSv1.3'
	assert_line 'encryption_cipher TLS_AES_256_GCM_SHA384'
	assert_line 'encryption_keysize 256'
	assert_line 'ccert_subject client.example.test'
	assert_line 'ccert_issuer Policy Test CA'
	assert_line "ccert_fingerprint $fp"
}

@test "check order: --policy before --rcpt-check, WARN goes on to the next check; client_name from TCPREMOTEHOST" {
	start_policy
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4321 TCPREMOTEHOST=client.example.net
	rcpt_session reject@x.test warn@x.test nobody@x.test
	run smtp_session --policy "unix:$SOCK" --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	# reject@: the policy refuses, --rcpt-check never runs for it.
	assert_reply RCPT '^554 5\.7\.1 Not wanted here$' 1
	# warn@: logged, then --rcpt-check accepts it.
	assert_reply_after RCPT 250 2
	assert_output --partial 'WARN looks odd'
	# nobody@: the policy's DUNNO, then --rcpt-check's 550.
	assert_reply RCPT '^550 5\.1\.1 ' 3
	run sh -c 'cat "$1"/*/env | sed -n "s/^SMTP_RCPT=//p" | sort' sh "$CHECKS"
	assert_output $'nobody@x.test\nwarn@x.test'
	run python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).readline())
print(r["client_name"], r["reverse_client_name"])' "$POLICY_LOG"
	assert_output 'client.example.net client.example.net'
}

@test "--policy: a kept connection closed after half an answer is not asked again: the server had the request (451 4.3.5)" {
	# The server read the request and began its answer: sending it again
	# would count it twice (a rate limit, a greylist's triplet).
	start_policy
	rcpt_session dunno@x.test close@x.test ok@x.test
	run --separate-stderr smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after RCPT 250 1
	assert_reply RCPT '^451 4\.3\.5 ' 2
	assert_reply_after RCPT 250 3
	run grep -c '"recipient": "close@x.test"' "$POLICY_LOG"
	assert_output 1
}

@test "--policy: a PREPEND whose header name does not fit a line is garbled (451 4.3.5), never a header without its colon" {
	start_policy
	rcpt_session longname@x.test ok@x.test
	run smtp_session --policy "unix:$SOCK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply RCPT '^451 4\.3\.5 ' 1
	assert_reply_after RCPT 250 2
	assert_reply_after . 250
	run grep -c '^X-NNNN' "$DUMP/1/message"
	assert_output 0
}

# The spawn's file actions are kept from one program to the next (see
# spawn.c): the check and the handler must still each get their own fds.
@test "--rcpt-check then the handler, message after message: the check reads /dev/null, the handler its message" {
	{
		printf 'EHLO client.example\n'
		for i in 1 2; do
			printf 'MAIL FROM:<a@example.org>\nRCPT TO:<r%s@example.net>\n' "$i"
			printf 'DATA\nSubject: %s\n\nbody %s\n.\n' "$i" "$i"
		done
		printf 'QUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
	run smtp_session --no-received --rcpt-check "$CHECK" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_equal "$(reply_codes | tr '\n' ' ')" "220 250 250 250 354 250 250 250 354 250 221 "
	run cat "$DUMP/1/message"
	assert_output "$(printf 'Subject: 1\n\nbody 1')"
	run cat "$DUMP/2/message"
	assert_output "$(printf 'Subject: 2\n\nbody 2')"
	run cat "$CHECKS/1/stdin" "$CHECKS/2/stdin"
	assert_output ''
	run cat "$CHECKS/2/env"
	assert_line 'SMTP_RCPT=r2@example.net'
}
