#!/usr/bin/env bats
# The shipped webhook handler against a real HTTP(S) server (a Python
# http.server on 127.0.0.1, tests/fixtures/webhook-server.py), run by
# smtpd-stdio or directly.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	WEBHOOK=$ROOT/src/handlers/webhook
	HOOK=$BATS_TEST_TMPDIR/hook
	mkdir -p "$HOOK"
}

teardown() {
	if [ -n "${HOOK_PID-}" ]; then
		kill "$HOOK_PID" 2>/dev/null || true
		wait "$HOOK_PID" 2>/dev/null || true
	fi
}

# start_hook [--tls CERT KEY]: the endpoint; URL is its address.
start_hook() {
	python3 "$FIXTURES/webhook-server.py" "$HOOK" "$@" 3>&- &
	HOOK_PID=$!
	wait_for 10 test -s "$HOOK/port"
	URL=http://127.0.0.1:$(cat "$HOOK/port")/hook
}

# answer STATUS [BODY]: what the endpoint answers from now on.
answer() {
	echo "$1" >"$HOOK/status"
	printf '%s' "${2-}" >"$HOOK/body"
}

# header NAME [N]: the values of request N's (default 1) headers NAME, one
# per line, in the order sent.
header() {
	python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])):
    if k.lower() == sys.argv[2].lower():
        print(v)' "$HOOK/req.${2:-1}/headers" "$1"
}

# The header names of request 1, one per line.
header_names() {
	python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])):
    print(k)' "$HOOK/req.1/headers"
}

# A message from a@example.org to b@example.net and c@example.net.
one_message() {
	smtp_session --no-received "$@" <<-EOF
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<b@example.net>
	RCPT TO:<c@example.net>
	DATA
	Subject: hook

	..dot
	last
	.
	QUIT
	EOF
}

# direct [NAME=VALUE...]: the handler run by hand on a small message, with
# an envelope in the environment.
direct() {
	printf 'Subject: direct\n\nbody\n' >"$BATS_TEST_TMPDIR/msg"
	env SMTP_ID=id1 SMTP_MAIL_FROM=a@example.org SMTP_RCPT_TO=b@example.net \
		SMTP_REMOTE_ADDR=127.0.0.1 SMTP_HELO=client.example "$@" \
		"$WEBHOOK" "$URL" <"$BATS_TEST_TMPDIR/msg"
}

@test "webhook POSTs the message byte for byte with the envelope in headers" {
	start_hook
	answer 200
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_success
	assert_reply_after . 250
	assert_equal "$(cat "$HOOK/req.1/line")" 'POST /hook HTTP/1.1'
	cmp "$HOOK/req.1/body" <(printf 'Subject: hook\n\n.dot\nlast\n')
	assert_equal "$(header Content-Type)" message/rfc822
	assert_equal "$(header Content-Length)" 25
	assert_equal "$(header Transfer-Encoding)" ''
	assert_equal "$(header SMTP-Mail-From)" a@example.org
	assert_equal "$(header SMTP-Rcpt-To)" b@example.net,c@example.net
	assert_equal "$(header SMTP-Helo)" client.example
	assert_equal "$(header SMTP-Remote-Addr)" ''
	id=$(header SMTP-Id)
	[ -n "$id" ]
	assert_reply . "^250 2\.0\.0 .*${id//./\\.}"
	# No AUTH, no SMTP-Auth-User; one header for all recipients.
	assert_equal "$(header_names | grep -c '^SMTP-')" 5
	assert_spool_empty
}

@test "webhook sends the empty reverse-path as an empty SMTP-Mail-From" {
	start_hook
	answer 204
	run --separate-stderr direct SMTP_MAIL_FROM=
	assert_success
	assert_output ''
	assert_equal "$(header_names | grep -c '^SMTP-Mail-From$')" 1
	assert_equal "$(header SMTP-Mail-From)" ''
}

@test "webhook sends SMTP-Auth-User only when SMTP_AUTH_USER is set" {
	start_hook
	answer 200
	run --separate-stderr direct SMTP_AUTH_USER=alice
	assert_success
	assert_equal "$(header SMTP-Auth-User)" alice
}

@test "webhook maps every HTTP status to its exit status" {
	start_hook
	local s want
	for s in 200:0 201:0 202:0 204:0 299:0 400:65 413:65 415:65 422:65 \
	    301:75 302:75 304:75 307:75 401:75 403:75 404:75 408:75 429:75 \
	    500:75 502:75 503:75 504:75; do
		answer "${s%:*}"
		want=${s#*:}
		run --separate-stderr direct
		if [ "$status" -ne "$want" ]; then
			echo "HTTP ${s%:*}: exit $status, not $want" | fail
		fi
		assert_output ''
	done
}

@test "webhook: the client sees 250 for HTTP 2xx, 554 5.6.0 for 422, 451 for 503" {
	start_hook
	answer 422
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^554 5\.6\.0 '
	answer 503
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^451 4\.3\.0 '
	answer 201
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^250 2\.0\.0 '
	[ -d "$HOOK/req.3" ]
}

@test "webhook: a 2xx SMTP reply in a 2xx response body is the client's reply" {
	start_hook
	answer 200 $'250 2.0.0 stored as ticket 42\r\n'
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^250 2\.0\.0 stored as ticket 42$'
}

@test "webhook: a 4xx SMTP reply in the body wins over any HTTP status, a 5xx one over HTTP 2xx" {
	start_hook
	answer 200 $'550-5.7.1 not for us\n550 5.7.1 go away\n'
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_equal "$(reply_after .)" $'550-5.7.1 not for us\n550 5.7.1 go away'
	answer 503 '452 4.2.2 mailbox full'
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^452 4\.2\.2 mailbox full$'
	answer 422 '452 4.2.2 mailbox full'
	run --separate-stderr direct
	assert_failure 75
	assert_output '452 4.2.2 mailbox full'
}

@test "webhook: a 2xx body without HTTP 2xx, or a body that is no reply, is ignored" {
	start_hook
	answer 500 '250 2.0.0 looks fine'
	run --separate-stderr direct
	assert_failure 75
	assert_output ''
	answer 200 '{"ok": true}'
	run --separate-stderr direct
	assert_success
	assert_output ''
	answer 200 $'250-first\n251 other code\n'
	run --separate-stderr direct
	assert_success
	assert_output ''
}

@test "webhook: nobody listening gives 451" {
	URL=http://127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')/hook
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_success
	assert_reply . '^451 4\.3\.0 '
	run --separate-stderr direct
	assert_failure 75
}

@test "webhook: WEBHOOK_TIMEOUT bounds the whole request (exit 75)" {
	start_hook
	answer 200
	echo 30 >"$HOOK/delay"
	run --separate-stderr direct WEBHOOK_TIMEOUT=1
	assert_failure 75
	assert_output ''
	[[ $stderr == *'webhook: curl failed (exit 28), HTTP status none'* ]]
	[ -d "$HOOK/req.1" ]
}

@test "webhook: hostile envelope values cannot inject headers" {
	start_hook
	answer 200
	run --separate-stderr direct \
		SMTP_MAIL_FROM=$'a@b\r\nX-Evil: 1' \
		SMTP_RCPT_TO=$'b@example.net\nc@d\rX-Evil: 2\r\n\r\nbody' \
		SMTP_HELO=$'h\xff\x01 100%\x7f' \
		SMTP_ID=$'id\nX-Evil: 3' SMTP_REMOTE_ADDR=$'\r\n\r\nGET / HTTP/1.1'
	assert_success
	run header_names
	refute_output --partial X-Evil
	# LF separates recipients (SPEC 5.1): four of them, each encoded,
	# in one header.
	assert_equal "$(header_names | grep -c '^SMTP-')" 5
	assert_equal "$(header SMTP-Mail-From)" 'a@b%0D%0AX-Evil:%201'
	assert_equal "$(header SMTP-Rcpt-To)" \
		'b@example.net,c@d%0DX-Evil:%202%0D,%0D,body'
	assert_equal "$(header SMTP-Helo)" 'h%FF%01%20100%25%7F'
	assert_equal "$(header SMTP-Id)" 'id%0AX-Evil:%203'
	assert_equal "$(header SMTP-Remote-Addr)" '%0D%0A%0D%0AGET%20/%20HTTP/1.1'
	# ... and the value decodes back to the exact bytes.
	run python3 -c 'import sys, urllib.parse
sys.stdout.buffer.write(urllib.parse.unquote_to_bytes(sys.argv[1]))' \
		"$(header SMTP-Helo)"
	assert_output $'h\xff\x01 100%\x7f'
	cmp "$HOOK/req.1/body" "$BATS_TEST_TMPDIR/msg"
}

@test "webhook: WEBHOOK_HEADER_FILE adds headers that are not in any argv" {
	start_hook
	answer 200
	printf 'Authorization: Bearer s3cret-token\nX-Tenant: t1\n' \
		>"$BATS_TEST_TMPDIR/auth"
	# The request is held in flight while the argv and environment of
	# every process of the handler's (curl and all) are searched for the
	# token.  Only its tree: other processes on a shared machine are not
	# this test's.
	touch "$HOOK/hold"
	direct WEBHOOK_HEADER_FILE="$BATS_TEST_TMPDIR/auth" \
	    >"$BATS_TEST_TMPDIR/out" 2>&1 3>&- &
	local pid=$! p files=()
	wait_for 10 test -d "$HOOK/req.1"
	tree_of() {
		local c
		echo "$1"
		for c in $(pgrep -P "$1"); do tree_of "$c"; done
	}
	for p in $(tree_of "$pid"); do
		files+=("/proc/$p/cmdline" "/proc/$p/environ")
	done
	[ "${#files[@]}" -ge 4 ] || fail "no handler process in flight"
	run grep -l -s 's3cret' "${files[@]}"
	kill -0 "$pid" || fail "the request was no longer in flight"
	rm "$HOOK/hold"
	assert_output ''
	wait "$pid"
	assert_equal "$(header Authorization)" 'Bearer s3cret-token'
	assert_equal "$(header X-Tenant)" t1
	run --separate-stderr direct WEBHOOK_HEADER_FILE="$BATS_TEST_TMPDIR/none"
	assert_failure 78
}

@test "webhook streams a 32 MiB message byte for byte" {
	start_hook
	answer 200
	head -c 33554432 /dev/urandom >"$BATS_TEST_TMPDIR/big"
	SMTP_ID=big run --separate-stderr "$WEBHOOK" "$URL" <"$BATS_TEST_TMPDIR/big"
	assert_success
	assert_equal "$(header Content-Length)" 33554432
	cmp "$HOOK/req.1/body" "$BATS_TEST_TMPDIR/big"
}

@test "webhook sends a pipe on stdin chunked, byte for byte" {
	start_hook
	answer 200
	run --separate-stderr sh -c 'printf "a\0b\r\nc" | "$1" "$2"' sh "$WEBHOOK" "$URL"
	assert_success
	assert_equal "$(header Transfer-Encoding)" chunked
	cmp "$HOOK/req.1/body" <(printf 'a\0b\r\nc')
}

# make_ca DIR: a throwaway CA and a certificate for 127.0.0.1 signed by it.
make_ca() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$d/ext"
	openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 1 -extfile "$d/ext" -out "$d/srv.pem" 2>/dev/null
}

@test "webhook over TLS: verified against WEBHOOK_CACERT; an unknown CA is 75" {
	make_ca "$BATS_TEST_TMPDIR/ca"
	start_hook --tls "$BATS_TEST_TMPDIR/ca/srv.pem" "$BATS_TEST_TMPDIR/ca/srv.key"
	URL=https://127.0.0.1:$(cat "$HOOK/port")/hook
	answer 200
	run --separate-stderr direct
	assert_failure 75
	assert_output ''
	[ ! -e "$HOOK/req.1" ]
	run --separate-stderr direct WEBHOOK_CACERT="$BATS_TEST_TMPDIR/ca/ca.pem"
	assert_success
	cmp "$HOOK/req.1/body" "$BATS_TEST_TMPDIR/msg"
	assert_equal "$(header SMTP-Id)" id1
}

@test "webhook: bad usage or settings exit 78" {
	run --separate-stderr "$WEBHOOK" </dev/null
	assert_failure 78
	run --separate-stderr "$WEBHOOK" ftp://127.0.0.1/ </dev/null
	assert_failure 78
	run --separate-stderr env WEBHOOK_TIMEOUT=soon "$WEBHOOK" http://127.0.0.1/ </dev/null
	assert_failure 78
	run --separate-stderr env WEBHOOK_CACERT=/nonexistent "$WEBHOOK" https://127.0.0.1/ </dev/null
	assert_failure 78
}

# ---- Issue 16 items 9-11: recipients, the body rule, limits ----

# many_rcpts N URL: one message to N recipients
# recipient-number-I@example.net through smtpd-stdio and the webhook.
many_rcpts() {
	local i to=()
	for i in $(seq "$1"); do
		to+=(--to "recipient-number-$i@example.net")
	done
	smtp_transaction "${to[@]}" --body 'Subject: many\r\n\r\nhello\r\n' -- \
	    --no-received "$WEBHOOK" "$2"
}

# The recipients of request N, one per line, percent-decoded.
rcpts_of() {
	python3 -c 'import json, sys, urllib.parse
for k, v in json.load(open(sys.argv[1])):
    if k.lower() == "smtp-rcpt-to":
        for r in v.split(","):
            print(urllib.parse.unquote(r))' "$HOOK/req.$1/headers"
}

# The octets of request N's SMTP-* header lines, CRLF counted.
smtp_header_octets() {
	python3 -c 'import json, sys
print(sum(len(k) + 2 + len(v) + 2 for k, v in json.load(open(sys.argv[1]))
          if k.lower().startswith("smtp-")))' "$HOOK/req.$1/headers"
}

@test "webhook: a quoted address with commas reaches a WSGI app as one recipient" {
	mkdir -p "$BATS_TEST_TMPDIR/wsgi"
	python3 "$FIXTURES/webhook-wsgi.py" "$BATS_TEST_TMPDIR/wsgi" 3>&- &
	HOOK_PID=$!
	wait_for 10 test -s "$BATS_TEST_TMPDIR/wsgi/port"
	run --separate-stderr smtp_session --no-received "$WEBHOOK" \
	    "http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/wsgi/port")/hook" <<-'EOF'
	EHLO client.example
	MAIL FROM:<a@example.org>
	RCPT TO:<"x,ceo@corp.example,y"@evil.example>
	RCPT TO:<"semi;colon 100%"@example.net>
	RCPT TO:<b@example.net>
	DATA
	Subject: quoted

	hi
	.
	QUIT
	EOF
	assert_reply_after . 250
	run cat "$BATS_TEST_TMPDIR/wsgi/rcpts.1"
	assert_output '["\"x,ceo@corp.example,y\"@evil.example", "\"semi;colon 100%\"@example.net", "b@example.net"]'
	[ ! -e "$BATS_TEST_TMPDIR/wsgi/rcpts.2" ]
}

@test "webhook: \",\" and \";\" are percent-encoded, the recipients are one comma-joined header" {
	start_hook
	answer 200
	run --separate-stderr direct SMTP_RCPT_TO=$'"a,b;c"@x.example\nd@y.example'
	assert_success
	assert_equal "$(header_names | grep -c '^SMTP-Rcpt-To$')" 1
	assert_equal "$(header SMTP-Rcpt-To)" '"a%2Cb%3Bc"@x.example,d@y.example'
}

@test "webhook: 600 recipients through a default HAProxy: batches under 8 KiB, every recipient once, in order" {
	start_hook
	answer 200
	HAPORT=$(free_port)
	cat >"$BATS_TEST_TMPDIR/haproxy.cfg" <<-EOF
	defaults
	    mode http
	    timeout connect 5s
	    timeout client 30s
	    timeout server 30s
	frontend hook
	    bind 127.0.0.1:$HAPORT
	    default_backend app
	backend app
	    server app1 127.0.0.1:$(cat "$HOOK/port")
	EOF
	haproxy -db -f "$BATS_TEST_TMPDIR/haproxy.cfg" >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 3>&- &
	HA_PID=$!
	wait_for 10 port_listening "$HAPORT"
	run --separate-stderr many_rcpts 600 "http://127.0.0.1:$HAPORT/hook"
	kill "$HA_PID"
	wait "$HA_PID" || true
	assert_reply_after . 250
	# 600 of 35 octets: 21 KiB of recipients, so three requests.
	[ -d "$HOOK/req.3" ] && [ ! -e "$HOOK/req.4" ]
	for n in 1 2 3; do
		[ "$(smtp_header_octets "$n")" -le 8192 ]
		cmp "$HOOK/req.$n/body" <(printf 'Subject: many\n\nhello\n')
		assert_equal "$(header SMTP-Id "$n")" "$(header SMTP-Id 1)"
	done
	assert_equal "$(for n in 1 2 3; do rcpts_of "$n"; done)" \
	    "$(seq 600 | sed 's/.*/recipient-number-&@example.net/')"
}

@test "webhook: a batch that is not answered 2xx ends the run with its result" {
	start_hook
	answer 200
	echo 503 >"$HOOK/status.2"
	run --separate-stderr many_rcpts 600 "$URL"
	assert_reply . '^451 4\.3\.0 '
	[ -d "$HOOK/req.2" ] && [ ! -e "$HOOK/req.3" ]
	# A pipe on stdin is sent whole in each batch too: requests 3 to 5.
	rm "$HOOK/status.2"
	run --separate-stderr env SMTP_RCPT_TO="$(seq 600 | sed 's/.*/recipient-number-&@example.net/')" \
	    sh -c 'printf "x\r\ny" | "$1" "$2"' sh "$WEBHOOK" "$URL"
	assert_success
	[ -d "$HOOK/req.5" ] && [ ! -e "$HOOK/req.6" ]
	cmp "$HOOK/req.3/body" <(printf 'x\r\ny')
	cmp "$HOOK/req.5/body" <(printf 'x\r\ny')
}

@test "webhook: a body counts only with an enhanced code; a 5xx body under HTTP 5xx is 451, never a bounce" {
	start_hook
	answer 503 $'503 Service Unavailable\r\n'
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^451 4\.3\.0 '
	answer 503 $'550 5.1.1 no such user\r\n'
	run --separate-stderr direct
	assert_failure 75
	assert_output ''
	answer 500 '554 5.7.1 rejected'
	run --separate-stderr one_message "$WEBHOOK" "$URL"
	assert_reply . '^451 4\.3\.0 '
	answer 200 $'550 5.1.1 no such user\r\n<html>oops</html>\r\n'
	run --separate-stderr direct
	assert_failure 69
	assert_output '550 5.1.1 no such user'
	answer 400 '550 rejected, but no enhanced code'
	run --separate-stderr direct
	assert_failure 65
	assert_output ''
	answer 200 '250 stored'
	run --separate-stderr direct
	assert_success
	assert_output ''
	# The class of the enhanced code must be the reply's.
	answer 200 '550 2.0.0 mixed'
	run --separate-stderr direct
	assert_success
	assert_output ''
}

@test "webhook: at most 64 KiB of the response is read, a huge body fills nothing" {
	start_hook
	{ printf '250 2.0.0 stored\r\n'; head -c $((8 * 1024 * 1024)) /dev/zero | tr '\0' x; } >"$HOOK/body"
	echo 200 >"$HOOK/status"
	printf 'Subject: big answer\n\nbody\n' >"$BATS_TEST_TMPDIR/msg"
	# A 1 MiB limit on files: whatever wrote the 8 MiB body would fail.
	run --separate-stderr env SMTP_ID=id1 SMTP_RCPT_TO=b@example.net \
	    bash -c 'ulimit -f 1024; exec "$1" "$2" <"$3"' sh \
	    "$WEBHOOK" "$URL" "$BATS_TEST_TMPDIR/msg"
	assert_success
	assert_output '250 2.0.0 stored'
}

@test "webhook: the URL is used literally, never globbed" {
	start_hook
	answer 200
	URL=$URL'{1,2}[1-3]'
	run --separate-stderr direct
	assert_success
	[ -d "$HOOK/req.1" ] && [ ! -e "$HOOK/req.2" ]
	run cat "$HOOK/req.1/line"
	assert_output 'POST /hook{1,2}[1-3] HTTP/1.1'
}
