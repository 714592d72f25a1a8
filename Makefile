# smtpd-stdio: one SMTP session over stdin/stdout, one handler per message.
# GNU make; `make help` lists the targets.

PREFIX		?= /usr/local
SBINDIR		?= $(PREFIX)/sbin
LIBEXECDIR	?= $(PREFIX)/libexec
MANDIR		?= $(PREFIX)/share/man
UNITDIR		?= $(PREFIX)/lib/systemd/system
SYSCONFDIR	?= $(PREFIX)/etc
DESTDIR		?=

CC		?= cc
SANITIZE	?= 0

# Debian packages each target needs (see README): a plain build needs only
# BUILD_DEPS, so a packager without the test tools can build.
BUILD_DEPS	= libbsd-dev pkg-config libhiredis-dev libgnutls28-dev
RUN_DEPS	= systemd
LINT_DEPS	= mandoc shellcheck
TEST_DEPS	= bats bats-support bats-assert systemd python3 curl swaks \
		  $(LINT_DEPS) openbsd-inetd ucspi-tcp haproxy dovecot-core openssl \
		  redis-server redis-tools postgrey postfix-policyd-spf-python \
		  msmtp postfix libsasl2-modules strace libio-socket-ssl-perl \
		  opendkim opendkim-tools python3-dkim rspamd dnsmasq \
		  clamav-daemon clamav-milter pmccabe
FUZZ_DEPS	= clang
VALGRIND_DEPS	= valgrind

# Sanitizer builds go to their own directory so both can coexist.
# The sanitizers need a dynamic executable; everything else is
# -static-pie (STATIC=0 for a dynamic one).
ifeq ($(SANITIZE),1)
O		= src/.build-san
SAN_FLAGS	= -fsanitize=address,undefined -fno-sanitize-recover=all \
		  -fno-omit-frame-pointer
OPT		= -O1 -g
STATIC		= 0
else
O		= src/.build
SAN_FLAGS	=
OPT		= -O2 -g
STATIC		?= 1
endif

# Recursive (=) so pkg-config runs after the deps step installed it.
BSD_CFLAGS	= $(shell pkg-config --cflags libbsd-overlay)
# Linked in, not loaded: every connection is a new process, and loading
# and relocating shared objects was most of what a session cost.  libbsd
# (and its libmd) static saved about 40 % of a session's instructions;
# a -static-pie executable another 38 % (no dynamic loader, no symbol
# lookups at start; see README, Performance).
BSD_LIBS	= -Wl,-Bstatic $(shell pkg-config --static --libs libbsd-overlay) \
		  -Wl,-Bdynamic
WARN		= -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla \
		  -Wmissing-prototypes -Wstrict-prototypes
HARDEN		= -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
		  -fstack-clash-protection
CFLAGS		?= $(OPT)
ALL_CFLAGS	= -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(SAN_FLAGS) \
		  $(BSD_CFLAGS) $(CFLAGS)
# GnuTLS is linked dynamically, into smtpd-stdio-tls only (see SRCS), from
# its Debian package: a security update reaches the next connection with
# no rebuild (SPEC 8, README TLS).  So smtpd-stdio-tls is a dynamic PIE
# (libbsd still static) whatever STATIC says.
TLS_CFLAGS	= $(shell pkg-config --cflags gnutls)
TLS_LIBS	= $(shell pkg-config --libs gnutls)
TLS_BSD_LIBS	= -Wl,-Bstatic $(shell pkg-config --static --libs \
		  libbsd-overlay) -Wl,-Bdynamic
ifeq ($(STATIC),1)
LINK_MODE	= -static-pie
BSD_LIBS	= $(shell pkg-config --static --libs libbsd-overlay)
else
LINK_MODE	= -pie
endif
LINK_FLAGS	= -Wl,-z,relro,-z,now $(SAN_FLAGS) $(LDFLAGS)
ALL_LDFLAGS	= $(LINK_MODE) $(LINK_FLAGS)

# smtpd-stdio is linked twice (src/tls-exec.c): without GnuTLS, static,
# and as smtpd-stdio-tls with it, which smtpd-stdio runs when given
# --tls-cert.  Loading a shared library would cost every plaintext
# session more than the rest of it does.
SRCS		= main.c options.c proxy.c session.c addr.c data.c spool.c message.c \
		  handler.c reply.c \
		  env.c envelope.c \
		  usage.c optsyntax.c \
		  policy.c milter-proto.c milter.c milter-edit.c milter-check.c \
		  log.c peer.c buf.c base64.c auth.c spawn.c tlsfiles.c clock.c \
		  serve.c deadline.c deliver.c policy-check.c auth-check.c \
		  starttls.c \
		  net.c
SRCS		+= fmt.c
OBJS		= $(SRCS:%.c=$(O)/%.o) $(O)/conn-notls.o $(O)/tls-exec.o
OBJS_TLS	= $(SRCS:%.c=$(O)/%.o) $(O)/conn.o $(O)/tls.o $(O)/tls-io.o
BIN		= $(O)/smtpd-stdio
BIN_TLS		= $(O)/smtpd-stdio-tls
HANDLERS	= maildir relay debug webhook
# The README's cookbook recipes in sh (tests/85-cookbook.bats runs them).
COOKBOOK_SH	= $(addprefix tests/fixtures/cookbook/,filter-score \
		  per-recipient-maildir redis-ingress redis-deliver dovecot-deliver \
		  mailbox-path)
# redis-worker and the redis-stream handler are C (hiredis), installed
# next to the shell handlers.
WORKER		= $(O)/redis-worker
STREAM		= $(O)/redis-stream
HIREDIS_CFLAGS	= $(shell pkg-config --cflags hiredis)
HIREDIS_LIBS	= $(shell pkg-config --libs hiredis)

.PHONY: all deps deps-build deps-run deps-test deps-lint deps-fuzz \
	deps-valgrind run check check-san check-valgrind bench fuzz lint install install-units \
	uninstall clean help

all: $(BIN) $(BIN_TLS) $(WORKER) $(STREAM)

help:
	@echo 'make            build $(BIN), $(BIN_TLS), $(WORKER) and $(STREAM)'
	@echo 'make run        build and serve SMTP on 127.0.0.1:2525 into ./var/Maildir'
	@echo 'make check      build and run the bats suite (SANITIZE=1: under ASan+UBSan)'
	@echo 'make check-valgrind  representative sessions under valgrind memcheck'
	@echo 'make bench      benchmarks against the floors and peers (tests/bench/; BENCH_ARGS=--quick or "--only W4")'
	@echo 'make fuzz       build the libFuzzer targets, run each FUZZ_SECONDS [$(FUZZ_SECONDS)]'
	@echo 'make lint       mandoc -Tlint on the man page, shellcheck on the handlers'
	@echo 'make install    install to $$(DESTDIR)$$(PREFIX) [$(PREFIX)]'
	@echo '                (SBINDIR, LIBEXECDIR, MANDIR may be set apart)'
	@echo 'make install-units  systemd units to $$(UNITDIR), inetd/xinetd/tcpserver'
	@echo '                entries to $$(SYSCONFDIR)/smtpd-stdio; nothing is enabled'
	@echo 'make uninstall  remove what install and install-units put there'
	@echo 'make deps       apt-get install every missing Debian package (as root);'
	@echo '                each target above installs only what it needs'
	@echo 'make clean      remove build output and ./var'

# $(call need,TARGET,PACKAGES): install the PACKAGES that are missing,
# non-interactively, and never touch what is there; as another user than
# root, stop and name them.  The daemons among them (redis-server,
# postgrey, haproxy, dovecot-core, postfix, opendkim, rspamd, dnsmasq,
# clamav-daemon, clamav-milter) are for tests that start their own: a policy-rc.d of ours, for the install only, keeps them from
# being started (Debian still enables their units for the next boot).
# Two makes in two checkouts may install at once: they take turns on a
# lock of ours, and apt waits for dpkg's lock rather than failing.
define need
	@missing=$$(for p in $(2); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "make $(1): missing Debian packages:" $$missing \
			    "(install them, or run make $(1) as root)" >&2; \
			exit 1; \
		fi; \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		exec 9>/run/lock/smtpd-stdio-deps.lock && flock -w 1200 9; \
		guard=; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && \
			chmod 0755 /usr/sbin/policy-rc.d && guard=1; \
		fi; \
		apt-get update -qq && \
		apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
			--no-install-recommends $$missing; \
		rc=$$?; \
		[ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; \
		exit $$rc; \
	fi
endef

deps:
	$(call need,deps,$(sort $(BUILD_DEPS) $(TEST_DEPS)))
deps-build:
	$(call need,all,$(BUILD_DEPS))
deps-run:
	$(call need,run,$(RUN_DEPS))
deps-test:
	$(call need,check,$(TEST_DEPS))
deps-lint:
	$(call need,lint,$(LINT_DEPS))
deps-fuzz:
	$(call need,fuzz,$(FUZZ_DEPS))
deps-valgrind:
	$(call need,check-valgrind,$(VALGRIND_DEPS))

$(O):
	mkdir -p $@

$(O)/%.o: src/%.c src/smtpd-stdio.h | $(O) deps-build
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/conn-notls.o: src/conn.c src/smtpd-stdio.h | $(O) deps-build
	$(CC) $(ALL_CFLAGS) -DNO_TLS -c -o $@ src/conn.c

$(BIN): $(OBJS) | $(BIN_TLS)
	$(CC) -o $@ $(OBJS) $(ALL_LDFLAGS) $(BSD_LIBS)

$(O)/tls.o $(O)/tls-io.o: $(O)/%.o: src/%.c src/tls.h src/smtpd-stdio.h \
		| $(O) deps-build
	$(CC) $(ALL_CFLAGS) $(TLS_CFLAGS) -c -o $@ $<

$(BIN_TLS): $(OBJS_TLS)
	$(CC) -o $@ $(OBJS_TLS) -pie $(LINK_FLAGS) $(TLS_BSD_LIBS) $(TLS_LIBS)

$(O)/redis-worker.o $(O)/redis.o: $(O)/%.o: src/%.c src/redis.h \
		src/smtpd-stdio.h | $(O) deps-build
	$(CC) $(ALL_CFLAGS) $(HIREDIS_CFLAGS) -c -o $@ $<

# The worker runs handlers with smtpd-stdio's own code (SPEC 12).  It is
# a long-running daemon, where start-up costs nothing, and hiredis
# resolves host names (NSS): a dynamic PIE.
WORKER_OBJS	= $(addprefix $(O)/,redis-worker.o redis.o handler.o env.o \
		  spawn.o reply.o spool.o buf.o log.o fmt.o clock.o)
$(WORKER): $(WORKER_OBJS)
	$(CC) -o $@ $(WORKER_OBJS) -pie -Wl,-z,relro,-z,now $(SAN_FLAGS) \
		$(LDFLAGS) -Wl,-Bstatic $(shell pkg-config --static --libs \
		libbsd-overlay) -Wl,-Bdynamic $(HIREDIS_LIBS)

# redis-stream runs once per message, so it is linked as smtpd-stdio is
# (static, unless SANITIZE=1): start-up is most of what it costs.
STREAM_OBJS	= $(addprefix $(O)/,redis-stream.o redis.o log.o buf.o fmt.o)
$(O)/redis-stream.o: src/handlers/redis-stream.c src/redis.h \
		src/smtpd-stdio.h | $(O) deps-build
	$(CC) $(ALL_CFLAGS) $(HIREDIS_CFLAGS) -c -o $@ $<
$(STREAM): $(STREAM_OBJS)
	$(CC) -o $@ $(STREAM_OBJS) $(ALL_LDFLAGS) $(BSD_LIBS) \
		$(if $(filter 1,$(STATIC)),$(shell pkg-config --static --libs \
		hiredis),$(HIREDIS_LIBS))

run: $(BIN) | deps-run
	@mkdir -p var/Maildir
	@echo 'smtpd-stdio: serving SMTP on 127.0.0.1:2525, mail lands in $(CURDIR)/var/Maildir/new/'
	@echo 'send a test mail from another terminal with:'
	@echo '  swaks --server 127.0.0.1:2525 --from me@example.org --to you@example.org'
	@echo 'stop with Ctrl-C'
	exec systemd-socket-activate --accept --inetd -l 127.0.0.1:2525 \
		$(CURDIR)/$(BIN) --log stderr \
		$(CURDIR)/src/handlers/maildir $(CURDIR)/var/Maildir

check: $(BIN) $(WORKER) $(STREAM) | deps-test
	SMTPD=$(CURDIR)/$(BIN) tests/run

check-san:
	$(MAKE) check SANITIZE=1

# Representative sessions under valgrind memcheck: no error, no leak.
check-valgrind: $(BIN) | deps-valgrind
	SMTPD=$(CURDIR)/$(BIN) tests/valgrind-sessions

# Never part of check: timings depend on the machine.
bench: $(BIN)
	SMTPD=$(CURDIR)/$(BIN) tests/bench/run $(BENCH_ARGS)

# libFuzzer targets (clang): each links the pure modules it exercises.
FUZZ_SECONDS	?= 60
FUZZ_CC		= clang
FUZZ_FLAGS	= -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
FUZZ_O		= src/.build-fuzz
# log.c comes in as tests/fuzz/log_quiet.c: all of it, writing nothing.
FUZZ_session	= src/session.c src/addr.c src/data.c src/buf.c src/base64.c \
		  tests/fuzz/log_quiet.c
FUZZ_addr	= src/addr.c
FUZZ_data	= src/data.c src/buf.c tests/fuzz/log_quiet.c
FUZZ_reply	= src/reply.c src/buf.c tests/fuzz/log_quiet.c
FUZZ_proxy	= src/proxy.c
FUZZ_policy	= src/policy.c src/net.c src/optsyntax.c src/spawn.c src/buf.c \
		  tests/fuzz/log_quiet.c
FUZZ_base64	= src/base64.c
FUZZ_dovecot	= src/auth.c src/net.c src/base64.c src/spawn.c \
		  tests/fuzz/log_quiet.c
FUZZ_milter	= src/milter-proto.c src/reply.c src/buf.c tests/fuzz/log_quiet.c
FUZZ_fmt	= src/spool.c tests/fuzz/log_quiet.c
FUZZERS		= session addr data reply proxy policy base64 dovecot milter fmt

$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/log_quiet.c src/*.c \
		src/smtpd-stdio.h | deps-build deps-fuzz
	mkdir -p $(FUZZ_O)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(BSD_CFLAGS) -Isrc -o $@ $< \
		$(FUZZ_$*) $(BSD_LIBS)

fuzz: $(FUZZERS:%=$(FUZZ_O)/fuzz_%)
	for f in $(FUZZERS); do \
		mkdir -p $(FUZZ_O)/corpus-$$f && \
		$(FUZZ_O)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) \
			-dict=tests/fuzz/smtp.dict -max_len=4096 \
			$(FUZZ_O)/corpus-$$f tests/fuzz/corpus/$$f || exit 1; \
	done

lint: | deps-lint
	mandoc -Tlint -W warning smtpd-stdio.8
	shellcheck -s sh $(HANDLERS:%=src/handlers/%) $(COOKBOOK_SH)

install: $(BIN) $(BIN_TLS) $(WORKER) $(STREAM)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR)/smtpd-stdio \
		$(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/smtpd-stdio
	install -m 0755 $(BIN_TLS) $(DESTDIR)$(SBINDIR)/smtpd-stdio-tls
	for h in $(HANDLERS); do \
		install -m 0755 src/handlers/$$h \
			$(DESTDIR)$(LIBEXECDIR)/smtpd-stdio/$$h || exit 1; \
	done
	install -m 0755 $(WORKER) $(DESTDIR)$(LIBEXECDIR)/smtpd-stdio/redis-worker
	install -m 0755 $(STREAM) $(DESTDIR)$(LIBEXECDIR)/smtpd-stdio/redis-stream
	install -m 0644 smtpd-stdio.8 $(DESTDIR)$(MANDIR)/man8/smtpd-stdio.8

# The units and entries name the programs by their installed paths.
UNITS		= smtpd-stdio.socket smtpd-stdio@.service \
		  smtpd-stdio-submission.socket smtpd-stdio-submission@.service \
		  smtpd-stdio-submissions.socket smtpd-stdio-submissions@.service \
		  smtpd-stdio-redis-worker@.service smtpd-stdio-lmtp.socket \
		  smtpd-stdio-lmtp@.service
SUBST		= sed -e 's|@SBINDIR@|$(SBINDIR)|g' \
		      -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
		      -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install-units:
	install -d $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/tcpserver
	for u in $(UNITS); do \
		$(SUBST) units/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(SUBST) units/inetd.conf >$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/inetd.conf
	$(SUBST) units/xinetd >$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/xinetd
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/inetd.conf \
		$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/xinetd
	$(SUBST) units/tcpserver.run >$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/tcpserver/run
	chmod 0755 $(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/tcpserver/run

# Removes our files and our own directories; the shared ones (sbin, man8,
# the unit directory) stay.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/smtpd-stdio \
		$(DESTDIR)$(SBINDIR)/smtpd-stdio-tls \
		$(DESTDIR)$(MANDIR)/man8/smtpd-stdio.8
	for h in $(HANDLERS) redis-worker redis-stream; do \
		rm -f $(DESTDIR)$(LIBEXECDIR)/smtpd-stdio/$$h; \
	done
	-rmdir $(DESTDIR)$(LIBEXECDIR)/smtpd-stdio
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	rm -f $(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/inetd.conf \
		$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/xinetd \
		$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/tcpserver/run
	-rmdir $(DESTDIR)$(SYSCONFDIR)/smtpd-stdio/tcpserver \
		$(DESTDIR)$(SYSCONFDIR)/smtpd-stdio

clean:
	rm -rf src/.build src/.build-san src/.build-fuzz var
