#!/usr/bin/env bats
# The shipped inetd, xinetd and tcpserver entries, as `make install-units`
# writes them, run for real on a loopback port: a real SMTP client's mail
# lands in the Maildir and the client's address reaches the handler.

setup_file() {
	load test_helper/common
	# The three entries run smtpd-stdio as an unprivileged user, so what
	# they run is installed (make install) under a 0755 directory whose
	# parents that user can walk too: never under the checkout or the bats
	# directories, which may sit below a 0700 one (/root, mktemp -d).
	W=$(world_dir 91)
	export W
}

teardown_file() {
	rm -rf "$W"
}

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	[ "$(id -u)" -eq 0 ] || fail "the super-servers are started as root"
	: "${W:?}"
	T=$W/$BATS_TEST_NUMBER
	PREFIX=$T/prefix
	mkdir -m 0755 "$T"
	mkdir "$T/Maildir" "$T/env"
	chown nobody "$T/Maildir" "$T/env"
	# The binary under test ($SMTPD, maybe a sanitizer build) as the one
	# make installs.
	install_tree "$PREFIX"
	# The entries' handler, wrapped to record the environment it was given.
	mv "$PREFIX/libexec/smtpd-stdio/maildir" "$T/maildir"
	cat >"$PREFIX/libexec/smtpd-stdio/maildir" <<-SH
	#!/bin/sh
	env >"$T/env/\$SMTP_ID"
	exec "$T/maildir" "\$@"
	SH
	chmod 0755 "$PREFIX/libexec/smtpd-stdio/maildir"
	ETC=$PREFIX/etc/smtpd-stdio
	PORT=$(free_port)
	DAEMON=
}

teardown() {
	if [ -n "${DAEMON-}" ]; then
		kill "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	fi
}

# The entries' own user and Maildir become nobody and $T/Maildir.  The
# daemons run without the tests' TMPDIR, which nobody cannot write.
localise() {
	sed -e "s|/var/lib/smtpd-stdio/Maildir|$T/Maildir|g" \
		-e 's/\([[:space:]]nowait[[:space:]]*\)smtpd-stdio/\1nobody/' \
		-e 's/^\([[:space:]]*user[[:space:]]*=[[:space:]]*\).*/\1nobody/' "$@"
}

# pkg_bin PACKAGE PATH: PATH from the installed package, else from the
# package's .deb fetched with apt-get download (openbsd-inetd and xinetd
# conflict in Debian, so one of them is never installed).
pkg_bin() {
	local pkg=$1 path=$2 dir=$BATS_FILE_TMPDIR/$1
	if dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null |
	    grep -q '^install ok installed$' && [ -x "$path" ]; then
		echo "$path"
		return 0
	fi
	if [ ! -x "$dir/root$path" ]; then
		mkdir -p "$dir" &&
		(cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1) &&
		dpkg-deb -x "$dir"/"$pkg"_*.deb "$dir/root" || return 1
	fi
	echo "$dir/root$path"
}

wait_listening() {
	wait_for 5 port_listening "$PORT" || {
		echo "nothing listens on port $PORT" >&2
		return 1
	}
}

# send_mail: one message with a real client; prints the client's port.
send_mail() {
	local out port
	out=$(smtp_client --helo client.test --8bit "$PORT" a@example.org b@example.net \
	    $'Subject: superserver\n\n..dot\nbody \xc3\xa9\n') || return
	read -r _ port <<<"$out"
	echo "$port"
}

# assert_delivered CLIENTPORT: one message in new/, whose handler saw the
# client as 127.0.0.1:CLIENTPORT.
assert_delivered() {
	local cport=$1 f
	run ls "$T/Maildir/new"
	assert_equal "${#lines[@]}" 1
	f=$T/Maildir/new/${lines[0]}
	run cat "$f"
	assert_output --partial 'Received: from client.test ('
	assert_output --partial '[127.0.0.1])'
	assert_output --partial $'Subject: superserver\n\n..dot\nbody é'
	run stat -c '%U %a' "$f"
	assert_output 'nobody 600'
	ENVFILE=$(ls -d "$T"/env/*)
	run grep -x -e SMTP_REMOTE_ADDR=127.0.0.1 -e "SMTP_REMOTE_PORT=$cport" \
		-e SMTP_LOCAL_ADDR=127.0.0.1 -e "SMTP_LOCAL_PORT=$PORT" \
		-e SMTP_HELO=client.test "$ENVFILE"
	assert_equal "${#lines[@]}" 5
}

@test "openbsd-inetd: the shipped inetd.conf line delivers, peer from getpeername" {
	inetd=$(pkg_bin openbsd-inetd /usr/sbin/inetd) ||
		fail "openbsd-inetd: not installed and apt-get download failed"
	localise -e "s/^smtp\([[:space:]]\)/127.0.0.1:$PORT\1/" \
		"$ETC/inetd.conf" >"$T/inetd.conf"
	run grep -c "^127.0.0.1:$PORT	stream	tcp	nowait	nobody	$PREFIX/sbin/smtpd-stdio	smtpd-stdio --log syslog $PREFIX/libexec/smtpd-stdio/maildir $T/Maildir\$" "$T/inetd.conf"
	assert_output 1
	# inetd always writes /run/inetd.pid: give it a /run of its own.
	env -u TMPDIR unshare --mount --propagation private sh -c \
		'mount -t tmpfs tmpfs /run && exec "$0" -i "$1"' \
		"$inetd" "$T/inetd.conf" 3>&- &
	DAEMON=$!
	wait_listening
	run send_mail
	assert_success
	assert_delivered "$output"
}

@test "xinetd: the shipped service file delivers, peer from getpeername" {
	xinetd=$(pkg_bin xinetd /usr/sbin/xinetd) ||
		fail "xinetd: not installed (it conflicts with openbsd-inetd) and apt-get download failed"
	# An unlisted service on our port, on loopback, enabled.
	localise -e 's/^service smtp$/service smtpd-stdio-test/' \
		-e 's/^\([[:space:]]*disable[[:space:]]*=\).*/\1 no/' \
		-e '/^[[:space:]]*flags[[:space:]]*=/d' \
		-e "s/^{\$/{\\n\\ttype = UNLISTED\\n\\tport = $PORT\\n\\tbind = 127.0.0.1/" \
		"$ETC/xinetd" >"$T/xinetd.conf"
	run grep -c "server_args	= --log syslog $PREFIX/libexec/smtpd-stdio/maildir $T/Maildir\$" "$T/xinetd.conf"
	assert_output 1
	env -u TMPDIR "$xinetd" -dontfork -f "$T/xinetd.conf" -pidfile "$T/xinetd.pid" \
		>"$T/xinetd.log" 2>&1 3>&- &
	DAEMON=$!
	wait_listening || { cat "$T/xinetd.log"; false; }
	run send_mail
	assert_success
	assert_delivered "$output"
}

@test "tcpserver: the shipped run script delivers, UCSPI variables set" {
	command -v tcpserver >/dev/null || fail "ucspi-tcp is not installed"
	# The run script takes its settings from the environment.
	localise "$ETC/tcpserver/run" >"$T/run"
	chmod 0755 "$T/run"
	env -u TMPDIR SMTPD_IP=127.0.0.1 SMTPD_PORT="$PORT" SMTPD_USER=nobody \
		"$T/run" >"$T/tcpserver.log" 2>&1 3>&- &
	DAEMON=$!
	wait_listening || { cat "$T/tcpserver.log"; false; }
	run send_mail
	assert_success
	cport=$output
	assert_delivered "$cport"
	run grep -x -e TCPREMOTEIP=127.0.0.1 -e "TCPREMOTEPORT=$cport" \
		-e TCPLOCALIP=127.0.0.1 -e "TCPLOCALPORT=$PORT" -e PROTO=TCP \
		"$ENVFILE"
	assert_equal "${#lines[@]}" 5
	# smtpd-stdio's log went to the run script's stdout (the service log).
	run cat "$T/tcpserver.log"
	assert_output --partial 'tcpserver: status: 1/256'
	assert_output --partial 'smtpd-stdio['
}
