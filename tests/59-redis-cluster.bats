#!/usr/bin/env bats
# redis-stream and redis-worker against a real Redis Cluster of three
# masters that each test starts on loopback (SPEC 12: MOVED and ASK are
# followed).

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/redis
	redis_setup
	start_cluster
}

teardown() {
	redis_teardown
}

# migration_of KEY: the two masters of a migration of KEY's slot, slot:
# owner, the port of the one that has it, and target, another's; src_id
# and dst_id, their node ids.
migration_of() {
	owner=$(slot_owner "$1")
	target=$(not_owner "$1")
	slot=$(ccli CLUSTER KEYSLOT "$1")
	src_id=$(redis-cli -p "$owner" CLUSTER MYID)
	dst_id=$(redis-cli -p "$target" CLUSTER MYID)
}

# begin_migration: slot is IMPORTING on target and MIGRATING on owner, as
# a resharding leaves them before it moves the keys.
begin_migration() {
	redis-cli -p "$target" CLUSTER SETSLOT "$slot" IMPORTING "$src_id" >/dev/null
	redis-cli -p "$owner" CLUSTER SETSLOT "$slot" MIGRATING "$dst_id" >/dev/null
}

@test "cluster: redis-stream through a node that does not own the stream's slot follows MOVED" {
	other=$(not_owner mail)
	owner=$(slot_owner mail)
	[ "$other" != "$owner" ]
	run --separate-stderr env SMTP_ID=m1 SMTP_MAIL_FROM=a@example.org \
		"$STREAM_H" "redis://127.0.0.1:$other" mail </dev/null
	assert_success
	assert_equal "$(redis-cli -p "$owner" XLEN mail)" 1
	run redis-cli -p "$other" XLEN mail
	assert_output --regexp '^MOVED [0-9]+ 127\.0\.0\.1:'"$owner"'$'
}

@test "cluster: a worker started on another node delivers, acknowledges and dead-letters across slots" {
	other=$(not_owner mail)
	WORKER_URL=redis://127.0.0.1:$other
	for i in 1 2 3; do
		SMTP_ID=m$i "$STREAM_H" "$WORKER_URL" mail </dev/null
	done
	echo 0 >"$DUMP/status"
	start_worker w1 "$HANDLERS/note"
	wait_for 20 is 3 lines_of "$DUMP/runs"
	wait_for 10 is 0 eval 'ccli XPENDING mail grp | head -n 1'
	# mail:dead hashes to another slot than mail: MOVED there and back.
	echo 65 >"$DUMP/status"
	SMTP_ID=m4 "$STREAM_H" "$WORKER_URL" mail </dev/null
	wait_for 20 is 1 ccli XLEN mail:dead
	wait_for 10 is 0 eval 'ccli XPENDING mail grp | head -n 1'
	[ "$(slot_owner mail:dead)" != "$(slot_owner mail)" ] ||
		echo "# mail and mail:dead share a node" >&3
}

@test "cluster: during a slot migration redis-stream follows ASK (ASKING first) to the importing node" {
	key=mail
	migration_of "$key"
	begin_migration
	# The key is not on the source yet, so the source answers ASK.
	run redis-cli -p "$owner" XLEN "$key"
	assert_output --regexp "^ASK $slot 127\\.0\\.0\\.1:$target\$"
	run --separate-stderr env SMTP_ID=m1 "$STREAM_H" \
		"redis://127.0.0.1:$owner" "$key" </dev/null
	assert_success
	run redis-cli -p "$target" <<-EOF
	ASKING
	XLEN $key
	EOF
	assert_output $'OK\n1'
}

@test "cluster: REDIS_WAIT after an ASK waits on the node that took the XADD, not on the one that sent it there" {
	key=mail
	migration_of "$key"
	# A replica for the source only.
	until port=$(free_port) && [ "$port" -lt 55535 ] &&
		! port_listening $((port + 10000)); do :; done
	dir=$BATS_TEST_TMPDIR/replica
	mkdir -p "$dir"
	redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
		--cluster-config-file "$dir/nodes.conf" --dir "$dir" --save '' \
		--appendonly no </dev/null >"$dir/log" 2>&1 3>&- &
	REDIS_PIDS+=($!)
	wait_for 10 redis-cli -p "$port" PING
	redis-cli --cluster add-node "127.0.0.1:$port" "127.0.0.1:$owner" \
		--cluster-slave --cluster-master-id "$src_id" >/dev/null
	linked() {
		redis-cli -p "$port" INFO replication | grep -q '^master_link_status:up'
	}
	wait_for 30 linked
	run --separate-stderr env SMTP_ID=m0 REDIS_WAIT=1 "$STREAM_H" \
		"redis://127.0.0.1:$owner" "{mail}:check" </dev/null
	assert_success
	begin_migration
	# The XADD lands on the target, which has no replica: not confirmed.
	run --separate-stderr env SMTP_ID=m1 REDIS_WAIT=1 REDIS_TIMEOUT=2 \
		"$STREAM_H" "redis://127.0.0.1:$owner" "$key" </dev/null
	assert_failure 75
	assert_equal "$stderr" 'redis-stream: WAIT: replicas that confirmed: 0'
	run redis-cli -p "$target" <<-EOF
	ASKING
	XLEN $key
	EOF
	assert_output $'OK\n1'
}
