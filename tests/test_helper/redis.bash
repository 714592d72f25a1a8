# Loaded by the Redis test files (59-redis*) after test_helper/common and
# test_helper/tcp: a real redis-server per test on a UNIX socket in its
# temp dir (or a Redis Cluster on loopback ports), redis-worker and the
# redis-stream handler as built, and what the tests ask Redis.

# redis_setup: call from setup().
redis_setup() {
	common_setup
	STREAM_H=${STREAM_H:-$(dirname "$SMTPD")/redis-stream}
	WORKER_BIN=${WORKER_BIN:-$(dirname "$SMTPD")/redis-worker}
	SOCK=$BATS_TEST_TMPDIR/redis.sock
	WORKER_URL=$SOCK
	WORKER_PIDS=()
	REDIS_PIDS=()
}

# redis_teardown: call from teardown(); kills what the test started, by
# pid, after showing the workers' log of a failed test.
redis_teardown() {
	local p
	# A test may leave Redis stopped (SIGSTOP): the dumps below ask it.
	[ -z "${REDIS_PID-}" ] || kill -CONT "$REDIS_PID" 2>/dev/null || true
	if [ -z "${BATS_TEST_COMPLETED-}" ] && [ -e "$BATS_TEST_TMPDIR/worker.log" ]; then
		tail -n 60 "$BATS_TEST_TMPDIR/worker.log" | sed 's/^/# worker.log: /' >&3
		[ -z "${REDIS_PID-}" ] ||
			rcli XPENDING mail grp - + 10 2>&1 | sed 's/^/# pending: /' >&3
	fi
	for p in "${WORKER_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -s "$DUMP/running" ]; then
		kill "$(cat "$DUMP/running")" 2>/dev/null || true
	fi
	stop_server
	for p in ${REDIS_PID-} "${REDIS_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
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
# stream mail at $WORKER_URL [$SOCK]; its pid is appended to WORKER_PIDS,
# its log to worker.log.
start_worker() {
	local name=$1
	shift
	WORKER=$name "$WORKER_BIN" "$WORKER_URL" mail grp "$name" -- "$@" \
		</dev/null >>"$BATS_TEST_TMPDIR/worker.log" 2>&1 3>&- &
	WORKER_PIDS+=($!)
	wait_for 10 grep -q "consumer $name of group grp on mail: ready" \
		"$BATS_TEST_TMPDIR/worker.log"
}

# start_durable_redis: start_redis as the README's recipe runs it
# (appendonly yes, appendfsync always), its data in
# $BATS_TEST_TMPDIR/data; again after a kill -9, it loads that data.
start_durable_redis() {
	mkdir -p "$BATS_TEST_TMPDIR/data"
	start_redis --appendonly yes --appendfsync always \
		--dir "$BATS_TEST_TMPDIR/data"
}

# start_load CLIENTS MESSAGES: redis-noloss.py send to $PORT in the
# background (LOAD_PID): the keys of the messages answered 250 go to
# $BATS_TEST_TMPDIR/accepted, its summary to send.out.
start_load() {
	python3 "$FIXTURES/redis-noloss.py" send "$PORT" \
		"$BATS_TEST_TMPDIR/accepted" "$1" "$2" \
		>"$BATS_TEST_TMPDIR/send.out" 3>&- &
	LOAD_PID=$!
}

# logged REGEX: the workers logged a line matching REGEX (grep -E).
logged() {
	grep -Eq "$1" "$BATS_TEST_TMPDIR/worker.log"
}

# load_ids: the X-Load-Id of every entry's message in stream mail, sorted.
load_ids() {
	rcli --raw XRANGE mail - + | grep -a '^X-Load-Id: ' | cut -d ' ' -f 2 |
		tr -d '\r' | LC_ALL=C sort -u
}

# start_cluster: three redis-server masters with cluster-enabled on
# loopback (free ports, a private directory each, AOF always), joined by
# redis-cli --cluster create; returns once every node says cluster_state
# ok.  Their ports are in CLUSTER_PORTS, their pids in REDIS_PIDS.
start_cluster() {
	local i port dir addrs=()
	CLUSTER_PORTS=()
	for i in 1 2 3; do
		# The cluster bus listens on port + 10000: free as well.
		until port=$(free_port) && [ "$port" -lt 55535 ] &&
			! port_listening $((port + 10000)); do :; done
		dir=$BATS_TEST_TMPDIR/node$i
		mkdir -p "$dir"
		redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
			--cluster-config-file "$dir/nodes.conf" --dir "$dir" \
			--save '' --appendonly yes --appendfsync always \
			</dev/null >"$dir/log" 2>&1 3>&- &
		REDIS_PIDS+=($!)
		CLUSTER_PORTS+=("$port")
		addrs+=("127.0.0.1:$port")
		wait_for 10 redis-cli -p "$port" PING
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-yes >/dev/null
	for port in "${CLUSTER_PORTS[@]}"; do
		wait_for 30 cluster_ok "$port"
	done
}

cluster_ok() {
	redis-cli -p "$1" CLUSTER INFO | grep -q '^cluster_state:ok'
}

# ccli ARG...: redis-cli to the cluster, following redirections.
ccli() {
	redis-cli -c -p "${CLUSTER_PORTS[0]}" "$@"
}

# slot_owner KEY: the port of the master that holds KEY's slot (the
# others answer MOVED).
slot_owner() {
	local p
	for p in "${CLUSTER_PORTS[@]}"; do
		if ! redis-cli -p "$p" EXISTS "$1" | grep -q MOVED; then
			echo "$p"
			return
		fi
	done
}

# not_owner KEY: the port of a master that does not hold KEY's slot.
not_owner() {
	local p owner
	owner=$(slot_owner "$1")
	for p in "${CLUSTER_PORTS[@]}"; do
		[ "$p" = "$owner" ] || { echo "$p"; return; }
	done
}
