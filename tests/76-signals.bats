#!/usr/bin/env bats
# SIGTERM and SIGHUP (SPEC 6): a running handler finishes and its reply is
# sent, so a delivered message is never retried as a duplicate; then (or
# at once when idle) 421 4.3.2 and exit 1.  No handler outlives us.

setup() {
	load test_helper/common
	common_setup
}

# group_gone PGID: no live process is left in process group PGID.
group_gone() {
	local p
	for p in $(pgrep -g "$1"); do
		process_gone "$p" || return 1
	done
}

signal_session() {
	python3 "$FIXTURES/signal-session.py" "$@"
}

@test "SIGTERM while idle: 421 4.3.2 at once, exit 1, logged" {
	run --separate-stderr signal_session TERM idle -- "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/dump"
	assert_success
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_line --index -1 'exit=1'
	[[ $stderr == *'stopping on signal 15'* ]]
	[[ $stderr == *'exit=1'* ]]
}

@test "SIGHUP while idle: 421 4.3.2 at once, exit 1" {
	run --separate-stderr signal_session HUP idle -- "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/dump"
	assert_success
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_line --index -1 'exit=1'
}

@test "SIGTERM in the middle of DATA: 421 4.3.2, the handler never runs" {
	run --separate-stderr signal_session TERM data -- "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/dump"
	assert_success
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_line --index -1 'exit=1'
	assert_no_message
}

@test "SIGTERM while the handler runs: its 250 is sent, then 421 4.3.2; nothing pipelined runs" {
	run --separate-stderr signal_session TERM handler -- "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/waitgo"
	assert_success
	assert_line --index -3 --regexp '^250 2\.0\.0 OK: queued as '
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_line --index -1 'exit=1'
	# No reply to the pipelined MAIL of the second message.
	assert_equal "$(grep -c '^250 2\.1\.0' <<<"$output")" 1
	# Delivered exactly once, and the second message never reached a handler.
	assert_equal "$(wc -l <"$DUMP/delivered")" 1
	[[ $stderr == *'reply=250'* ]]
}

@test "SIGHUP while the handler runs: its reply is sent, then 421 4.3.2" {
	run --separate-stderr signal_session HUP handler -- "$SMTPD" --hostname mx.test --log stderr "$HANDLERS/waitgo"
	assert_success
	assert_line --index -3 --regexp '^250 2\.0\.0 OK: queued as '
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_equal "$(wc -l <"$DUMP/delivered")" 1
}

@test "SIGTERM while a handler hangs: killed at --handler-timeout, 451, 421, and its group is gone" {
	run --separate-stderr signal_session TERM hang -- "$SMTPD" --hostname mx.test --log stderr \
	    --handler-timeout 1 "$HANDLERS/waitgo"
	assert_success
	assert_line --index -3 --regexp '^451 4\.3\.0 '
	assert_line --index -2 '421 4.3.2 mx.test Service shutting down'
	assert_line --index -1 'exit=1'
	pid=$(cat "$DUMP/started")
	process_gone "$pid"
	# SIGKILL went to the whole group; its members may take a moment to be reaped.
	wait_for 10 group_gone "$pid"
	assert [ ! -e "$DUMP/delivered" ]
}

@test "the handler does not inherit the blocked stop signals: SIGTERM to it still ends it" {
	cat >"$BATS_TEST_TMPDIR/h" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	grep -E '^Sig(Blk|Ign)' /proc/self/status >"$DUMP/sigs"
	exit 0
	EOF
	chmod +x "$BATS_TEST_TMPDIR/h"
	run --separate-stderr send_messages 1 "$BATS_TEST_TMPDIR/h"
	assert_success
	run cat "$DUMP/sigs"
	assert_line 'SigBlk:	0000000000000000'
}
