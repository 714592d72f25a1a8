#!/usr/bin/env bats
# The suite's own rules, checked on its sources: what would make it pass
# on one machine and fail on another.

setup() {
	load test_helper/common
	common_setup
}

@test "a service user runs only through as_user, never the checkout's path" {
	# Another user may not reach the checkout (a clone below /root or
	# mktemp -d, both 0700): every program run as another user goes
	# through as_user, which refuses a path in the checkout.  The only
	# other switch is world_dir's walk test.
	run grep -nE '(^|[^_[:alnum:]-])(setpriv|runuser|sudo|su|chpst|s6-setuidgid|setuidgid)([[:space:]]|$)' \
	    "$ROOT"/tests/*.bats "$ROOT"/tests/test_helper/*.bash
	local bad
	bad=$(printf '%s\n' "$output" | grep -v -e '^[^:]*/common\.bash:[0-9]*:[[:space:]]*runuser -u nobody -- test -x "\$d"' \
	    -e '^[^:]*/common\.bash:[0-9]*:[[:space:]]*timeout -k 5 60 setpriv --reuid="\$user"' \
	    -e '^[^:]*/99-suite\.bats:' -e '^[^:]*:[0-9]*:[[:space:]]*#' || true)
	assert_equal "$bad" ''
}

@test "as_user refuses a program or an argument in the checkout, and runs one outside it" {
	run as_user nobody "$SMTPD" --version
	assert_failure 1
	assert_output "as_user: $SMTPD is in the checkout; install it into a world_dir"
	run as_user nobody /bin/cat "$ROOT/README"
	assert_failure 1
	run as_user nobody /usr/bin/id -un
	assert_success
	assert_output nobody
}
