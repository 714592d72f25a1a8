# TCP helpers for 80-clients.bats: smtpd-stdio behind systemd-socket-activate
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
# may hold more NAME=VALUE words for its environment.  Returns once the
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
	    -E PATH -E DUMP -E TMPDIR "${env[@]}" \
	    "${wrap[@]}" timeout -k 5 60 "$SMTPD" --hostname mx.test --log stderr "$@" \
	    </dev/null >>"$SERVER_LOG" 2>&1 3>&- &
	SERVER_PID=$!
	wait_for 10 port_listening "$PORT"
}

# stop_server: stops the listener started by start_server.
stop_server() {
	if [ -n "${SERVER_PID-}" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}

