#!/usr/bin/env bats
# Bugs found by fuzzing or review, each pinned by the input that showed it.

setup() {
	load test_helper/common
	common_setup
}

@test "commands pipelined after the error limit closed the session get no reply" {
	# fuzz_session: a refused message (--7bit) was the last error allowed,
	# the 421 went out, and the QUIT behind it still got "(null)".
	printf 'HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\xe9\r\n.\r\nQUIT\r\n' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr smtpd --7bit --max-errors 1 "$HANDLERS/accept" <"$BATS_TEST_TMPDIR/in"
	assert_failure 1
	assert_line --index 5 --regexp '^554 5\.6\.0 '
	assert_line --index 6 --regexp '^421 4\.7\.0 '
	assert_equal "${#lines[@]}" 7
}

@test "a handler's enhanced code of the wrong class is not passed on as the reply's" {
	# fuzz_reply: "550 4.1.1 x" went out as is; RFC 3463 ties the class
	# of the enhanced code to the reply's first digit.
	run --separate-stderr smtp_session "$HANDLERS/exit" 1 "550 4.1.1 no such user" <<-EOF
	HELO x
	MAIL FROM:<a@b.example>
	RCPT TO:<c@d.example>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_line --index 5 $'550 5.0.0 4.1.1 no such user\r'
}
