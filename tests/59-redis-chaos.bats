#!/usr/bin/env bats
# Issue 16's proof: concurrent sessions through smtpd-stdio, redis-stream
# (AOF always), two supervised workers and maildir, while a worker is
# SIGKILLed mid-handler, Redis is kill -9'd and restarted, one message is
# poison (554) and one hangs.  Every message answered 250 must be
# delivered at least once or be in STREAM:dead; duplicates are reported.

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/redis
	redis_setup
	MD=$BATS_TEST_TMPDIR/Maildir
	# Early messages, answered before Redis is killed.
	export NOLOSS_CHAOS=3-1:poison,4-1:hang
	# Small, so that the hanging message is given up within the test.
	export REDIS_CLAIM_IDLE=2 REDIS_HANDLER_TIMEOUT=1 REDIS_MAX_DELIVERIES=3
	# Each session holds after half its messages until the test opens
	# the gate, so the load is surely under way when Redis dies (a 200
	# message load once finished before the kill under CI).
	export NOLOSS_GATE=$BATS_TEST_TMPDIR/gate
}

teardown() {
	local f
	touch "$BATS_TEST_TMPDIR/stop"
	for f in "$BATS_TEST_TMPDIR"/*.wpid; do
		[ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	redis_teardown
}

# supervised NAME: worker NAME, run again whenever it exits, as systemd's
# Restart=on-failure does (a worker exits 75 when Redis goes away), until
# $BATS_TEST_TMPDIR/stop exists.  Its current pid is in NAME.wpid.
supervised() {
	local name=$1
	until [ -e "$BATS_TEST_TMPDIR/stop" ]; do
		WORKER=$name "$WORKER_BIN" "$WORKER_URL" mail grp "$name" -- \
			"$HANDLERS/chaos" "$MD" </dev/null \
			>>"$BATS_TEST_TMPDIR/worker.log" 2>&1 &
		echo "$!" >"$BATS_TEST_TMPDIR/$name.wpid"
		wait "$!" || true
		sleep 0.2	# RestartSec
	done
}

start_supervised() {
	supervised "$1" 3>&- &
	WORKER_PIDS+=($!)
	wait_for 10 test -s "$BATS_TEST_TMPDIR/$1.wpid"
}

# kill_mid_handler NAME: SIGKILL worker NAME while a handler of it runs.
kill_mid_handler() {
	local pid
	pid=$(cat "$BATS_TEST_TMPDIR/$1.wpid")
	wait_for 20 pgrep -P "$pid" >/dev/null
	kill -KILL "$pid"
	echo "# SIGKILLed worker $1 (pid $pid) mid-handler" >&3
}

# settled COMMAND...: nothing pending in group grp and every entry read.
settled() {
	[ "$("$@" XPENDING mail grp | head -n 1)" = 0 ] &&
		[ "$("$@" XINFO GROUPS mail | sed -n '/^lag$/{n;p;}')" = 0 ]
}

# dead_keys COMMAND...: the X-Load-Id of each message in mail:dead.
dead_keys() {
	"$@" --raw XRANGE mail:dead - + | grep -a '^X-Load-Id: ' |
		cut -d ' ' -f 2 | LC_ALL=C sort -u
}

# chaos_check COMMAND...: every 250 delivered or dead; the duplicates.
chaos_check() {
	dead_keys "$@" >"$BATS_TEST_TMPDIR/dead"
	run python3 "$FIXTURES/redis-noloss.py" check \
		"$BATS_TEST_TMPDIR/accepted" "$MD" "$BATS_TEST_TMPDIR/dead"
	printf '# %s\n' "${lines[@]:0:2}" >&3
	assert_success
	assert_line --index 0 --regexp ' missing=0 duplicates=[0-9]+ problems=0$'
	[[ ${lines[0]} =~ duplicates=([0-9]+) ]]
	echo "# duplicates: ${BASH_REMATCH[1]}" >&3
	# The poison message is dead with its reply; the hanging one too.
	run "$@" --raw XRANGE mail:dead - +
	[[ $output == *$'X-Chaos: poison'*$'\nreply\n554 5.7.1 poison refused\n'* ]]
	[[ $output == *$'X-Chaos: hang'*$'\nreply\n554 5.4.0 Error: too many delivery attempts\n'* ]]
}

@test "chaos: 20x20 messages, a worker SIGKILLed, Redis kill -9'd, a poison and a hanging message: 0 lost" {
	start_durable_redis
	start_server "$STREAM_H" "$SOCK" mail
	start_supervised w1
	start_supervised w2
	start_load 20 20
	wait_for 60 at_least 100 rcli XLEN mail
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" || true
	# Mid-load: the sessions are still open, held at the gate.
	kill -0 "$LOAD_PID"
	echo "# kill -9 of Redis at $(delivered "$MD") delivered" >&3
	start_durable_redis
	touch "$NOLOSS_GATE"
	wait_for 60 at_least 40 delivered "$MD"
	kill_mid_handler w1
	wait "$LOAD_PID" || true
	echo "# $(head -n 1 "$BATS_TEST_TMPDIR/send.out")" >&3
	# At least the messages in Redis before the kill were answered 250.
	[ "$(wc -l <"$BATS_TEST_TMPDIR/accepted")" -ge 50 ]
	wait_for 60 settled rcli
	chaos_check rcli
}

@test "chaos, Redis Cluster: 5x40 messages through 3 masters, a worker SIGKILLed, the stream's master kill -9'd: 0 lost" {
	start_cluster
	owner=$(slot_owner mail)
	WORKER_URL=redis://127.0.0.1:$(not_owner mail)
	start_server "$STREAM_H" "$WORKER_URL" mail
	start_supervised w1
	start_supervised w2
	start_load 5 40
	wait_for 60 at_least 3 delivered "$MD"
	kill_mid_handler w1
	# The master of the stream's slot dies mid-load and comes back on
	# its data.
	for i in "${!CLUSTER_PORTS[@]}"; do
		[ "${CLUSTER_PORTS[$i]}" = "$owner" ] && break
	done
	kill -KILL "${REDIS_PIDS[$i]}"
	wait "${REDIS_PIDS[$i]}" || true
	kill -0 "$LOAD_PID"
	echo "# kill -9 of the master at $(delivered "$MD") delivered" >&3
	dir=$BATS_TEST_TMPDIR/node$((i + 1))
	redis-server --port "$owner" --bind 127.0.0.1 --cluster-enabled yes \
		--cluster-config-file "$dir/nodes.conf" --dir "$dir" \
		--save '' --appendonly yes --appendfsync always \
		</dev/null >>"$dir/log" 2>&1 3>&- &
	REDIS_PIDS[$i]=$!
	for port in "${CLUSTER_PORTS[@]}"; do
		wait_for 60 cluster_ok "$port"
	done
	touch "$NOLOSS_GATE"
	wait "$LOAD_PID" || true
	echo "# $(head -n 1 "$BATS_TEST_TMPDIR/send.out")" >&3
	[ "$(wc -l <"$BATS_TEST_TMPDIR/accepted")" -ge 5 ]
	wait_for 60 settled ccli
	chaos_check ccli
}
