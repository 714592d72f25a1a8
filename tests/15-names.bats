#!/usr/bin/env bats
# Names on the command line and the default hostname (SPEC 2): --hostname
# and --relay take one syntax, checked at start (exit 64); without
# --hostname the name comes from /etc/mailname, gethostname(), then the
# resolver.

setup() {
	load test_helper/common
	common_setup
}

@test "--hostname of 253 octets is taken, longer ones are a usage error" {
	local l63 name
	l63=$(printf 'a%.0s' $(seq 63))
	name=$l63.$l63.$l63.$(printf 'b%.0s' $(seq 61))	# 253 octets, the DNS maximum
	assert_equal "${#name}" 253
	greeting_of --hostname "$name" "$HANDLERS/accept"
	assert_equal "$greeting" "220 $name ESMTP smtpd-stdio"
	usage_error --hostname "$(printf 'a%.0s' $(seq 2100))" "$HANDLERS/accept"
	usage_error --hostname "$name.cc" "$HANDLERS/accept"
}

@test "--hostname refuses what is not letters, digits, hyphens and dots" {
	local bad
	for bad in my_host.example -mx.example mx-.example 'mx..example' .mx.example \
	    mx.example. 'mx example' 'mx.ex@mple' "$(printf 'a%.0s' $(seq 64)).example" \
	    999.1.1.1 '[300.1.1.1]' '[IPv6:zz::1]' '[mx.example]' $'mx\xc3\xa9.example'; do
		usage_error --hostname "$bad" "$HANDLERS/accept"
	done
}

@test "--hostname takes address literals and numeric labels that are not last" {
	local good
	for good in '[192.0.2.1]' '[IPv6:2001:db8::1]' 1mx.example mx.3com.example 192.0.2.1; do
		greeting_of --hostname "$good" "$HANDLERS/accept"
		assert_equal "$greeting" "220 $good ESMTP smtpd-stdio"
	done
}

@test "--relay refuses what the relay handler refuses" {
	local bad
	for bad in my_host:25 host:025 -relay.example relay-.example a..b x:0 x:65536 \
	    '[::1]:25x' '[::1]x' '::1' '[]' '[::g]' 999.1.1.1 1.2.3.04 'relay.example:+25' \
	    relay.example. "$(printf 'a%.0s' $(seq 64)).example"; do
		usage_error --relay "$bad" "$HANDLERS/accept"
	done
}

@test "--relay takes names, IPv4 and bracketed IPv6, with or without a port" {
	local good
	for good in relay.example mx-1.example.net:587 127.0.0.1 127.0.0.1:2525 \
	    '[::1]' '[::1]:2525' '[2001:db8::1]:65535' localhost:1; do
		greeting_of --hostname mx.test --relay "$good" "$HANDLERS/accept"
		assert_equal "$greeting" "220 mx.test ESMTP smtpd-stdio"
	done
}

# in_names_ns COMMAND: runs COMMAND (sh -c) in private mount and UTS
# namespaces, with /etc as a throwaway overlay, so the test can set the
# host name and write /etc/mailname and /etc/hosts.
in_names_ns() {
	mkdir -p "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/work"
	unshare --mount --uts sh -c "mount -t overlay overlay \
	    -o lowerdir=/etc,upperdir=$BATS_TEST_TMPDIR/up,workdir=$BATS_TEST_TMPDIR/work /etc &&
	    rm -f /etc/mailname && $1" </dev/null
}

@test "default hostname: the first line of /etc/mailname" {
	run in_names_ns "printf 'mail.example.org\nignored\n' >/etc/mailname && hostname short &&
	    printf 'QUIT\r\n' | '$SMTPD' --log stderr /bin/true 2>/dev/null"
	assert_success
	assert_line --index 0 $'220 mail.example.org ESMTP smtpd-stdio\r'
}

@test "default hostname: an unusable /etc/mailname is passed over for gethostname()" {
	run in_names_ns "printf 'bad name\n' >/etc/mailname && hostname host.example.net &&
	    printf 'QUIT\r\n' | '$SMTPD' --log stderr /bin/true 2>/dev/null"
	assert_success
	assert_line --index 0 $'220 host.example.net ESMTP smtpd-stdio\r'
}

@test "default hostname: gethostname() with a dot, without /etc/mailname" {
	run in_names_ns "hostname a.b.example && printf 'QUIT\r\n' | '$SMTPD' --log stderr /bin/true 2>/dev/null"
	assert_success
	assert_line --index 0 $'220 a.b.example ESMTP smtpd-stdio\r'
}

@test "default hostname: a name without a dot is completed by the resolver (/etc/hosts)" {
	run in_names_ns "hostname shorty && printf '127.0.1.1 shorty.example.net shorty\n' >/etc/hosts &&
	    printf 'QUIT\r\n' | '$SMTPD' --log stderr /bin/true 2>/dev/null"
	assert_success
	assert_line --index 0 $'220 shorty.example.net ESMTP smtpd-stdio\r'
}

@test "default hostname: a name without a dot the resolver does not know is used as it is" {
	run in_names_ns "hostname lonely && printf '127.0.0.1 localhost\n' >/etc/hosts &&
	    printf 'hosts: files\n' >/etc/nsswitch.conf &&
	    printf 'QUIT\r\n' | '$SMTPD' --log stderr /bin/true 2>/dev/null"
	assert_success
	assert_line --index 0 $'220 lonely ESMTP smtpd-stdio\r'
}
