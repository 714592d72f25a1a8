# TCP helpers for 71, 74 and 80: smtpd-stdio behind systemd-socket-activate
# on a free local port, one process per connection, as under systemd's
# Accept=yes with StandardInput=socket.  Load after test_helper/common.

# free_port [HOST]: a TCP port nobody listens on right now.
free_port() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])' "${1:-127.0.0.1}"
}

# port_listening PORT: something listens on TCP port PORT.
port_listening() {
	ss -Hltn "sport = :$1" | grep -q .
}

# start_server [smtpd options] handler [args]: listens on 127.0.0.1:$PORT
# (or $LISTEN, with the port appended); each connection runs smtpd-stdio
# with the socket on fds 0 and 1 and its stderr in $SERVER_LOG.  With
# STDERR_IS_SOCKET=1 fd 2 is the socket too, as under inetd.  SERVER_ENV
# may hold more NAME=VALUE words for its environment (ASAN_OPTIONS and
# UBSAN_OPTIONS are passed on, as .ci/run sets them).  Returns once the
# port accepts connections.
start_server() {
	local listen=${LISTEN:-127.0.0.1} wrap=() env=() e
	for e in ${SERVER_ENV-}; do
		env+=(-E "$e")
	done
	PORT=$(free_port "${listen//[][]/}")
	SERVER_LOG=$BATS_TEST_TMPDIR/server.log
	if [ "${STDERR_IS_SOCKET:-0}" = 1 ]; then
		wrap=(sh -c 'exec "$@" 2>&1' sh)
	fi
	systemd-socket-activate -a --inetd -l "$listen:$PORT" \
	    -E PATH -E DUMP -E TMPDIR -E ASAN_OPTIONS -E UBSAN_OPTIONS "${env[@]}" \
	    "${wrap[@]}" timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@" \
	    </dev/null >>"$SERVER_LOG" 2>&1 3>&- &
	SERVER_PID=$!
	wait_for 10 port_listening "$PORT"
}

# children_ended: every connection's process that systemd-socket-activate
# spawned has ended.  systemd 252 logs "Spawned PROG (ARGS) as PID N." and,
# once it reaped it, "Child N died with code X" (X the exit status, or the
# signal number if it was killed).
children_ended() {
	local spawned died
	spawned=$(grep -Eo '^Spawned .* as PID [0-9]+\.$' "$SERVER_LOG" | wc -l)
	died=$(grep -Eo 'Child [0-9]+ died with code [0-9]+' "$SERVER_LOG" | wc -l)
	[ "$spawned" -eq "$died" ]
}

# assert_server_exits: every connection's process ended within 60 s with
# a code in $SERVER_EXIT (default 0; a test that expects more sets it,
# e.g. SERVER_EXIT="0 1"), and no sanitizer reported anything in the
# server log: an ASan or LeakSanitizer abort after the last reply (in
# linger_close, at exit) is only seen here.
assert_server_exits() {
	local code bad= sessions spawned
	# Each session logs under its own pid: more sessions than "Spawned"
	# lines means the wording above is not systemd's any more, and the
	# checks below would pass on nothing.
	sessions=$(grep -Eo '^smtpd-stdio(-tls)?\[[0-9]+\]:' "$SERVER_LOG" | sort -u | wc -l)
	spawned=$(grep -Ec '^Spawned .* as PID [0-9]+\.$' "$SERVER_LOG")
	if [ "$sessions" -gt "$spawned" ]; then
		batslib_print_kv_single_or_multi 8 "sessions" "$sessions" \
			"Spawned lines" "$spawned" "log" "$(cat "$SERVER_LOG")" |
			batslib_decorate "systemd-socket-activate's log is not as expected" | fail
		return 1
	fi
	if ! wait_for 60 children_ended; then
		grep -E '^Spawned |Child [0-9]+ died' "$SERVER_LOG" |
			batslib_decorate "a connection's process is still running" | fail
		return 1
	fi
	# shellcheck disable=SC2013 # the codes are words: numbers
	for code in $(grep -Eo 'Child [0-9]+ died with code [0-9]+' "$SERVER_LOG" |
	    sed 's/.* //'); do
		case " ${SERVER_EXIT:-0} " in
		*" $code "*) ;;
		*) bad="$bad $code" ;;
		esac
	done
	if [ -n "$bad" ]; then
		batslib_print_kv_single_or_multi 8 "expected" "${SERVER_EXIT:-0}" \
			"got" "${bad# }" "log" "$(cat "$SERVER_LOG")" |
			batslib_decorate "a connection's process exited unexpectedly" | fail
		return 1
	fi
	if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$SERVER_LOG"; then
		batslib_decorate "sanitizer report in the server log" <"$SERVER_LOG" | fail
		return 1
	fi
}

# stop_server: checks the connections' exit (assert_server_exits), then
# stops the listener started by start_server, even if the check failed.
stop_server() {
	local status=0
	if [ -n "${SERVER_PID-}" ]; then
		assert_server_exits || status=1
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
	return "$status"
}

