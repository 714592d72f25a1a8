#!/usr/bin/env bats
# The redis-stream handler and redis-worker against a real redis-server
# started by each test on a UNIX socket in its temp dir, no persistence.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	STREAM_H=$ROOT/src/handlers/redis-stream
	WORKER_BIN=$(dirname "$SMTPD")/redis-worker
	SOCK=$BATS_TEST_TMPDIR/redis.sock
	WORKER_PIDS=()
}

teardown() {
	local p
	if [ -z "${BATS_TEST_COMPLETED-}" ] && [ -e "$BATS_TEST_TMPDIR/worker.log" ]; then
		sed 's/^/# worker.log: /' "$BATS_TEST_TMPDIR/worker.log" >&3
		rcli XPENDING mail grp - + 10 2>&1 | sed 's/^/# pending: /' >&3
		ls -R "$DUMP" | sed 's/^/# dump: /' >&3
	fi
	for p in "${WORKER_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -s "$DUMP/running" ]; then
		kill "$(cat "$DUMP/running")" 2>/dev/null || true
	fi
	stop_server
	if [ -n "${REDIS_PID-}" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
	fi
}

# start_redis [redis-server options]
start_redis() {
	redis-server --port 0 --unixsocket "$SOCK" --save '' --appendonly no \
		--dir "$BATS_TEST_TMPDIR" "$@" \
		</dev/null >"$BATS_TEST_TMPDIR/redis.log" 2>&1 3>&- &
	REDIS_PID=$!
	wait_for 10 rcli PING
}

rcli() {
	redis-cli -s "$SOCK" "$@"
}

# field STREAM N NAME: the exact bytes of field NAME of entry N (from 1).
field() {
	rcli --raw EVAL 'local e = redis.call("XRANGE", KEYS[1], "-", "+")[tonumber(ARGV[1])][2]
for i = 1, #e, 2 do if e[i] == ARGV[2] then return e[i + 1] end end
return redis.error_reply("no such field")' 1 "$1" "$2" "$3" | head -c -1
}

# fields STREAM N: the field names of entry N, one a line.
fields() {
	rcli --raw EVAL 'local e = redis.call("XRANGE", KEYS[1], "-", "+")[tonumber(ARGV[1])][2]
local t = {} for i = 1, #e, 2 do t[#t + 1] = e[i] end return t' 1 "$1" "$2"
}

pending() {
	rcli XPENDING mail grp | head -n 1
}

# is VALUE COMMAND [ARG...]: COMMAND prints VALUE (for wait_for).
is() {
	local want=$1
	shift
	[ "$("$@")" = "$want" ]
}

# at_least N COMMAND [ARG...]: COMMAND prints a number >= N.
at_least() {
	local n=$1
	shift
	[ "$("$@")" -ge "$n" ]
}

lag() {
	rcli XINFO GROUPS mail | sed -n '/^lag$/{n;p;}'
}

lines_of() {
	wc -l <"$1"
}

delivered() {
	find "$1/new" -type f 2>/dev/null | wc -l
}

# start_worker NAME HANDLER [ARG...]: a consumer NAME of group grp on
# stream mail; its pid is appended to WORKER_PIDS, its log to worker.log.
start_worker() {
	local name=$1
	shift
	WORKER=$name "$WORKER_BIN" "$SOCK" mail grp "$name" -- "$@" \
		</dev/null >>"$BATS_TEST_TMPDIR/worker.log" 2>&1 3>&- &
	WORKER_PIDS+=($!)
	wait_for 10 grep -q "consumer $name of group grp on mail: ready" \
		"$BATS_TEST_TMPDIR/worker.log"
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
		rcpt_to remote_addr remote_port size tls_cipher tls_client_hash \
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

@test "redis-stream: Redis down gives 451; an error reply gives 75" {
	run --separate-stderr one_message "$STREAM_H" "$SOCK" mail
	assert_success
	assert_reply . '^451 4\.3\.0 '
	start_redis
	rcli SET mail not-a-stream >/dev/null
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 75
	[[ $stderr == *WRONGTYPE* ]]
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "$SOCK" other </dev/null
	assert_success
}

@test "redis-stream: redis:// URL with a password from REDIS_AUTH_FILE or the URL" {
	port=$(free_port)
	start_redis --port "$port" --bind 127.0.0.1 --requirepass s3cret
	run --separate-stderr env SMTP_ID=x "$STREAM_H" "redis://127.0.0.1:$port" mail </dev/null
	assert_failure 75
	[[ $stderr == *NOAUTH* ]]
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

@test "redis-stream: REDIS_MAXLEN trims the stream (MAXLEN ~ N)" {
	start_redis --stream-node-max-entries 5
	for i in $(seq 40); do
		SMTP_ID=$i REDIS_MAXLEN=10 "$STREAM_H" "$SOCK" mail </dev/null
	done
	n=$(rcli XLEN mail)
	# Two commands: bats ignores the first half of an && list.
	[ "$n" -ge 10 ]
	[ "$n" -lt 20 ]
	run env REDIS_MAXLEN=ten "$STREAM_H" "$SOCK" mail </dev/null
	assert_failure 78
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
	wait_for 10 grep -q 'entry .*: handler exit 75; left pending' \
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
	start_server "$ROOT/src/handlers/redis-stream" "$SOCK" mail
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
