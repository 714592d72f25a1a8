#!/usr/bin/env bats
# The README's cookbook: each recipe is a script in
# tests/fixtures/cookbook/, run here for real.

setup() {
	load test_helper/common
	load test_helper/tcp
	common_setup
	BOOK=$FIXTURES/cookbook
	SHIPPED=$ROOT/src/handlers
	PIDS=()
}

teardown() {
	local p d
	if [ -f "$BATS_TEST_TMPDIR/cleanup" ]; then
		while read -r d; do rm -rf "$d"; done <"$BATS_TEST_TMPDIR/cleanup"
	fi
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	stop_server
}

# mail_to RCPT...: one message from a@example.org to RCPTs, in $DIALOGUE.
mail_to() {
	local r
	{
		printf 'EHLO client.example\nMAIL FROM:<a@example.org>\n'
		for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
		printf 'DATA\nSubject: win the lottery\n\nlottery!\n.\nQUIT\n'
	}
}

# dovecot_conf DIR: a private dovecot.conf for the LDA, logging into DIR.
dovecot_conf() {
	cat >"$1/dovecot.conf" <<-EOF
	log_path = $1/dovecot.log
	info_log_path = $1/dovecot.log
	base_dir = $1/run
	state_dir = $1/state
	ssl = no
	protocols =
	EOF
	mkdir -p "$1/run" "$1/state"
	touch "$1/dovecot.log"
	chown -R nobody:nogroup "$1"
}

# nobody_dir: a fresh world_dir in $D, with smtpd-stdio installed in
# $D/prefix and the recipe in $D: the service user (nobody) runs them
# there, since the checkout and the test's own temp dir may sit under a
# 0700 parent.
nobody_dir() {
	D=$(world_dir 85) || return
	echo "$D" >>"$BATS_TEST_TMPDIR/cleanup"
	mkdir -p "$D/mail"
	dovecot_conf "$D"
	install_tree "$D/prefix"
	install -m 0755 "$BOOK/dovecot-deliver" "$BOOK/mailbox-path" "$D"
}

# start_webhook_app [COMMAND ARG...]: the recipe's webhook-app.py, under
# COMMAND if one is given (strace), storing into $APP, killed in teardown;
# its port in $BATS_TEST_TMPDIR/port, its inbound URL in url.
start_webhook_app() {
	APP=$BATS_TEST_TMPDIR/app
	mkdir -p "$APP"
	"$@" python3 "$BOOK/webhook-app.py" "$APP" "$BATS_TEST_TMPDIR/port" 3>&- &
	PIDS+=($!)
	wait_for 10 test -s "$BATS_TEST_TMPDIR/port"
	url=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/port")/inbound
}

# lda_session: the recipe run by smtpd-stdio, both as nobody from $D, on
# $DIALOGUE.
lda_session() {
	as_user nobody env TMPDIR="$D" "$D/prefix/sbin/smtpd-stdio" \
	    --hostname mx.test --log stderr \
	    "$D/dovecot-deliver" "$D/dovecot.conf" "$D/mail" <"$DIALOGUE"
}

@test "cookbook (a): dovecot-lda delivers a copy per recipient, as the service user" {
	nobody_dir
	mail_to alice@example.net Bob@Example.NET '"../../x"@example.net' >"$DIALOGUE.in"
	sed 's/$/\r/' "$DIALOGUE.in" >"$DIALOGUE"
	# As smtpd-stdio's own user (nobody here), like DynamicUser= or vmail.
	run --separate-stderr lda_session
	assert_success
	assert_reply_after . 250
	local m
	for m in example.net/alice example.net/bob example.net/%22..%2F..%2Fx%22; do
		run sh -c "cat '$D/mail/$m'/new/*"
		assert_success
		assert_output --partial 'Subject: win the lottery'
	done
	# Nothing outside the store; three deliveries in Dovecot's log.
	assert_equal "$(find "$D/mail" -path '*/new/*' -type f | wc -l)" 3
	assert_equal "$(grep -c 'saved mail to INBOX' "$D/dovecot.log")" 3
}

@test "cookbook (a): dovecot-lda's temporary failure gives 451, nothing delivered" {
	nobody_dir
	chown root "$D/mail"
	chmod 0555 "$D/mail"
	mail_to alice@example.net >"$DIALOGUE.in"
	sed 's/$/\r/' "$DIALOGUE.in" >"$DIALOGUE"
	run --separate-stderr lda_session
	assert_success
	assert_reply_after . 451
	assert_equal "$(find "$D/mail" -type f | wc -l)" 0
}

@test "cookbook (b): a filter adds X-Score and execs the next handler" {
	MD=$BATS_TEST_TMPDIR/Maildir
	run --separate-stderr smtp_session --no-received "$BOOK/filter-score" \
		"$SHIPPED/maildir" "$MD" < <(mail_to b@example.net)
	assert_success
	assert_reply_after . 250
	run cat "$MD"/new/*
	assert_output $'X-Score: 2\nSubject: win the lottery\n\nlottery!'
	assert_spool_empty
}

@test "cookbook (c): one Maildir per recipient, hostile names kept inside" {
	B=$BATS_TEST_TMPDIR/mail
	export MAILDIR=$SHIPPED/maildir
	run --separate-stderr smtp_session \
		--no-received "$BOOK/per-recipient-maildir" "$B" \
		< <(mail_to Bob@Example.NET carol@example.org '"../x"@example.org')
	assert_success
	assert_reply_after . 250
	run sh -c "cd '$B' && find . -path '*/new/*' -type f | sed 's,/new/.*,,' | sort"
	assert_output $'./example.net/bob\n./example.org/%22..%2Fx%22\n./example.org/carol'
	cmp "$B"/example.net/bob/new/* "$B"/example.org/carol/new/*
}

@test "cookbook (d): webhook into a small Python app that stores posts" {
	start_webhook_app
	run --separate-stderr smtp_session --no-received "$SHIPPED/webhook" "$url" \
		< <(mail_to b@example.net c@example.net)
	assert_success
	assert_reply_after . 250
	run ls "$APP"
	assert_equal "${#lines[@]}" 2
	id=${lines[0]%.eml}
	assert_equal "$(cat "$APP/$id.eml")" $'Subject: win the lottery\n\nlottery!'
	run python3 -c 'import json, sys; e = json.load(open(sys.argv[1]))
print(e["mail-from"], *e["rcpt-to"], e["helo"])' "$APP/$id.json"
	assert_output 'a@example.org b@example.net c@example.net client.example'
}

@test "cookbook (e): ingress -> one Redis -> two workers -> Maildir" {
	SOCK=$BATS_TEST_TMPDIR/redis.sock
	MD=$BATS_TEST_TMPDIR/Maildir
	redis-server --port 0 --unixsocket "$SOCK" --save '' --appendonly no \
		--dir "$BATS_TEST_TMPDIR" </dev/null >/dev/null 2>&1 3>&- &
	PIDS+=($!)
	wait_for 10 redis-cli -s "$SOCK" PING
	lib=$BATS_TEST_TMPDIR/libexec
	mkdir -p "$lib"
	cp "$(dirname "$SMTPD")/redis-stream" "$SHIPPED/maildir" "$(dirname "$SMTPD")/redis-worker" "$lib"
	export LIBEXEC=$lib REDIS_URL=$SOCK
	for w in w1 w2; do
		"$BOOK/redis-deliver" "$w" "$MD" </dev/null 2>>"$BATS_TEST_TMPDIR/w.log" 3>&- &
		PIDS+=($!)
	done
	SERVER_ENV="LIBEXEC REDIS_URL" start_server "$BOOK/redis-ingress"
	run python3 "$FIXTURES/redis-noloss.py" send "$PORT" "$BATS_TEST_TMPDIR/acc" 5 10
	assert_success
	assert_output 'sent=50 accepted=50 refused=0'
	count() { [ "$(find "$MD/new" -type f | wc -l)" -ge 50 ]; }
	wait_for 30 count
	drained() { [ "$(redis-cli -s "$SOCK" XPENDING mail deliver | head -n 1)" = 0 ]; }
	wait_for 30 drained
	# The workers delete what they delivered: nothing is left to trim.
	assert_equal "$(redis-cli -s "$SOCK" XLEN mail)" 0
	run python3 "$FIXTURES/redis-noloss.py" check "$BATS_TEST_TMPDIR/acc" "$MD"
	assert_success
	assert_line --index 0 --regexp '^accepted=50 delivered=50 distinct=50 missing=0 duplicates=0 problems=0$'
	run grep -c 'consumer w[12] of group deliver on mail: ready' "$BATS_TEST_TMPDIR/w.log"
	assert_output 2
}

@test "cookbook (d): webhook-app.py stores a chunked POST (the handler's pipe mode) mode 0600, fsynced before its 204" {
	start_webhook_app strace -f -qq -o "$BATS_TEST_TMPDIR/trace" \
	    -e trace=openat,fsync,rename,sendto,write
	printf 'Subject: chunked\r\n\r\n\000binary\377 and\r\nmore\r\n' >"$BATS_TEST_TMPDIR/msg"
	run --separate-stderr env SMTP_ID=pipe1 SMTP_MAIL_FROM=a@example.org \
	    SMTP_RCPT_TO=$'b@example.net\n"x,y"@example.org' \
	    sh -c 'cat "$1" | "$2" "$3"' sh "$BATS_TEST_TMPDIR/msg" "$SHIPPED/webhook" "$url"
	assert_success
	cmp "$BATS_TEST_TMPDIR/msg" "$APP/pipe1.eml"
	assert_equal "$(stat -c %a "$APP/pipe1.eml") $(stat -c %a "$APP/pipe1.json")" '600 600'
	run python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["rcpt-to"])' "$APP/pipe1.json"
	assert_output "['b@example.net', '\"x,y\"@example.org']"
	# The message's file, then the directory, reach the disk before the
	# answer goes out: fsync, rename, fsync, then the 204.
	run awk '
	    /openat\(.*pipe1\.eml\.tmp/ { split($0, a, "= "); fd = a[2] + 0; s = 1 }
	    s == 1 && $0 ~ "fsync\\(" fd "\\)" { s = 2 }
	    s == 2 && /rename\(.*pipe1\.eml\.tmp.*pipe1\.eml"/ { s = 3 }
	    s == 3 && /O_DIRECTORY/ { split($0, a, "= "); dfd = a[2] + 0; s = 4 }
	    s == 4 && $0 ~ "fsync\\(" dfd "\\)" { s = 5 }
	    s == 5 && /HTTP\/1\.1 204/ { s = 6 }
	    END { print s }' "$BATS_TEST_TMPDIR/trace"
	assert_output 6
}

@test "cookbook (b): under --crlf the filter's header ends in CRLF, as the message's lines do" {
	run --separate-stderr smtp_session --crlf --no-received "$BOOK/filter-score" \
		"$HANDLERS/dump" < <(mail_to b@example.net)
	assert_success
	assert_reply_after . 250
	cmp "$DUMP/1/message" <(printf 'X-Score: 2\r\nSubject: win the lottery\r\n\r\nlottery!\r\n')
	assert_equal "$(cat "$DUMP/1/SMTP_SIZE")" 50
	# Without --crlf, LF as before.
	run --separate-stderr smtp_session --no-received "$BOOK/filter-score" \
		"$HANDLERS/dump" < <(mail_to b@example.net)
	cmp "$DUMP/2/message" <(printf 'X-Score: 2\nSubject: win the lottery\n\nlottery!\n')
}

# utf8_mail_to RCPT...: as mail_to, with SMTPUTF8 on MAIL.
utf8_mail_to() {
	mail_to "$@" | sed 's/^MAIL FROM:<a@example.org>$/& SMTPUTF8/'
}

@test "cookbook (c): mailbox names are one-to-one: jörg, jürg, j_rg and J%C3%B6rg get four Maildirs" {
	B=$BATS_TEST_TMPDIR/mail
	export MAILDIR=$SHIPPED/maildir
	run --separate-stderr smtp_session --smtputf8 \
		--no-received "$BOOK/per-recipient-maildir" "$B" \
		< <(utf8_mail_to jörg@example.net jürg@example.net j_rg@example.net 'J%C3%B6rg@example.net')
	assert_success
	assert_reply_after . 250
	run sh -c "cd '$B' && find . -path '*/new/*' -type f | sed 's,/new/.*,,' | LC_ALL=C sort"
	assert_output "$(printf '%s\n' ./example.net/j%25c3%25b6rg \
	    ./example.net/j%C3%B6rg ./example.net/j%C3%BCrg ./example.net/j_rg)"
}

@test "cookbook (a): dovecot-lda's mailboxes are one-to-one too, \"%\" and all" {
	nobody_dir
	# a=b and a&b were both a_b before; "%u" must stay literal for Dovecot.
	printf 'Subject: four\n\nhi\n' >"$D/msg"
	run --separate-stderr as_user nobody env SMTP_MAIL_FROM=a@example.org \
	    SMTP_RCPT_TO="$(printf '%s\n' a=b@example.net 'a&b@example.net' a_b@example.net 'j%u@example.net')" \
	    "$D/dovecot-deliver" "$D/dovecot.conf" "$D/mail" <"$D/msg"
	assert_success
	run sh -c "cd '$D/mail' && find . -path '*/new/*' -type f | sed 's,/new/.*,,' | LC_ALL=C sort"
	assert_output "$(printf '%s\n' ./example.net/a%26b ./example.net/a%3Db ./example.net/a_b ./example.net/j%25u)"
}

@test "cookbook (d): webhook-app.py keeps every batch's recipients of a message posted in batches" {
	start_webhook_app
	# 400 recipients of 50 octets: three batches under 8 KiB, one SMTP-Id.
	rcpts=$(for i in $(seq 400); do printf 'recipient-number-%04d-with-a-long-name@example.net\n' "$i"; done)
	printf 'Subject: many\n\nhi\n' >"$BATS_TEST_TMPDIR/msg"
	run --separate-stderr env SMTP_ID=many1 SMTP_MAIL_FROM=a@example.org \
	    SMTP_RCPT_TO="$rcpts" "$SHIPPED/webhook" "$url" <"$BATS_TEST_TMPDIR/msg"
	assert_success
	run python3 -c 'import json, sys; print(*json.load(open(sys.argv[1]))["rcpt-to"], sep="\n")' "$APP/many1.json"
	assert_output "$rcpts"
	# A retry posts the batches again: still each recipient once.
	run --separate-stderr env SMTP_ID=many1 SMTP_MAIL_FROM=a@example.org \
	    SMTP_RCPT_TO="$rcpts" "$SHIPPED/webhook" "$url" <"$BATS_TEST_TMPDIR/msg"
	assert_success
	run python3 -c 'import json, sys; print(*json.load(open(sys.argv[1]))["rcpt-to"], sep="\n")' "$APP/many1.json"
	assert_output "$rcpts"
}

@test "cookbook (d): webhook-app.py never stores a body shorter than its Content-Length" {
	start_webhook_app
	# A client that goes away after 12 of the 1000 octets it announced.
	run python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /inbound HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
          b"SMTP-Id: cut1\r\nSMTP-Rcpt-To: b@example.net\r\nContent-Length: 1000\r\n\r\n"
          b"Subject: cut")
s.shutdown(socket.SHUT_WR)
print(s.recv(4096).split(b"\r\n")[0].decode())' "$(cat "$BATS_TEST_TMPDIR/port")"
	assert_success
	assert_output 'HTTP/1.1 400 Bad Request'
	assert [ ! -e "$APP/cut1.eml" ]
	assert [ ! -e "$APP/cut1.json" ]
}

@test "cookbook (c): <postmaster> and <postmaster@postmaster> get two Maildirs" {
	B=$BATS_TEST_TMPDIR/mail
	export MAILDIR=$SHIPPED/maildir
	run --separate-stderr smtp_session --no-received "$BOOK/per-recipient-maildir" "$B" \
		< <(mail_to PostMaster postmaster@postmaster)
	assert_success
	assert_reply_after . 250
	run sh -c "cd '$B' && find . -path '*/new/*' -type f | sed 's,/new/.*,,' | LC_ALL=C sort"
	assert_output "$(printf '%s\n' ./%40/postmaster ./postmaster/postmaster)"
}

@test "cookbook (c): a mailbox name past 255 octets is shortened, still one-to-one; the message is delivered, not refused for all" {
	# A valid SMTPUTF8 domain of 103 characters, 196 octets, is 589
	# encoded: more than a file name takes (NAME_MAX).  It failed the
	# message for every recipient (451) after the others got a copy, and
	# so again at every retry.
	B=$BATS_TEST_TMPDIR/mail
	export MAILDIR=$SHIPPED/maildir
	d1=$(python3 -c 'print("ö" * 31 + "." + "ö" * 31 + "." + "ö" * 31 + ".example")')
	d2=$(python3 -c 'print("ö" * 31 + "." + "ö" * 31 + "." + "ö" * 31 + ".exampla")')
	run --separate-stderr smtp_session --smtputf8 --no-received \
		"$BOOK/per-recipient-maildir" "$B" \
		< <(utf8_mail_to ok@example.net "x@$d1" "x@$d2")
	assert_success
	assert_reply_after . 250
	run sh -c "cd '$B' && find . -path '*/new/*' -type f | sed 's,/new/.*,,' | LC_ALL=C sort"
	assert_equal "${#lines[@]}" 3
	assert_line ./example.net/ok
	# Both long ones: a readable start, "~", and a hash of the whole name.
	assert_equal "$(printf '%s\n' "${lines[@]}" | grep -c '^\./%C3%B6[%C3B6]*~[0-9a-f]\{64\}/x$')" 2
	run "$BOOK/mailbox-path" "x@$d1"
	assert_equal "$(printf '%s' "${output%/x}" | wc -c)" 245
	assert_equal "$("$BOOK/mailbox-path" "x@$d1")" "$output"
}
