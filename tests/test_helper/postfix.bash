# A private Postfix as the client of a test (63-lmtp: lmtp, 82-tls-clients:
# smtp): its configuration, queue and log in $PF, a world_dir, since its
# daemons run as user postfix, who cannot enter the bats run directory.

# pf_configure CONF SERVICE...: CONF/main.cf with what every private
# instance needs (queue, data and log in $PF, loopback IPv4 only, no local
# domain, no aliases) then the lines on stdin; CONF/master.cf with the
# services every instance needs, none chrooted and no smtpd, so it listens
# nowhere, then each SERVICE line given.
pf_configure() {
	local conf=$1
	shift
	mkdir -p "$conf" "$PF/queue" "$PF/data"
	chown postfix "$PF/data"
	{
		cat <<-CF
		compatibility_level = 3.6
		queue_directory = $PF/queue
		data_directory = $PF/data
		mail_owner = postfix
		setgid_group = postdrop
		maillog_file = $PF/maillog
		maillog_file_prefixes = $PF
		mydestination =
		alias_maps =
		alias_database =
		inet_interfaces = loopback-only
		inet_protocols = ipv4
		CF
		cat
	} >"$conf/main.cf"
	{
		cat <<-'CF'
		pickup    unix  n       -       n       60      1       pickup
		cleanup   unix  n       -       n       -       0       cleanup
		qmgr      unix  n       -       n       300     1       qmgr
		rewrite   unix  -       -       n       -       -       trivial-rewrite
		bounce    unix  -       -       n       -       0       bounce
		defer     unix  -       -       n       -       0       bounce
		trace     unix  -       -       n       -       0       bounce
		verify    unix  -       -       n       -       1       verify
		flush     unix  n       -       n       1000?   0       flush
		proxymap  unix  -       -       n       -       -       proxymap
		showq     unix  n       -       n       -       -       showq
		error     unix  -       -       n       -       -       error
		retry     unix  -       -       n       -       -       error
		anvil     unix  -       -       n       -       1       anvil
		scache    unix  -       -       n       -       1       scache
		postlog   unix-dgram n  -       n       -       1       postlogd
		CF
		printf '%s\n' "$@"
	} >"$conf/master.cf"
}
