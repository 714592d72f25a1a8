#!/usr/bin/env bats
# units/smtpd-stdio-redis-worker@.service as `make install-units` writes
# it: clean for systemd-analyze, hardened (exposure <= 2.0), stopped the
# way redis-worker finishes an entry.

setup() {
	load test_helper/common
	common_setup
	PREFIX=$BATS_TEST_TMPDIR/prefix
	UNIT=$PREFIX/lib/systemd/system/smtpd-stdio-redis-worker@.service
	make -s -C "$ROOT" install-units PREFIX="$PREFIX" DESTDIR= >/dev/null
	# systemd-analyze verify wants the ExecStart program to exist.
	install -D -m 0755 "$(dirname "$SMTPD")/redis-worker" \
		"$PREFIX/libexec/smtpd-stdio/redis-worker"
}

@test "systemd-analyze verify: the redis-worker unit is clean" {
	run systemd-analyze verify --man=no "$UNIT"
	assert_success
	assert_output ''
}

@test "the redis-worker unit runs the installed worker, consumer = instance" {
	run grep -h '^ExecStart=' "$UNIT"
	assert_output "ExecStart=$PREFIX/libexec/smtpd-stdio/redis-worker \$REDIS_URL \$REDIS_STREAM \$REDIS_GROUP %i -- \$WORKER_HANDLER"
	# SIGTERM to the worker alone, so the running handler can finish.
	run grep -x -e 'KillMode=mixed' -e 'KillSignal=SIGTERM' \
		-e 'Restart=on-failure' -e 'RestartPreventExitStatus=64 78' "$UNIT"
	assert_equal "${#lines[@]}" 4
	run grep -l '@[A-Z]*DIR@' "$UNIT"
	assert_output ''
}

@test "systemd-analyze security: the redis-worker unit's exposure is at most 2.0" {
	assert_exposure "$UNIT"
}
