#!/usr/bin/env bats
# Issue 20's review of TLS and AUTH (SPEC 8, 9): tickets only with keys,
# the ticket-key file's checks and rotation, set-up errors under inetd,
# a tampered record, the pipelining check under TLS, SIGCHLD ignored by
# the superserver, and the hand-over to smtpd-stdio-tls.

setup_file() {
	local d=$BATS_FILE_TMPDIR/pki
	load test_helper/common
	load test_helper/tls
	mkdir -p "$d"
	pki_self_signed "$d" ec mx mx.example.test DNS:mx.example.test
	head -c 96 /dev/urandom >"$d/tickets"
	chmod 600 "$d/tickets"
}

setup() {
	load test_helper/common
	load test_helper/tcp
	load test_helper/tls
	common_setup
	tls_setup mx
}

teardown() {
	stop_server
}

# quit_with_ticket_keys FILE: `run` of smtpd-stdio with the certificate
# and --tls-ticket-keys FILE on a session of QUIT alone; its log in $stderr.
quit_with_ticket_keys() {
	run --separate-stderr "${SERVER[@]}" "$SMTPD" --hostname mx.test \
	    --log stderr "${TLS[@]}" --tls-ticket-keys "$1" \
	    "$HANDLERS/accept" <<<$'QUIT\r'
}

# handshake_messages PORT: the TLS handshake messages openssl s_client
# saw in a STARTTLS session (TLS 1.3) that ends with QUIT.
handshake_messages() {
	printf 'QUIT\r\n' | timeout -k 5 30 openssl s_client -ign_eof -msg \
	    -connect "127.0.0.1:$1" -starttls smtp -tls1_3 2>&1 |
	    sed -n 's/^<<< TLS 1.3, Handshake \[length [0-9a-f]*\], //p'
}

@test "no NewSessionTicket without --tls-ticket-keys; with it, the server sends one" {
	start_server "${TLS[@]}" "$HANDLERS/accept"
	run handshake_messages "$PORT"
	assert_line ServerHello
	assert_line Finished
	refute_line NewSessionTicket
	stop_server
	start_server "${TLS[@]}" --tls-ticket-keys "$PKI/tickets" "$HANDLERS/accept"
	run handshake_messages "$PORT"
	assert_line ServerHello
	assert_line NewSessionTicket
}

@test "a ticket-key file others may read is logged as a warning; mode 0600 is not" {
	cp "$PKI/tickets" "$BATS_TEST_TMPDIR/open"
	chmod 644 "$BATS_TEST_TMPDIR/open"
	quit_with_ticket_keys "$BATS_TEST_TMPDIR/open"
	assert_success
	[[ $stderr == *"--tls-ticket-keys $BATS_TEST_TMPDIR/open: readable by others (mode 0644)"* ]] ||
		fail "no warning: $stderr"
	quit_with_ticket_keys "$PKI/tickets"
	assert_success
	[[ $stderr != *"readable by others"* ]] || fail "warned: $stderr"
}

@test "a ticket-key file of another size is refused naming its real size (240 octets, not 193)" {
	head -c 240 /dev/urandom >"$BATS_TEST_TMPDIR/five"
	usage_error "${TLS[@]}" --tls-ticket-keys "$BATS_TEST_TMPDIR/five" \
	    "$HANDLERS/accept"
	[[ $stderr == *'not 240 octets'* ]] || fail "$stderr"
	head -c 200 /dev/urandom >"$BATS_TEST_TMPDIR/odd"
	usage_error "${TLS[@]}" --tls-ticket-keys "$BATS_TEST_TMPDIR/odd" \
	    "$HANDLERS/accept"
	[[ $stderr == *'not 200 octets'* ]] || fail "$stderr"
}

# The literal block after "Rotate the session-ticket keys" in the man page.
rotation_recipe() {
	sed -n '/^Rotate the session-ticket keys/,/^\.Ed/p' "$ROOT/smtpd-stdio.8" |
	    sed '1,2d;$d'
}

@test "the man page's ticket-key rotation: never readable by others, owned by the service user, three keys kept" {
	local recipe f=$BATS_TEST_TMPDIR/tickets i
	recipe=$(rotation_recipe)
	[[ $recipe == *'f=/etc/smtpd-stdio/tls/tickets'* ]] || fail "recipe: $recipe"
	recipe=${recipe//\/etc\/smtpd-stdio\/tls\/tickets/$f}
	# As root, for a service that runs as nobody instead of smtpd-stdio.
	recipe=${recipe//chown smtpd-stdio/chown nobody}
	for i in 1 2 3 4; do
		# The caller's umask is the usual one: the recipe sets its own.
		(umask 022 && sh -c "$recipe") || fail "the recipe failed"
		run stat -c '%a %U %s' "$f"
		if [ "$i" -lt 3 ]; then
			assert_output "600 nobody $((i * 48))"
		else
			assert_output '600 nobody 144'
		fi
	done
	[ ! -e "$f.new" ] || fail "$f.new left behind"
	# The file is never created readable by others: umask before any
	# redirection into it.
	run sh -c 'printf "%s\n" "$1" | grep -n -m1 -e "umask 077" -e ">" | head -1' sh "$recipe"
	assert_output --partial 'umask 077'
}

@test "TLS set-up errors under inetd reach syslog, never the client (fds 0, 1 and 2 one socket)" {
	local key=bad.key tls=--tls
	printf 'not a key\n' >"$BATS_TEST_TMPDIR/bad.key"
	inetd_setup_error
	# Without --tls smtpd-stdio checks what it can before its greeting.
	key=missing.key tls=
	inetd_setup_error
}

# inetd_setup_error: smtpd-stdio with $PKI/mx.pem, $key and $tls on one
# socket as fds 0, 1 and 2, /run/systemd/journal/dev-log ours (unshare).
inetd_setup_error() {
	# shellcheck disable=SC2086 # $tls is a word or none
	run timeout -k 5 60 unshare -m sh -c '
	    mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal &&
	    exec python3 - "$@"' sh "$SMTPD" "$PKI/mx.pem" \
	    "$BATS_TEST_TMPDIR/$key" "$HANDLERS/accept" $tls <<-'EOF'
	import os, socket, subprocess, sys
	sys.path.insert(0, os.environ["PYTHONPATH"])
	from tlsdrive import *
	log = dev_log()
	ours, theirs = socket.socketpair()
	smtpd, cert, key, handler = sys.argv[1:5]
	p = subprocess.Popen([smtpd, *sys.argv[5:], "--tls-cert", cert, "--tls-key",
	                      key, handler], stdin=theirs, stdout=theirs, stderr=theirs)
	theirs.close()
	ours.settimeout(30)
	got = b""
	while True:
	    b = ours.recv(4096)
	    if not b:
	        break
	    got += b
	print("client got %r" % got)
	print("exit", p.wait(30))
	print_syslog(log)
	EOF
	assert_success
	assert_line --index 0 "client got b''"
	assert_line --index 1 'exit 64'
	assert_line --regexp "^syslog <19>.*smtpd-stdio\[[0-9]+\]: --tls-cert $PKI/mx.pem --tls-key $BATS_TEST_TMPDIR/$key: "
}

@test "a TLS record that fails to authenticate mid-session is an error: exit 1, logged, nothing more written" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    "${TLS[@]}" "$HANDLERS/accept" <<-'EOF'
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context())
	print(c.code("EHLO a"))
	c.tls.write(b"NOOP\r\n")
	rec = bytearray(c.outgoing.read())
	rec[-1] ^= 1                    # one bit of the record's tag
	c.raw_write(bytes(rec))
	print(repr(c.reply()), c.wait())
	EOF
	assert_line --index 0 '250'
	assert_line --index 1 "'' 1"
	run grep -c 'TLS read: ' "$LOG"
	assert_output 1
}

@test "under TLS the pipelining check sees decrypted bytes: EHLO and NOOP in one record or in two, 554 alike" {
	local n
	start_server "${TLS[@]}" "$HANDLERS/accept"
	for n in 1 2; do
		run drive "$PORT" "$n" <<-'EOF'
		c = Client.tcp(int(sys.argv[1]))
		c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
		c.starttls(client_context())
		if sys.argv[2] == "1":
		    c.tls.write(b"EHLO a\r\nNOOP\r\n")
		else:
		    c.tls.write(b"EHLO a\r\n")
		    c.tls.write(b"NOOP\r\n")
		c.raw_write(c.outgoing.read())  # both records in one write
		print(c.reply()[:3])
		EOF
		assert_output 554
	done
	SERVER_EXIT=1 stop_server
}

@test "started with SIGCHLD ignored (as some superservers do), checkpassword AUTH and the handler still work" {
	printf '%s\r\n' 'EHLO a' 'AUTH PLAIN AGFsaWNlAHNlY3JldA==' \
	    'MAIL FROM:<a@example.org>' 'RCPT TO:<b@example.net>' DATA x . QUIT \
	    >"$BATS_TEST_TMPDIR/in"
	run timeout -k 5 60 python3 -c '
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execv(sys.argv[1], sys.argv[1:])' "$SMTPD" --hostname mx.test --log stderr \
	    --auth "checkpassword:$FIXTURES/checkpassword" --auth-plaintext \
	    "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line --partial '235 2.7.0'
	assert_line --regexp '^250 2\.0\.0 .*'
	refute_line --partial 'No child processes'
}

@test "a program without TLS run as smtpd-stdio-tls refuses (exit 64, nothing written) instead of running itself in a loop" {
	mkdir "$BATS_TEST_TMPDIR/loop"
	cp "$SMTPD" "$BATS_TEST_TMPDIR/loop/smtpd-stdio"
	cp "$SMTPD" "$BATS_TEST_TMPDIR/loop/smtpd-stdio-tls"
	run --separate-stderr timeout -k 5 10 "$BATS_TEST_TMPDIR/loop/smtpd-stdio" \
	    --log stderr --tls "${TLS[@]}" "$HANDLERS/accept" </dev/null
	assert_failure 64
	assert_output ''
	[[ $stderr == *"was run as smtpd-stdio-tls, but has no TLS"* ]] || fail "$stderr"
	# At STARTTLS: no 220 (smtpd-stdio-tls sends it), no loop.
	printf '%s\r\n' 'EHLO a' STARTTLS >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr timeout -k 5 10 "$BATS_TEST_TMPDIR/loop/smtpd-stdio" \
	    --log stderr "${TLS[@]}" "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_failure 64
	refute_line --partial '220 2.0.0'
	[[ $stderr == *"was run as smtpd-stdio-tls, but has no TLS"* ]] || fail "$stderr"
}

# A Dovecot auth socket that accepts and never says a word; the drive
# script counts its connections (silent.count()).
SILENT_DOVECOT='
import socket, threading
class Silent:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.bind(path)
        self.s.listen(8)
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()
    def run(self):
        while True:
            self.conns.append(self.s.accept()[0])
    def count(self):
        time.sleep(0.2)     # let a connection that is on its way arrive
        return len(self.conns)
'

@test "Dovecot is asked only at an EHLO that offers AUTH, never before the greeting or the handshake; silent, it gets 454 at once afterwards" {
	run drive "$BATS_TEST_TMPDIR/auth" "${SERVER[@]}" "$SMTPD" --hostname mx.test \
	    --log stderr --timeout 2 --auth "dovecot:$BATS_TEST_TMPDIR/auth" \
	    "${TLS[@]}" "$HANDLERS/accept" <<-EOF
	$SILENT_DOVECOT
	silent = Silent(sys.argv[1])
	c = Client.pipe(sys.argv[2:])
	print(c.reply()[:3], silent.count())
	print("AUTH" in c.cmd("EHLO a"), silent.count())
	c.cmd("STARTTLS")
	c.starttls(client_context())
	print(silent.count())
	print(c.cmd("EHLO a").split("\n")[-2], silent.count())
	print(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), silent.count())
	print(c.cmd("QUIT")[:3], c.wait())
	EOF
	assert_success
	assert_line --index 0 '220 0'
	assert_line --index 1 'False 0'
	assert_line --index 2 '0'
	assert_line --index 3 '250-AUTH PLAIN LOGIN 1'
	assert_line --index 4 '454 4.7.0 Temporary authentication failure 1'
	assert_line --index 5 '221 0'
}

# scan_memory(PID, WORDS): the WORDS found in a writable mapping (heap,
# stack, static data) of process PID or of a child of it (the server
# under timeout).
SCAN_MEMORY='
def scan_memory(pid, words):
    found = set()
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        for kid in f.read().split():
            found |= set(scan_memory(int(kid), words))
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb") as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if "rw" not in perms:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > 1 << 30:
                continue            # the ASan shadow: reserved, not data
            for at in range(lo, hi, 1 << 24):
                try:
                    mem.seek(max(lo, at - 4096))   # words across chunks
                    data = mem.read(min(hi, at + (1 << 24)) - max(lo, at - 4096))
                except (OSError, ValueError):
                    continue
                found |= {w for w in words if w.encode() in data}
    return sorted(found)
'

@test "passwords are cleared from memory: under TLS (ours and GnuTLS's buffers), and in an AUTH refused before STARTTLS" {
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --handler-timeout 5 --auth "checkpassword:$FIXTURES/checkpassword" \
	    "${TLS[@]}" "$HANDLERS/accept" <<-EOF
	import base64
	$SCAN_MEMORY
	def descendants(pid):
	    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
	        kids = [int(k) for k in f.read().split()]
	    return kids + [d for k in kids for d in descendants(k)]
	def comm(pid):
	    try:
	        with open("/proc/%d/comm" % pid) as f:
	            return f.read().strip()
	    except OSError:
	        return ""
	pw = "Zq8-unique-pw-4711"
	plain = base64.b64encode(b"\0alice\0" + pw.encode()).decode()
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a")
	print(c.cmd("AUTH PLAIN " + plain))
	print(scan_memory(c.proc.pid, [pw, plain, "mx.test"]))
	c.cmd("STARTTLS")
	c.starttls(client_context())
	c.cmd("EHLO a")
	# The user "hang" holds the check (checkpassword sleeps): its
	# password is ours to hold until then, the decrypted line is not.
	hang = base64.b64encode(b"\0hang\0" + pw.encode()).decode()
	c.send("AUTH PLAIN " + hang + "\r\n")
	for i in range(200):
	    if "sleep" in [comm(p) for p in descendants(c.proc.pid)]:
	        break
	    time.sleep(0.05)
	print(scan_memory(c.proc.pid, [hang]))
	print(c.reply())
	print(scan_memory(c.proc.pid, [pw, hang]))
	print(c.cmd("QUIT")[:3], c.wait())
	EOF
	assert_success
	assert_line --index 0 '530 5.7.0 Must issue a STARTTLS command first'
	assert_line --index 1 "['mx.test']"	# the scan sees its memory
	assert_line --index 2 '[]'
	assert_line --index 3 '454 4.7.0 Temporary authentication failure'
	assert_line --index 4 '[]'
	assert_line --index 5 '221 0'
}

@test "with -v, a SASL response sent after a refused AUTH is not logged" {
	local pw
	pw=$(printf '\0alice\0Zq8-unique-pw' | base64 -w0)
	printf '%s\r\n' 'EHLO a' 'AUTH PLAIN' "$pw" QUIT >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr "${SERVER[@]}" "$SMTPD" --hostname mx.test \
	    --log stderr -v --auth "checkpassword:$FIXTURES/checkpassword" \
	    "${TLS[@]}" "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line $'530 5.7.0 Must issue a STARTTLS command first\r'
	[[ $stderr != *"$pw"* ]] || fail "logged: $stderr"
	[[ $stderr == *'< AUTH data (not logged)'* ]] || fail "$stderr"
	[[ $stderr == *'< QUIT'* ]] || fail "$stderr"
}

@test "UTF-8 user names in AUTH PLAIN and LOGIN reach the backend (RFC 4616); invalid UTF-8 is 501 5.5.2" {
	local u
	u=$(printf 'j\303\274rgen')
	printf '%s\r\n' 'EHLO a' \
	    "AUTH PLAIN $(printf '\0%s\0wrong' "$u" | base64 -w0)" \
	    "AUTH LOGIN $(printf '%s' "$u" | base64 -w0)" "$(printf 'p\303\244ss' | base64 -w0)" \
	    "AUTH PLAIN $(printf '\0j\377rgen\0wrong' | base64 -w0)" \
	    "AUTH PLAIN $(printf '\0alice\0p\300\200' | base64 -w0)" \
	    QUIT >"$BATS_TEST_TMPDIR/in"
	export CHECKPW_LOG=$BATS_TEST_TMPDIR/checkpw.log
	run --separate-stderr "${SERVER[@]}" "$SMTPD" --hostname mx.test \
	    --log stderr --auth-plaintext \
	    --auth "checkpassword:$FIXTURES/checkpassword" \
	    "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	run grep -E '^[0-9]{3} ' <<<"${output//$'\r'/}"
	assert_line --index 2 '535 5.7.8 Error: authentication failed'
	assert_line --index 3 '334 UGFzc3dvcmQ6'
	assert_line --index 4 '535 5.7.8 Error: authentication failed'
	assert_line --index 5 '501 5.5.2 Error: invalid SASL response'
	assert_line --index 6 '501 5.5.2 Error: invalid SASL response'
	run cat "$CHECKPW_LOG"
	assert_line --index 0 --partial "login=$u password_length=5 "
	assert_line --index 1 --partial "login=$u "
	assert_equal "${#lines[@]}" 2
}

@test "the hand-over at STARTTLS keeps the PROXY address, the message and error counts and --max-errors, and the greeting is not repeated" {
	start_server --proxy-protocol --max-errors 3 "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" <<-'EOF2'
	c = Client.tcp(int(sys.argv[1]))
	c.send("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")
	print(c.reply()[:3])
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.", "BOGUS", "BOGUS")])
	print(c.cmd("STARTTLS"))
	c.starttls(client_context())
	print(c.code("EHLO a"))
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")])
	print(c.cmd("BOGUS")[:3], repr(c.reply()))
	EOF2
	assert_success
	assert_line --index 0 220
	assert_line --index 1 '250 250 354 250 500 500'
	assert_line --index 2 '220 2.0.0 Ready to start TLS'
	assert_line --index 3 250
	assert_line --index 4 '250 250 354 250'
	# The third error ends it: two came before STARTTLS.
	assert_line --index 5 "500 '421 4.7.0 mx.test Error: too many errors'"
	SERVER_EXIT=1 stop_server
	run cat "$DUMP/2/env"
	assert_line SMTP_REMOTE_ADDR=192.0.2.7
	assert_line SMTP_PROTOCOL=ESMTPS
	run grep -c '220 .* ESMTP smtpd-stdio' "$SERVER_LOG"
	assert_output 0
	run grep -E 'disconnect from 192.0.2.7: messages=2 errors=3 exit=1' "$SERVER_LOG"
	assert_success
}

@test "a session on a --tls-cert server loads no TLS library until STARTTLS; then smtpd-stdio-tls serves it, with GnuTLS from its shared library" {
	start_server "${TLS[@]}" "$HANDLERS/dump"
	run drive "$PORT" "$SERVER_PID" "$SMTPD" <<-'EOF2'
	def server():
	    # the connection's process: the listener's descendant that runs
	    # smtpd-stdio or smtpd-stdio-tls
	    exes = {os.path.realpath(sys.argv[3]), os.path.realpath(sys.argv[3] + "-tls")}
	    todo, found = [int(sys.argv[2])], []
	    while todo:
	        p = todo.pop()
	        for t in os.listdir("/proc/%d/task" % p):
	            with open("/proc/%d/task/%s/children" % (p, t)) as f:
	                todo += [int(x) for x in f.read().split()]
	        if os.path.realpath("/proc/%d/exe" % p) in exes:
	            found.append(p)
	    check(len(found) == 1, "one server process: %r" % found)
	    with open("/proc/%d/maps" % found[0]) as f:
	        tls = "libgnutls" in f.read()
	    return os.path.basename(os.path.realpath("/proc/%d/exe" % found[0])), tls, found[0]
	c = Client.tcp(int(sys.argv[1]))
	c.reply(); c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")])
	before = server()
	c.cmd("STARTTLS")
	c.starttls(client_context())
	after = server()
	print(before[0], before[1], after[0], after[1], before[2] == after[2])
	print(c.code("EHLO a"), c.code("QUIT"))
	EOF2
	assert_success
	assert_line --index 0 '250 250 354 250'
	assert_line --index 1 'smtpd-stdio False smtpd-stdio-tls True True'
	assert_line --index 2 '250 221'
	# Linked, not copied: the shared library is what the program needs.
	run readelf -d "$SMTPD-tls"
	assert_output --regexp 'NEEDED.*\[libgnutls\.so\.30\]'
	run readelf -d "$SMTPD"
	refute_output --partial libgnutls
}

@test "a --policy exec: program started before STARTTLS is stopped with the session that smtpd-stdio-tls goes on with" {
	cat >"$BATS_TEST_TMPDIR/pol" <<-EOF2
	#!/bin/sh
	echo \$\$ >"$BATS_TEST_TMPDIR/pol.pid"
	while read -r l; do [ -z "\$l" ] && printf 'action=DUNNO\n\n'; done
	exec sleep 300
	EOF2
	chmod +x "$BATS_TEST_TMPDIR/pol"
	run drive "$SMTPD" "$PKI" "$BATS_TEST_TMPDIR/pol" "$HANDLERS/accept" <<-'EOF2'
	smtpd, pki, pol, handler = sys.argv[1:5]
	c = Client.pipe([smtpd, "--hostname", "mx.test", "--log", "stderr",
	    "--tls-cert", pki + "/mx.pem", "--tls-key", pki + "/mx.key",
	    "--policy", "exec:" + pol, handler])
	c.reply(); c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "RSET")])
	print(c.cmd("STARTTLS")); c.starttls(client_context())
	print(c.code("EHLO a"), c.code("QUIT"))
	print("exit", c.proc.wait())
	EOF2
	assert_success
	assert_line --index 0 '250 250 250'
	assert_line --index 1 '220 2.0.0 Ready to start TLS'
	assert_line --index 2 '250 221'
	assert_line --index 3 'exit 0'
	pid=$(cat "$BATS_TEST_TMPDIR/pol.pid")
	# SPEC 10.2: the program and what it started are gone with the session.
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		fail "the policy program $pid outlived the session"
	fi
}

@test "under inetd (fds 0, 1 and 2 one socket) the log goes to syslog after the hand-over at STARTTLS too, even with --log stderr" {
	run timeout -k 5 60 unshare -m sh -c '
	    mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal &&
	    exec python3 - "$@"' sh "$SMTPD" "$PKI" "$HANDLERS/accept" <<-'EOF2'
	import os, select, socket, subprocess, sys
	sys.path.insert(0, os.environ["PYTHONPATH"])
	from tlsdrive import *
	log = dev_log()
	ours, theirs = socket.socketpair()
	smtpd, pki, handler = sys.argv[1:4]
	p = subprocess.Popen([smtpd, "--hostname", "mx.test", "--log", "stderr",
	                      "--tls-cert", pki + "/mx.pem", "--tls-key",
	                      pki + "/mx.key", handler],
	                     stdin=theirs, stdout=theirs, stderr=theirs)
	theirs.close()
	c = Client(ours.fileno(), ours.fileno(), sock=ours)
	c.reply(); c.cmd("EHLO a"); print(c.cmd("STARTTLS"))
	c.starttls(client_context())
	print(c.code("EHLO a"), c.code("QUIT"))
	print("exit", p.wait(30))
	print_syslog(log)
	EOF2
	assert_success
	assert_line --index 0 '220 2.0.0 Ready to start TLS'
	assert_line --index 1 '250 221'
	assert_line --index 2 'exit 0'
	assert_line --regexp '^syslog <22>.*smtpd-stdio\[[0-9]+\]: connect from '
	assert_line --regexp '^syslog <22>.*smtpd-stdio\[[0-9]+\]: TLS: TLSv1.3 cipher '
	assert_line --regexp '^syslog <22>.*smtpd-stdio\[[0-9]+\]: disconnect from .* exit=0'
}

@test "--policy under TLS: ccert_subject and ccert_issuer are the CommonNames, ccert_fingerprint colon-separated SHA-256, encryption_keysize the cipher's bits (SPEC 10.2, as Postfix)" {
	local d=$BATS_TEST_TMPDIR fp
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -days 2 -subj '/O=Example/CN=client.example.test' \
	    -keyout "$d/client.key" -out "$d/client.pem" 2>/dev/null
	fp=$(openssl x509 -in "$d/client.pem" -noout -fingerprint -sha256 |
	    sed 's/^.*=//')
	cat >"$d/pol" <<-EOF2
	#!/bin/sh
	while read -r l; do
		printf '%s\n' "\$l" >>"$d/request"
		[ -z "\$l" ] && printf 'action=DUNNO\n\n'
	done
	EOF2
	chmod +x "$d/pol"
	run drive "$SMTPD" "$PKI" "$d" "$HANDLERS/accept" <<-'EOF2'
	smtpd, pki, d, handler = sys.argv[1:5]
	c = Client.pipe([smtpd, "--hostname", "mx.test", "--log", "stderr",
	    "--tls-cert", pki + "/mx.pem", "--tls-key", pki + "/mx.key",
	    "--tls-ask-client-cert", "--policy", "exec:" + d + "/pol", handler])
	c.reply(); c.cmd("EHLO a"); c.cmd("STARTTLS")
	c.starttls(client_context(cert=d + "/client.pem", key=d + "/client.key"))
	c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "QUIT")], c.wait())
	EOF2
	assert_success
	assert_line '250 250 221 0'
	run cat "$d/request"
	assert_line 'ccert_subject=client.example.test'
	assert_line 'ccert_issuer=client.example.test'
	assert_line "ccert_fingerprint=$fp"
	assert_line --regexp '^encryption_keysize=(128|256)$'
	assert_line --regexp '^encryption_protocol=TLSv1\.3$'
}

@test "with -v, neither SASL response of an AUTH LOGIN refused before STARTTLS is logged or left in memory (user, then password)" {
	local user pw
	user=$(printf 'alice' | base64 -w0)
	pw=$(printf 'Zq8-unique-pw' | base64 -w0)
	printf '%s\r\n' 'EHLO a' 'AUTH LOGIN' "$user" "$pw" QUIT >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr "${SERVER[@]}" "$SMTPD" --hostname mx.test \
	    --log stderr -v --auth "checkpassword:$FIXTURES/checkpassword" \
	    "${TLS[@]}" "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_success
	assert_line $'530 5.7.0 Must issue a STARTTLS command first\r'
	[[ $stderr != *"$pw"* ]] || fail "logged: $stderr"
	[[ $stderr == *'< QUIT'* ]] || fail "$stderr"
	run drive "${SERVER[@]}" "$SMTPD" --hostname mx.test --log stderr \
	    --auth "checkpassword:$FIXTURES/checkpassword" "${TLS[@]}" \
	    "$HANDLERS/accept" <<-EOF
	$SCAN_MEMORY
	c = Client.pipe(sys.argv[1:])
	c.reply(); c.cmd("EHLO a")
	print(c.cmd("AUTH LOGIN"), c.cmd("$user"), c.cmd("$pw"))
	print(scan_memory(c.proc.pid, ["$pw", "mx.test"]))
	print(c.cmd("QUIT")[:3], c.wait())
	EOF
	assert_success
	assert_line --index 0 '530 5.7.0 Must issue a STARTTLS command first 500 5.5.2 Error: command not recognized 500 5.5.2 Error: command not recognized'
	assert_line --index 1 "['mx.test']"
	assert_line --index 2 '221 0'
}

@test "a hand-over smtpd-stdio-tls cannot read (another build's, mid-upgrade) ends the session with 421 and exit 1, never a new greeting or a PROXY wait" {
	run drive "$SMTPD-tls" "$PKI" "$HANDLERS/accept" <<-'EOF2'
	smtpd, pki, handler = sys.argv[1:4]
	fd = os.memfd_create("smtpd-stdio-handover", 0)
	os.write(fd, b"smtpd-stdio/1\0\0\0" + bytes(200))	# too short
	os.dup2(fd, 7, inheritable=True)
	p = subprocess.Popen([smtpd, "--hostname", "mx.test", "--log", "stderr",
	    "--proxy-protocol", "--tls-cert", pki + "/mx.pem",
	    "--tls-key", pki + "/mx.key", handler], stdin=subprocess.PIPE,
	    stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(7,))
	out, err = p.communicate(timeout=30)
	print(repr(out), p.returncode)
	print(err.decode())
	EOF2
	assert_success
	assert_line --index 0 "b'421 4.3.0 mx.test Error: try again later\\r\\n' 1"
	assert_output --partial 'TLS: the hand-over from smtpd-stdio does not read'
}

@test "--policy: the instance attribute differs for the transactions before and after the hand-over at STARTTLS (same process id)" {
	local d=$BATS_TEST_TMPDIR
	cat >"$d/pol" <<-EOF2
	#!/bin/sh
	while read -r l; do
		case \$l in instance=*) printf '%s\n' "\$l" >>"$d/instances" ;; esac
		[ -z "\$l" ] && printf 'action=DUNNO\n\n'
	done
	EOF2
	chmod +x "$d/pol"
	run drive "$SMTPD" "$PKI" "$d" "$HANDLERS/accept" <<-'EOF2'
	smtpd, pki, d, handler = sys.argv[1:5]
	c = Client.pipe([smtpd, "--hostname", "mx.test", "--log", "stderr",
	    "--tls-cert", pki + "/mx.pem", "--tls-key", pki + "/mx.key",
	    "--policy", "exec:" + d + "/pol", handler])
	c.reply(); c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.")])
	c.cmd("STARTTLS"); c.starttls(client_context()); c.cmd("EHLO a")
	print(*[c.code(l) for l in ("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA", "x\r\n.", "QUIT")], c.wait())
	EOF2
	assert_success
	assert_line --index 0 '250 250 354 250'
	assert_line --index 1 '250 250 354 250 221 0'
	run sort -u "$d/instances"
	assert_equal "${#lines[@]}" 2
}

@test "a ticket-key file its group may read is logged as a warning too (SPEC 8: readable by others than its owner)" {
	cp "$PKI/tickets" "$BATS_TEST_TMPDIR/group"
	chmod 640 "$BATS_TEST_TMPDIR/group"
	quit_with_ticket_keys "$BATS_TEST_TMPDIR/group"
	assert_success
	[[ $stderr == *"--tls-ticket-keys $BATS_TEST_TMPDIR/group: readable by others (mode 0640)"* ]] ||
		fail "no warning: $stderr"
}
