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

# assert_reply_after VERB CODE [N]: the reply to the Nth (default first)
# command VERB of the last smtp_session dialogue has code CODE.  VERB "."
# means the end of a message.
assert_reply_after() {
	local verb=$1 want=$2 nth=${3:-1} got
	got=$(reply_codes | awk -v verb="$verb" -v nth="$nth" -v dialogue="$DIALOGUE" '
		{ code[NR] = $0 }
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
				if (label == verb && ++seen == nth) { print c; exit }
			}
		}')
	if [ "$got" != "$want" ]; then
		batslib_print_kv_single_or_multi 8 "command" "$verb #$nth" \
			"expected" "$want" "got" "${got:-no reply}" "output" "$output" |
			batslib_decorate "reply mismatch" | fail
	fi
}

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

# message_dialogue N: writes to $DIALOGUE a HELO session that sends N small
# messages (each MAIL, RCPT, DATA, body, ".", NOOP) and QUITs.
message_dialogue() {
	local i
	{
		printf 'HELO client.example\r\n'
		for i in $(seq "$1"); do
			printf 'MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n'
			printf 'DATA\r\nSubject: message %s\r\n\r\nbody %s\r\n.\r\n' "$i" "$i"
			printf 'NOOP\r\n'
		done
		printf 'QUIT\r\n'
	} >"$DIALOGUE"
}

# send_messages N [options] handler [args]: the server run on the
# message_dialogue of N messages.
send_messages() {
	message_dialogue "$1"
	shift
	smtpd "$@" <"$DIALOGUE"
}

# reply_after VERB [N]: prints the whole reply (all its lines, without CR)
# to the Nth (default first) command VERB of the last dialogue in
# $DIALOGUE, as assert_reply_after finds it; "." is the end of a message.
reply_after() {
	printf '%s\n' "$output" | tr -d '\r' | awk -v verb="$1" -v nth="${2:-1}" \
	    -v dialogue="$DIALOGUE" '
		{ cur = cur (cur == "" ? "" : "\n") $0 }
		/^[0-9][0-9][0-9]( |$)/ { reply[++n] = cur; cur = "" }
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
				c = substr(reply[r++], 1, 3)
				if (label == "DATA" && c == "354") indata = 1
				if (label == verb && ++seen == nth) { print reply[r - 1]; exit }
			}
		}'
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
