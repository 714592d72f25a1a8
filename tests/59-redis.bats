#!/usr/bin/env bats
# The redis-stream handler and redis-worker against a real redis-server
# started by each test on a UNIX socket in its temp dir, no persistence.

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/redis
	redis_setup
}

teardown() {
	redis_teardown
}

one_message() {
	smtp_session --no-received "$@" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org> BODY=8BITMIME
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net> NOTIFY=NEVER
	DATA
	Subject: redis

	..dot
	.
	QUIT
	EOF
}

@test "redis-stream: one field per SMTP_* variable and the message, exact" {
	start_redis
	run --separate-stderr one_message "$STREAM_H" "$SOCK" mail
	assert_success
	assert_reply_after . 250
	reply=$(reply_after .)
	assert_equal "$(rcli XLEN mail)" 1
	run fields mail 1
	assert_output "$(printf '%s\n' auth_user helo id line_ends local_addr \
		local_port mail_from mail_options protocol rcpt_count rcpt_options \
		rcpt_to remote_addr remote_port requiretls size tls_cipher tls_client_hash \
		tls_client_subject tls_protocol tls_resumed tls_sni message)"
	assert_equal "$(field mail 1 mail_from)" a@example.org
	assert_equal "$(field mail 1 rcpt_to)" $'b@example.net\nc@example.net'
	assert_equal "$(field mail 1 rcpt_options)" $'\nNOTIFY=NEVER'
	assert_equal "$(field mail 1 mail_options)" BODY=8BITMIME
	assert_equal "$(field mail 1 size)" 21
	assert_equal "$(field mail 1 helo)" client.example
	id=$(field mail 1 id)
	assert_equal "$reply" "250 2.0.0 OK: queued as $id"
	cmp <(field mail 1 message) <(printf 'Subject: redis\n\n.dot\n')
	assert_spool_empty
}

@test "redis-stream: NUL, bare CR, CRLF and 8-bit bytes stay exact, out of argv" {
	start_redis
	printf 'a\0b\rc\r\n\xff\xfe\n\0' >"$BATS_TEST_TMPDIR/msg"
	run env SMTP_ID=x1 SMTP_MAIL_FROM= SMTP_HELO=-h "$STREAM_H" "$SOCK" mail \
		<"$BATS_TEST_TMPDIR/msg"
	assert_success
	assert_output ''
	cmp <(field mail 1 message) "$BATS_TEST_TMPDIR/msg"
	assert_equal "$(field mail 1 helo)" -h
	assert_equal "$(field mail 1 mail_from)" ''
	run fields mail 1
	assert_output "$(printf '%s\n' helo id mail_from message)"
}

@test "redis-stream: Redis down gives 451 4.3.0 (75); a stream key of another type gives 78" {
	run --separate-stderr one_message "$STREAM_H" "$SOCK" mail
	assert_success
	assert_reply . '^451 4\.3\.0 '
	start_redis
	rcli SET mail not-a-stream >/dev/null
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 78
	[[ $stderr == *WRONGTYPE* ]]
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "$SOCK" other </dev/null
	assert_success
}

@test "redis-stream: redis:// URL with a password from REDIS_AUTH_FILE or the URL; refused AUTH is 78" {
	port=$(free_port)
	start_redis --port "$port" --bind 127.0.0.1 --requirepass s3cret
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "redis://127.0.0.1:$port" mail </dev/null
	assert_failure 78
	[[ $stderr == *NOAUTH* ]]
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "redis://:wrong@127.0.0.1:$port" mail </dev/null
	assert_failure 78
	[[ $stderr == *'AUTH refused'* ]]
	echo s3cret >"$BATS_TEST_TMPDIR/pw"
	run --separate-stderr env SMTP_ID=x REDIS_AUTH_FILE="$BATS_TEST_TMPDIR/pw" \
		"$STREAM_H" "redis://127.0.0.1:$port/0" mail </dev/null
	assert_success
	run --separate-stderr env SMTP_ID=y "$STREAM_H" \
		"redis://:s3cret@127.0.0.1:$port/2" mail </dev/null
	assert_success
	assert_equal "$(rcli -a s3cret --no-auth-warning -n 2 XLEN mail)" 1
	assert_equal "$(rcli -a s3cret --no-auth-warning XLEN mail)" 1
}

@test "redis-stream: the stream is never trimmed, REDIS_MAXLEN or not" {
	start_redis --stream-node-max-entries 5
	for i in $(seq 40); do
		SMTP_ID=$i REDIS_MAXLEN=10 "$STREAM_H" "$SOCK" mail </dev/null
	done
	assert_equal "$(rcli XLEN mail)" 40
}

@test "redis-worker: the handler gets the exact bytes on a seekable stdin and the SMTP_* rebuilt" {
	start_redis
	printf 'a\0b\rc\r\n\xff\n' >"$BATS_TEST_TMPDIR/msg"
	add() {
		env -i PATH="$PATH" SMTP_ID=m1 SMTP_MAIL_FROM=a@example.org \
			SMTP_RCPT_TO=$'b@example.net\nc@example.net' SMTP_SIZE=9 \
			"$STREAM_H" "$SOCK" mail <"$BATS_TEST_TMPDIR/msg"
	}
	add
	SMTP_HELO=stale start_worker w1 "$HANDLERS/note"
	wait_for 10 test -e "$DUMP/runs"
	cmp "$DUMP/1/message" "$BATS_TEST_TMPDIR/msg"
	assert_equal "$(cat "$DUMP/1/env")" "$(printf '%s\n' SMTP_ID=m1 \
		SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
		c@example.net SMTP_SIZE=9)"
	wait_for 10 is 0 pending
	kill -TERM "${WORKER_PIDS[0]}"
	wait "${WORKER_PIDS[0]}"
	add
	start_worker w2 "$HANDLERS/seekable"
	wait_for 10 grep -q smtp_size "$DUMP/stdin"
	assert_equal "$(cat "$DUMP/stdin")" "$(printf '%s\n' regular offset=0 \
		links=0 size=9 reread=same smtp_size=9)"
}

@test "redis-worker: nothing is acknowledged before the handler exited 0" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/note" wait
	wait_for 10 test -s "$DUMP/running"
	assert_equal "$(pending)" 1
	echo 75 >"$DUMP/status"
	touch "$DUMP/go"
	wait_for 10 grep -q 'm1: entry .*: 451 4\.3\.0 .*; left pending' \
		"$BATS_TEST_TMPDIR/worker.log"
	assert_equal "$(pending)" 1
	# Claimed again once idle (by itself here), and acknowledged on 0.
	echo 0 >"$DUMP/status"
	kill -KILL "${WORKER_PIDS[0]}"
	REDIS_CLAIM_IDLE=1 start_worker w2 "$HANDLERS/note"
	wait_for 10 is 0 pending
	assert_equal "$(cat "$DUMP/runs")" $'w1 m1\nw2 m1'
}

@test "redis-worker: a worker killed mid-handler: another consumer redoes the entry after the claim" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	SMTP_ID=m2 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/note" wait
	wait_for 10 test -s "$DUMP/running"
	kill -KILL "${WORKER_PIDS[0]}" "$(cat "$DUMP/running")"
	rm "$DUMP/running"
	assert_equal "$(pending)" 1
	REDIS_CLAIM_IDLE=1 start_worker w2 "$HANDLERS/note"
	wait_for 20 is 0 pending
	wait_for 10 is 2 lines_of "$DUMP/runs"
	run sort "$DUMP/runs"
	assert_output $'w2 m1\nw2 m2'
	assert_equal "$(rcli XINFO CONSUMERS mail grp | grep -c '^w[12]$')" 2
}

@test "redis-worker: SIGTERM finishes the current entry, acknowledges it and exits 0" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/note" wait
	wait_for 10 test -s "$DUMP/running"
	kill -TERM "${WORKER_PIDS[0]}"
	# The worker has taken the signal while the handler waits for go.
	term_taken() {
		local p
		p=$(sed -n 's/^ShdPnd:[[:space:]]*//p; s/^SigPnd:[[:space:]]*//p' \
		    "/proc/${WORKER_PIDS[0]}/status" | tr '\n' ' ')
		for p in $p; do [ $((0x$p & 0x4000)) -eq 0 ] || return 1; done
	}
	wait_for 10 term_taken
	! grep -q 'consumer w1: stopped' "$BATS_TEST_TMPDIR/worker.log"
	touch "$DUMP/go"
	wait "${WORKER_PIDS[0]}"
	assert_equal "$(cat "$DUMP/runs")" 'w1 m1'
	assert_equal "$(pending)" 0
	assert_equal "$(lag)" 0
}

@test "redis-worker: an existing group is fine, a missing stream is created, bad usage is 64" {
	start_redis
	# No stream yet: the first worker creates it, and its group.
	assert_equal "$(rcli EXISTS mail)" 0
	start_worker w1 "$HANDLERS/note"
	assert_equal "$(rcli EXISTS mail)" 1
	assert_equal "$(rcli XINFO GROUPS mail | grep -cx grp)" 1
	# The group exists now: the second worker is fine with it.
	start_worker w2 "$HANDLERS/note"
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	wait_for 10 test -e "$DUMP/runs"
	wait_for 10 is 0 pending
	run "$WORKER_BIN" mail grp -- true
	assert_failure 64
	run "$WORKER_BIN" "$SOCK" mail grp w --
	assert_failure 64
	run "$WORKER_BIN" "$BATS_TEST_TMPDIR/none.sock" mail grp w -- true
	assert_failure 75
}

@test "no loss: 20 sessions x 20 messages -> redis-stream -> 2 workers -> maildir, one worker SIGKILLed" {
	start_redis
	MD=$BATS_TEST_TMPDIR/Maildir
	start_server "$STREAM_H" "$SOCK" mail
	REDIS_CLAIM_IDLE=1 start_worker w1 "$ROOT/src/handlers/maildir" "$MD"
	REDIS_CLAIM_IDLE=1 start_worker w2 "$ROOT/src/handlers/maildir" "$MD"
	python3 "$FIXTURES/redis-noloss.py" send "$PORT" \
		"$BATS_TEST_TMPDIR/accepted" 20 20 >"$BATS_TEST_TMPDIR/send.out" 3>&- &
	client=$!
	# Mid-run, one worker dies without a word; a third takes its place.
	wait_for 30 at_least 50 delivered "$MD"
	kill -KILL "${WORKER_PIDS[0]}"
	REDIS_CLAIM_IDLE=1 start_worker w3 "$ROOT/src/handlers/maildir" "$MD"
	wait "$client"
	echo "# $(head -n 1 "$BATS_TEST_TMPDIR/send.out")" >&3
	assert_equal "$(head -n 1 "$BATS_TEST_TMPDIR/send.out")" 'sent=400 accepted=400 refused=0'
	assert_equal "$(rcli XLEN mail)" 400
	wait_for 60 is 0 pending
	wait_for 10 is 0 lag
	run python3 "$FIXTURES/redis-noloss.py" check "$BATS_TEST_TMPDIR/accepted" "$MD"
	echo "# $output" >&3
	assert_success
	assert_line --index 0 --regexp '^accepted=400 delivered=[0-9]+ distinct=400 missing=0 duplicates=[0-9]+ problems=0$'
}

@test "redis-worker: exit 0 with a 452 reply leaves the entry pending, as smtpd-stdio answers 452" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/say" 0 '452 4.2.2 Mailbox full\n'
	wait_for 10 logged '\]: m1: entry [0-9-]+: 452 4\.2\.2 Mailbox full; left pending$'
	assert_equal "$(pending)" 1
	assert_equal "$(rcli XLEN mail:dead)" 0
}

@test "redis-worker: exit 0 with output that is no reply leaves the entry pending (451), logged" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/say" 0 'all went fine\n'
	wait_for 10 logged '\]: m1: entry [0-9-]+: 451 4\.3\.0 .*; left pending$'
	logged '\]: m1: handler exited 0 but its output is not an SMTP reply: all went fine'
	assert_equal "$(pending)" 1
}

@test "redis-worker: {sender} and {recipients} are expanded as smtpd-stdio does" {
	start_redis
	SMTP_ID=m1 SMTP_MAIL_FROM=a@example.org \
		SMTP_RCPT_TO=$'b@example.net\nc@example.net' \
		"$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/dump" -f '{sender}' -- '{recipients}'
	wait_for 10 is 0 pending
	run cat "$DUMP/1/argv"
	assert_output $'-f\na@example.org\n--\nb@example.net\nc@example.net'
}

@test "redis-worker: the handler gets only fds 0-2 (not the Redis connection), default signals, its own process group" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/fds"
	wait_for 10 test -e "$DUMP/fds"
	run cut -d ' ' -f 1 "$DUMP/fds"
	assert_output $'0\n1\n2'
	kill -TERM "${WORKER_PIDS[0]}"
	wait "${WORKER_PIDS[0]}"
	SMTP_ID=m2 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w2 "$HANDLERS/sigstate"
	wait_for 10 test -e "$DUMP/sig"
	wait_for 10 is 0 pending
	run cat "$DUMP/sig"
	assert_line --index 0 'SigBlk:	0000000000000000'
	# SIGPIPE (13) is ignored by the worker: bit 12 of the mask.
	[[ ${lines[1]} =~ ^SigIgn:.([0-9a-f]{16})$ ]]
	[ $((0x${BASH_REMATCH[1]} & 0x1000)) -eq 0 ]
	[[ ${lines[2]} =~ ^pid=([0-9]+)\ pgid=([0-9]+)$ ]]
	assert_equal "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

@test "redis-worker: the handler's stderr is logged line by line with the message id" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/complain" 'first\nsecond \033[31m\n'
	wait_for 10 is 0 pending
	logged '^redis-worker\[[0-9]+\]: m1: handler: first$'
	logged '^redis-worker\[[0-9]+\]: m1: handler: second \\033\[31m$'
}

@test "redis-worker: a hanging handler is killed with its process group at REDIS_HANDLER_TIMEOUT, the entry stays pending" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	REDIS_HANDLER_TIMEOUT=1 start_worker w1 "$HANDLERS/hang" ignore-term
	wait_for 10 test -e "$DUMP/pids"
	read -r pid child <"$DUMP/pids"
	wait_for 10 process_gone "$pid"
	wait_for 10 process_gone "$child"
	wait_for 10 logged '\]: m1: entry [0-9-]+: 451 4\.3\.0 .*; left pending$'
	logged '\]: m1: handler timed out after 1s, sending SIGTERM$'
	assert_equal "$(pending)" 1
}

@test "redis-worker: 0 or out-of-range REDIS_* values are usage errors (64)" {
	start_redis
	for v in REDIS_CLAIM_IDLE=0 REDIS_HANDLER_TIMEOUT=0 REDIS_MAX_DELIVERIES=0 \
		REDIS_TIMEOUT=0 REDIS_CLAIM_IDLE=x REDIS_HANDLER_TIMEOUT=86401 \
		REDIS_DELETE_ACKED=2 REDIS_TIMEOUT=-1; do
		run --separate-stderr timeout 10 env "$v" "$WORKER_BIN" "$SOCK" \
			mail grp w -- true
		assert_failure 64
		[[ $stderr == "${v%%=*}="* ]]
	done
}

# dead_field N NAME: field NAME of entry N of mail:dead.
dead_field() {
	field mail:dead "$1" "$2"
}

@test "redis-worker: a 5xx result moves the entry to STREAM:dead with its fields, reply and deliveries, then acknowledges it" {
	start_redis
	printf 'Subject: poison\n\nbody\0\n' >"$BATS_TEST_TMPDIR/msg"
	SMTP_ID=m1 SMTP_MAIL_FROM=a@example.org "$STREAM_H" "$SOCK" mail \
		<"$BATS_TEST_TMPDIR/msg"
	start_worker w1 "$HANDLERS/say" 0 '554 5.7.1 No thanks\n'
	wait_for 10 is 1 rcli XLEN mail:dead
	wait_for 10 is 0 pending
	run fields mail:dead 1
	assert_output "$(printf '%s\n' id mail_from message reply deliveries)"
	assert_equal "$(dead_field 1 id)" m1
	assert_equal "$(dead_field 1 mail_from)" a@example.org
	assert_equal "$(dead_field 1 reply)" '554 5.7.1 No thanks'
	assert_equal "$(dead_field 1 deliveries)" 1
	cmp <(dead_field 1 message) "$BATS_TEST_TMPDIR/msg"
	logged '\]: m1: entry [0-9-]+: moved to mail:dead after 1 deliveries: 554 5\.7\.1 No thanks$'
	# An exit status that bounces at the SMTP edge bounces here too.
	kill -TERM "${WORKER_PIDS[0]}"
	wait "${WORKER_PIDS[0]}"
	SMTP_ID=m2 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w2 "$HANDLERS/exit" 67
	wait_for 10 is 2 rcli XLEN mail:dead
	assert_equal "$(dead_field 2 reply)" '550 5.1.1 Error: recipient unknown'
	assert_equal "$(pending)" 0
}

@test "redis-worker: an entry delivered more than REDIS_MAX_DELIVERIES times goes to STREAM:dead unrun" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	echo 75 >"$DUMP/status"
	REDIS_MAX_DELIVERIES=3 REDIS_CLAIM_IDLE=1 start_worker w1 "$HANDLERS/note"
	wait_for 20 is 1 rcli XLEN mail:dead
	wait_for 10 is 0 pending
	assert_equal "$(cat "$DUMP/runs")" $'w1 m1\nw1 m1\nw1 m1'
	assert_equal "$(dead_field 1 deliveries)" 4
	assert_equal "$(dead_field 1 reply)" '554 5.4.0 Error: too many delivery attempts'
}

@test "redis-worker: REDIS_DELETE_ACKED=1 deletes what it acknowledged (XDEL), and only that" {
	start_redis
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	SMTP_ID=m2 "$STREAM_H" "$SOCK" mail </dev/null
	REDIS_DELETE_ACKED=1 start_worker w1 "$HANDLERS/say" 0 ''
	wait_for 10 is 0 rcli XLEN mail
	assert_equal "$(pending)" 0
	kill -TERM "${WORKER_PIDS[0]}"
	wait "${WORKER_PIDS[0]}"
	SMTP_ID=m3 "$STREAM_H" "$SOCK" mail </dev/null
	REDIS_DELETE_ACKED=1 start_worker w2 "$HANDLERS/say" 0 '451 4.3.0 later\n'
	wait_for 10 logged '\]: m3: entry [0-9-]+: 451 4\.3\.0 later; left pending$'
	assert_equal "$(rcli XLEN mail)" 1
}

# pending_then_deleted NAME SMTP_ID: a message, read by worker NAME, which
# is killed with its handler (the entry stays pending), then deleted from
# the stream; its entry id in id.
pending_then_deleted() {
	rm -f "$DUMP/running"
	SMTP_ID=$2 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker "$1" "$HANDLERS/note" wait
	wait_for 10 test -s "$DUMP/running"
	kill -KILL "${WORKER_PIDS[-1]}" "$(cat "$DUMP/running")"
	id=$(rcli XRANGE mail - + | head -n 1)
	rcli XDEL mail "$id" >/dev/null
}

@test "redis-worker: an entry deleted while pending is logged as lost and acknowledged, by XAUTOCLAIM and at start" {
	start_redis
	# Its own pending entries first: XREADGROUP 0 gives it without fields.
	pending_then_deleted w1 m1
	start_worker w1 "$HANDLERS/note"
	wait_for 10 logged "\\]: entry $id of mail was deleted while pending: lost\$"
	wait_for 10 is 0 pending
	# Another consumer's, through XAUTOCLAIM's list of deleted ids.
	kill -TERM "${WORKER_PIDS[1]}"
	wait "${WORKER_PIDS[1]}"
	pending_then_deleted w2 m2
	REDIS_CLAIM_IDLE=1 start_worker w3 "$HANDLERS/note"
	wait_for 10 logged "\\]: entry $id of mail was deleted while pending: lost\$"
	wait_for 10 is 0 pending
	refute [ -e "$DUMP/runs" ]
}

@test "a stalled Redis (SIGSTOP): redis-stream and the worker give up with 75 after REDIS_TIMEOUT" {
	start_redis
	REDIS_TIMEOUT=1 start_worker w1 "$HANDLERS/note"
	pid=${WORKER_PIDS[0]}
	kill -STOP "$REDIS_PID"
	# Without a timeout of its own redis-stream would run into the outer
	# timeout, which exits 124.
	run --separate-stderr timeout 20 env SMTP_ID=x REDIS_TIMEOUT=1 \
		"$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 75
	[[ $stderr == "redis-stream: $SOCK: "* ]]
	# The worker's blocking read ends and its next command times out.
	wait_for 20 process_gone "$pid"
	run wait "$pid"
	assert_failure 75
	logged "\\]: redis $SOCK: XREADGROUP: |\\]: redis $SOCK: XAUTOCLAIM: "
	kill -CONT "$REDIS_PID"
}

@test "redis-worker: AUTH refused or a key of the wrong type exit 78 (no restart loop)" {
	port=$(free_port)
	start_redis --port "$port" --bind 127.0.0.1 --requirepass s3cret
	run --separate-stderr timeout 20 "$WORKER_BIN" "redis://:wrong@127.0.0.1:$port" \
		mail grp w1 -- true
	assert_failure 78
	[[ $stderr == *'AUTH refused: WRONGPASS'* ]]
	run --separate-stderr timeout 20 "$WORKER_BIN" "redis://127.0.0.1:$port" \
		mail grp w1 -- true
	assert_failure 78
	rcli -a s3cret --no-auth-warning SET mail not-a-stream >/dev/null
	run --separate-stderr timeout 20 "$WORKER_BIN" "redis://:s3cret@127.0.0.1:$port" \
		mail grp w1 -- true
	assert_failure 78
	[[ $stderr == *WRONGTYPE* ]]
}

@test "the Redis password is in no log line and no argv (/proc/*/cmdline)" {
	port=$(free_port)
	pw=Pw-$RANDOM-s3cret
	start_redis --port "$port" --bind 127.0.0.1 --requirepass "$pw"
	echo "$pw" >"$BATS_TEST_TMPDIR/pw"
	export REDIS_AUTH_FILE=$BATS_TEST_TMPDIR/pw
	SERVER_ENV=REDIS_AUTH_FILE start_server "$STREAM_H" "redis://127.0.0.1:$port" mail
	start_worker w1 "$HANDLERS/note" wait
	# In the URL: scrubbed from the worker's argv once parsed.
	unset REDIS_AUTH_FILE
	WORKER=w2 "$WORKER_BIN" "redis://:$pw@127.0.0.1:$port" mail grp w2 \
		-- "$HANDLERS/note" </dev/null >>"$BATS_TEST_TMPDIR/worker.log" 2>&1 3>&- &
	WORKER_PIDS+=($!)
	wait_for 10 logged 'consumer w2 of group grp on mail: ready'
	run smtp_client "$PORT" a@example.org b@example.net 'Subject: x

x
'
	assert_line --index 1 --regexp '^250 '
	wait_for 10 test -s "$DUMP/running"
	run grep -s -l -F -- "$pw" /proc/[0-9]*/cmdline
	assert_output ''
	tr '\0' ' ' <"/proc/${WORKER_PIDS[1]}/cmdline" | grep -q 'redis://:\*\+@127'
	# Failures log where, never the password.
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "redis://:$pw@127.0.0.1:1" mail </dev/null
	assert_failure 75
	run --separate-stderr timeout 20 "$WORKER_BIN" "redis://:$pw@127.0.0.1:1" mail grp w3 -- true
	assert_failure 75
	echo "$stderr" >>"$BATS_TEST_TMPDIR/worker.log"
	touch "$DUMP/go"
	stop_server
	run grep -c -F -- "$pw" "$BATS_TEST_TMPDIR/worker.log" "$BATS_TEST_TMPDIR/server.log"
	assert_output "$BATS_TEST_TMPDIR/worker.log:0
$BATS_TEST_TMPDIR/server.log:0"
}

@test "durability: kill -9 of a Redis run with appendonly yes, appendfsync always mid-load loses no message answered 250" {
	start_durable_redis
	start_server "$STREAM_H" "$SOCK" mail
	start_load 10 30
	wait_for 30 at_least 50 rcli XLEN mail
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" || true
	kill -0 "$LOAD_PID"	# mid-load
	start_durable_redis
	wait "$LOAD_PID" || true
	echo "# $(head -n 1 "$BATS_TEST_TMPDIR/send.out")" >&3
	accepted=$(wc -l <"$BATS_TEST_TMPDIR/accepted")
	[ "$accepted" -ge 50 ]
	run env LC_ALL=C comm -23 "$BATS_TEST_TMPDIR/accepted" <(load_ids)
	assert_output ''
}

@test "redis-stream: REDIS_WAIT=1 exits 0 only once a replica has the entry (WAIT), else 75" {
	port=$(free_port)
	start_redis --port "$port" --bind 127.0.0.1
	run --separate-stderr env SMTP_ID=x REDIS_WAIT=1 REDIS_TIMEOUT=1 \
		"$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 75
	assert_equal "$stderr" 'redis-stream: WAIT: replicas that confirmed: 0'
	redis-server --port 0 --unixsocket "$BATS_TEST_TMPDIR/replica.sock" \
		--save '' --appendonly no --dir "$BATS_TEST_TMPDIR" \
		--replicaof 127.0.0.1 "$port" </dev/null \
		>"$BATS_TEST_TMPDIR/replica.log" 2>&1 3>&- &
	WORKER_PIDS+=($!)	# killed in teardown
	linked() {
		redis-cli -s "$BATS_TEST_TMPDIR/replica.sock" INFO replication |
			grep -q '^master_link_status:up'
	}
	wait_for 20 linked
	run --separate-stderr env SMTP_ID=y REDIS_WAIT=1 "$STREAM_H" "$SOCK" mail </dev/null
	assert_success
	assert_equal "$(rcli XLEN mail)" 2
	run env REDIS_WAIT=x "$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 78
}

@test "redis-worker: SMTP_RELAY is kept: the entry's relay field, or the worker's own, which wins" {
	start_redis
	SMTP_ID=m1 SMTP_RELAY=ingress.example "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/dump"
	wait_for 10 is 0 pending
	assert_equal "$(cat "$DUMP/1/SMTP_RELAY")" ingress.example
	kill -TERM "${WORKER_PIDS[0]}"
	wait "${WORKER_PIDS[0]}"
	SMTP_ID=m2 SMTP_RELAY=ingress.example "$STREAM_H" "$SOCK" mail </dev/null
	SMTP_ID=m3 "$STREAM_H" "$SOCK" mail </dev/null
	SMTP_RELAY=smarthost.example:587 start_worker w2 "$HANDLERS/dump"
	wait_for 10 is 0 pending
	assert_equal "$(cat "$DUMP/2/SMTP_RELAY")" smarthost.example:587
	assert_equal "$(cat "$DUMP/3/SMTP_RELAY")" smarthost.example:587
	run grep -c '^SMTP_RELAY=' "$DUMP/2/env"
	assert_output 1
}

@test "redis-stream and redis-worker: AUTH as an ACL user, SELECT of the URL's database, an IPv6 host" {
	port=$(free_port ::1)
	start_redis --port "$port" --bind ::1
	rcli ACL SETUSER mailer on '>pw-m41ler' '~*' '&*' '+@all' >/dev/null
	rcli ACL SETUSER default off >/dev/null
	url="redis://mailer:pw-m41ler@[::1]:$port/3"
	run --separate-stderr env SMTP_ID=m1 "$STREAM_H" "$url" mail </dev/null
	assert_success
	WORKER_URL=$url start_worker w1 "$HANDLERS/note"
	wait_for 10 test -e "$DUMP/runs"
	assert_equal "$(cat "$DUMP/runs")" 'w1 m1'
	ucli() { redis-cli -h ::1 -p "$port" --user mailer --pass pw-m41ler --no-auth-warning -n 3 "$@"; }
	wait_for 10 is 0 eval 'ucli XPENDING mail grp | head -n 1'
	assert_equal "$(ucli XLEN mail)" 1
	# The wrong user's password: AUTH refused, 78.
	run --separate-stderr env SMTP_ID=m2 "$STREAM_H" "redis://mailer:nope@[::1]:$port/3" mail </dev/null
	assert_failure 78
}

@test "redis-worker: a REDIS_HANDLER_TIMEOUT not below REDIS_CLAIM_IDLE (both defaults are 300) is warned about" {
	start_redis
	start_worker w1 "$HANDLERS/note"
	logged '\]: REDIS_HANDLER_TIMEOUT=300 \(\+2 s to SIGKILL\) is not below REDIS_CLAIM_IDLE=300: '
	: >"$BATS_TEST_TMPDIR/worker.log"
	REDIS_HANDLER_TIMEOUT=240 start_worker w2 "$HANDLERS/note"
	run grep -c REDIS_HANDLER_TIMEOUT "$BATS_TEST_TMPDIR/worker.log"
	assert_output 0
}

@test "a Redis full of clients refusing AUTH is 75, not 78: the worker comes back once there is room" {
	port=$(free_port)
	start_redis --port "$port" --bind 127.0.0.1 --requirepass s3cret
	echo s3cret >"$BATS_TEST_TMPDIR/pw"
	# One client holds the only place; the next one is told so.  The
	# place is made the only one once that client is in: with one place
	# from the start, a probe could take it first and turn the holder
	# away (it did, under load).
	timeout 30 redis-cli -s "$SOCK" -a s3cret --no-auth-warning BLPOP never 0 \
		</dev/null >/dev/null 2>&1 3>&- &
	WORKER_PIDS+=($!)	# killed in teardown
	arcli() { rcli -a s3cret --no-auth-warning "$@"; }
	holding() { arcli CLIENT LIST | grep -q 'cmd=blpop'; }
	wait_for 10 holding
	arcli CONFIG SET maxclients 1 >/dev/null
	full() { rcli PING 2>&1 | grep -q 'max number of clients'; }
	wait_for 10 full
	run --separate-stderr timeout 20 env REDIS_AUTH_FILE="$BATS_TEST_TMPDIR/pw" \
		"$WORKER_BIN" "redis://127.0.0.1:$port" mail grp w1 -- true
	assert_failure 75
	[[ $stderr == *'max number of clients reached'* ]]
	run --separate-stderr env SMTP_ID=x REDIS_AUTH_FILE="$BATS_TEST_TMPDIR/pw" \
		"$STREAM_H" "redis://127.0.0.1:$port" mail </dev/null
	assert_failure 75
}

@test "REDIS_DELETE_ACKED=1 never deletes what another consumer group has not read: 78 at start, no XDEL once one appears" {
	start_redis
	rcli XGROUP CREATE mail archive 0 MKSTREAM >/dev/null
	for i in 1 2 3; do
		SMTP_ID=m$i "$STREAM_H" "$SOCK" mail </dev/null
	done
	run --separate-stderr timeout 20 env REDIS_DELETE_ACKED=1 \
		"$WORKER_BIN" "$SOCK" mail grp w1 -- true
	assert_failure 78
	[[ $stderr == *'REDIS_DELETE_ACKED=1 is for a stream read by one consumer group'* ]]
	rcli XGROUP DESTROY mail archive >/dev/null
	assert_equal "$(rcli XLEN mail)" 3
	# Alone, it deletes what it delivered; a group created meanwhile
	# gets every entry from then on.
	REDIS_DELETE_ACKED=1 start_worker w1 "$HANDLERS/say" 0 ''
	wait_for 10 is 0 rcli XLEN mail
	rcli XGROUP CREATE mail archive 0 >/dev/null
	SMTP_ID=m4 "$STREAM_H" "$SOCK" mail </dev/null
	wait_for 10 is 0 pending
	wait_for 10 logged '\]: m4: entry [0-9-]+ not deleted: mail has 2 consumer groups'
	run rcli --raw XREADGROUP GROUP archive a STREAMS mail '>'
	assert_line m4
}

@test "a stream evicted under maxmemory (allkeys-lru) takes its group along: the worker says entries are lost and exits 78" {
	start_redis --maxmemory 4mb --maxmemory-policy allkeys-lru
	start_worker w1 "$HANDLERS/note" wait
	head -c 600000 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/msg"
	# Every XADD is answered with an id, until one evicts the stream.
	for i in $(seq 20); do
		SMTP_ID=m$i "$STREAM_H" "$SOCK" mail <"$BATS_TEST_TMPDIR/msg"
		[ "$(rcli XLEN mail)" = "$i" ] || break
	done
	[ "$(rcli XLEN mail)" -lt "$i" ]
	touch "$DUMP/go"
	pid=${WORKER_PIDS[0]}
	wait_for 20 process_gone "$pid"
	run wait "$pid"
	assert_failure 78
	logged '\]: redis .*: NOGROUP '
	logged '\]: group grp of mail is gone \(.*evicted.*\): the entries it had not acknowledged are lost$'
}

@test "a password in a redis:// URL of the worker's environment (the unit's REDIS_URL) reaches neither the handler nor /proc/PID/environ" {
	port=$(free_port)
	pw=Pw-$RANDOM-s3cret
	start_redis --port "$port" --bind 127.0.0.1 --requirepass "$pw"
	SMTP_ID=m1 "$STREAM_H" "redis://:$pw@127.0.0.1:$port" mail </dev/null
	printf '#!/bin/sh\nenv >"$DUMP/henv"\ntouch "$DUMP/seen"\nwhile [ ! -e "$DUMP/go" ]; do sleep 0.05; done\n' \
		>"$BATS_TEST_TMPDIR/h"
	chmod +x "$BATS_TEST_TMPDIR/h"
	# As the unit runs it: ExecStart=... $REDIS_URL ...
	export REDIS_URL=redis://:$pw@127.0.0.1:$port
	WORKER_URL=$REDIS_URL start_worker w1 "$BATS_TEST_TMPDIR/h"
	unset REDIS_URL
	wait_for 10 test -e "$DUMP/seen"
	grep -q '^REDIS_URL=redis://:\*\+@127' "$DUMP/henv"
	run grep -c -F -- "$pw" "$DUMP/henv" "/proc/${WORKER_PIDS[0]}/environ"
	assert_output "$DUMP/henv:0
/proc/${WORKER_PIDS[0]}/environ:0"
	touch "$DUMP/go"
	wait_for 10 is 0 eval 'redis-cli -p "$port" -a "$pw" --no-auth-warning XPENDING mail grp | head -n 1'
}

@test "a connection Redis closed while the handler ran (its idle timeout) is opened again: the entry is acknowledged once, not redone" {
	start_redis --timeout 1
	SMTP_ID=m1 "$STREAM_H" "$SOCK" mail </dev/null
	SMTP_ID=m2 "$STREAM_H" "$SOCK" mail </dev/null
	start_worker w1 "$HANDLERS/note" wait
	wait_for 10 test -s "$DUMP/running"
	# Redis closes the worker's connection: redis-cli's own is left.
	wait_for 10 is 1 eval 'rcli CLIENT LIST | wc -l'
	touch "$DUMP/go"
	wait_for 10 is 0 pending
	wait_for 10 is 2 lines_of "$DUMP/runs"
	assert_equal "$(cat "$DUMP/runs")" $'w1 m1\nw1 m2'
	kill -0 "${WORKER_PIDS[0]}"
	logged '\]: redis .*: XACK: .*: connecting again$'
}

@test "a password holding '/' and '@' in the URL is the password: it connects, and no part of it stays in argv" {
	port=$(free_port)
	pw="pa/ss@w-$RANDOM"
	start_redis --port "$port" --bind 127.0.0.1 --requirepass "$pw"
	run --separate-stderr env SMTP_ID=m1 "$STREAM_H" \
		"redis://:$pw@127.0.0.1:$port/0" mail </dev/null
	assert_success
	WORKER_URL="redis://:$pw@127.0.0.1:$port/0" start_worker w1 "$HANDLERS/note"
	wait_for 10 test -e "$DUMP/runs"
	run grep -c -F -e "${pw%%/*}" -e "${pw#*/}" "/proc/${WORKER_PIDS[0]}/cmdline"
	assert_output 0
	tr '\0' ' ' <"/proc/${WORKER_PIDS[0]}/cmdline" | grep -q 'redis://:\*\+@127'
}

@test "redis-stream: a message Redis will not take (past proto-max-bulk-len) is 75 with a reason, not death by SIGPIPE" {
	start_redis --proto-max-bulk-len 1mb
	head -c 3000000 /dev/zero >"$BATS_TEST_TMPDIR/msg"
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "$SOCK" mail <"$BATS_TEST_TMPDIR/msg"
	assert_failure 75
	[[ $stderr == "redis-stream: $SOCK: XADD: "* ]]
	assert_equal "$(rcli XLEN mail)" 0
}

@test "redis-worker: an entry whose mail_from or rcpt_to holds a NUL is a dead letter, never run with the recipients cut at the NUL" {
	start_redis
	rcli EVAL "redis.call('XADD', 'mail', '*', 'id', 'm1', 'rcpt_to', 'b@example.net\\0c@example.net', 'message', 'x')" 0 >/dev/null
	start_worker w1 "$HANDLERS/dump" -- '{recipients}'
	wait_for 10 is 1 rcli XLEN mail:dead
	wait_for 10 is 0 pending
	assert_equal "$(dead_field 1 reply)" '554 5.6.0 Error: malformed entry: a NUL in mail_from or rcpt_to'
	refute [ -e "$DUMP/1" ]
}

@test "redis-stream: a user name in the URL (a Redis ACL user), and the default URL redis://127.0.0.1:6379" {
	local port
	port=$(free_port)
	# No default user: only alice, with her password, may write.
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$BATS_TEST_TMPDIR" --user default off \
		--user alice on '>pw' '~*' '&*' '+@all' \
		</dev/null >"$BATS_TEST_TMPDIR/redis.log" 2>&1 3>&- &
	REDIS_PID=$!
	alice() { redis-cli -p "$port" --user alice --pass pw --no-auth-warning "$@"; }
	wait_for 10 is PONG alice PING
	run --separate-stderr env SMTP_ID=u "$STREAM_H" "redis://alice:pw@127.0.0.1:$port" mail </dev/null
	assert_success
	assert_equal "$(alice XLEN mail)" 1
	# The same password under another user name is refused.
	run --separate-stderr env SMTP_ID=v "$STREAM_H" "redis://bob:pw@127.0.0.1:$port" mail </dev/null
	assert_failure
	assert_equal "$(alice XLEN mail)" 1
	# No URL: 127.0.0.1:6379, here in a network namespace of its own.
	run --separate-stderr timeout -k 5 60 unshare --net sh -c '
		ip link set lo up
		redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no \
		    --dir "$1" </dev/null >/dev/null 2>&1 &
		r=$!
		trap "kill $r; wait $r" EXIT
		i=0
		until [ "$(redis-cli -p 6379 PING 2>/dev/null)" = PONG ]; do
			i=$((i + 1)); [ "$i" -lt 200 ] || exit 9; sleep 0.05
		done
		SMTP_ID=d "$2" mail </dev/null
		echo "status=$? xlen=$(redis-cli -p 6379 XLEN mail)"' sh "$BATS_TEST_TMPDIR" "$STREAM_H"
	assert_success
	assert_output 'status=0 xlen=1'
}
