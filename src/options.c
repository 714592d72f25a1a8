/*
 * The command line, SPEC 1 and 2: defaults, one table of options, the
 * checks every value gets, and the default hostname.  A bad value is a
 * usage error: one line on stderr, exit 64, nothing on stdout.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define USAGE	"usage: smtpd-stdio [--7bit] [--crlf] [--dsn] [--lmtp] " \
		"[--no-received]\n" \
		"                   [--smtputf8] [-v]\n" \
		"                   [--handler-timeout seconds] [--hostname name] " \
		"[--log syslog|stderr]\n" \
		"                   [--max-errors n] [--max-messages n] " \
		"[--max-recipients n]\n" \
		"                   [--greet-pause ms] " \
		"[--min-data-rate bytes] [--policy addr]\n" \
		"                   [--proxy-protocol] [--rcpt-check program] " \
		"[--session-timeout seconds]\n" \
		"                   [--relay host[:port]] [--size-limit bytes] " \
		"[--timeout seconds]\n" \
		"                   [--tls-cert file --tls-key file ...] [--tls] " \
		"[--require-tls]\n" \
		"                   [--tls-protocols list] [--tls-ciphers list] " \
		"[--tls-ask-client-cert]\n" \
		"                   [--tls-ticket-keys file] [--auth backend:arg] " \
		"[--require-auth]\n" \
		"                   [--auth-plaintext] [--milter addr ...] " \
		"[--milter-default-action action]\n" \
		"                   [--authserv-id name] " \
		"[--] handler [arg ...]\n"

enum {
	OPT_HOSTNAME = 256, OPT_SIZE_LIMIT, OPT_SMTPUTF8, OPT_7BIT, OPT_RELAY,
	OPT_MAX_RECIPIENTS, OPT_MAX_MESSAGES, OPT_TIMEOUT, OPT_HANDLER_TIMEOUT,
	OPT_MAX_ERRORS, OPT_DSN, OPT_CRLF, OPT_NO_RECEIVED, OPT_LOG,
	OPT_VERSION, OPT_HELP, OPT_SESSION_TIMEOUT, OPT_MIN_DATA_RATE,
	OPT_PROXY_PROTOCOL, OPT_POLICY, OPT_RCPT_CHECK, OPT_TLS_CERT,
	OPT_TLS_KEY, OPT_TLS, OPT_REQUIRE_TLS, OPT_TLS_PROTOCOLS,
	OPT_TLS_CIPHERS, OPT_TLS_ASK_CLIENT_CERT, OPT_TLS_TICKET_KEYS,
	OPT_AUTH, OPT_REQUIRE_AUTH, OPT_AUTH_PLAINTEXT, OPT_LMTP,
	OPT_MILTER, OPT_MILTER_DEFAULT, OPT_AUTHSERV_ID,
	OPT_GREET_PAUSE
};

static const struct option longopts[] = {
	{ "hostname",		required_argument, NULL, OPT_HOSTNAME },
	{ "size-limit",		required_argument, NULL, OPT_SIZE_LIMIT },
	{ "smtputf8",		no_argument,	   NULL, OPT_SMTPUTF8 },
	{ "7bit",		no_argument,	   NULL, OPT_7BIT },
	{ "relay",		required_argument, NULL, OPT_RELAY },
	{ "max-recipients",	required_argument, NULL, OPT_MAX_RECIPIENTS },
	{ "max-messages",	required_argument, NULL, OPT_MAX_MESSAGES },
	{ "timeout",		required_argument, NULL, OPT_TIMEOUT },
	{ "session-timeout",	required_argument, NULL, OPT_SESSION_TIMEOUT },
	{ "min-data-rate",	required_argument, NULL, OPT_MIN_DATA_RATE },
	{ "proxy-protocol",	no_argument,	   NULL, OPT_PROXY_PROTOCOL },
	{ "policy",		required_argument, NULL, OPT_POLICY },
	{ "rcpt-check",		required_argument, NULL, OPT_RCPT_CHECK },
	{ "tls-cert",		required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key",		required_argument, NULL, OPT_TLS_KEY },
	{ "tls",		no_argument,	   NULL, OPT_TLS },
	{ "require-tls",	no_argument,	   NULL, OPT_REQUIRE_TLS },
	{ "tls-protocols",	required_argument, NULL, OPT_TLS_PROTOCOLS },
	{ "tls-ciphers",	required_argument, NULL, OPT_TLS_CIPHERS },
	{ "tls-ask-client-cert", no_argument,	   NULL, OPT_TLS_ASK_CLIENT_CERT },
	{ "tls-ticket-keys",	required_argument, NULL, OPT_TLS_TICKET_KEYS },
	{ "auth",		required_argument, NULL, OPT_AUTH },
	{ "require-auth",	no_argument,	   NULL, OPT_REQUIRE_AUTH },
	{ "auth-plaintext",	no_argument,	   NULL, OPT_AUTH_PLAINTEXT },
	{ "handler-timeout",	required_argument, NULL, OPT_HANDLER_TIMEOUT },
	{ "max-errors",		required_argument, NULL, OPT_MAX_ERRORS },
	{ "dsn",		no_argument,	   NULL, OPT_DSN },
	{ "crlf",		no_argument,	   NULL, OPT_CRLF },
	{ "no-received",	no_argument,	   NULL, OPT_NO_RECEIVED },
	{ "log",		required_argument, NULL, OPT_LOG },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "version",		no_argument,	   NULL, OPT_VERSION },
	{ "help",		no_argument,	   NULL, OPT_HELP },
	{ "lmtp",		no_argument,	   NULL, OPT_LMTP },
	{ "milter",		required_argument, NULL, OPT_MILTER },
	{ "milter-default-action", required_argument, NULL, OPT_MILTER_DEFAULT },
	{ "authserv-id",	required_argument, NULL, OPT_AUTHSERV_ID },
	{ "greet-pause",	required_argument, NULL, OPT_GREET_PAUSE },
	{ NULL,			0,		   NULL, 0 }
};

/* Options that take a number: SPEC 2, 0 only where it means "no limit". */
static const struct number_option {
	int		 id;
	const char	*name;
	long long	 min, max;
	size_t		 offset;	/* of a long long in struct config */
} number_options[] = {
	{ OPT_SIZE_LIMIT, "size-limit", 0, LLONG_MAX / 2,
	    offsetof(struct config, size_limit) },
	{ OPT_MAX_RECIPIENTS, "max-recipients", 1, INT_MAX,
	    offsetof(struct config, max_recipients) },
	{ OPT_MAX_MESSAGES, "max-messages", 0, LLONG_MAX,
	    offsetof(struct config, max_messages) },
	{ OPT_TIMEOUT, "timeout", 1, INT_MAX / 1000,
	    offsetof(struct config, timeout) },
	{ OPT_HANDLER_TIMEOUT, "handler-timeout", 1, INT_MAX / 1000,
	    offsetof(struct config, handler_timeout) },
	{ OPT_SESSION_TIMEOUT, "session-timeout", 1, INT_MAX / 1000,
	    offsetof(struct config, session_timeout) },
	{ OPT_MIN_DATA_RATE, "min-data-rate", 0, INT_MAX,
	    offsetof(struct config, min_data_rate) },
	{ OPT_MAX_ERRORS, "max-errors", 1, LLONG_MAX,
	    offsetof(struct config, max_errors) },
	{ OPT_GREET_PAUSE, "greet-pause", 0, 300000,
	    offsetof(struct config, greet_pause) },
};

/* Options that only switch something on (or off). */
static const struct flag_option {
	int	 id;
	size_t	 offset;	/* of an int in struct config */
	int	 value;
} flag_options[] = {
	{ OPT_SMTPUTF8, offsetof(struct config, smtputf8), 1 },
	{ OPT_7BIT, offsetof(struct config, sevenbit), 1 },
	{ OPT_DSN, offsetof(struct config, dsn), 1 },
	{ OPT_CRLF, offsetof(struct config, crlf), 1 },
	{ OPT_NO_RECEIVED, offsetof(struct config, received), 0 },
	{ 'v', offsetof(struct config, verbose), 1 },
	{ OPT_PROXY_PROTOCOL, offsetof(struct config, proxy_protocol), 1 },
	{ OPT_TLS, offsetof(struct config, tls_implicit), 1 },
	{ OPT_REQUIRE_TLS, offsetof(struct config, require_tls), 1 },
	{ OPT_TLS_ASK_CLIENT_CERT, offsetof(struct config,
	    tls_ask_client_cert), 1 },
	{ OPT_REQUIRE_AUTH, offsetof(struct config, require_auth), 1 },
	{ OPT_AUTH_PLAINTEXT, offsetof(struct config, auth_plaintext), 1 },
	{ OPT_LMTP, offsetof(struct config, lmtp), 1 },
};

/* Options that take a string, the last one given counting. */
static const struct string_option {
	int	 id;
	size_t	 offset;	/* of a const char * in struct config */
} string_options[] = {
	{ OPT_TLS_PROTOCOLS, offsetof(struct config, tls_protocols) },
	{ OPT_TLS_CIPHERS, offsetof(struct config, tls_ciphers) },
	{ OPT_TLS_TICKET_KEYS, offsetof(struct config, tls_ticket_keys) },
	{ OPT_RCPT_CHECK, offsetof(struct config, rcpt_check) },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int	 set_number(struct config *, int, const char *);
static int	 set_flag(struct config *, int);
static int	 set_string(struct config *, int, const char *);
static const char *longopt_name(int);
static void	 set_other(struct config *, int, char **);
static void	 add_string(const char ***, size_t *, const char *);
static void	 check_combinations(const struct config *);
static int	 mailname(char *, size_t);

static int
set_number(struct config *c, int id, const char *arg)
{
	const struct number_option	*o;
	const char			*errstr;
	long long			 n;
	size_t				 i;

	for (i = 0; i < NELEM(number_options); i++) {
		o = &number_options[i];
		if (o->id != id)
			continue;
		n = strtonum(arg, o->min, o->max, &errstr);
		if (errstr != NULL)
			usage_error("--%s %s: value is %s (allowed %lld to "
			    "%lld)", o->name, arg, errstr, o->min, o->max);
		*(long long *)(void *)((char *)c + o->offset) = n;
		return 1;
	}
	return 0;
}

static int
set_flag(struct config *c, int id)
{
	size_t	 i;

	for (i = 0; i < NELEM(flag_options); i++)
		if (flag_options[i].id == id) {
			*(int *)(void *)((char *)c + flag_options[i].offset) =
			    flag_options[i].value;
			return 1;
		}
	return 0;
}

/* The name of option id, for messages. */
static const char *
longopt_name(int id)
{
	size_t	 i;

	for (i = 0; longopts[i].name != NULL; i++)
		if (longopts[i].val == id)
			return longopts[i].name;
	return "?";
}

static int
set_string(struct config *c, int id, const char *arg)
{
	size_t	 i;

	for (i = 0; i < NELEM(string_options); i++)
		if (string_options[i].id == id) {
			if (arg[0] == '\0')
				usage_error("--%s: want a value",
				    longopt_name(id));
			*(const char **)(void *)((char *)c +
			    string_options[i].offset) = arg;
			return 1;
		}
	return 0;
}

/* A repeatable option's values, in order. */
static void
add_string(const char ***v, size_t *n, const char *arg)
{
	if ((*v = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
		usage_error("out of memory");
	(*v)[(*n)++] = arg;
}

/* The options that are neither a number nor a flag. */
static void
set_other(struct config *c, int id, char **argv)
{
	switch (id) {
	case OPT_HOSTNAME:
		if (!hostname_ok(optarg))
			usage_error("--hostname: want a host name of at most "
			    "255 octets (letters, digits, hyphens, dots) or an "
			    "address literal");
		c->hostname = optarg;
		break;
	case OPT_RELAY:
		if (!relay_ok(optarg))
			usage_error("--relay %s: want host, host:port or "
			    "[ipv6]:port, port 1 to 65535", optarg);
		c->relay = optarg;
		break;
	case OPT_POLICY:
		if (!policy_addr_ok(optarg))
			usage_error("--policy %s: want [rcpt:|data:]unix:PATH, "
			    "inet:HOST:PORT or exec:PROGRAM", optarg);
		add_string(&c->policy, &c->npolicy, optarg);
		break;
	case OPT_MILTER:
		if (!milter_addr_ok(optarg))
			usage_error("--milter %s: want unix:PATH or "
			    "inet:HOST:PORT", optarg);
		add_string(&c->milter, &c->nmilter, optarg);
		break;
	case OPT_AUTHSERV_ID:
		/* RFC 8601 2.2: a value; a host name here, as in --hostname. */
		if (!hostname_ok(optarg))
			usage_error("--authserv-id: want a host name, not %s",
			    optarg);
		c->authserv_id = optarg;
		break;
	case OPT_MILTER_DEFAULT:
		if ((c->milter_default = milter_action_word(optarg)) == -1)
			usage_error("--milter-default-action: want tempfail, "
			    "accept or reject, not %s", optarg);
		break;
	case OPT_TLS_CERT:
		add_string(&c->tls_cert, &c->ntls_cert, optarg);
		break;
	case OPT_TLS_KEY:
		add_string(&c->tls_key, &c->ntls_key, optarg);
		break;
	case OPT_AUTH:
		if (!auth_spec_ok(optarg))
			usage_error("--auth %s: want dovecot:PATH or "
			    "checkpassword:PROGRAM", optarg);
		c->auth = optarg;
		break;
	case OPT_LOG:
		if (strcmp(optarg, "syslog") == 0)
			c->log = LOGTO_SYSLOG;
		else if (strcmp(optarg, "stderr") == 0)
			c->log = LOGTO_STDERR;
		else
			usage_error("--log: want syslog or stderr, not %s",
			    optarg);
		break;
	case OPT_VERSION:
		(void)printf("smtpd-stdio %s\n", SMTPD_VERSION);
		exit(EXIT_OK);
	case 'h':
	case OPT_HELP:
		(void)fputs(USAGE, stdout);
		exit(EXIT_OK);
	case ':':
		usage_error("option %s needs a value", argv[optind - 1]);
	default:
		usage_error("unknown option %s", argv[optind - 1]);
	}
}

void
options_parse(int argc, char **argv, struct config *c)
{
	int	 ch;

	memset(c, 0, sizeof(*c));
	c->size_limit = 33554432;
	c->max_recipients = 1000;
	c->timeout = 300;
	c->handler_timeout = 300;
	c->session_timeout = 3600;
	c->min_data_rate = 1024;
	c->max_errors = 20;
	c->received = 1;
	c->log = LOGTO_SYSLOG;
	opterr = 0;
	/* "+": stop at the first non-option, the rest is the handler's. */
	c->tls_protocols = "secure";
	c->tls_ciphers = "secure";
	while ((ch = getopt_long(argc, argv, "+:vh", longopts, NULL)) != -1)
		if (!set_number(c, ch, optarg) && !set_flag(c, ch) &&
		    !set_string(c, ch, optarg))
			set_other(c, ch, argv);
	if (optind >= argc)
		usage_error("no handler given");
	check_combinations(c);
	c->handler_argv = argv + optind;
}

/* SPEC 2, 8 and 9: the options that need or exclude one another. */
static void
check_combinations(const struct config *c)
{
	if (c->sevenbit && c->smtputf8)
		usage_error("--7bit and --smtputf8 contradict each other");
	if (c->ntls_cert != c->ntls_key)
		usage_error("--tls-cert and --tls-key go in pairs (%zu "
		    "certificates, %zu keys)", c->ntls_cert, c->ntls_key);
	if (c->ntls_cert == 0 && (c->tls_implicit || c->require_tls ||
	    c->tls_ask_client_cert || c->tls_ticket_keys != NULL))
		usage_error("--tls, --require-tls, --tls-ask-client-cert and "
		    "--tls-ticket-keys need --tls-cert and --tls-key");
	if (c->auth == NULL && (c->require_auth || c->auth_plaintext))
		usage_error("--require-auth and --auth-plaintext need --auth");
	if (c->auth != NULL && c->ntls_cert == 0 && !c->auth_plaintext)
		usage_error("--auth needs --tls-cert (or --auth-plaintext): "
		    "AUTH is offered only under TLS");
}

/* The first line of /etc/mailname, if it is a usable name. */
static int
mailname(char *name, size_t len)
{
	FILE	*fp;
	int	 ok = 0;

	if ((fp = fopen("/etc/mailname", "re")) == NULL)
		return 0;
	if (fgets(name, (int)len, fp) != NULL) {
		name[strcspn(name, "\n")] = '\0';
		ok = hostname_ok(name);
	}
	(void)fclose(fp);
	return ok;
}

/*
 * SPEC 2's default: the host's name.  /etc/mailname first (the Debian
 * convention Postfix and Exim follow), then gethostname() when it holds
 * a dot; only then the resolver, which loads the NSS modules and may ask
 * the DNS in every process.
 */
const char *
options_default_hostname(void)
{
	static char	 name[SMTP_DOMAIN_MAX + 2];
	struct addrinfo	 hints, *res;

	if (mailname(name, sizeof(name)))
		return name;
	if (gethostname(name, sizeof(name) - 1) == -1 || !hostname_ok(name))
		(void)strlcpy(name, "localhost", sizeof(name));
	if (strchr(name, '.') != NULL)
		return name;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &res) == 0) {
		if (res->ai_canonname != NULL && hostname_ok(res->ai_canonname))
			(void)strlcpy(name, res->ai_canonname, sizeof(name));
		freeaddrinfo(res);
	}
	return name;
}
