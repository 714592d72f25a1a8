# A private Dovecot auth service for the AUTH tests: start_dovecot DIR,
# stop_dovecot.  Load after test_helper/common.  Dovecot runs as the
# current user (root in CI) with nothing but its auth service: no imap,
# pop3 or lmtp, no TCP listener.  Users, from a passwd-file:
#   alice / secret, bob / hunter2
# and through a second passdb, for those two names only, Dovecot's
# checkpassword driver running tests/fixtures/checkpassword, the
# fixture's magic users: "temp" is a temporary failure (FAIL ...
# code=temp_fail), "hang" never answers.

# start_dovecot DIR: config, logs and sockets in DIR; the auth-client
# socket is $DOVECOT_AUTH (DIR/auth-client), the config $DOVECOT_CONF,
# the log $DOVECOT_LOG, the master's PID $DOVECOT_PID (also in
# DIR/dovecot.pid).  DOVECOT_EXTRA may hold more settings (auth_debug =
# yes).  Returns once the socket is there.
start_dovecot() {
	local dir=$1 user group
	user=$(id -un)
	group=$(id -gn)
	mkdir -p "$dir/run" "$dir/state"
	DOVECOT_CONF=$dir/dovecot.conf
	DOVECOT_LOG=$dir/dovecot.log
	DOVECOT_AUTH=$dir/auth-client
	printf '%s\n' 'alice:{PLAIN}secret' 'bob:{PLAIN}hunter2' >"$dir/passwd"
	cat >"$DOVECOT_CONF" <<-EOF
	base_dir = $dir/run
	state_dir = $dir/state
	log_path = $DOVECOT_LOG
	info_log_path = $DOVECOT_LOG
	protocols =
	ssl = no
	default_internal_user = $user
	default_internal_group = $group
	default_login_user = $user
	auth_mechanisms = plain login
	passdb {
	  driver = passwd-file
	  args = scheme=PLAIN username_format=%u $dir/passwd
	}
	passdb {
	  driver = checkpassword
	  args = $FIXTURES/checkpassword
	  username_filter = temp hang
	}
	userdb {
	  driver = static
	  args = uid=$user gid=$group home=$dir/home/%u
	}
	service auth {
	  unix_listener $DOVECOT_AUTH {
	    mode = 0600
	    user = $user
	  }
	}
	${DOVECOT_EXTRA-}
	EOF
	: >"$DOVECOT_LOG"
	dovecot -F -c "$DOVECOT_CONF" </dev/null >>"$DOVECOT_LOG" 2>&1 3>&- &
	DOVECOT_PID=$!
	echo "$DOVECOT_PID" >"$dir/dovecot.pid"
	wait_for 10 test -S "$DOVECOT_AUTH"
}

# stop_dovecot: the master and every process it started are gone (TERM,
# then KILL after 10 s).  Does nothing when start_dovecot was not called.
stop_dovecot() {
	local children c
	[ -n "${DOVECOT_PID:-}" ] || return 0
	mapfile -t children < <(pgrep -P "$DOVECOT_PID" || true)
	kill "$DOVECOT_PID" 2>/dev/null || true
	# A master that ignores TERM is killed: wait(1) must not block.
	if ! wait_for 10 process_gone "$DOVECOT_PID"; then
		kill -KILL "$DOVECOT_PID" "${children[@]}" 2>/dev/null || true
	fi
	wait "$DOVECOT_PID" 2>/dev/null || true
	for c in "${children[@]}"; do
		wait_for 10 process_gone "$c" || kill -KILL "$c" 2>/dev/null ||
		    true
	done
	DOVECOT_PID=
}
