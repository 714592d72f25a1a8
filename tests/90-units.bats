#!/usr/bin/env bats
# The systemd units as `make install-units` writes them: clean for
# systemd-analyze, hardened (exposure <= 2.0), and able to deliver mail
# through the shipped maildir handler under that hardening.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	PREFIX=$BATS_TEST_TMPDIR/prefix
	UNITS=$PREFIX/lib/systemd/system
	mk_install PREFIX="$PREFIX" DESTDIR=
}

# mk_install VAR=VALUE...: `make install install-units`, with the binary
# under test ($SMTPD, maybe a sanitizer build) as the one make installs:
# BIN names it, -o keeps make from rebuilding it.
mk_install() {
	(umask 022 && make -s -C "$ROOT" install install-units \
		BIN="$SMTPD" -o "$SMTPD" \
		BIN_TLS="$SMTPD-tls" -o "$SMTPD-tls" "$@" >/dev/null)
}

teardown() {
	[ -z "${SD_UNSHARE-}" ] || systemd_ns_stop
}

@test "systemd-analyze verify: the sockets and the services are clean" {
	local name
	for name in smtpd-stdio smtpd-stdio-submission smtpd-stdio-submissions; do
		run systemd-analyze verify --man=no "$UNITS/$name.socket" \
			"$UNITS/$name@.service"
		assert_success
		assert_output ''
	done
}

@test "submission units: 587 with STARTTLS, 465 with TLS, AUTH required, keys through LoadCredential=" {
	run grep -h '^ListenStream=\|^Accept=' "$UNITS/smtpd-stdio-submission.socket" \
		"$UNITS/smtpd-stdio-submissions.socket"
	assert_output $'ListenStream=587\nAccept=yes\nListenStream=465\nAccept=yes'
	run grep -h '^Environment="SMTPD_OPTIONS=\|^LoadCredential=' \
		"$UNITS/smtpd-stdio-submission@.service"
	assert_line --index 0 'Environment="SMTPD_OPTIONS=--require-tls --require-auth --tls-cert cert.pem --tls-key key.pem --auth dovecot:/run/dovecot/auth-smtpd-stdio"'
	assert_line 'LoadCredential=cert.pem:/etc/smtpd-stdio/tls/fullchain.pem'
	assert_line 'LoadCredential=key.pem:/etc/smtpd-stdio/tls/privkey.pem'
	run grep -c '^Environment="SMTPD_OPTIONS=--tls --require-auth ' \
		"$UNITS/smtpd-stdio-submissions@.service"
	assert_output 1
	# The options as shipped are accepted by the binary (all but the
	# files, which systemd provides).
	run --separate-stderr "$SMTPD" --require-tls --require-auth \
		--tls-cert cert.pem --tls-key key.pem \
		--auth dovecot:/run/dovecot/auth-smtpd-stdio /bin/true </dev/null
	assert_failure 64
	[[ $stderr == *cert.pem* ]]
	run grep -c '^submission\|^submissions' "$PREFIX/etc/smtpd-stdio/inetd.conf"
	assert_output 2
}

@test "the installed units name the programs under PREFIX" {
	run grep -h '^ExecStart=\|^Environment="SMTPD_HANDLER' \
		"$UNITS/smtpd-stdio@.service"
	assert_line "ExecStart=$PREFIX/sbin/smtpd-stdio --log stderr \$SMTPD_OPTIONS -- \$SMTPD_HANDLER"
	assert_line "Environment=\"SMTPD_HANDLER=$PREFIX/libexec/smtpd-stdio/maildir /var/lib/smtpd-stdio/Maildir\""
	run grep -rl '@[A-Z]*DIR@' "$PREFIX"
	assert_output ''
}

@test "systemd-analyze security: each service's exposure is at most 2.0" {
	local unit
	for unit in smtpd-stdio@ smtpd-stdio-submission@ smtpd-stdio-submissions@; do
		assert_exposure "$UNITS/$unit.service"
	done
}

@test "the LMTP units: clean for systemd-analyze, a UNIX socket, --lmtp, exposure at most 2.0" {
	run systemd-analyze verify --man=no "$UNITS/smtpd-stdio-lmtp.socket" \
		"$UNITS/smtpd-stdio-lmtp@.service"
	assert_success
	assert_output ''
	run grep -x -e 'ListenStream=/var/spool/postfix/private/smtpd-stdio-lmtp' \
		-e 'Accept=yes' -e 'TriggerLimitIntervalSec=0' -e 'SocketMode=0600' \
		"$UNITS/smtpd-stdio-lmtp.socket"
	assert_equal "${#lines[@]}" 4
	run grep -h '^ExecStart=' "$UNITS/smtpd-stdio-lmtp@.service"
	assert_output "ExecStart=$PREFIX/sbin/smtpd-stdio --lmtp --log stderr \$SMTPD_OPTIONS -- \$SMTPD_HANDLER"
	assert_exposure "$UNITS/smtpd-stdio-lmtp@.service"
}

@test "the socket survives a burst: no trigger limit, connection limits set" {
	run grep -x -e 'Accept=yes' -e 'TriggerLimitIntervalSec=0' \
		-e 'MaxConnections=[0-9]*' -e 'MaxConnectionsPerSource=[0-9]*' \
		-e 'ListenStream=25' -e 'BindIPv6Only=both' \
		"$UNITS/smtpd-stdio.socket"
	assert_success
	assert_equal "${#lines[@]}" 6
}

# systemd_ns_start PORT: systemd as PID 1 of private namespaces, running
# the tree of `make install install-units PREFIX=/usr/local` on
# 127.0.0.1:PORT (tests/fixtures/systemd-ns-init).  Sets SD_PID (the host's
# pid of that PID 1), or fails with systemd's log: CI (root, Debian 12) can
# do this, so it never skips.
systemd_ns_start() {
	local port=$1 cg2 stage=$BATS_TEST_TMPDIR/stage i
	[ "$(id -u)" -eq 0 ] || fail "needs root to run systemd in namespaces"
	command -v unshare >/dev/null || fail "no unshare(1)"
	cg2=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
	[ -n "$cg2" ] || fail "no cgroup2 hierarchy mounted"
	# The fixture binds $stage/usr/local over /usr/local before its tmpfs
	# hide the host's /tmp and friends, so the service user never walks
	# the stage's (maybe 0700) parents.
	mkdir "$stage"
	mk_install PREFIX=/usr/local DESTDIR="$stage"
	# A cgroup of our own becomes the root of systemd's cgroup namespace,
	# so it creates nothing elsewhere in the host's tree.
	SD_CG=$cg2/smtpd-stdio-test.$$.$BATS_TEST_NUMBER
	mkdir "$SD_CG" || fail "cannot create a cgroup under $cg2"
	SD_LOG=$BATS_TEST_TMPDIR/systemd.log
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$SD_CG" \
		unshare --pid --fork --kill-child --mount --uts --ipc --cgroup \
		--propagation private --mount-proc \
		"$FIXTURES/systemd-ns-init" "$port" "$stage" \
		</dev/null >"$SD_LOG" 2>&1 3>&- &
	SD_UNSHARE=$!
	for i in $(seq 300); do
		SD_PID=$(ps -o pid= --ppid "$SD_UNSHARE" | tr -d ' ')
		if [ -n "$SD_PID" ] && nsenter -t "$SD_PID" -m -p \
		    systemctl is-active -q smtpd-stdio.socket 2>/dev/null; then
			return 0
		fi
		kill -0 "$SD_UNSHARE" 2>/dev/null || break
		sleep 0.1
	done
	echo "systemd log ($SD_LOG):"
	cat "$SD_LOG"
	fail "systemd did not bring up smtpd-stdio.socket in private namespaces"
}

systemd_ns_stop() {
	local i
	[ -z "${SD_PID-}" ] || kill -s RTMIN+4 "$SD_PID" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$SD_UNSHARE" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SD_UNSHARE" 2>/dev/null || true
	wait "$SD_UNSHARE" 2>/dev/null || true
	[ -z "${SD_CG-}" ] ||
		find "$SD_CG" -depth -type d -exec rmdir {} + 2>/dev/null || true
	SD_PID= SD_UNSHARE= SD_CG=
}

in_ns() {
	nsenter -t "$SD_PID" -m -p "$@"
}

@test "the hardened service delivers into the Maildir (real systemd)" {
	port=$(free_port)
	systemd_ns_start "$port"
	run smtp_client --8bit "$port" \
	    a@example.org b@example.net $'Subject: unit 0\n\n..dot\n\xc3\xa9t\xc3\xa9\n' \
	    a@example.org b@example.net $'Subject: unit 1\n\n..dot\n\xc3\xa9t\xc3\xa9\n' \
	    a@example.org b@example.net $'Subject: unit 2\n\n..dot\n\xc3\xa9t\xc3\xa9\n'
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]:1}" | cut -c1-4 | tr '\n' '|')" '250 |250 |250 |'
	new=/var/lib/smtpd-stdio/Maildir/new
	run in_ns sh -c "ls $new | wc -l"
	assert_output 3
	# Owned by the one dynamic user (released, so only its number is
	# left) that owns the state directory, readable by it alone.
	owner=$(in_ns stat -L -c %u /var/lib/smtpd-stdio)
	[ "$owner" -gt 0 ]
	run in_ns sh -c "stat -c '%a %u' $new/* | sort -u"
	assert_output "600 $owner"
	run in_ns sh -c "cat $new/*"
	assert_output --partial 'Received: from '
	assert_output --partial '[127.0.0.1]'
	assert_output --partial $'.dot\nété'
	# The per-message log lines reached the journal, not the client.
	run in_ns journalctl -q --no-pager -t smtpd-stdio
	assert_output --partial ' client=127.0.0.1 '
	assert_output --partial ' reply=250 '
	# ... and the handler had nothing to complain about in the sandbox.
	refute_output --partial ': handler: '
	# Every instance ended and was collected.
	run in_ns systemctl list-units --all --no-legend 'smtpd-stdio@*'
	assert_output ''
}
