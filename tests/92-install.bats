#!/usr/bin/env bats
# make install / install-units / uninstall into a DESTDIR: the exact files
# and modes, installed paths that match PREFIX, and nothing left behind.

setup() {
	load test_helper/common
	common_setup
	D=$BATS_TEST_TMPDIR/destdir
	mkdir -p "$D"
}

mk() {
	make -s -C "$ROOT" DESTDIR="$D" "$@"
}

# Every file and symlink under $D, with its mode, relative to $D.
tree() {
	(cd "$D" && find . ! -type d -printf '%m %y %P\n' | sort -k3)
}

@test "install and install-units put exactly these files, with these modes" {
	run mk install install-units
	assert_success
	run tree
	assert_output - <<-EOF
	644 f usr/local/etc/smtpd-stdio/inetd.conf
	755 f usr/local/etc/smtpd-stdio/tcpserver/run
	644 f usr/local/etc/smtpd-stdio/xinetd
	644 f usr/local/lib/systemd/system/smtpd-stdio-lmtp.socket
	644 f usr/local/lib/systemd/system/smtpd-stdio-lmtp@.service
	644 f usr/local/lib/systemd/system/smtpd-stdio-redis-worker@.service
	644 f usr/local/lib/systemd/system/smtpd-stdio-submission.socket
	644 f usr/local/lib/systemd/system/smtpd-stdio-submission@.service
	644 f usr/local/lib/systemd/system/smtpd-stdio-submissions.socket
	644 f usr/local/lib/systemd/system/smtpd-stdio-submissions@.service
	644 f usr/local/lib/systemd/system/smtpd-stdio.socket
	644 f usr/local/lib/systemd/system/smtpd-stdio@.service
	755 f usr/local/libexec/smtpd-stdio/debug
	755 f usr/local/libexec/smtpd-stdio/maildir
	755 f usr/local/libexec/smtpd-stdio/redis-stream
	755 f usr/local/libexec/smtpd-stdio/redis-worker
	755 f usr/local/libexec/smtpd-stdio/relay
	755 f usr/local/libexec/smtpd-stdio/webhook
	755 f usr/local/sbin/smtpd-stdio
	755 f usr/local/sbin/smtpd-stdio-tls
	644 f usr/local/share/man/man8/smtpd-stdio.8
	EOF
}

@test "every path in the installed units and entries is an installed file" {
	run mk install install-units PREFIX=/opt/smtpd
	assert_success
	run grep -rn '@[A-Z]*@\|/usr/local' "$D/opt/smtpd/lib" "$D/opt/smtpd/etc"
	assert_output ''
	paths=$(grep -rhoE '/opt/smtpd/[^[:space:]"]+' "$D/opt/smtpd/lib" \
		"$D/opt/smtpd/etc" | sort -u)
	assert_equal "$(echo "$paths" | wc -l)" 6
	for p in $paths; do
		[ -e "$D$p" ] || fail "$p is named but not installed"
	done
	run grep -h '^ExecStart=' "$D/opt/smtpd/lib/systemd/system/smtpd-stdio@.service"
	assert_output 'ExecStart=/opt/smtpd/sbin/smtpd-stdio --log stderr $SMTPD_OPTIONS -- $SMTPD_HANDLER'
}

@test "a distribution layout: SBINDIR, LIBEXECDIR, UNITDIR, SYSCONFDIR apart" {
	set -- PREFIX=/usr SBINDIR=/usr/sbin LIBEXECDIR=/usr/lib \
		UNITDIR=/lib/systemd/system SYSCONFDIR=/etc
	run mk install install-units "$@"
	assert_success
	run tree
	assert_output - <<-EOF
	644 f etc/smtpd-stdio/inetd.conf
	755 f etc/smtpd-stdio/tcpserver/run
	644 f etc/smtpd-stdio/xinetd
	644 f lib/systemd/system/smtpd-stdio-lmtp.socket
	644 f lib/systemd/system/smtpd-stdio-lmtp@.service
	644 f lib/systemd/system/smtpd-stdio-redis-worker@.service
	644 f lib/systemd/system/smtpd-stdio-submission.socket
	644 f lib/systemd/system/smtpd-stdio-submission@.service
	644 f lib/systemd/system/smtpd-stdio-submissions.socket
	644 f lib/systemd/system/smtpd-stdio-submissions@.service
	644 f lib/systemd/system/smtpd-stdio.socket
	644 f lib/systemd/system/smtpd-stdio@.service
	755 f usr/lib/smtpd-stdio/debug
	755 f usr/lib/smtpd-stdio/maildir
	755 f usr/lib/smtpd-stdio/redis-stream
	755 f usr/lib/smtpd-stdio/redis-worker
	755 f usr/lib/smtpd-stdio/relay
	755 f usr/lib/smtpd-stdio/webhook
	755 f usr/sbin/smtpd-stdio
	755 f usr/sbin/smtpd-stdio-tls
	644 f usr/share/man/man8/smtpd-stdio.8
	EOF
	run grep -h 'smtpd-stdio/maildir' "$D/etc/smtpd-stdio/inetd.conf"
	assert_output --partial '	/usr/sbin/smtpd-stdio	smtpd-stdio --log syslog /usr/lib/smtpd-stdio/maildir '
	run grep -h '^	@\|ln -s' "$D/etc/smtpd-stdio/tcpserver/run"
	assert_output --partial 'ln -s /etc/smtpd-stdio/tcpserver /etc/service/smtpd-stdio'
	run mk uninstall "$@"
	assert_success
	run tree
	assert_output ''
}

@test "uninstall removes every file and our own directories" {
	mk install install-units
	run mk uninstall
	assert_success
	run tree
	assert_output ''
	# Only the shared directories stay, empty.
	run sh -c "cd '$D' && find . -mindepth 1 -type d -printf '%P\n' | sort"
	assert_output - <<-EOF
	usr
	usr/local
	usr/local/etc
	usr/local/lib
	usr/local/lib/systemd
	usr/local/lib/systemd/system
	usr/local/libexec
	usr/local/sbin
	usr/local/share
	usr/local/share/man
	usr/local/share/man/man8
	EOF
}

@test "uninstall after install alone succeeds and leaves no file" {
	mk install
	run mk uninstall
	assert_success
	run tree
	assert_output ''
}

@test "install-units enables nothing: the xinetd service ships disabled" {
	mk install-units
	run grep -E '^[[:space:]]*disable[[:space:]]*=' "$D/usr/local/etc/smtpd-stdio/xinetd"
	assert_output --regexp '= yes$'
	# Enabling is a *.wants or *.requires directory of symlinks.
	run find "$D" \( -name '*.wants' -o -name '*.requires' -o -type l \) -printf '%P\n'
	assert_success
	assert_output ''
	[ ! -e "$D/etc" ]
}
