#!/usr/bin/env bats
# No loss under load: 50 concurrent clients x 20 messages through
# systemd-socket-activate --accept into the shipped maildir handler.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	MD=$BATS_TEST_TMPDIR/Maildir
	LOG=$BATS_TEST_TMPDIR/server.log
	SA=
}

teardown() {
	if [ -n "$SA" ]; then
		kill "$SA" 2>/dev/null || true
		wait "$SA" 2>/dev/null || true
	fi
}

@test "50 clients x 20 messages: every 2xx'd message in new/ once, intact" {
	port=$(free_port)
	systemd-socket-activate --accept --inetd -l "127.0.0.1:$port" \
		-E TMPDIR "$SMTPD" --hostname mx.test --log stderr \
		"$ROOT/src/handlers/maildir" "$MD" 2>"$LOG" 3>&- &
	SA=$!
	wait_for 5 port_listening "$port"
	# Only a bound on answering at all: the duration is make bench's.
	run timeout 600 python3 "$FIXTURES/load-client.py" "$port" "$MD" 50 20
	echo "# $(head -n 1 <<<"$output")" >&3
	assert_success
	assert_line --index 0 --regexp '^clients=50 messages=1000 accepted=1000 refused=0 delivered=1000 missing=0 problems=0 '
	# One log line per message, all 250.
	run grep -c ' reply=250 ' "$LOG"
	assert_output 1000
	# Every session and handler has ended; nothing left in the spool.
	for i in $(seq 50); do
		[ -z "$(ps -o pid= --ppid "$SA")" ] && break
		sleep 0.1
	done
	run ps -o pid=,stat=,args= --ppid "$SA"
	assert_output ''
	# (nor any other process than systemd-socket-activate itself)
	run awk -v md="$MD" -v sa="$SA" 'index($0, md) && $1 != sa && $2 != "awk"' \
		<<<"$(ps -eo pid=,args=)"
	assert_output ''
	assert_spool_empty
}
