#!/usr/bin/env bats
# Paths no other file drives: closed fds 0-2 at start (SPEC 6), a spool
# directory that cannot be used (SPEC 6), the handler stderr cap (SPEC
# 5.1), reply parsing edge cases (SPEC 5.2), and the maildir handler
# with tmp/ and new/ on different file systems (SPEC 12).

setup() {
	load test_helper/common
	common_setup
	NOBODY_DIR=
}

teardown() {
	if [ -n "$NOBODY_DIR" ]; then
		chmod -R u+w "$NOBODY_DIR"
		rm -rf "$NOBODY_DIR"
	fi
}

# one_message: writes to $DIALOGUE a session with one message, whose
# body is "Subject: x", a blank line and "hello", then NOOP and QUIT.
one_message() {
	smtp_dialogue --helo client.example --body 'Subject: x\r\n\r\nhello\r\n' --then NOOP
}

# assert_only_replies: every line on stdout is an SMTP reply line.
assert_only_replies() {
	local junk
	junk=$(printf '%s\n' "$output" | grep -v -E $'^[0-9]{3}[ -][ -~]*\r$' || true)
	assert_equal "$junk" ''
}

# The message the handler (dump) got is exactly the one sent.
assert_message_intact() {
	assert_equal "$(od -An -c "$DUMP/1/message")" \
	    "$(printf 'Subject: x\n\nhello\n' | od -An -c)"
}

# closed FDS ARGS...: smtpd-stdio with the usual options, started with
# the descriptors named in FDS ("0", "12", ...) closed.  The closing is
# done here, not on the run line, since run reopens fd 1 and 2.
closed() {
	local fds=$1
	shift
	(
		case $fds in *0*) exec 0<&- ;; esac
		case $fds in *1*) exec 1>&- ;; esac
		case $fds in *2*) exec 2>&- ;; esac
		exec timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@"
	)
}

# nobody_tree: smtpd-stdio installed, and the dump handler copied, into
# a fresh world_dir, $NOBODY_DIR, that user nobody can reach wherever the
# checkout is.
nobody_tree() {
	NOBODY_DIR=$(world_dir 57) || return
	install_tree "$NOBODY_DIR/prefix"
	install -m 0755 "$HANDLERS/dump" "$NOBODY_DIR/dump-handler"
}

# as_nobody ARGS...: the nobody_tree's smtpd-stdio as user nobody, with
# the usual options, its handler the dump handler.
as_nobody() {
	as_user nobody "$NOBODY_DIR/prefix/sbin/smtpd-stdio" \
	    --hostname mx.test --log stderr "$@" "$NOBODY_DIR/dump-handler"
}

# --- SPEC 6: closed fds 0-2 at start ------------------------------------

@test "started with fd 2 closed: the session works, no log line reaches the client or the message" {
	one_message
	run --separate-stderr closed 2 --no-received "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_only_replies
	assert_reply_after . 250
	assert_reply_after QUIT 221
	assert_message_intact
	assert_equal "$stderr" ''
}

@test "started with fd 2 closed: no log line lands in the message file the handler holds" {
	# Were fd 2 left closed, the spool file would become fd 2 and every
	# later log line would be written into it.  A child of the handler,
	# in a session of its own so it outlives the group's SIGKILL, reads
	# the message file again once smtpd-stdio has exited.
	local h=$BATS_TEST_TMPDIR/late
	cat >"$h" <<-'EOF'
	#!/bin/sh
	cat >/dev/null
	parent=$PPID
	exec 3<&0	# an asynchronous list gets /dev/null as stdin
	setsid sh -c '
		while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
		cat /dev/stdin >"$DUMP/late.tmp" && mv "$DUMP/late.tmp" "$DUMP/late"
	' _ "$parent" <&3 3<&- >/dev/null 2>&1 &
	exit 0
	EOF
	chmod +x "$h"
	one_message
	run --separate-stderr closed 2 --no-received "$h" <"$DIALOGUE"
	assert_success
	assert_reply_after . 250
	wait_for 10 test -e "$DUMP/late"
	assert_equal "$(od -An -c "$DUMP/late")" \
	    "$(printf 'Subject: x\n\nhello\n' | od -An -c)"
}

@test "started with fd 1 closed: no reply or log line goes into the message, logs still go to stderr" {
	one_message
	run --separate-stderr closed 1 --no-received "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_output ''
	assert_message_intact
	assert_regex "$stderr" 'smtpd-stdio\[[0-9]+\]: '
	refute_regex "$stderr" $'(^|\n)[0-9]{3}[ -]'
}

@test "started with fd 0 closed: the greeting, then a quiet end as at EOF" {
	run --separate-stderr closed 0 "$HANDLERS/dump"
	assert_success
	assert_output $'220 mx.test ESMTP smtpd-stdio\r'
	assert_no_message
}

@test "started with fds 0 and 2 closed: only the greeting on stdout" {
	run --separate-stderr closed 02 "$HANDLERS/dump"
	assert_success
	assert_output $'220 mx.test ESMTP smtpd-stdio\r'
	assert_equal "$stderr" ''
}

# --- SPEC 6: a spool directory that cannot be used ------------------------

@test "TMPDIR=/nonexistent: the message gets 452 4.3.1, the handler does not run, the session goes on" {
	one_message
	TMPDIR=/nonexistent run --separate-stderr smtpd "$HANDLERS/dump" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_after .)" "$NO_SPOOL"
	assert_reply_after NOOP 250
	assert_reply_after QUIT 221
	assert_no_message
	assert_regex "$stderr" 'spool: No such file or directory'
}

@test "TMPDIR=/nonexistent as user nobody: 452 4.3.1" {
	nobody_tree
	one_message
	TMPDIR=/nonexistent run --separate-stderr as_nobody <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_after .)" "$NO_SPOOL"
	assert_reply_after NOOP 250
	assert_no_message
}

@test "a TMPDIR that user nobody cannot write: 452 4.3.1 for nobody, the handler does not run" {
	# Outside $BATS_TEST_TMPDIR, which nobody cannot enter at all.
	nobody_tree
	mkdir "$NOBODY_DIR/spool" "$NOBODY_DIR/dump"
	chmod 0755 "$NOBODY_DIR/spool"
	chown nobody "$NOBODY_DIR/dump"
	one_message
	TMPDIR=$NOBODY_DIR/spool DUMP=$NOBODY_DIR/dump \
	    run --separate-stderr as_nobody <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_after .)" "$NO_SPOOL"
	assert_reply_after NOOP 250
	assert_regex "$stderr" 'spool: Permission denied'
	run ls -A "$NOBODY_DIR/dump" "$NOBODY_DIR/spool"
	assert_output "$NOBODY_DIR/dump:

$NOBODY_DIR/spool:"
}

# --- SPEC 5.1: handler stderr is logged up to 200 lines -------------------

@test "handler stderr: 200 lines are logged, then one notice, then nothing" {
	local h=$BATS_TEST_TMPDIR/err250 id
	printf '#!/bin/sh\ncat >/dev/null\ni=1\nwhile [ "$i" -le 250 ]; do echo "err $i"; i=$((i + 1)); done >&2\n' >"$h"
	chmod +x "$h"
	run --separate-stderr send_messages 1 "$h"
	assert_success
	assert_reply_after . 250
	id=$(reply_after .)
	id=${id##* }
	assert_equal "$(grep -c ": $id: handler: err [0-9]*\$" <<<"$stderr")" 200
	assert_regex "$stderr" ": $id: handler: err 1"$'\n'
	assert_regex "$stderr" ": $id: handler: err 200"$'\n'
	refute_regex "$stderr" 'handler: err 201'
	assert_equal "$(grep -c ": $id: handler: more stderr output not logged\$" <<<"$stderr")" 1
	# The notice comes right after the 200th line.
	assert_equal "$(grep -A1 'handler: err 200$' <<<"$stderr" | tail -n 1 | sed 's/.*handler: //')" \
	    'more stderr output not logged'
}

@test "handler stderr of exactly 200 lines: all logged, no notice" {
	local h=$BATS_TEST_TMPDIR/err200
	printf '#!/bin/sh\ncat >/dev/null\ni=1\nwhile [ "$i" -le 200 ]; do echo "err $i"; i=$((i + 1)); done >&2\n' >"$h"
	chmod +x "$h"
	run --separate-stderr send_messages 1 "$h"
	assert_success
	assert_equal "$(grep -c 'handler: err [0-9]*$' <<<"$stderr")" 200
	refute_regex "$stderr" 'more stderr output not logged'
}

# --- SPEC 5.2: reply parsing edge cases -----------------------------------

# says STATUS FORMAT EXPECTED: a handler printing FORMAT (printf escapes)
# and exiting STATUS gets exactly the reply EXPECTED (lines without CR).
says() {
	run --separate-stderr send_messages 1 "$HANDLERS/say" "$1" "$2"
	assert_success
	assert_equal "$(reply_after . 1)" "$3"
	assert_reply_after NOOP 250
}

TEMPFAIL='451 4.3.0 Error: temporary handler failure, try again later'

@test "handler reply 260: second digit over 5 is no reply, 451 4.3.0" {
	says 0 '260 odd\n' "$TEMPFAIL"
}

@test "handler reply 250x: no SP or - after the code is no reply, 451 4.3.0" {
	says 0 '250x fine\n' "$TEMPFAIL"
}

@test "a bare 250 from the handler becomes 250 2.0.0" {
	says 0 '250\n' '250 2.0.0'
}

@test "a bare 550 with exit 1 becomes 550 5.0.0" {
	says 1 '550' '550 5.0.0'
}

@test "blank lines around and inside a handler reply are dropped" {
	says 1 '\n\r\n550-a\n\n550 b\n\n' $'550-5.0.0 a\n550 5.0.0 b'
}

@test "handler output of only blank lines with exit 0 counts as none: 250 queued" {
	run --separate-stderr send_messages 1 "$HANDLERS/say" 0 '\n\r\n\n'
	assert_success
	assert_regex "$(reply_after .)" '^250 2\.0\.0 OK: queued as [^ ]+$'
}

@test "an enhanced code with a 4-digit detail is no code: 2.0.0 is put before it" {
	says 0 '250 2.1.1234 x\n' '250 2.0.0 2.1.1234 x'
}

@test "an enhanced code with 3-digit subject and detail is kept" {
	says 0 '250 2.123.456 x\n' '250 2.123.456 x'
}

@test "handler output of only control characters with exit 0 is no reply: 451 4.3.0" {
	says 0 '\001\002\033\177\n' "$TEMPFAIL"
}

@test "handler output of only control characters with exit 67 gives 550 5.1.1 by the table" {
	says 67 '\001\002\n' '550 5.1.1 Error: recipient unknown'
}

# --- SPEC 12: the maildir handler across file systems ---------------------

@test "maildir with tmp/ on another file system than new/ exits 78: 451 4.3.5, nothing delivered" {
	local md=$BATS_TEST_TMPDIR/Maildir
	mkdir -p "$md/tmp" "$md/new" "$md/cur"
	one_message
	# A private mount namespace: the tmpfs on tmp/ is seen by this
	# smtpd-stdio and its handler only.
	run --separate-stderr unshare --mount --propagation private sh -c '
		mount -t tmpfs tmpfs "$1/tmp" || exit 99
		shift
		exec "$@"' _ "$md" timeout -k 5 60 "$SMTPD" --hostname mx.test \
	    --log stderr "$ROOT/src/handlers/maildir" "$md" <"$DIALOGUE"
	assert_success
	assert_equal "$(reply_after .)" \
	    '451 4.3.5 Error: handler configuration error, try again later'
	assert_regex "$stderr" "handler: maildir: $md/tmp and $md/new are on different file systems"
	assert_reply_after NOOP 250
	run ls -A "$md/new" "$md/tmp"
	assert_output "$md/new:

$md/tmp:"
	assert_spool_empty
}

@test "maildir with new/ a mount of the same file system as tmp/ delivers" {
	# A bind mount keeps the device: stat(1) sees one file system.
	local md=$BATS_TEST_TMPDIR/Maildir
	mkdir -p "$md/tmp" "$md/new" "$md/cur" "$BATS_TEST_TMPDIR/elsewhere"
	one_message
	run --separate-stderr unshare --mount --propagation private sh -c '
		mount --bind "$1/elsewhere" "$1/Maildir/new" || exit 99
		shift
		exec "$@"' _ "$BATS_TEST_TMPDIR" timeout -k 5 60 "$SMTPD" \
	    --hostname mx.test --log stderr "$ROOT/src/handlers/maildir" "$md" \
	    <"$DIALOGUE"
	assert_success
	assert_reply_after . 250
	# Outside the namespace the message is in the bind mount's source.
	run ls -A "$BATS_TEST_TMPDIR/elsewhere"
	assert_line --regexp '^[0-9]+\.M[0-9]+P[0-9]+_.*\.'
}
