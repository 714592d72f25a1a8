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
	install -m 0755 "$BOOK/dovecot-deliver" "$D/dovecot-deliver"
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
	for m in example.net/alice example.net/bob example.net/_.._.._x_; do
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
	assert_output $'./example.net/bob\n./example.org/_.._x_\n./example.org/carol'
	cmp "$B"/example.net/bob/new/* "$B"/example.org/carol/new/*
}

@test "cookbook (d): webhook into a small Python app that stores posts" {
	APP=$BATS_TEST_TMPDIR/app
	mkdir -p "$APP"
	python3 "$BOOK/webhook-app.py" "$APP" "$BATS_TEST_TMPDIR/port" 3>&- &
	PIDS+=($!)
	wait_for 10 test -s "$BATS_TEST_TMPDIR/port"
	url=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/port")/inbound
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
	cp "$SHIPPED/redis-stream" "$SHIPPED/maildir" "$(dirname "$SMTPD")/redis-worker" "$lib"
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
	run python3 "$FIXTURES/redis-noloss.py" check "$BATS_TEST_TMPDIR/acc" "$MD"
	assert_success
	assert_line --index 0 --regexp '^accepted=50 delivered=50 distinct=50 missing=0 duplicates=0 problems=0$'
	run grep -c 'consumer w[12] of group deliver on mail: ready' "$BATS_TEST_TMPDIR/w.log"
	assert_output 2
}
