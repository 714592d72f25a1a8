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
