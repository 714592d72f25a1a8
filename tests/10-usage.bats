#!/usr/bin/env bats
# Command line (SPEC 1, 2): usage errors exit 64 with one line on stderr and
# nothing on stdout; options take "=value" or a separate value; parsing stops
# at the first non-option or "--", and the rest belongs to the handler.

setup() {
	load test_helper/common
	common_setup
}

@test "no handler: exit 64, one line on stderr, nothing on stdout" {
	usage_error
}

@test "options but no handler: exit 64" {
	usage_error --hostname mx.test --log stderr
}

@test "only -- and no handler: exit 64" {
	usage_error --log stderr --
}

@test "an unknown long option: exit 64" {
	usage_error --no-such-option "$HANDLERS/accept"
}

@test "an unknown short option: exit 64" {
	usage_error -Z "$HANDLERS/accept"
}

@test "an option missing its value at the end: exit 64" {
	usage_error --size-limit
}

@test "a flag given a value with = : exit 64" {
	usage_error --crlf=yes "$HANDLERS/accept"
}

@test "--size-limit -1: exit 64" {
	usage_error --size-limit -1 "$HANDLERS/accept"
}

@test "--size-limit 12x: exit 64" {
	usage_error --size-limit 12x "$HANDLERS/accept"
}

@test "--size-limit with an empty value: exit 64" {
	usage_error --size-limit= "$HANDLERS/accept"
}

@test "--timeout 0: exit 64" {
	usage_error --timeout 0 "$HANDLERS/accept"
}

@test "--handler-timeout 0: exit 64" {
	usage_error --handler-timeout 0 "$HANDLERS/accept"
}

@test "--max-recipients abc: exit 64" {
	usage_error --max-recipients abc "$HANDLERS/accept"
}

@test "--max-recipients 0: exit 64" {
	usage_error --max-recipients 0 "$HANDLERS/accept"
}

@test "--max-errors 0: exit 64" {
	usage_error --max-errors 0 "$HANDLERS/accept"
}

@test "--max-messages -1: exit 64" {
	usage_error --max-messages -1 "$HANDLERS/accept"
}

@test "a number too large for any counter: exit 64" {
	usage_error --timeout 99999999999999999999999 "$HANDLERS/accept"
}

@test "--log with an unknown destination: exit 64" {
	usage_error --log console "$HANDLERS/accept"
}

@test "--relay with an empty value: exit 64" {
	usage_error --relay '' "$HANDLERS/accept"
}

@test "--relay with a port out of range: exit 64" {
	usage_error --relay relay.example:99999 "$HANDLERS/accept"
}

@test "--relay with an empty port: exit 64" {
	usage_error --relay relay.example: "$HANDLERS/accept"
}

@test "--hostname with a line break: exit 64" {
	usage_error --hostname $'mx.test\r\n250 evil' "$HANDLERS/accept"
}

@test "--7bit with --smtputf8: exit 64" {
	usage_error --7bit --smtputf8 "$HANDLERS/accept"
}

@test "--smtputf8 with --7bit (other order): exit 64" {
	usage_error --smtputf8 --7bit "$HANDLERS/accept"
}

@test "--size-limit 0 and --max-messages 0 are valid (no limit)" {
	greeting_of --hostname mx.test --size-limit 0 --max-messages 0 "$HANDLERS/accept"
	assert_equal "$greeting" '220 mx.test ESMTP smtpd-stdio'
}

@test "--help exits 0 and prints the usage on stdout" {
	run --separate-stderr timeout -k 5 60 "$SMTPD" --help </dev/null
	assert_success
	assert_output --partial 'handler'
	assert_output --partial '--size-limit'
}

@test "--version exits 0 and prints the name and a version on stdout" {
	run --separate-stderr timeout -k 5 60 "$SMTPD" --version </dev/null
	assert_success
	assert_output --regexp '^smtpd-stdio [0-9]'
}

@test "--opt=value works: --hostname=eq.test is in the greeting" {
	greeting_of --hostname=eq.test "$HANDLERS/accept"
	assert_equal "$greeting" '220 eq.test ESMTP smtpd-stdio'
}

@test "--opt value works: --hostname sp.test is in the greeting" {
	greeting_of --hostname sp.test "$HANDLERS/accept"
	assert_equal "$greeting" '220 sp.test ESMTP smtpd-stdio'
}

@test "--size-limit=1000 and --size-limit 1000 both set the advertised SIZE" {
	run smtp_session --size-limit=1000 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	assert_line $'250-SIZE 1000\r'
	run smtp_session --size-limit 1000 "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_success
	assert_line $'250-SIZE 1000\r'
}

@test "option parsing stops at the handler: a later -x and --size-limit go to the handler" {
	run --separate-stderr smtp_session "$HANDLERS/dump" -x --size-limit 5 --hostname h.test <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_line --index 0 $'220 mx.test ESMTP smtpd-stdio\r'
	assert_reply_after . 250
	printf '%s\n' -x --size-limit 5 --hostname h.test | cmp - "$DUMP/1/argv"
}

@test "-- ends the options: a handler whose name starts with - runs" {
	cp "$HANDLERS/dump" "$BATS_TEST_TMPDIR/-dump"
	cd "$BATS_TEST_TMPDIR"
	PATH=$BATS_TEST_TMPDIR:$PATH
	run --separate-stderr smtp_session -- -dump -- --crlf <<-EOF
	HELO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	DATA
	hello
	.
	QUIT
	EOF
	assert_success
	assert_reply_after . 250
	printf '%s\n' -- --crlf | cmp - "$DUMP/1/argv"
	# --crlf went to the handler, not to smtpd-stdio: the message has LF ends.
	printf 'hello\n' | cmp - <(tail -n 1 "$DUMP/1/message")
}

@test "a usage error writes nothing to stdout even with a dialogue waiting" {
	run --separate-stderr timeout -k 5 60 "$SMTPD" --bogus "$HANDLERS/accept" <<-EOF
	EHLO client.example
	QUIT
	EOF
	assert_failure 64
	assert_output ''
}

# The options --help lists (issue 18: generated from the option table),
# into the arrays opt_names (without the dashes), opt_args (the value's name,
# empty for a flag) and opt_shorts (the short letter, or empty).
help_options() {
	local line re='^  (-([a-zA-Z0-9]), )?--([a-z0-9-]+)( ([^ ]+))?( |$)'

	run --separate-stderr timeout -k 5 60 "$SMTPD" --help </dev/null
	assert_success
	opt_names=() opt_args=() opt_shorts=()
	for line in "${lines[@]}"; do
		[[ $line =~ $re ]] || continue
		opt_shorts+=("${BASH_REMATCH[2]}")
		opt_names+=("${BASH_REMATCH[3]}")
		opt_args+=("${BASH_REMATCH[5]}")
	done
	# A --help whose format the pattern above no longer reads must fail
	# here, not pass over no options at all.
	[ "${#opt_names[@]}" -ge 38 ] || fail "only ${#opt_names[@]} options in --help"
}

# The .It lines of the man page's option list (DESCRIPTION), each with a
# space appended so that "\-tls " does not match "\-tls\-cert".
man_option_items() {
	awk '/^The options are as follows:/ { on = 1 }
	    on && /^\.El/ { exit }
	    on && /^\.It Fl / { print $0 " " }' "$ROOT/smtpd-stdio.8"
}

@test "the man page describes every option that --help lists" {
	local items idx name missing=
	help_options
	items=$(man_option_items)
	for idx in "${!opt_names[@]}"; do
		# After "Fl " or "Fl v , ": "\-tls " alone is also the end of
		# "\-require\-tls ", which must not stand for --tls.
		name=${opt_names[idx]//-/\\-}
		[[ $items == *"Fl \\-$name "* || $items == *" , \\-$name "* ]] ||
			missing+=" --${opt_names[idx]}"
		[ -z "${opt_shorts[idx]}" ] ||
			[[ $items == *"Fl ${opt_shorts[idx]} , \\-${opt_names[idx]//-/\\-} "* ]] ||
			missing+=" -${opt_shorts[idx]}"
	done
	[ -z "$missing" ] || fail "smtpd-stdio.8 does not describe:$missing"
}

@test "the man page's option list names no option that --help lacks" {
	local name unknown=
	help_options
	# "Fl \-name" and the long name of "Fl v , \-verbose".
	for name in $(man_option_items | grep -o '\(Fl\|,\) \\-[a-z0-9\\-]*' |
	    sed 's/^\(Fl\|,\) \\-//; s/\\-/-/g'); do
		[[ " ${opt_names[*]} " == *" $name "* ]] || unknown+=" --$name"
	done
	[ -z "$unknown" ] || fail "smtpd-stdio.8 describes unknown options:$unknown"
}

@test "every option --help lists is taken by the parser, with a value exactly when --help shows one" {
	local idx name arg short want
	help_options
	for idx in "${!opt_names[@]}"; do
		# bats' run uses variables of its own: copy the row first.
		name=${opt_names[idx]} arg=${opt_args[idx]} short=${opt_shorts[idx]}
		run --separate-stderr timeout -k 5 60 "$SMTPD" "--$name" </dev/null
		case $name in
		help|version)
			assert_success
			assert_output --partial "smtpd-stdio"
			[ -z "$short" ] || run timeout -k 5 60 "$SMTPD" "-$short" </dev/null
			assert_success
			continue ;;
		esac
		# Alone: a value is missing, or else (a flag) the handler is.
		want="option --$name needs a value"
		[ -n "$arg" ] || want="no handler given"
		assert_failure 64
		assert_output ''
		assert_equal "$stderr" "smtpd-stdio: $want (see smtpd-stdio --help)"
		[ -n "$short" ] || continue
		run --separate-stderr timeout -k 5 60 "$SMTPD" "-$short" </dev/null
		assert_failure 64
		assert_equal "$stderr" "smtpd-stdio: $want (see smtpd-stdio --help)"
	done
}

@test "the man page's SYNOPSIS names every option of --help's synopsis" {
	local synopsis name missing= count=0
	run --separate-stderr timeout -k 5 60 "$SMTPD" --help </dev/null
	assert_success
	synopsis=$(awk '/^\.Sh SYNOPSIS/ { on = 1; next } /^\.Sh/ { on = 0 }
	    on { print $0 " " }' "$ROOT/smtpd-stdio.8")
	# The usage lines, up to the first empty one: "[--name ...]", "[-v]".
	for name in $(sed '/^$/q' <<<"$output" | grep -o '\[--\{0,1\}[a-z0-9-]*' |
	    sed 's/^\[-//'); do
		count=$((count + 1))
		name=${name//-/\\-}	# -size-limit: \-size\-limit; v stays
		[[ $synopsis == *"Fl $name "* ]] || missing+=" $name"
	done
	[ "$count" -ge 37 ] || fail "only $count options in the usage"
	[ -z "$missing" ] || fail "the SYNOPSIS of smtpd-stdio.8 lacks:$missing"
}

# synopsis_items: the bracketed items of the usage lines in $output, one a
# line, as "--name value" (brackets and a trailing " ..." taken off).
synopsis_items() {
	sed '/^$/q' <<<"$output" | awk '{
		for (i = 1; i <= length($0); i++) {
			c = substr($0, i, 1)
			if (c == "[" && depth++ == 0) { item = ""; continue }
			if (c == "]" && --depth == 0) { print item; continue }
			if (depth > 0) item = item c
		}
	}' | sed 's/ \.\.\.$//'
}

@test "the man page's SYNOPSIS gives each option the value name --help's synopsis gives it" {
	local synopsis item missing= count=0
	run --separate-stderr timeout -k 5 60 "$SMTPD" --help </dev/null
	assert_success
	# As man shows it, on one line: "[--log syslog|stderr]".
	synopsis=$(mandoc -Tascii -O width=1000 "$ROOT/smtpd-stdio.8" |
	    sed 's/.\x08//g' |	# overstrike (bold, underline) off, as col -b
	    awk '/^SYNOPSIS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' |
	    tr -s ' \n' '  ' | sed 's/ | /|/g')
	while read -r item; do
		count=$((count + 1))
		# "--tls-key file" stands inside "[--tls-cert file --tls-key file ...]".
		[[ $synopsis == *["[ "]"$item"["] "]* ]] || missing+=" [$item]"
	done < <(synopsis_items)
	[ "$count" -ge 38 ] || fail "only $count items in the usage"
	[ -z "$missing" ] || fail "the SYNOPSIS of smtpd-stdio.8 lacks:$missing"
}
