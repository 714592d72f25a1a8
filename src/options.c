/*
 * The command line, SPEC 1 and 2: one table with a row per option (its
 * kind, SPEC section, limits, the config field it sets and its help),
 * the parser and --help that read it, and the default hostname.  A bad
 * value is a usage error: one line on stderr, exit 64, nothing on stdout.
 * Values are checked with optsyntax.c's pure functions, never by the
 * modules that use them, so this file imports no I/O module.
 */
#include <sys/socket.h>

#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define HELP_WIDTH	78	/* columns of --help */
#define HELP_FIRST	"usage: smtpd-stdio"	/* the synopsis wraps under it */
#define HELP_LEFT	26	/* the option column of --help */
#define OPT_BASE	256	/* getopt_long's value of row 0 */

enum opt_kind {
	OK_FLAG,	/* no value: sets an int field to set_to */
	OK_NUMBER,	/* a long long field, min to max (strtonum) */
	OK_STRING,	/* a const char * field, the last one counting */
	OK_LIST,	/* repeatable: appended to a const char ** field */
	OK_WORD,	/* one of words[], its value in an int field */
	OK_HELP,
	OK_VERSION
};

/* Where a refused value goes in its usage error. */
enum opt_echo {
	ECHO_NONE,	/* "--name: want" (the value may hold a CR LF) */
	ECHO_FIRST,	/* "--name value: want" */
	ECHO_LAST	/* "--name: want, not value" */
};

struct opt_word {
	const char	*word;
	int		 value;
};

struct opt {
	const char		*name;
	int			 shortname;	/* 0 if none */
	enum opt_kind		 kind;
	const char		*spec;		/* where SPEC.md defines it, for readers */
	const char		*arg;		/* its value in --help; NULL: none */
	long long		 min, max;	/* OK_NUMBER */
	long long		 def;		/* OK_NUMBER's default */
	int			 set_to;	/* OK_FLAG */
	size_t			 field;		/* offsetof(struct config, ...) */
	size_t			 count;		/* OK_LIST: the size_t count */
	int			(*ok)(const char *);	/* syntax; NULL: any */
	const struct opt_word	*words;		/* OK_WORD */
	enum opt_echo		 echo;
	const char		*want;		/* the usage error if !ok */
	const char		*help;
};

static const struct opt_word log_words[] = {
	{ "syslog", LOGTO_SYSLOG },
	{ "stderr", LOGTO_STDERR },
	{ NULL, 0 }
};

/* As Postfix's milter_default_action. */
static const struct opt_word milter_words[] = {
	{ "tempfail", MILTER_DEFAULT_TEMPFAIL },
	{ "accept", MILTER_DEFAULT_ACCEPT },
	{ "reject", MILTER_DEFAULT_REJECT },
	{ NULL, 0 }
};

static int	 nonempty(const char *);

/*
 * The offset of config field f, which must be of type T (a compile
 * error otherwise): the kind of a row says how its field is written.
 */
#define FIELD(f, T)	(offsetof(struct config, f) + \
	0 * sizeof(_Generic(((struct config *)0)->f, T: 1)))
#define FLAG(n, s, f, v, sec, h) { .name = n, .shortname = s, \
	.kind = OK_FLAG, .field = FIELD(f, int), .set_to = v, .spec = sec, \
	.help = h }
#define NUMBER(n, a, f, lo, hi, d, sec, h) { .name = n, .kind = OK_NUMBER, \
	.arg = a, .field = FIELD(f, long long), .min = lo, .max = hi, \
	.def = d, .spec = sec, .help = h }
#define STRING(n, a, f, check, e, w, sec, h) { .name = n, \
	.kind = OK_STRING, .arg = a, .field = FIELD(f, const char *), \
	.ok = check, .echo = e, .want = w, .spec = sec, .help = h }
#define LIST(n, a, f, nf, check, e, w, sec, h) { .name = n, \
	.kind = OK_LIST, .arg = a, .field = FIELD(f, const char **), \
	.count = FIELD(nf, size_t), .ok = check, .echo = e, .want = w, \
	.spec = sec, .help = h }
#define WORD(n, a, f, ws, w, sec, h) { .name = n, .kind = OK_WORD, \
	.arg = a, .field = FIELD(f, int), .words = ws, .echo = ECHO_LAST, \
	.want = w, .spec = sec, .help = h }
#define ACTION(n, s, k, sec, h) { .name = n, .shortname = s, .kind = k, \
	.spec = sec, .help = h }

/*
 * Every option, in the order of the synopsis.  A number's limits: SPEC
 * 2, 0 only where it means "no limit"; a timeout in seconds at most
 * INT_MAX / 1000, so that it fits an int in milliseconds.
 */
static const struct opt opts[] = {
	FLAG("7bit", 0, sevenbit, 1, "2",
	    "do not advertise 8BITMIME; 8-bit messages get 554"),
	FLAG("crlf", 0, crlf, 1, "2",
	    "give the handler CRLF line ends [LF]"),
	FLAG("dsn", 0, dsn, 1, "2",
	    "advertise DSN; the handler honours NOTIFY and RET"),
	FLAG("lmtp", 0, lmtp, 1, "11",
	    "speak LMTP: LHLO, one reply per recipient"),
	FLAG("no-received", 0, received, 0, "2",
	    "do not prepend a Received: header"),
	FLAG("smtputf8", 0, smtputf8, 1, "2",
	    "advertise SMTPUTF8 (RFC 6531)"),
	FLAG("verbose", 'v', verbose, 1, "2",
	    "also log every command and reply"),
	NUMBER("handler-timeout", "seconds", handler_timeout, 1,
	    INT_MAX / 1000, 300, "2", "wall-clock limit of one handler run"),
	STRING("hostname", "name", hostname, hostname_ok, ECHO_NONE,
	    "want a host name of at most 255 octets (letters, digits, "
	    "hyphens, dots) or an address literal", "2",
	    "our name in greeting and Received: [the host's]"),
	WORD("log", "syslog|stderr", log, log_words, "want syslog or stderr",
	    "2", "where diagnostics go [syslog]"),
	NUMBER("max-errors", "n", max_errors, 1, LLONG_MAX, 20, "2",
	    "protocol errors before 421 and the end"),
	NUMBER("max-messages", "n", max_messages, 0, LLONG_MAX, 0, "2",
	    "transactions per session, 0: no limit"),
	NUMBER("max-recipients", "n", max_recipients, 1, INT_MAX, 1000, "2",
	    "RCPTs per transaction"),
	/* SPEC is silent on --greet-pause; its early talk is SPEC 4's. */
	NUMBER("greet-pause", "ms", greet_pause, 0, 300000, 0, "4",
	    "wait before the greeting; early talk gets 554"),
	NUMBER("min-data-rate", "bytes", min_data_rate, 0, INT_MAX, 1024,
	    "10.3", "octets/s a message must keep up, 0: off"),
	LIST("policy", "addr", policy, npolicy, policy_addr_ok, ECHO_FIRST,
	    "want [rcpt:|data:]unix:PATH, inet:HOST:PORT or exec:PROGRAM",
	    "10.2", "ask a Postfix policy server; repeatable"),
	FLAG("proxy-protocol", 0, proxy_protocol, 1, "10.1",
	    "a HAProxy PROXY header comes first"),
	STRING("rcpt-check", "program", rcpt_check, nonempty, ECHO_NONE,
	    "want a value", "10.2", "run PROGRAM per RCPT: it decides"),
	NUMBER("session-timeout", "seconds", session_timeout, 1,
	    INT_MAX / 1000, 3600, "10.3", "wall-clock limit of a session"),
	STRING("relay", "host[:port]", relay, relay_ok, ECHO_FIRST,
	    "want host, host:port or [ipv6]:port, port 1 to 65535", "2",
	    "upstream relay, as SMTP_RELAY"),
	NUMBER("size-limit", "bytes", size_limit, 0, LLONG_MAX / 2, 33554432,
	    "2", "largest message (SIZE), 0: no limit"),
	NUMBER("timeout", "seconds", timeout, 1, INT_MAX / 1000, 300, "2",
	    "per command line, and idle in data"),
	LIST("tls-cert", "file", tls_cert, ntls_cert, NULL, ECHO_NONE, NULL,
	    "8", "certificate chain; in pairs with --tls-key"),
	LIST("tls-key", "file", tls_key, ntls_key, NULL, ECHO_NONE, NULL, "8",
	    "its key; more pairs are chosen by SNI"),
	FLAG("tls", 0, tls_implicit, 1, "8",
	    "implicit TLS: the handshake comes first"),
	FLAG("require-tls", 0, require_tls, 1, "8",
	    "MAIL and AUTH only after STARTTLS"),
	STRING("tls-protocols", "list", tls_protocols, nonempty, ECHO_NONE,
	    "want a value", "8", "tlsv1.2,tlsv1.3 or secure [secure]"),
	STRING("tls-ciphers", "list", tls_ciphers, nonempty, ECHO_NONE,
	    "want a value", "8", "secure or a GnuTLS priority list [secure]"),
	FLAG("tls-ask-client-cert", 0, tls_ask_client_cert, 1, "8",
	    "ask for a client certificate, never verified"),
	STRING("tls-ticket-keys", "file", tls_ticket_keys, nonempty,
	    ECHO_NONE, "want a value", "8",
	    "session-ticket keys, for resumption"),
	STRING("auth", "backend:arg", auth, auth_spec_ok, ECHO_FIRST,
	    "want dovecot:PATH or checkpassword:PROGRAM", "9",
	    "dovecot:PATH or checkpassword:PROGRAM"),
	FLAG("require-auth", 0, require_auth, 1, "9",
	    "MAIL only after AUTH"),
	FLAG("auth-plaintext", 0, auth_plaintext, 1, "9",
	    "offer AUTH without TLS"),
	LIST("milter", "addr", milter, nmilter, milter_addr_ok, ECHO_FIRST,
	    "want unix:PATH or inet:HOST:PORT", "13",
	    "a milter to ask; repeatable"),
	WORD("milter-default-action", "tempfail|accept|reject",
	    milter_default, milter_words,
	    "want tempfail, accept or reject", "13",
	    "when a milter fails [tempfail]"),
	STRING("authserv-id", "name", authserv_id, hostname_ok, ECHO_LAST,
	    "want a host name", "13",	/* RFC 8601 2.2, as --hostname */
	    "Authentication-Results: name [--hostname]"),
	ACTION("help", 'h', OK_HELP, "2", "print this and exit"),
	ACTION("version", 0, OK_VERSION, "2", "print the version and exit"),
};

#define NOPTS	(sizeof(opts) / sizeof(opts[0]))

static void	 set_defaults(struct config *);
static const struct opt *opt_of(int);
static void	 apply(struct config *, const struct opt *, const char *);
static void	 refuse(const struct opt *, const char *)
		    __attribute__((noreturn));
static void	 set_number(struct config *, const struct opt *, const char *);
static void	 set_word(struct config *, const struct opt *, const char *);
static void	 add_string(struct config *, const struct opt *, const char *);
static size_t	 synopsis_item(const struct opt *, char *, size_t);
static void	 synopsis(void);
static void	 option_item(const struct opt *, char *, size_t);
static void	 help(void);
static void	 getopt_tables(struct option *, char *);
static void	 check_combinations(const struct config *);
static int	 mailname(char *, size_t);

/* A value that must be given, whatever it is. */
static int
nonempty(const char *s)
{
	return s[0] != '\0';
}

/* The field of c at offset, a row's .field or .count. */
static void *
field(struct config *c, size_t offset)
{
	return (char *)c + offset;
}

/* SPEC 2's defaults. */
static void
set_defaults(struct config *c)
{
	size_t	 i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NOPTS; i++)
		if (opts[i].kind == OK_NUMBER)
			*(long long *)field(c, opts[i].field) = opts[i].def;
	c->received = 1;
	c->log = LOGTO_SYSLOG;
	c->tls_protocols = "secure";
	c->tls_ciphers = "secure";
}

/* The row getopt_long() returned ch for, or NULL for an error. */
static const struct opt *
opt_of(int ch)
{
	size_t	 i;

	if (ch >= OPT_BASE && (size_t)(ch - OPT_BASE) < NOPTS)
		return &opts[ch - OPT_BASE];
	for (i = 0; i < NOPTS; i++)
		if (opts[i].shortname != 0 && opts[i].shortname == ch)
			return &opts[i];
	return NULL;
}

/* A value o's row refuses: exit 64 (SPEC 1). */
static void
refuse(const struct opt *o, const char *arg)
{
	switch (o->echo) {
	case ECHO_FIRST:
		usage_error("--%s %s: %s", o->name, arg, o->want);
	case ECHO_LAST:
		usage_error("--%s: %s, not %s", o->name, o->want, arg);
	case ECHO_NONE:
		break;
	}
	usage_error("--%s: %s", o->name, o->want);
}

static void
set_number(struct config *c, const struct opt *o, const char *arg)
{
	const char	*errstr;
	long long	 n;

	n = strtonum(arg, o->min, o->max, &errstr);
	if (errstr != NULL)
		usage_error("--%s %s: value is %s (allowed %lld to %lld)",
		    o->name, arg, errstr, o->min, o->max);
	*(long long *)field(c, o->field) = n;
}

static void
set_word(struct config *c, const struct opt *o, const char *arg)
{
	const struct opt_word	*w;

	for (w = o->words; w->word != NULL; w++)
		if (strcmp(arg, w->word) == 0) {
			*(int *)field(c, o->field) = w->value;
			return;
		}
	refuse(o, arg);
}

/* A repeatable option's values, in order. */
static void
add_string(struct config *c, const struct opt *o, const char *arg)
{
	const char	***v = field(c, o->field);
	size_t		  *n = field(c, o->count);

	if ((*v = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
		usage_error("out of memory");
	(*v)[(*n)++] = arg;
}

/* One option's value, by the kind of its row. */
static void
apply(struct config *c, const struct opt *o, const char *arg)
{
	if (o->ok != NULL && !o->ok(arg))
		refuse(o, arg);
	switch (o->kind) {
	case OK_FLAG:
		*(int *)field(c, o->field) = o->set_to;
		break;
	case OK_NUMBER:
		set_number(c, o, arg);
		break;
	case OK_STRING:
		*(const char **)field(c, o->field) = arg;
		break;
	case OK_LIST:
		add_string(c, o, arg);
		break;
	case OK_WORD:
		set_word(c, o, arg);
		break;
	case OK_HELP:
		help();
		exit(EXIT_OK);
	case OK_VERSION:
		(void)printf("smtpd-stdio %s\n", SMTPD_VERSION);
		exit(EXIT_OK);
	}
}

/* "[--name arg]", "[-v]" or "[--name arg ...]", for the synopsis. */
static size_t
synopsis_item(const struct opt *o, char *item, size_t len)
{
	int	 n;

	if (o->shortname != 0)
		n = snprintf(item, len, "[-%c]", o->shortname);
	else
		n = snprintf(item, len, "[--%s%s%s%s]", o->name,
		    o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "",
		    o->kind == OK_LIST ? " ..." : "");
	return n < 0 ? 0 : (size_t)n;
}

/* The synopsis, wrapped under its first line as usage(1) pages are. */
static void
synopsis(void)
{
	char	 item[80];
	size_t	 i, col, len;

	col = (size_t)printf("%s", HELP_FIRST);
	for (i = 0; i <= NOPTS; i++) {
		if (i == NOPTS)
			len = strlcpy(item, "[--] handler [arg ...]",
			    sizeof(item));
		else if (opts[i].kind == OK_HELP ||
		    opts[i].kind == OK_VERSION)
			continue;
		else
			len = synopsis_item(&opts[i], item, sizeof(item));
		if (col + 1 + len > HELP_WIDTH)
			col = (size_t)printf("\n%*s", (int)strlen(HELP_FIRST),
			    "") - 1;
		col += (size_t)printf(" %s", item);
	}
	(void)printf("\n");
}

/* "-v, --verbose" or "--name arg", the left column of --help. */
static void
option_item(const struct opt *o, char *item, size_t len)
{
	char	 shortname[5] = "";

	if (o->shortname != 0)
		(void)snprintf(shortname, sizeof(shortname), "-%c, ",
		    o->shortname);
	(void)snprintf(item, len, "%s--%s%s%s", shortname, o->name,
	    o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
}

/*
 * --help: the synopsis, then a line per option with its default, both
 * from opts[] so that neither can forget one.
 */
static void
help(void)
{
	char	 item[80];
	size_t	 i;

	synopsis();
	(void)printf("\noptions:\n");
	for (i = 0; i < NOPTS; i++) {
		option_item(&opts[i], item, sizeof(item));
		if (strlen(item) > HELP_LEFT)
			(void)printf("  %s\n  %-*s", item, HELP_LEFT, "");
		else
			(void)printf("  %-*s", HELP_LEFT, item);
		(void)printf(" %s", opts[i].help);
		if (opts[i].kind == OK_NUMBER)
			(void)printf(" [%lld]", opts[i].def);
		(void)printf("\n");
	}
}

/*
 * getopt_long()'s tables from opts[]: row i answers OPT_BASE + i, or
 * its short name.  "+:": stop at the first non-option (the rest is the
 * handler's), and tell a missing value from an unknown option.
 */
static void
getopt_tables(struct option *longopts, char *shortopts)
{
	size_t	 i, n = 0;

	shortopts[n++] = '+';
	shortopts[n++] = ':';
	for (i = 0; i < NOPTS; i++) {
		longopts[i] = (struct option){ opts[i].name, opts[i].arg !=
		    NULL ? required_argument : no_argument, NULL,
		    OPT_BASE + (int)i };
		if (opts[i].shortname == 0)
			continue;
		shortopts[n++] = (char)opts[i].shortname;
		if (opts[i].arg != NULL)
			shortopts[n++] = ':';
	}
	longopts[NOPTS] = (struct option){ NULL, 0, NULL, 0 };
	shortopts[n] = '\0';
}

void
options_parse(int argc, char **argv, struct config *c)
{
	struct option		 longopts[NOPTS + 1];
	char			 shortopts[2 * NOPTS + 3];
	const struct opt	*o;
	int			 ch;

	set_defaults(c);
	getopt_tables(longopts, shortopts);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		if ((o = opt_of(ch)) != NULL)
			apply(c, o, optarg);
		else if (ch == ':')
			usage_error("option %s needs a value", argv[optind - 1]);
		else
			usage_error("unknown option %s", argv[optind - 1]);
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
