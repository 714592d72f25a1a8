#!/usr/bin/env bats
# --milter (SPEC 13) with a real rspamd: its proxy worker in milter mode,
# scanning itself (self_scan), on a UNIX socket, with a private
# configuration, database, run and log directory under this file's
# temporary directory, and a private dnsmasq on a loopback port as its
# only resolver (it serves the DKIM key of example.org and refuses the
# rest, so no verdict depends on the network).  Both are started once
# for the file (rspamd takes seconds to load) and killed by PID.

setup_file() {
	local D=$BATS_FILE_TMPDIR key port
	mkdir -p "$D/local/local.d" "$D/db" "$D/run" "$D/log"
	opendkim-genkey -D "$D" -d example.org -s test
	# The TXT record: its strings, unquoted, comma-separated for dnsmasq.
	key=$(grep -o '"[^"]*"' "$D/test.txt" | tr -d '"' | tr '\n' ',' | sed 's/,$//')
	port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	dnsmasq --keep-in-foreground --conf-file=/dev/null --port="$port" \
		--listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
		--user=root --group=root --pid-file="$D/dnsmasq.pidfile" \
		--txt-record="test._domainkey.example.org,$key" \
		--log-facility="$D/log/dnsmasq.log" &
	echo $! >"$D/dnsmasq.pid"
	# Ready when it answers the key's query (a loaded machine is slow).
	python3 - "$port" <<-'EOF'
	import socket, sys, time
	name = b"".join(bytes([len(p)]) + p for p in b"test._domainkey.example.org".split(b"."))
	query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x00\x10\x00\x01"
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(0.2)
	for _ in range(100):
	    try:
	        s.sendto(query, ("127.0.0.1", int(sys.argv[1])))
	        if b"DKIM1" in s.recv(4096):
	            sys.exit(0)
	    except OSError:
	        time.sleep(0.1)
	sys.exit("dnsmasq does not answer")
	EOF
	cat >"$D/rspamd.conf" <<-EOF
	.include "\$CONFDIR/common.conf"
	options {
	    pidfile = "$D/run/rspamd.pid";
	    .include "\$CONFDIR/options.inc"
	    .include(priority=10) "$D/options.inc"
	}
	logging {
	    type = "file";
	    filename = "$D/log/rspamd.log";
	    level = "info";
	}
	worker "rspamd_proxy" {
	    bind_socket = "$D/run/milter.sock mode=0600";
	    .include "\$CONFDIR/worker-proxy.inc"
	    .include(priority=10) "$D/worker-proxy.inc"
	}
	EOF
	cat >"$D/options.inc" <<-EOF
	disable_hyperscan = true;
	dns { nameserver = ["127.0.0.1:$port"]; timeout = 3s; retransmits = 3; }
	EOF
	cat >"$D/worker-proxy.inc" <<-EOF
	milter = yes;
	self_scan = yes;
	count = 1;
	upstream "local" { default = yes; self_scan = yes; }
	EOF
	cat >"$D/local/local.d/milter_headers.conf" <<-EOF
	use = ["x-spamd-result", "authentication-results"];
	skip_local = false;
	skip_authenticated = false;
	EOF
	rspamd -f -u root -g root -i -c "$D/rspamd.conf" --var="LOCAL_CONFDIR=$D/local" \
		--var="DBDIR=$D/db" --var="RUNDIR=$D/run" --var="LOGDIR=$D/log" &
	echo $! >"$D/rspamd.pid"
}

teardown_file() {
	load test_helper/common
	kill_pidfiles "$BATS_FILE_TMPDIR"
}

setup() {
	load test_helper/common
	common_setup
	unset_peer_env
	export TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=40000
	D=$BATS_FILE_TMPDIR
	RSPAMD=unix:$D/run/milter.sock
	wait_for 120 test -S "$D/run/milter.sock"
}

# A session with one message whose header and body are in file $1 (LF).
message_session() {
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nDATA\n'
		tr -d '\r' <"$1"
		printf '.\nQUIT\n'
	} >"$BATS_TEST_TMPDIR/in"
}

@test "rspamd: GTUBE is rejected with rspamd's 554 5.7.1 and the handler never runs" {
	printf 'From: a@example.org\nTo: b@example.net\nSubject: gtube\nMessage-ID: <g@example.org>\nDate: Mon, 07 Dec 2026 01:00:00 +0000\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n' >"$BATS_TEST_TMPDIR/msg"
	message_session "$BATS_TEST_TMPDIR/msg"
	run smtp_session --milter "$RSPAMD" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply . '^554 5\.7\.1 Gtube pattern$'
	assert_reply_after QUIT 221
	assert_no_message
	assert_spool_empty
}

@test "rspamd: a clean message reaches the handler with rspamd's headers, our authserv-id in them" {
	printf 'From: a@example.org\nTo: b@example.net\nSubject: hello\nMessage-ID: <c@example.org>\nDate: Mon, 07 Dec 2026 01:00:00 +0000\n\nJust a friendly note.\n' >"$BATS_TEST_TMPDIR/msg"
	message_session "$BATS_TEST_TMPDIR/msg"
	run smtp_session --milter "$RSPAMD" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after . 250
	run grep -c -e '^X-Spamd-Result: default: False \[' -e '^Authentication-Results: mx\.test;$' "$DUMP/1/message"
	assert_output 2
	run tail -n 2 "$DUMP/1/message"
	assert_output "$(printf '\nJust a friendly note.')"
}

@test "rspamd: a DKIM-signed message gets Authentication-Results: <authserv-id>; dkim=pass, a forged one is gone" {
	{
		printf 'Authentication-Results: mail.example.org; dkim=pass header.d=bank.example\n'
		printf 'From: a@example.org\nTo: b@example.net\nSubject: signed\nMessage-ID: <s@example.org>\nDate: Mon, 07 Dec 2026 01:00:00 +0000\n\nSigned text.\n'
	} | "$FIXTURES/dkim-sign.py" "$D/test.private" example.org test >"$BATS_TEST_TMPDIR/msg"
	message_session "$BATS_TEST_TMPDIR/msg"
	run smtp_session --authserv-id mail.example.org --milter "$RSPAMD" "$HANDLERS/dump" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_reply_after . 250
	run grep -A1 '^Authentication-Results:' "$DUMP/1/message"
	assert_line --index 0 'Authentication-Results: mail.example.org;'
	assert_line --index 1 --regexp '^	dkim=pass header\.d=example\.org header\.s=test header\.b='
	run grep -c 'bank\.example' "$DUMP/1/message"
	assert_output 0
}
