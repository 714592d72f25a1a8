/*
 * The SMTP dialogue, RFC 5321: a state machine fed with the client's bytes
 * that queues replies and asks the I/O layer for actions (write, spool,
 * run the handler, close).  No I/O happens here, so the same input gives
 * the same replies however it is split into reads.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpd-stdio.h"

#define ST(x)		(1U << (x))
#define ST_ANY		(ST(SS_INIT) | ST(SS_HELO) | ST(SS_MAIL) | ST(SS_RCPT))
#define ST_GREETED	(ST(SS_HELO) | ST(SS_MAIL) | ST(SS_RCPT))

enum args {
	ARGS_NONE,
	ARGS_OPTIONAL,
	ARGS_REQUIRED
};

/* A verb that always answers the same line has it as its answer. */
struct command {
	const char	*verb;
	unsigned int	 states;	/* where the verb may run */
	enum args	 args;
	const char	*out_of_sequence;
	void		(*run)(struct session *, const char *, size_t);
	const char	*answer;	/* after run, if any: this reply */
};

static void	cmd_helo(struct session *, const char *, size_t);
static void	cmd_ehlo(struct session *, const char *, size_t);
static void	cmd_mail(struct session *, const char *, size_t);
static void	cmd_rcpt(struct session *, const char *, size_t);
static void	cmd_data(struct session *, const char *, size_t);
static void	cmd_rset(struct session *, const char *, size_t);
static void	cmd_quit(struct session *, const char *, size_t);
static void	cmd_help(struct session *, const char *, size_t);
static void	cmd_starttls(struct session *, const char *, size_t);
static void	cmd_auth(struct session *, const char *, size_t);
static void	cmd_bdat(struct session *, const char *, size_t);
static void	cmd_lhlo(struct session *, const char *, size_t);
static void	ehlo_reply(struct session *);
static int	auth_offerable(const struct session *);
static int	sasl_text_ok(const char *, size_t, int);
static void	data_start(struct session *);

static const struct command commands[] = {
	{ "HELO", ST_ANY, ARGS_REQUIRED, NULL, cmd_helo, NULL },
	{ "EHLO", ST_ANY, ARGS_REQUIRED, NULL, cmd_ehlo, NULL },
	{ "MAIL", ST(SS_HELO), ARGS_REQUIRED,
	    "503 5.5.1 Error: nested MAIL command", cmd_mail, NULL },
	{ "RCPT", ST(SS_MAIL) | ST(SS_RCPT), ARGS_REQUIRED,
	    "503 5.5.1 Error: need MAIL command", cmd_rcpt, NULL },
	{ "DATA", ST(SS_RCPT), ARGS_NONE,
	    "503 5.5.1 Error: need RCPT command", cmd_data, NULL },
	{ "RSET", ST_ANY, ARGS_NONE, NULL, cmd_rset, "250 2.0.0 OK" },
	{ "NOOP", ST_ANY, ARGS_OPTIONAL, NULL, NULL, "250 2.0.0 OK" },
	{ "QUIT", ST_ANY, ARGS_NONE, NULL, cmd_quit, "221 2.0.0 Bye" },
	{ "VRFY", ST_ANY, ARGS_REQUIRED, NULL, NULL,
	    "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
	    "delivery" },
	{ "EXPN", ST_ANY, ARGS_OPTIONAL, NULL, NULL,
	    "502 5.5.1 EXPN not supported" },
	{ "HELP", ST_ANY, ARGS_OPTIONAL, NULL, cmd_help, NULL },
	{ "STARTTLS", ST(SS_HELO), ARGS_NONE,
	    "503 5.5.1 Error: STARTTLS inside a transaction", cmd_starttls,
	    NULL },
	{ "AUTH", ST(SS_HELO), ARGS_REQUIRED,
	    "503 5.5.1 Error: AUTH inside a transaction", cmd_auth, NULL },
	{ "BDAT", ST_ANY, ARGS_OPTIONAL, NULL, cmd_bdat, NULL },
	{ "LHLO", ST_ANY, ARGS_REQUIRED, NULL, cmd_lhlo, NULL },
};

/* First words of an HTTP request: the client is a browser or a proxy. */
static const char *const http_methods[] = {
	"GET ", "POST ", "HEAD ", "CONNECT ", "PUT ", "OPTIONS "
};

static void	close_session(struct session *, int);
static void	close_after_421(struct session *, const char *);
static int	waits_for(enum session_state, enum session_action *);
static int	data_buffer_full(const struct session *);
static int	bdat_step(struct session *);
static int	data_step(struct session *);
static int	next_action(struct session *, enum session_action *);
static size_t	input_feed(struct session *, const char *, size_t);
static void	count_error(struct session *);
static void	txn_reset(struct session *);
static void	txn_refused(struct session *, const char *);
static int	helo_arg_ok(const char *, size_t);
static void	greet(struct session *, const char *, size_t, int);
static const struct command *command_find(const char *, size_t);
static int	is_http(const char *, size_t);
static int	out_of_sync(const struct session *, const struct command *);
static size_t	split_command(const char *, size_t, const char **,
		    size_t *);
static const char *out_of_sequence(const struct session *,
		    const struct command *);
static int	args_fit(const struct command *, size_t);
static void	dispatch(struct session *, const char *, size_t);
static int	line_too_long(const struct session *, const char *, size_t);
static void	process_line(struct session *);
static int	has_nul_or_cr(const char *, size_t);
static void	line_checked(struct session *, const char *, size_t);
static void	line_done(struct session *, const char *, size_t);
static size_t	line_feed(struct session *, const char *, size_t);
static size_t	data_feed(struct session *, const char *, size_t);
static void	data_end(struct session *);
static int	data_discarding(const struct session *);
static int	auth_offered(const struct session *);
static void	sasl_start(struct session *, const char *, size_t);
static void	sasl_response(struct session *, const char *, size_t);
static void	sasl_plain(struct session *, const char *, size_t);
static void	sasl_end(struct session *);
static int	sasl_user_ok(const char *, size_t);
static int	is_auth_line(const char *, size_t);
static int	verb_of_mode(const struct session *, const struct command *);
static int	bdat_parse(const char *, size_t, uint64_t *, int *);
static int	bad_bdat_line(struct session *, const char *, size_t);
static int	bdat_verb_garbled(const char *, size_t);
static void	bdat_out_of_step(struct session *);
static const char *txn_refusal(const struct session *);
static size_t	bdat_feed(struct session *, const char *, size_t);
static void	bdat_end(struct session *);
static void	bdat_flush_cr(struct session *);

/*
 * The format attribute stands here, just above the definition, where
 * pmccabe(1) counts it with reply() rather than with the next function.
 */
static void	reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Queue one reply line; the text is ours or already sanitised. */
static void
reply(struct session *s, const char *fmt, ...)
{
	char		 line[SMTP_REPLYLINE_MAX - 2];
	const char	*text = line;
	size_t		 len;
	va_list		 ap;
	int		 n;

	if (strchr(fmt, '%') == NULL) {
		/* Most replies are constants: nothing to format. */
		text = fmt;
		len = strnlen(fmt, sizeof(line) - 1);
	} else {
		va_start(ap, fmt);
		n = vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		if (n < 0)
			fatalx("vsnprintf failed");
		len = strlen(line);
	}
	log_debug("> %.*s", (int)len, text);
	buf_append(&s->out, text, len);
	buf_append(&s->out, "\r\n", 2);
	s->last_code = text[0];
}

void
session_init(struct session *s, const struct config *conf)
{
	memset(s, 0, sizeof(*s));
	s->conf = conf;
	s->state = SS_INIT;
	if ((s->data = malloc(DATA_CHUNK)) == NULL)
		fatalx("out of memory");
	reply(s, "220 %s %s smtpd-stdio", conf->hostname,
	    conf->lmtp ? "LMTP" : "ESMTP");
}

void
session_free(struct session *s)
{
	explicit_bzero(&s->sasl, sizeof(s->sasl));
	explicit_bzero(s->line, sizeof(s->line));
	txn_reset(s);
	buf_free(&s->out);
	free(s->data);
	s->data = NULL;
}

static void
close_session(struct session *s, int status)
{
	s->state = SS_CLOSED;
	s->exit_status = status;
}

/*
 * SPEC 5.2: a 421 from a handler or a check (a line of it, under LMTP)
 * is a promise to close (RFC 5321 3.8): the session ends, exit 0.
 */
static void
close_after_421(struct session *s, const char *text)
{
	if (strncmp(text, "421", 3) == 0 || strstr(text, "\r\n421") != NULL)
		close_session(s, EXIT_OK);
}

/* RFC 5321 says nothing on how many errors to take; we take max_errors. */
static void
count_error(struct session *s)
{
	if (++s->errors < s->conf->max_errors || s->state == SS_CLOSED)
		return;
	reply(s, "421 4.7.0 %s Error: too many errors", s->conf->hostname);
	close_session(s, EXIT_FAIL);
}

static void
txn_reset(struct session *s)
{
	struct txn	*t = &s->txn;
	size_t		 i;

	free(t->mail_from);
	free(t->mail_options);
	for (i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i]);
		free(t->rcpt_options[i]);
	}
	free(t->rcpt);
	free(t->rcpt_options);
	free(t->quarantine);
	buf_free(&t->prepend);
	memset(t, 0, sizeof(*t));
}

/* HELO/EHLO argument: printable ASCII only, it ends up in a header. */
static int
helo_arg_ok(const char *arg, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if ((unsigned char)arg[i] < 0x20 || (unsigned char)arg[i] > 0x7e)
			return 0;
	return 1;
}

/* HELO and EHLO, RFC 5321 4.1.1.1: both reset the transaction. */
static void
greet(struct session *s, const char *arg, size_t len, int esmtp)
{
	if (!helo_arg_ok(arg, len)) {
		reply(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	txn_reset(s);
	memcpy(s->helo, arg, len);
	s->helo[len] = '\0';
	s->esmtp = esmtp;
	s->state = SS_HELO;
}

static void
cmd_helo(struct session *s, const char *arg, size_t len)
{
	greet(s, arg, len, 0);
	if (s->state == SS_HELO)
		reply(s, "250 %s", s->conf->hostname);
}

static void
cmd_ehlo(struct session *s, const char *arg, size_t len)
{
	greet(s, arg, len, 1);
	if (s->state != SS_HELO)
		return;
	/* SPEC 9: the backend is asked only when AUTH is to be offered. */
	if (auth_offerable(s) && !s->auth_mechs_known) {
		s->state = SS_AUTH_MECHS;
		return;
	}
	ehlo_reply(s);
}

/* The EHLO reply: what this session offers now. */
static void
ehlo_reply(struct session *s)
{
	const struct config	*c = s->conf;

	reply(s, "250-%s", c->hostname);
	reply(s, "250-PIPELINING");
	if (c->size_limit > 0)
		reply(s, "250-SIZE %lld", c->size_limit);
	else
		reply(s, "250-SIZE");
	if (!c->sevenbit)
		reply(s, "250-8BITMIME");
	reply(s, "250-CHUNKING");
	if (!c->sevenbit)
		reply(s, "250-BINARYMIME");
	if (c->smtputf8)
		reply(s, "250-SMTPUTF8");
	if (c->dsn)
		reply(s, "250-DSN");
	if (c->ntls_cert > 0 && !s->tls)
		reply(s, "250-STARTTLS");
	if (s->tls)
		reply(s, "250-REQUIRETLS");	/* RFC 8689, SPEC 8 */
	if (auth_offered(s))
		reply(s, "250-AUTH%s%s",
		    s->auth_mechs & AUTH_MECH_PLAIN ? " PLAIN" : "",
		    s->auth_mechs & AUTH_MECH_LOGIN ? " LOGIN" : "");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_mail(struct session *s, const char *arg, size_t len)
{
	const struct config	*c = s->conf;
	struct addr_limits	 lim = { c->size_limit, c->smtputf8,
				    c->sevenbit, 0, s->tls };
	struct addr_result	 res;

	if (c->require_tls && !s->tls) {
		reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (c->require_auth && s->auth_user[0] == '\0') {
		reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (c->max_messages > 0 && s->messages >= c->max_messages) {
		reply(s, "421 4.7.0 %s Error: too many messages in one session",
		    c->hostname);
		close_session(s, EXIT_OK);
		return;
	}
	if (addr_parse(ADDR_MAIL, arg, len, &lim, &res) == -1) {
		reply(s, "%s", res.reply);
		return;
	}
	if ((s->txn.mail_from = strdup(res.path)) == NULL ||
	    (s->txn.mail_options = strdup(res.options)) == NULL)
		fatalx("out of memory");
	s->txn.utf8 = res.utf8;
	s->txn.binarymime = res.binarymime;
	s->txn.requiretls = res.requiretls;
	s->mail_seq++;
	/* SPEC 13: the milters hear the MAIL first, then we answer. */
	s->state = c->nmilter > 0 ? SS_MAIL_CHECK : SS_MAIL;
	if (s->state == SS_MAIL)
		reply(s, "250 2.1.0 OK");
}

/*
 * SPEC 2: a recipient that would make the handler's argv and environment
 * too large to exec (E2BIG) is refused now, or the message could never be
 * delivered.  Linux caps each string (SMTP_RCPT_TO, SMTP_RCPT_OPTIONS)
 * and the total; the total left for recipients is worked out at start.
 */
static size_t
rcpt_exec_cost(const struct config *c, const struct addr_result *res)
{
	size_t	 plen = strlen(res->path) + 1;

	return plen + strlen(res->options) + 1 +
	    c->argv_rcpt_copies * (plen + sizeof(char *));
}

static int
rcpt_fits_exec(const struct session *s, const struct addr_result *res)
{
	const struct txn	*t = &s->txn;

	return sizeof("SMTP_RCPT_TO=") - 1 + t->rcpt_bytes +
	    strlen(res->path) + 1 <= EXEC_STRING_MAX &&
	    sizeof("SMTP_RCPT_OPTIONS=") - 1 + t->ropt_bytes +
	    strlen(res->options) + 1 <= EXEC_STRING_MAX &&
	    t->exec_bytes + rcpt_exec_cost(s->conf, res) <=
	    s->conf->exec_room;
}

static void
txn_add_rcpt(struct txn *t, const struct addr_result *res, size_t cost)
{
	char	**rcpt, **opts;

	rcpt = reallocarray(t->rcpt, t->nrcpt + 1, sizeof(*rcpt));
	if (rcpt == NULL)
		fatalx("out of memory");
	t->rcpt = rcpt;
	opts = reallocarray(t->rcpt_options, t->nrcpt + 1, sizeof(*opts));
	if (opts == NULL)
		fatalx("out of memory");
	t->rcpt_options = opts;
	if ((t->rcpt[t->nrcpt] = strdup(res->path)) == NULL ||
	    (t->rcpt_options[t->nrcpt] = strdup(res->options)) == NULL)
		fatalx("out of memory");
	t->rcpt_bytes += strlen(res->path) + 1;
	t->ropt_bytes += strlen(res->options) + 1;
	t->exec_bytes += cost;
	t->nrcpt++;
}

static void
cmd_rcpt(struct session *s, const char *arg, size_t len)
{
	const struct config	*c = s->conf;
	struct addr_limits	 lim = { c->size_limit, c->smtputf8,
				    c->sevenbit, s->txn.utf8, s->tls };
	struct addr_result	 res;
	struct txn		*t = &s->txn;

	if (t->bdat) {
		reply(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	if ((long long)t->nrcpt >= c->max_recipients) {
		reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (addr_parse(ADDR_RCPT, arg, len, &lim, &res) == -1) {
		reply(s, "%s", res.reply);
		return;
	}
	if (!rcpt_fits_exec(s, &res)) {
		reply(s, "452 4.5.3 Error: too many recipients "
		    "(the envelope is too large)");
		return;
	}
	/* SPEC 10.2: the I/O layer asks the checks, then calls back. */
	if (c->rcpt_check != NULL || c->npolicy > 0 || c->nmilter > 0) {
		s->pending = res;
		s->pending_from = s->state;
		s->state = SS_RCPT_CHECK;
		return;
	}
	txn_add_rcpt(t, &res, rcpt_exec_cost(c, &res));
	s->state = SS_RCPT;
	reply(s, "250 2.1.5 OK");
}

/*
 * The checks of the pending RCPT are done (SPEC 10.2): accepted, with the
 * checker's 2xx reply or NULL for ours, or refused with text, a checked
 * CRLF-terminated reply.  A refused recipient is not in the transaction.
 * Like a handler's verdict, a refusal is about the recipient, not the
 * client, so it does not count as an error.
 */
void
session_rcpt_checked(struct session *s, int accept, const char *text)
{
	const char	*p, *eol;

	if (s->state != SS_RCPT_CHECK)
		return;
	if (accept) {
		txn_add_rcpt(&s->txn, &s->pending,
		    rcpt_exec_cost(s->conf, &s->pending));
		s->state = SS_RCPT;
	} else
		s->state = s->pending_from;
	if (text == NULL) {
		reply(s, "250 2.1.5 OK");
		return;
	}
	for (p = text; s->conf->verbose && (eol = strstr(p, "\r\n")) != NULL;
	    p = eol + 2)
		log_debug("> %.*s", (int)(eol - p), p);
	buf_append(&s->out, text, strlen(text));
	s->last_code = text[0];
	close_after_421(s, text);
}

/* A policy PREPEND header (checked, one line) for this transaction. */
void
session_prepend(struct session *s, const char *header)
{
	buf_append(&s->txn.prepend, header, strlen(header));
	buf_append(&s->txn.prepend, "\n", 1);
}

static void
cmd_data(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	/* SPEC 11: no DATA in a BDAT transaction, none for BINARYMIME. */
	if (s->txn.bdat || s->txn.binarymime) {
		reply(s, "503 5.5.1 Error: %s", s->txn.bdat ?
		    "DATA after BDAT" : "BODY=BINARYMIME requires BDAT");
		return;
	}
	/* SPEC 13: the milters hear the DATA first, then we answer. */
	if (s->conf->nmilter > 0) {
		s->state = SS_DATA_CHECK;
		return;
	}
	data_start(s);
}

/* The 354: from here on the message's bytes. */
static void
data_start(struct session *s)
{
	data_init(&s->dec, s->conf->crlf, s->conf->sevenbit);
	s->datalen = 0;
	s->txn_seq++;
	s->state = SS_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	txn_reset(s);
	if (s->state != SS_INIT)
		s->state = SS_HELO;
}

static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	close_session(s, EXIT_OK);
}

static void
cmd_help(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	reply(s, "214 2.0.0 Commands: %s MAIL RCPT DATA BDAT RSET NOOP "
	    "QUIT VRFY HELP", s->conf->lmtp ? "LHLO" : "HELO EHLO");
}

/* RFC 2033 4.1: LHLO is EHLO under another name, only with --lmtp. */
static void
cmd_lhlo(struct session *s, const char *arg, size_t len)
{
	cmd_ehlo(s, arg, len);
}

/* SPEC 11: under --lmtp HELO and EHLO are unknown, else LHLO is. */
static int
verb_of_mode(const struct session *s, const struct command *cmd)
{
	if (cmd->run == cmd_lhlo)
		return s->conf->lmtp;
	if (cmd->run == cmd_helo || cmd->run == cmd_ehlo)
		return !s->conf->lmtp;
	return 1;
}

/*
 * RFC 3030 2: "n" or "n LAST", n = 1*DIGIT.  -1 when it does not parse
 * (n overflowing too), so the chunk's length is unknown.
 */
static int
bdat_parse(const char *arg, size_t len, uint64_t *n, int *last)
{
	size_t	 i;

	*n = 0;
	*last = 0;
	for (i = 0; i < len && arg[i] >= '0' && arg[i] <= '9'; i++) {
		if (*n > (UINT64_MAX - (uint64_t)(arg[i] - '0')) / 10)
			return -1;
		*n = *n * 10 + (uint64_t)(arg[i] - '0');
	}
	if (i == 0)
		return -1;
	if (i == len)
		return 0;
	if (arg[i] != ' ')
		return -1;
	while (i < len && arg[i] == ' ')
		i++;
	if (len - i != 4 || strncasecmp(arg + i, "LAST", 4) != 0)
		return -1;
	*last = 1;
	return 0;
}

/*
 * A BDAT line we cannot parse: the length of its chunk is unknown, so
 * whatever follows could be chunk octets.  Reading on would take them
 * for commands; like Postfix we hang up (SPEC 11).
 */
static void
bdat_out_of_step(struct session *s)
{
	reply(s, "501 5.5.4 Syntax: BDAT chunk-size [LAST]");
	reply(s, "421 4.5.0 %s Error: BDAT out of step, closing",
	    s->conf->hostname);
	close_session(s, EXIT_FAIL);
}

/*
 * A BDAT line too long or with a NUL or CR in it does not parse either:
 * "BDAT" then a space or, as bdat_verb_garbled() has it, no more of a
 * verb ("BDAT\t12 LAST"), whatever the line's length.
 */
static int
bad_bdat_line(struct session *s, const char *line, size_t len)
{
	if (len < 4 || strncasecmp(line, "BDAT", 4) != 0 ||
	    (len > 4 && line[4] != ' ' && !bdat_verb_garbled(line, len)))
		return 0;
	bdat_out_of_step(s);
	return 1;
}

/*
 * "BDAT" and then neither a space nor more of a verb ("BDAT\t22"): a
 * BDAT that does not parse, whose octets must not become commands, as
 * they would if it went on as an unknown verb (SPEC 11).
 */
static int
bdat_verb_garbled(const char *line, size_t len)
{
	return len > 4 && strncasecmp(line, "BDAT", 4) == 0 &&
	    line[4] != ' ' && !isalnum((unsigned char)line[4]);
}

/*
 * Why the transaction has failed (size, --7bit, spool), or NULL: the
 * final reply to the message, CRLF included.
 */
static const char *
txn_refusal(const struct session *s)
{
	if (s->txn.too_big)
		return "552 5.3.4 Error: message size exceeds fixed limit\r\n";
	if (s->dec.eightbit)
		return "554 5.6.0 Error: 8-bit data refused (7-bit only)\r\n";
	if (s->txn.spool_failed)
		return "452 4.3.1 Error: insufficient system storage\r\n";
	return NULL;
}

/*
 * RFC 3030 2: BDAT n [LAST].  Its n octets are read whatever the reply
 * (SPEC 11), which goes out once they are: a sequence error now decided
 * is kept in bdat_reply until then.
 */
static void
cmd_bdat(struct session *s, const char *arg, size_t len)
{
	const struct config	*c = s->conf;
	struct txn		*t = &s->txn;
	uint64_t		 n;
	int			 last;

	if (bdat_parse(arg, len, &n, &last) == -1) {
		bdat_out_of_step(s);
		return;
	}
	s->bdat_chunk = n;
	s->bdat_left = n;
	s->bdat_last = last;
	s->bdat_from = s->state;
	s->bdat_reply = NULL;
	if (s->state == SS_INIT)
		s->bdat_reply = "503 5.5.1 Error: send HELO/EHLO first";
	else if (s->state == SS_HELO)
		s->bdat_reply = "503 5.5.1 Error: need MAIL command";
	else if (s->state != SS_RCPT)
		s->bdat_reply = "503 5.5.1 Error: need RCPT command";
	s->state = SS_BDAT;
	if (s->bdat_reply != NULL)
		return;
	if (!t->bdat) {
		t->bdat = 1;
		data_init(&s->dec, c->crlf, c->sevenbit);
		s->dec.nodots = 1;
		s->datalen = 0;
		s->txn_seq++;
	}
	/* The size limit counts the octets as sent (SPEC 11). */
	t->bdat_size = n > UINT64_MAX - t->bdat_size ? UINT64_MAX :
	    t->bdat_size + n;
	if (c->size_limit > 0 && t->bdat_size > (uint64_t)c->size_limit)
		t->too_big = 1;
}

/*
 * Octets of the chunk: to s->data, converted as DATA content is but for
 * the dots, or unchanged with BINARYMIME.  A refused chunk, or one of a
 * failed transaction, is read and dropped.
 */
static size_t
bdat_feed(struct session *s, const char *in, size_t len)
{
	size_t	 n, produced;

	if (len > s->bdat_left)
		len = (size_t)s->bdat_left;
	if (s->bdat_reply != NULL || data_discarding(s))
		n = len;
	else if (s->txn.binarymime) {
		n = DATA_CHUNK - s->datalen < len ? DATA_CHUNK - s->datalen :
		    len;
		memcpy(s->data + s->datalen, in, n);
		s->datalen += n;
	} else {
		n = data_decode(&s->dec, in, len, s->data + s->datalen,
		    DATA_CHUNK - s->datalen, &produced);
		s->datalen += produced;
	}
	s->bdat_left -= n;
	if (s->bdat_reply == NULL)
		s->dec.wire_size = s->txn.bdat_size - s->bdat_left;
	if (data_discarding(s))
		s->datalen = 0;
	return n;
}

/* A CR that ends the last chunk has no LF to come: it is data. */
static void
bdat_flush_cr(struct session *s)
{
	if (s->bdat_last && s->bdat_reply == NULL && !s->txn.binarymime &&
	    s->dec.state == DS_CR && !data_discarding(s) &&
	    s->datalen < DATA_CHUNK) {
		s->data[s->datalen++] = '\r';
		s->dec.state = DS_TEXT;
	}
}

/*
 * The chunk is read and spooled.  LAST goes on as the final dot does
 * (SA_DELIVER, a failed transaction with its refusal); any other chunk
 * is answered now.
 */
static void
bdat_end(struct session *s)
{
	const char	*fail = txn_refusal(s);

	if (s->bdat_reply != NULL) {
		s->state = s->bdat_from;
		reply(s, "%s", s->bdat_reply);
		s->bdat_reply = NULL;
		count_error(s);
		return;
	}
	if (s->bdat_last) {
		if (fail != NULL)
			s->txn.refusal = fail;
		s->state = SS_DELIVER;
		return;
	}
	s->state = SS_RCPT;
	if (fail != NULL)	/* reply() adds the CRLF */
		reply(s, "%.*s", (int)strcspn(fail, "\r"), fail);
	else
		reply(s, "250 2.0.0 %llu octets received",
		    (unsigned long long)s->bdat_chunk);
}

/*
 * RFC 3207 4: STARTTLS, then the handshake (the I/O layer's), then a
 * session as new (session_tls_started).
 */
static void
cmd_starttls(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	if (s->tls) {
		reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	/* smtpd-stdio: smtpd-stdio-tls answers, once GnuTLS is ready. */
	if (!s->conf->tls_handover)
		reply(s, "220 2.0.0 Ready to start TLS");
	s->state = SS_STARTTLS;
}

/*
 * SPEC 8: smtpd-stdio-tls goes on with the session smtpd-stdio handed
 * over at STARTTLS: no greeting, the counts so far, and the answer to
 * that STARTTLS: 220 if TLS is ready, else RFC 3207's 454 and the
 * session goes on in plaintext, greeted as before.
 */
void
session_resume(struct session *s, const struct handover *ho, int ready)
{
	s->out.len = 0;
	s->errors = ho->errors;
	s->messages = ho->messages;
	s->txn_seq = ho->txn_seq;	/* same process id: instances go on */
	(void)strlcpy(s->helo, ho->helo, sizeof(s->helo));
	s->esmtp = ho->esmtp;
	s->state = SS_HELO;
	if (ready) {
		reply(s, "220 2.0.0 Ready to start TLS");
		s->state = SS_STARTTLS;
	} else
		session_tls_unavailable(s);
}

/* RFC 3207 4: TLS cannot start now (logged); the session goes on. */
void
session_tls_unavailable(struct session *s)
{
	reply(s, "454 4.7.0 TLS not available due to temporary reason");
	s->state = SS_HELO;
}

/*
 * SPEC 8: the handshake is done.  Everything the client said before is
 * forgotten, as after a new greeting, but no greeting is sent: the
 * client must send EHLO again.  With --tls this is the session's start.
 */
void
session_tls_started(struct session *s, const struct tls_info *ti)
{
	txn_reset(s);
	explicit_bzero(&s->sasl, sizeof(s->sasl));
	s->auth_user[0] = '\0';
	s->auth_method[0] = '\0';
	s->helo[0] = '\0';
	s->esmtp = 0;
	s->tls = 1;
	s->tlsi = *ti;
	s->state = SS_INIT;
}

/* SPEC 8: a failed handshake ends the session, writing nothing more. */
enum session_action
session_tls_failed(struct session *s, int status)
{
	s->out.len = 0;
	close_session(s, status);
	return SA_CLOSE;
}

/* SPEC 9: AUTH may be offered under TLS, or in plaintext if allowed. */
static int
auth_offerable(const struct session *s)
{
	const struct config	*c = s->conf;

	return c->auth != NULL && (s->tls ||
	    (c->auth_plaintext && !c->require_tls));
}

/* ... and is, once the backend said what it offers. */
static int
auth_offered(const struct session *s)
{
	return auth_offerable(s) && s->auth_mechs != 0;
}

/* An AUTH command line, whose initial response must not be logged. */
static int
is_auth_line(const char *line, size_t len)
{
	/* Per line, so the first byte decides most cases alone. */
	return len >= 4 && (line[0] | 0x20) == 'a' &&
	    strncasecmp(line, "AUTH", 4) == 0 &&
	    (len == 4 || !isalnum((unsigned char)line[4]));
}

/*
 * SPEC 9: how many SASL responses a client may send behind an AUTH line
 * that was refused, without waiting for its 334: two for LOGIN without
 * an initial response (the user, then the password), else one.
 */
static int
auth_responses_behind(const char *line, size_t len)
{
	size_t	 i = 4, m;

	while (i < len && line[i] == ' ')
		i++;
	for (m = i; m < len && line[m] != ' '; m++)
		;
	while (m < len && line[m] == ' ')
		m++;
	return m - i >= 5 && strncasecmp(line + i, "LOGIN", 5) == 0 &&
	    (i + 5 == len || line[i + 5] == ' ') && m == len ? 2 : 1;
}

/* RFC 4954 4: AUTH mechanism [initial-response]. */
static void
cmd_auth(struct session *s, const char *arg, size_t len)
{
	const struct config	*c = s->conf;
	const char		*sp = memchr(arg, ' ', len);
	size_t			 mlen = sp != NULL ? (size_t)(sp - arg) : len;

	if (c->auth == NULL)
		reply(s, "503 5.5.1 Error: authentication not enabled");
	else if (s->auth_user[0] != '\0')
		reply(s, "503 5.5.1 Error: already authenticated");
	else if (!s->tls && (c->require_tls || !c->auth_plaintext))
		reply(s, "530 5.7.0 Must issue a STARTTLS command first");
	else {
		memset(&s->sasl, 0, sizeof(s->sasl));
		if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
			s->sasl.mech = AUTH_MECH_PLAIN;
		else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
			s->sasl.mech = AUTH_MECH_LOGIN;
		if ((s->sasl.mech & s->auth_mechs) == 0)
			reply(s, "504 5.5.4 Error: unrecognized authentication "
			    "type");
		else
			sasl_start(s, sp != NULL ? sp + 1 : NULL,
			    sp != NULL ? len - mlen - 1 : 0);
	}
}

/* The first step, with the initial response if there is one. */
static void
sasl_start(struct session *s, const char *initial, size_t len)
{
	s->state = SS_AUTH_CONT;
	if (initial != NULL) {
		sasl_response(s, initial, len);
		return;
	}
	if (s->sasl.mech == AUTH_MECH_PLAIN)
		reply(s, "334 ");
	else
		reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
}

/*
 * RFC 4616: user names and passwords are UTF-8 without NUL.  A user name
 * goes into the environment and the log (escaped): no control either.
 */
static int
sasl_text_ok(const char *p, size_t len, int controls)
{
	const unsigned char	*u = (const unsigned char *)p, *end = u + len;
	size_t			 n;

	while (u < end) {
		if (*u >= 0x80) {
			if ((n = utf8_len(u, end)) == 0)
				return 0;
			u += n;
		} else if (*u == '\0' || (!controls && (*u < 0x20 ||
		    *u == 0x7f)))
			return 0;
		else
			u++;
	}
	return 1;
}

/* A user name we can log (escaped) and put into the environment. */
static int
sasl_user_ok(const char *user, size_t len)
{
	return len > 0 && len < AUTH_USER_MAX && sasl_text_ok(user, len, 0);
}

/*
 * One SASL response, base64: "*" cancels (RFC 4954 4), PLAIN takes one,
 * LOGIN two (user name, then password), then the backend decides.
 */
static void
sasl_response(struct session *s, const char *line, size_t len)
{
	unsigned char	 dec[SMTP_MAILLINE_MAX];
	ssize_t		 n;

	if (len == 1 && line[0] == '*') {
		reply(s, "501 5.0.0 Authentication cancelled");
		sasl_end(s);
		return;
	}
	if (s->line_overflow || (n = b64_decode(line, len, dec,
	    sizeof(dec) - 1)) == -1) {
		reply(s, "501 5.5.2 Error: invalid base64 data");
		sasl_end(s);
		return;
	}
	dec[n] = '\0';
	if (s->sasl.mech == AUTH_MECH_PLAIN)
		sasl_plain(s, (const char *)dec, (size_t)n);
	else if (s->sasl.step == 0 && sasl_user_ok((char *)dec, (size_t)n)) {
		memcpy(s->sasl.user, dec, (size_t)n + 1);
		s->sasl.step = 1;
		reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
	} else if (s->sasl.step == 1 && (size_t)n < AUTH_PASSWORD_MAX &&
	    sasl_text_ok((char *)dec, (size_t)n, 1)) {
		memcpy(s->sasl.password, dec, (size_t)n + 1);
		s->state = SS_AUTH_CHECK;
	} else {
		reply(s, "501 5.5.2 Error: invalid SASL response");
		sasl_end(s);
	}
	explicit_bzero(dec, sizeof(dec));
}

/* RFC 4616: [authzid] NUL authcid NUL passwd. */
static void
sasl_plain(struct session *s, const char *m, size_t len)
{
	const char	*user, *pass, *end = m + len;
	size_t		 ulen, plen;

	if ((user = memchr(m, '\0', len)) != NULL)
		user++;
	if (user == NULL ||
	    (pass = memchr(user, '\0', (size_t)(end - user))) == NULL) {
		reply(s, "501 5.5.2 Error: invalid SASL response");
		sasl_end(s);
		return;
	}
	ulen = (size_t)(pass - user);
	plen = (size_t)(end - ++pass);
	if (!sasl_user_ok(user, ulen) || plen >= AUTH_PASSWORD_MAX ||
	    !sasl_text_ok(pass, plen, 1)) {
		reply(s, "501 5.5.2 Error: invalid SASL response");
		sasl_end(s);
		return;
	}
	memcpy(s->sasl.user, user, ulen + 1);
	memcpy(s->sasl.password, pass, plen);
	s->sasl.password[plen] = '\0';
	/* SPEC 9: acting for someone else is not ours to allow. */
	s->sasl.authz_bad = user - 1 > m &&
	    ((size_t)(user - 1 - m) != ulen || memcmp(m, user, ulen) != 0);
	s->state = SS_AUTH_CHECK;
}

/* The exchange is over, whatever its outcome: forget the secrets. */
static void
sasl_end(struct session *s)
{
	explicit_bzero(&s->sasl, sizeof(s->sasl));
	s->state = SS_HELO;
}

/* The credentials the I/O layer is to check, or NULL. */
const struct sasl *
session_auth_request(const struct session *s)
{
	return s->state == SS_AUTH_CHECK ? &s->sasl : NULL;
}

/*
 * The backend's verdict, SPEC 9.  user is the name it knows the client
 * by (NULL: as the client gave it).  A 535 counts as an error.
 */
void
session_auth_checked(struct session *s, enum auth_verdict v,
    const char *user)
{
	if (s->state != SS_AUTH_CHECK)
		return;
	if (v == AUTH_OK && s->sasl.authz_bad)
		v = AUTH_REFUSED;
	if (v == AUTH_OK) {
		if (user == NULL || !sasl_user_ok(user, strlen(user)))
			user = s->sasl.user;
		(void)strlcpy(s->auth_user, user, sizeof(s->auth_user));
		(void)strlcpy(s->auth_method, s->sasl.mech == AUTH_MECH_PLAIN ?
		    "PLAIN" : "LOGIN", sizeof(s->auth_method));
		reply(s, "235 2.7.0 Authentication successful");
	} else if (v == AUTH_REFUSED)
		reply(s, "535 5.7.8 Error: authentication failed");
	else
		reply(s, "454 4.7.0 Temporary authentication failure");
	sasl_end(s);
	if (v == AUTH_REFUSED)
		count_error(s);
}

/*
 * What the backend offers (AUTH_MECH_*), asked at the first EHLO that
 * may offer AUTH (SA_AUTH_MECHS): that EHLO's reply goes out now.
 */
void
session_auth_mechanisms(struct session *s, unsigned int mechs)
{
	s->auth_mechs = mechs & (AUTH_MECH_PLAIN | AUTH_MECH_LOGIN);
	s->auth_mechs_known = 1;
	if (s->state == SS_AUTH_MECHS) {
		s->state = SS_HELO;
		ehlo_reply(s);
	}
}

static const struct command *
command_find(const char *verb, size_t len)
{
	size_t	 i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].verb) == len &&
		    /* ASCII: equal ignoring case only if equal with 0x20 set */
		    (commands[i].verb[0] | 0x20) == (verb[0] | 0x20) &&
		    strncasecmp(commands[i].verb, verb, len) == 0)
			return &commands[i];
	return NULL;
}

static int
is_http(const char *line, size_t len)
{
	size_t	 i, n;

	for (i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++) {
		if (len == 0 || line[0] != http_methods[i][0])
			continue;	/* most lines: one comparison */
		n = strlen(http_methods[i]);
		if (len >= n && memcmp(line, http_methods[i], n) == 0)
			return 1;
	}
	return 0;
}

/*
 * RFC 2920 3.1: a client may send commands ahead of replies only after
 * EHLO advertised PIPELINING, and never past EHLO, HELO or DATA.  Bytes
 * already behind such a line are a client that does not wait for us
 * (spam software, or an attack on a later hop); like Postfix we hang up.
 * Only on a socket: over pipes, scripts send whole dialogues at once.
 */
static int
out_of_sync(const struct session *s, const struct command *cmd)
{
	if (!s->conf->sync_check || !s->more_input)
		return 0;
	if (cmd->run == cmd_bdat)
		return 0;	/* its chunk follows, RFC 3030 4 */
	if (cmd->run == cmd_helo || cmd->run == cmd_ehlo ||
	    cmd->run == cmd_data || cmd->run == cmd_starttls ||
	    cmd->run == cmd_lhlo)
		return 1;
	return !s->esmtp;
}

/*
 * The verb's length; *arg and *arglen the argument, without the spaces
 * around it.
 */
static size_t
split_command(const char *line, size_t len, const char **arg,
    size_t *arglen)
{
	const char	*sp = memchr(line, ' ', len);
	size_t		 vlen = sp != NULL ? (size_t)(sp - line) : len;

	for (*arg = line + vlen; *arg < line + len && **arg == ' '; (*arg)++)
		;
	*arglen = len - (size_t)(*arg - line);
	while (*arglen > 0 && (*arg)[*arglen - 1] == ' ')
		(*arglen)--;
	return vlen;
}

/* The 503 for a verb the table does not allow in this state. */
static const char *
out_of_sequence(const struct session *s, const struct command *cmd)
{
	if (s->state == SS_INIT)
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (cmd->out_of_sequence != NULL)
		return cmd->out_of_sequence;
	return "503 5.5.1 Error: bad sequence of commands";
}

/* Does the argument, arglen octets, fit what the verb takes? */
static int
args_fit(const struct command *cmd, size_t arglen)
{
	return !(cmd->args == ARGS_NONE && arglen > 0) &&
	    !(cmd->args == ARGS_REQUIRED && arglen == 0);
}

/* Split verb and argument, let the command table decide (STYLE). */
static void
dispatch(struct session *s, const char *line, size_t len)
{
	const struct command	*cmd;
	const char		*arg;
	size_t			 vlen, arglen;

	vlen = split_command(line, len, &arg, &arglen);
	/* SPEC 8: without a certificate there is no STARTTLS at all. */
	if ((cmd = command_find(line, vlen)) == NULL ||
	    !verb_of_mode(s, cmd) ||
	    (cmd->run == cmd_starttls && s->conf->ntls_cert == 0))
		reply(s, "500 5.5.2 Error: command not recognized");
	else if (out_of_sync(s, cmd)) {
		reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
		close_session(s, EXIT_FAIL);
	} else if (!(cmd->states & ST(s->state)))
		reply(s, "%s", out_of_sequence(s, cmd));
	else if (!args_fit(cmd, arglen))
		reply(s, "501 5.5.4 Syntax error in parameters for %s",
		    cmd->verb);
	else {
		if (cmd->run != NULL)
			cmd->run(s, arg, arglen);
		if (cmd->answer != NULL)
			reply(s, "%s", cmd->answer);
	}
}

/* The 512-octet limit, except for MAIL and RCPT (SPEC 4). */
static int
line_too_long(const struct session *s, const char *line, size_t len)
{
	return s->line_overflow || (s->linelen > SMTP_CMDLINE_MAX &&
	    !(len >= 5 && (strncasecmp(line, "MAIL ", 5) == 0 ||
	    strncasecmp(line, "RCPT ", 5) == 0)) &&
	    !is_auth_line(line, len) && s->state != SS_AUTH_CONT);
}

/*
 * One complete command line in s->line (terminator included).  Checks
 * that apply to every verb come first, then dispatch().
 */
/*
 * One complete command line in s->line (terminator included).  Checks
 * that apply to every verb come first (line_checked), then dispatch().
 */
static void
process_line(struct session *s)
{
	const char	*line = s->line;
	size_t		 len = s->linelen;
	char		 esc[SMTP_MAILLINE_MAX * 4 + 1];
	int		 secret;

	/* Strip the terminator: CRLF, or a bare LF (SPEC 4). */
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	/* A client may send its SASL response after a refused AUTH. */
	secret = s->state == SS_AUTH_CONT || is_auth_line(line, len) ||
	    s->auth_refused;
	/* SPEC 9: never a SASL response in the log, not even with -v. */
	if (s->conf->verbose)
		log_debug("< %s", secret ? "AUTH data (not logged)" :
		    log_escape(esc, sizeof(esc), line, len));
	s->last_code = 0;
	if (s->state == SS_AUTH_CONT)
		sasl_response(s, line, len);
	else
		line_checked(s, line, len);
	line_done(s, line, len);
	if (secret) {
		explicit_bzero(s->line, sizeof(s->line));
		s->input_secret = 1;
	}
}

/* Does the command line hold a NUL or a CR (SPEC 4)? */
static int
has_nul_or_cr(const char *line, size_t len)
{
	return memchr(line, '\0', len) != NULL ||
	    memchr(line, '\r', len) != NULL;
}

/* The checks every command line passes before its verb is looked up. */
static void
line_checked(struct session *s, const char *line, size_t len)
{
	if ((line_too_long(s, line, len) || has_nul_or_cr(line, len)) &&
	    bad_bdat_line(s, line, len))
		;
	else if (line_too_long(s, line, len))
		reply(s, "500 5.5.2 Error: line too long");
	else if (is_http(line, len)) {
		reply(s, "421 4.7.0 %s Error: this is an SMTP server",
		    s->conf->hostname);
		close_session(s, EXIT_FAIL);
	} else if (has_nul_or_cr(line, len))
		reply(s, "501 5.5.4 Syntax error: NUL or CR in command");
	else if (bdat_verb_garbled(line, len))
		bdat_out_of_step(s);
	else
		dispatch(s, line, len);
}

/*
 * After a line's reply: count a 5xx, and note how many lines after a
 * refused AUTH may still be its SASL responses.
 */
static void
line_done(struct session *s, const char *line, size_t len)
{
	if (s->last_code == '5' && s->state != SS_CLOSED)
		count_error(s);
	if (is_auth_line(line, len))
		s->auth_refused = s->last_code >= '4' ?
		    auth_responses_behind(line, len) : 0;
	else if (s->auth_refused > 0)
		s->auth_refused--;
}

/*
 * Gather bytes of a command line; process it when its LF arrives.  A line
 * longer than the buffer is dropped whole and answered once at its end.
 */
static size_t
line_feed(struct session *s, const char *in, size_t len)
{
	const char	*lf = memchr(in, '\n', len);
	size_t		 n = lf != NULL ? (size_t)(lf - in) + 1 : len;

	if (!s->line_overflow) {
		if (n > sizeof(s->line) - s->linelen) {
			/*
			 * Keep what fits: its verb decides the reply, the
			 * same however the line was split (a BDAT line is
			 * out of step, SPEC 11).
			 */
			memcpy(s->line + s->linelen, in,
			    sizeof(s->line) - s->linelen);
			s->linelen = sizeof(s->line);
			s->line_overflow = 1;
		} else {
			memcpy(s->line + s->linelen, in, n);
			s->linelen += n;
		}
	}
	if (lf != NULL) {
		s->more_input = n < len;
		process_line(s);
		s->linelen = 0;
		s->line_overflow = 0;
	}
	return n;
}

/* A failed message is still read to its end, but not spooled. */
static int
data_discarding(const struct session *s)
{
	return s->txn.too_big || s->txn.spool_failed ||
	    s->dec.eightbit;
}

static size_t
data_feed(struct session *s, const char *in, size_t len)
{
	size_t	 n, produced;

	n = data_decode(&s->dec, in, len, s->data + s->datalen,
	    DATA_CHUNK - s->datalen, &produced);
	s->datalen += produced;
	if (s->conf->size_limit > 0 &&
	    s->dec.wire_size > (uint64_t)s->conf->size_limit)
		s->txn.too_big = 1;
	if (data_discarding(s))
		s->datalen = 0;
	return n;
}

/*
 * The final dot has arrived.  A message that failed on the way is
 * refused without its handler, but it goes the same way to the I/O layer
 * (SA_DELIVER), which logs it with its id like any other (SPEC 6).
 */
static void
data_end(struct session *s)
{
	const char	*fail = txn_refusal(s);

	if (fail != NULL)
		s->txn.refusal = fail;
	s->state = SS_DELIVER;
}

/*
 * The states in which the engine waits for its caller: the action that
 * answers each.  1 and *act set, or 0 for a state that reads input.
 */
static int
waits_for(enum session_state state, enum session_action *act)
{
	switch (state) {
	case SS_CLOSED:		*act = SA_CLOSE;	break;
	case SS_DELIVER:	*act = SA_DELIVER;	break;
	case SS_RCPT_CHECK:	*act = SA_CHECK_RCPT;	break;
	case SS_STARTTLS:	*act = SA_STARTTLS;	break;
	case SS_AUTH_CHECK:	*act = SA_AUTH;		break;
	case SS_AUTH_MECHS:	*act = SA_AUTH_MECHS;	break;
	case SS_MAIL_CHECK:	*act = SA_CHECK_MAIL;	break;
	case SS_DATA_CHECK:	*act = SA_CHECK_DATA;	break;
	default:
		return 0;
	}
	return 1;
}

/* Is the data buffer full enough to spool before reading on? */
static int
data_buffer_full(const struct session *s)
{
	return DATA_CHUNK - s->datalen < DATA_CHUNK / 4;
}

/*
 * In a BDAT chunk: 1 when its data is to be spooled now (the chunk is
 * all read, or the buffer nearly full); a chunk read and spooled ends.
 */
static int
bdat_step(struct session *s)
{
	if (s->state != SS_BDAT)
		return 0;
	if (s->bdat_left == 0)
		bdat_flush_cr(s);
	if (s->datalen > 0 && (s->bdat_left == 0 || data_buffer_full(s)))
		return 1;
	if (s->bdat_left == 0)
		bdat_end(s);
	return 0;
}

/* The same for DATA: spool, then the final dot ends the message. */
static int
data_step(struct session *s)
{
	if (s->state != SS_DATA)
		return 0;
	if (s->datalen > 0 && (s->dec.done || data_buffer_full(s)))
		return 1;
	if (s->dec.done)
		data_end(s);
	return 0;
}

/* What the engine asks of its caller before it reads on, if anything. */
static int
next_action(struct session *s, enum session_action *act)
{
	if (bdat_step(s) || data_step(s)) {
		*act = SA_SPOOL;
		return 1;
	}
	if (waits_for(s->state, act))
		return 1;
	if (s->out.len >= OUTPUT_FLUSH) {
		*act = SA_FLUSH;
		return 1;
	}
	return 0;
}

/* Feed input to the reader of the state: message data or a line. */
static size_t
input_feed(struct session *s, const char *in, size_t len)
{
	if (s->state == SS_DATA)
		return data_feed(s, in, len);
	if (s->state == SS_BDAT)
		return bdat_feed(s, in, len);
	return line_feed(s, in, len);
}

enum session_action
session_feed(struct session *s, const char *in, size_t len, size_t *used)
{
	enum session_action	 act;
	size_t			 i = 0;

	for (;;) {
		if (next_action(s, &act)) {
			*used = i;
			return act;
		}
		if (i == len)
			break;
		i += input_feed(s, in + i, len - i);
	}
	/* Out of input: spool what is decoded so it is not held here. */
	*used = i;
	return (s->state == SS_DATA || s->state == SS_BDAT) && s->datalen > 0 ?
	    SA_SPOOL : SA_NEED_INPUT;
}

void
session_spooled(struct session *s, int ok)
{
	s->datalen = 0;
	if (!ok)
		s->txn.spool_failed = 1;
}

/*
 * The RFC 3848 / RFC 6531 protocol name of the transaction, for the
 * Received header and SMTP_PROTOCOL (SPEC 3).
 */
const char *
session_protocol(const struct session *s)
{
	static const char *const names[3][2][2] = {
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
		{ { "LMTP", "LMTPA" }, { "LMTPS", "LMTPSA" } }
	};

	/* RFC 3848 has no name for HELO under TLS or AUTH. */
	if (!s->esmtp && !s->conf->lmtp)
		return "SMTP";
	return names[s->conf->lmtp ? 2 : s->txn.utf8 != 0][s->tls != 0]
	    [s->auth_user[0] != '\0'];
}

/*
 * SPEC 10.3: a message is being read, from the 354 or the first BDAT to
 * its end; and the octets of one are being read right now.
 */
int
session_in_message(const struct session *s)
{
	return s->state == SS_DATA || s->state == SS_BDAT ||
	    (s->txn.bdat && s->state == SS_RCPT);
}

/*
 * The line ends of the message the handler gets: CRLF with --crlf, and
 * under BINARYMIME, whose bytes are passed unchanged (SPEC 11), so that
 * the header lines we add match them.
 */
int
session_crlf(const struct session *s)
{
	return s->conf->crlf || s->txn.binarymime;
}

int
session_reading_message(const struct session *s)
{
	return s->state == SS_DATA ||
	    (s->state == SS_BDAT && s->bdat_left > 0);
}

/* Why the message at hand is refused without its handler, or NULL. */
const char *
session_refusal(const struct session *s)
{
	return s->txn.refusal;
}

/*
 * The reply to the message: the handler's, checked and CRLF-terminated
 * by reply.c, or session_refusal().  Only a refusal of ours counts as an
 * error; a handler's verdict is about the message, not the client.
 */
void
session_delivered(struct session *s, const char *text)
{
	const char	*p, *eol;
	int		 refused = s->txn.refusal != NULL;

	for (p = text; s->conf->verbose && (eol = strstr(p, "\r\n")) != NULL;
	    p = eol + 2)
		log_debug("> %.*s", (int)(eol - p), p);
	buf_append(&s->out, text, strlen(text));
	if (text[0] == '2')
		s->messages++;
	txn_reset(s);
	s->state = SS_HELO;
	if (refused && text[0] == '5')
		count_error(s);
	close_after_421(s, text);
}

/* The client spoke before our greeting (RFC 5321 4.3.1): drop it. */
enum session_action
session_pregreet(struct session *s)
{
	s->out.len = 0;
	reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
	close_session(s, EXIT_FAIL);
	return SA_CLOSE;
}

/* SPEC 10.1: no usable PROXY header in time; no greeting goes out. */
enum session_action
session_bad_proxy(struct session *s)
{
	s->out.len = 0;
	reply(s, "421 4.3.0 %s Error: PROXY protocol header expected",
	    s->conf->hostname);
	close_session(s, EXIT_FAIL);
	return SA_CLOSE;
}

/*
 * SPEC 8: smtpd-stdio handed a session over that this build cannot read
 * (an upgrade between the two execs): what the client said is lost, so
 * it is asked to come back, as after any temporary failure.
 */
enum session_action
session_bad_handover(struct session *s)
{
	s->out.len = 0;
	reply(s, "421 4.3.0 %s Error: try again later", s->conf->hostname);
	close_session(s, EXIT_FAIL);
	return SA_CLOSE;
}

enum session_action
session_eof(struct session *s)
{
	close_session(s, EXIT_OK);
	return SA_CLOSE;
}

/* SPEC 6: asked to stop (SIGTERM, SIGHUP); a running handler is done. */
enum session_action
session_stop(struct session *s)
{
	reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
	close_session(s, EXIT_FAIL);
	return SA_CLOSE;
}

enum session_action
session_timeout(struct session *s)
{
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
	close_session(s, EXIT_FAIL);
	return SA_CLOSE;
}

/*
 * A check refused the transaction with text, a checked CRLF-terminated
 * reply: it is the answer, and the transaction ends.
 */
static void
txn_refused(struct session *s, const char *text)
{
	txn_reset(s);
	s->state = SS_HELO;
	log_debug("> %.*s", (int)strcspn(text, "\r\n"), text);
	buf_append(&s->out, text, strlen(text));
	s->last_code = text[0];
	close_after_421(s, text);
}

/*
 * SPEC 13: the milters' verdict on the MAIL: accepted (250), or refused
 * with text, a checked CRLF-terminated reply, and no transaction.  Like
 * a check at RCPT, a refusal is about the message, not an error.
 */
void
session_mail_checked(struct session *s, int accept, const char *text)
{
	if (s->state != SS_MAIL_CHECK)
		return;
	if (accept) {
		s->state = SS_MAIL;
		reply(s, "250 2.1.0 OK");
		return;
	}
	txn_refused(s, text);
}

/*
 * SPEC 13: the milters' verdict on the DATA command: the 354, or the
 * refusal (a checked CRLF-terminated reply) and the transaction ends,
 * so that no filter is asked about it twice.
 */
void
session_data_checked(struct session *s, int accept, const char *text)
{
	if (s->state != SS_DATA_CHECK)
		return;
	if (accept) {
		data_start(s);
		return;
	}
	txn_refused(s, text);
}

/*
 * A filter's address (SMFIR_CHGFROM, SMFIR_ADDRCPT) checked as the
 * client's would be (RFC 5321 4.1.2): the handler never gets an
 * envelope that no client could have given, an empty recipient or one
 * with no domain among them.  0 and res filled, or -1.
 */
static int
filter_path(struct session *s, enum addr_verb verb, const char *path,
    struct addr_result *res)
{
	const struct config	*c = s->conf;
	struct addr_limits	 lim = { c->size_limit, c->smtputf8,
				    c->sevenbit, s->txn.utf8, s->tls };
	char			 line[SMTP_PATH_MAX + 32];
	int			 n;

	n = snprintf(line, sizeof(line), "%s<%s>%s", verb == ADDR_MAIL ?
	    "FROM:" : "TO:", path, verb == ADDR_MAIL && s->txn.utf8 ?
	    " SMTPUTF8" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	memset(res, 0, sizeof(*res));
	return addr_parse(verb, line, (size_t)n, &lim, res);
}

/*
 * SPEC 13, SMFIR_CHGFROM: the handler gets the filter's sender.  -1 if
 * it is no reverse-path.
 */
int
session_set_sender(struct session *s, const char *from)
{
	struct addr_result	 res;

	if (filter_path(s, ADDR_MAIL, from, &res) == -1)
		return -1;
	free(s->txn.mail_from);
	if ((s->txn.mail_from = strdup(res.path)) == NULL)
		fatalx("out of memory");
	return 0;
}

/*
 * SMFIR_ADDRCPT: one more recipient for the handler, without
 * parameters.  -1 if it is no forward-path, or would pass
 * --max-recipients or what exec takes.
 */
int
session_add_rcpt(struct session *s, const char *rcpt)
{
	struct addr_result	 res;

	if (filter_path(s, ADDR_RCPT, rcpt, &res) == -1 ||
	    (long long)s->txn.nrcpt >= s->conf->max_recipients)
		return -1;
	res.options[0] = '\0';
	if (!rcpt_fits_exec(s, &res))
		return -1;
	txn_add_rcpt(&s->txn, &res, rcpt_exec_cost(s->conf, &res));
	return 0;
}

/* SMFIR_DELRCPT: every recipient that is this address (any case). */
void
session_del_rcpt(struct session *s, const char *rcpt)
{
	struct txn	*t = &s->txn;
	size_t		 i, k = 0;

	for (i = 0; i < t->nrcpt; i++) {
		if (strcasecmp(t->rcpt[i], rcpt) == 0) {
			t->rcpt_bytes -= strlen(t->rcpt[i]) + 1;
			t->ropt_bytes -= strlen(t->rcpt_options[i]) + 1;
			free(t->rcpt[i]);
			free(t->rcpt_options[i]);
			continue;
		}
		t->rcpt[k] = t->rcpt[i];
		t->rcpt_options[k++] = t->rcpt_options[i];
	}
	t->nrcpt = k;
}

/* SMFIR_QUARANTINE: the handler gets SMTP_QUARANTINE=reason. */
void
session_quarantine(struct session *s, const char *reason)
{
	free(s->txn.quarantine);
	if ((s->txn.quarantine = strdup(reason)) == NULL)
		fatalx("out of memory");
}
