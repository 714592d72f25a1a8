# Loaded by every test file's setup(): paths, the binary, and helpers that
# drive a real smtpd-stdio over pipes and read its replies.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
SMTPD=${SMTPD:-$ROOT/src/.build/smtpd-stdio}
FIXTURES=$ROOT/tests/fixtures
HANDLERS=$FIXTURES/handlers

common_setup() {
	# Each test gets its own spool directory, so "nothing left behind"
	# can be checked, and its own dump directory for handler output.
	export TMPDIR=$BATS_TEST_TMPDIR/spool
	export DUMP=$BATS_TEST_TMPDIR/dump
	mkdir -p "$TMPDIR" "$DUMP"
	DIALOGUE=$BATS_TEST_TMPDIR/dialogue
}

# unset_peer_env: no client address from the environment the suite runs
# in: smtpd-stdio takes the peer from tcpserver's TCP* variables, else
# from systemd's REMOTE_*, and a test sets the ones it wants.
unset_peer_env() {
	unset TCPREMOTEIP TCPREMOTEPORT TCPLOCALIP TCPLOCALPORT TCPREMOTEHOST \
		REMOTE_ADDR REMOTE_PORT
}

# kill_pidfiles DIR: kills each process named in a DIR/*.pid (the
# daemons a test started), if it is still there.
kill_pidfiles() {
	local f
	for f in "$1"/*.pid; do
		[ -s "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
}

# smtpd [options] handler [args]: the server under a hard time limit, with a
# fixed hostname and diagnostics on stderr.
smtpd() {
	timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@"
}

# smtp_session [options] handler [args] <<EOF ... EOF
# Sends the dialogue on stdin, each line ended with CRLF, in one pipe, and
# keeps a copy for assert_reply_after.
smtp_session() {
	sed 's/$/\r/' >"$DIALOGUE"
	smtpd "$@" <"$DIALOGUE"
}

# The code of each complete reply in $output, one per line (the greeting
# first); continuation lines are skipped.
reply_codes() {
	printf '%s\n' "$output" | tr -d '\r' | sed -n 's/^\([0-9][0-9][0-9]\)\( .*\)\{0,1\}$/\1/p'
}

# reply_in_dialogue VERB N WHAT: the reply in $output to the Nth command
# VERB of the dialogue in $DIALOGUE ("." is the end of a message): its code
# (WHAT=code) or all its lines without CR (WHAT=text).  A reply ends at a
# line of a code and a space, or of a code alone.
reply_in_dialogue() {
	printf '%s\n' "$output" | tr -d '\r' | awk -v verb="$1" -v nth="$2" \
	    -v what="$3" -v dialogue="$DIALOGUE" '
		{ cur = cur (cur == "" ? "" : "\n") $0 }
		/^[0-9][0-9][0-9]( |$)/ {
			code[++n] = substr($0, 1, 3); reply[n] = cur; cur = ""
		}
		END {
			r = 2; seen = 0; indata = 0
			while ((getline line < dialogue) > 0) {
				sub(/\r$/, "", line)
				if (indata) {
					if (line != ".") continue
					label = "."; indata = 0
				} else {
					split(line, w, " "); label = toupper(w[1])
				}
				c = code[r++]
				if (label == "DATA" && c == "354") indata = 1
				if (label == verb && ++seen == nth) {
					print (what == "code" ? c : reply[r - 1]); exit
				}
			}
		}'
}

# assert_reply_after VERB CODE [N]: the reply to the Nth (default first)
# command VERB of the last smtp_session dialogue has code CODE.  VERB "."
# means the end of a message.
assert_reply_after() {
	local verb=$1 want=$2 nth=${3:-1} got
	got=$(reply_in_dialogue "$verb" "$nth" code)
	if [ "$got" != "$want" ]; then
		batslib_print_kv_single_or_multi 8 "command" "$verb #$nth" \
			"expected" "$want" "got" "${got:-no reply}" "output" "$output" |
			batslib_decorate "reply mismatch" | fail
	fi
}

# The reply to a message the spool could not take (SPEC 6), whole.
NO_SPOOL='452 4.3.1 Error: insufficient system storage'

# The spool directory holds nothing once a session is over.
assert_spool_empty() {
	run ls -A "$TMPDIR"
	assert_output ''
}

# ---- Helpers for 50-handler, 70-hostile and 80-clients (begin) ----

# wait_for SECONDS COMMAND [ARG...]: runs COMMAND every 50 ms until it
# succeeds; fails if it has not succeeded within SECONDS.
wait_for() {
	local tries=$(($1 * 20)) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ "$i" -lt "$tries" ] || return 1
		sleep 0.05
	done
}

# process_gone PID: no such process, or only its zombie is left.
process_gone() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$state" ] || [ "${state%% *}" = Z ]
}

# smtp_dialogue [--helo NAME | --ehlo NAME] [--from ADDR] [--to ADDR]...
#     [--body BYTES] [--then CMD]... [--count N] [--no-quit]
# Writes to $DIALOGUE a session: the greeting (default EHLO client.example),
# then N (default 1) transactions, each MAIL FROM:<ADDR> (default
# a@example.org), a RCPT TO:<ADDR> per --to (default one, b@example.net),
# DATA, the bytes of printf BYTES (escapes as printf(1), "{n}" replaced by
# the transaction's number; default "Subject: test\r\n\r\nhello\r\n"),
# "." and the --then commands; last QUIT unless --no-quit.  Commands end
# in CRLF; BYTES are written as given, so they end their own last line.
smtp_dialogue() {
	local greet='EHLO client.example' from=a@example.org body='Subject: test\r\n\r\nhello\r\n'
	local count=1 quit=QUIT i to=() then=()
	while [ $# -gt 0 ]; do
		case $1 in
		--helo) greet="HELO $2"; shift ;;
		--ehlo) greet="EHLO $2"; shift ;;
		--from) from=$2; shift ;;
		--to) to+=("$2"); shift ;;
		--body) body=$2; shift ;;
		--then) then+=("$2"); shift ;;
		--count) count=$2; shift ;;
		--no-quit) quit= ;;
		*) fail "smtp_dialogue: unknown option $1"; return 1 ;;
		esac
		shift
	done
	[ "${#to[@]}" -gt 0 ] || to=(b@example.net)
	{
		printf '%s\r\n' "$greet"
		for i in $(seq "$count"); do
			printf 'MAIL FROM:<%s>\r\n' "$from"
			printf 'RCPT TO:<%s>\r\n' "${to[@]}"
			printf 'DATA\r\n'
			# shellcheck disable=SC2059 # BYTES are a format on purpose
			printf "${body//\{n\}/$i}"
			printf '.\r\n'
			[ "${#then[@]}" -eq 0 ] || printf '%s\r\n' "${then[@]}"
		done
		[ -z "$quit" ] || printf '%s\r\n' "$quit"
	} >"$DIALOGUE"
}

# smtp_transaction [smtp_dialogue options] -- [options] handler [args]:
# the server run on that smtp_dialogue (in $DIALOGUE, so assert_reply_after
# and reply_after work).
smtp_transaction() {
	local opts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	shift
	smtp_dialogue "${opts[@]}" || return
	smtpd "$@" <"$DIALOGUE"
}

# message_dialogue N: writes to $DIALOGUE a HELO session that sends N small
# messages (each MAIL, RCPT, DATA, body, ".", NOOP) and QUITs.
message_dialogue() {
	smtp_dialogue --helo client.example --count "$1" --then NOOP \
	    --body 'Subject: message {n}\r\n\r\nbody {n}\r\n'
}

# send_messages N [options] handler [args]: the server run on the
# message_dialogue of N messages.
send_messages() {
	message_dialogue "$1"
	shift
	smtpd "$@" <"$DIALOGUE"
}

# smuggling_input SEQ: writes to $IN a session with one message that hides,
# behind the byte sequence SEQ (printf escapes), a second transaction whose
# body ends with SEQ again, then ends the message for real and QUITs.
# Raw bytes on purpose: this is what SMTP smuggling sends.
smuggling_input() {
	# shellcheck disable=SC2059
	printf "HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: one\r\n\r\nbefore$1MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled$1RSET\r\nafter\r\n.\r\nQUIT\r\n" >"$IN"
}

# smtp_client [--host HOST] [--helo NAME] [--8bit] PORT FROM TO[,TO...]
#     MESSAGE [FROM TO MESSAGE]...: one smtplib session to HOST (default
# 127.0.0.1) port PORT, EHLO NAME (default client.example), that sends
# each MESSAGE (its bytes exactly; --8bit adds BODY=8BITMIME) from FROM to
# the TOs.  Prints the client's own address and port, then a line per
# message: the code and text of its last reply, after a line
# "refused ADDR CODE" for each recipient refused.
smtp_client() {
	python3 - "$@" <<-'PY'
	import os, smtplib, sys
	args, host, helo, opts = sys.argv[1:], "127.0.0.1", "client.example", []
	while args[0].startswith("--"):
	    o = args.pop(0)
	    if o == "--host":
	        host = args.pop(0)
	    elif o == "--helo":
	        helo = args.pop(0)
	    elif o == "--8bit":
	        opts.append("BODY=8BITMIME")
	    else:
	        sys.exit("smtp_client: unknown option " + o)
	class Client(smtplib.SMTP):
	    def data(self, msg):
	        self.last = super().data(msg)
	        return self.last
	port, msgs = int(args[0]), args[1:]
	with Client(host, port, local_hostname=helo, timeout=30) as s:
	    print("%s %d" % s.sock.getsockname()[:2])
	    for i in range(0, len(msgs), 3):
	        frm, to, msg = msgs[i], msgs[i + 1].split(","), os.fsencode(msgs[i + 2])
	        try:
	            refused = s.sendmail(frm, to, msg, mail_options=opts)
	            code, text = s.last
	        except smtplib.SMTPRecipientsRefused as e:
	            refused, code, text = e.recipients, None, None
	        except smtplib.SMTPResponseException as e:
	            refused, code, text = {}, e.smtp_code, e.smtp_error
	        for addr, (c, _) in refused.items():
	            print("refused", addr, c)
	        if code is not None:
	            print(code, text.decode())
	PY
}

# reply_after VERB [N]: prints the whole reply (all its lines, without CR)
# to the Nth (default first) command VERB of the last dialogue in
# $DIALOGUE, as assert_reply_after finds it; "." is the end of a message.
reply_after() {
	reply_in_dialogue "$1" "${2:-1}" text
}

# feed [--bytewise] FILE [options] handler [args]: the server with FILE on
# its stdin through a pipe; --bytewise hands it over one byte per read(2).
feed() {
	local mode=
	if [ "$1" = --bytewise ]; then mode=$1; shift; fi
	local file=$1
	shift
	python3 "$FIXTURES/feed.py" $mode "$file" -- \
	    timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@"
}

# ---- Helpers for 50-handler, 70-hostile and 80-clients (end) ----

# ---- Helpers for 10-usage, 20-protocol, 30-envelope, 40-data, 60-limits (begin) ----

# assert_reply VERB REGEX [N]: the last line of the reply to the Nth (default
# first) command VERB of the last dialogue in $DIALOGUE (as reply_after
# finds it; "." is the end of a message) matches the extended regular
# expression REGEX.
assert_reply() {
	local verb=$1 want=$2 nth=${3:-1} got
	got=$(reply_after "$verb" "$nth" | tail -n 1)
	if ! [[ $got =~ $want ]]; then
		batslib_print_kv_single_or_multi 8 "command" "$verb #$nth" \
			"regexp" "$want" "got" "${got:-no reply}" "output" "$output" |
			batslib_decorate "reply mismatch" | fail
	fi
}

# assert_no_message: the handler (dump) never ran in this test.
assert_no_message() {
	run ls -A "$DUMP"
	assert_output ''
}

# ---- Helpers for 10-usage, 20-protocol, 30-envelope, 40-data, 60-limits (end) ----

# ---- Helpers for the command-line tests (10-usage, 15-names) ----

# usage_error ARG...: smtpd-stdio run with exactly these arguments (no
# defaults added) on an empty stdin exits 64, prints one line on stderr and
# nothing on stdout.
usage_error() {
	run --separate-stderr timeout -k 5 60 "$SMTPD" "$@" </dev/null
	assert_failure 64
	assert_output ''
	assert_equal "${#stderr_lines[@]}" 1
	[ -n "${stderr_lines[0]}" ] || fail "the stderr line is empty"
}

# greeting_of ARG...: smtpd-stdio run with exactly these arguments on an
# empty stdin; its one output line (the greeting) without the CR.
greeting_of() {
	run --separate-stderr timeout -k 5 60 "$SMTPD" --log stderr "$@" </dev/null
	assert_success
	assert_equal "${#lines[@]}" 1
	greeting=${lines[0]%$'\r'}
}

# ---- Helpers for the relay tests (55-shipped-handlers, 56-relay-smuggling) ----

# start_upstream [relay-upstream.py options]: a fresh fake upstream SMTP
# server; its recordings go to $UPSTREAM, its port is $UPSTREAM_PORT.
start_upstream() {
	UPSTREAM=$BATS_TEST_TMPDIR/upstream
	rm -rf "$UPSTREAM"
	mkdir -p "$UPSTREAM"
	python3 "$FIXTURES/relay-upstream.py" "$UPSTREAM" "$@" 3>&- &
	echo "$!" >"$BATS_TEST_TMPDIR/upstream.pid"
	wait_for 10 test -s "$UPSTREAM/port"
	UPSTREAM_PORT=$(cat "$UPSTREAM/port")
}

# stop_upstream: the upstream is gone, and its recordings are complete.
stop_upstream() {
	kill "$(cat "$BATS_TEST_TMPDIR/upstream.pid")" 2>/dev/null || true
	wait "$(cat "$BATS_TEST_TMPDIR/upstream.pid")" 2>/dev/null || true
	: >"$BATS_TEST_TMPDIR/upstream.pid"
}

# relay_messages N [start_upstream options]: a fresh fake upstream, then
# `run` of N messages (send_messages) through smtpd-stdio --relay to it and
# the shipped relay handler.
relay_messages() {
	local n=$1
	shift
	start_upstream "$@"
	run --separate-stderr send_messages "$n" --relay "127.0.0.1:$UPSTREAM_PORT" \
	    "$ROOT/src/handlers/relay"
}

# ---- systemd units (90-units, 94-redis-unit) ----

# assert_exposure SERVICE_FILE: systemd-analyze security rates the unit's
# exposure at most 2.0 (the figure goes to the TAP output).
assert_exposure() {
	local score
	run systemd-analyze security --offline=true --threshold=20 "$1"
	assert_success
	score=$(printf '%s\n' "$output" |
		sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
	echo "# ${1##*/} exposure $score" >&3
	[ -n "$score" ] || fail "no exposure level for $1: $output"
	awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' ||
		fail "${1##*/}: exposure $score, over 2.0"
}

# ---- Programs run as a service user (nobody, postfix, dovecot) ----
# The checkout may sit below a directory only root can enter (a clone in
# /root, or in mktemp -d): what another user runs or opens is installed
# into a world_dir first, never taken from the checkout.

# world_dir NAME: prints a fresh directory /tmp/smtpd-stdio-NAME.XXXXXX,
# mode 0755, whose every parent user nobody can walk through.  The test
# removes it (its teardown).
world_dir() {
	local w d
	w=$(mktemp -d "/tmp/smtpd-stdio-$1.XXXXXX") || return
	chmod 0755 "$w"
	d=$w
	while :; do
		runuser -u nobody -- test -x "$d" || {
			echo "nobody cannot walk through $d: $(ls -ld "$d")" >&2
			return 1
		}
		[ "$d" != / ] || break
		d=$(dirname "$d")
	done
	echo "$w"
}

# install_tree PREFIX: make install and install-units into PREFIX (no
# DESTDIR), of the binaries under test ($SMTPD, maybe a sanitizer build,
# and its -tls link): BIN names them, -o keeps make from rebuilding them.
install_tree() {
	(umask 022 && make -s -C "$ROOT" install install-units \
		PREFIX="$1" DESTDIR= BIN="$SMTPD" -o "$SMTPD" \
		BIN_TLS="$SMTPD-tls" -o "$SMTPD-tls" >/dev/null)
}

# as_user USER PROGRAM [ARG...]: PROGRAM as USER and its group only, under
# a time limit.  Refuses, without running anything, a PROGRAM or ARG
# that names a file in the checkout: the suite's check that a service
# user never executes the checkout's path.
as_user() {
	local user=$1 a
	shift
	for a in "$@"; do
		case $a in
		"$ROOT" | "$ROOT"/*)
			echo "as_user: $a is in the checkout; install it into a world_dir" >&2
			return 1 ;;
		esac
	done
	timeout -k 5 60 setpriv --reuid="$user" --regid="$(id -g "$user")" \
	    --clear-groups "$@"
}
