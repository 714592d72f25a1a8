/*
 * --policy, SPEC 10.2: a client of Postfix's SMTP access policy
 * delegation protocol (attribute=value lines, an empty line; the reply
 * is action=... and an empty line), over a UNIX socket, TCP, or the
 * pipes of a program we start once per session.  The servers are asked
 * in order as a Postfix restriction list is: DUNNO, PREPEND and WARN go
 * on to the next, any other action decides.  Nothing that goes wrong
 * here ever accepts a recipient: it is 451 4.3.5.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

extern char **environ;

#define POLICY_TEMPFAIL	"451 4.3.5 Error: policy check unavailable, " \
			"try again later"
#define EXEC_DEATHS_MAX	2	/* started, restarted once, then no more */

enum policy_kind {
	PK_UNIX,
	PK_INET,
	PK_EXEC
};

struct policy_server {
	const char	*addr;		/* as given, for the log */
	unsigned int	 stages;	/* STAGE_*: when it is asked */
	enum policy_kind kind;
	const char	*where;		/* path, host:port or program */
	int		 rfd, wfd;	/* -1 when not connected */
	pid_t		 pid;		/* exec: the program */
	int		 deaths;	/* exec: times it died */
};

struct policy_state {
	const struct config	*conf;
	struct policy_server	*srv;
	size_t			 n;
	struct timespec		 started;	/* for "instance" */
	/* The last check's DEFER_IF_PERMIT and DEFER_IF_REJECT, or "". */
	char			 if_permit[SMTP_REPLYLINE_MAX];
	char			 if_reject[SMTP_REPLYLINE_MAX];
};

/* Copy printable ASCII only: text goes into a reply or a header. */
static size_t
clean_text(char *dst, size_t size, const char *src, size_t len)
{
	size_t	 i, n = 0;

	for (i = 0; i < len && n + 1 < size; i++)
		if ((unsigned char)src[i] >= 0x20 &&
		    (unsigned char)src[i] < 0x7f)
			dst[n++] = src[i];
	dst[n] = '\0';
	return n;
}

/* Skip spaces and tabs. */
static const char *
skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* Does the word w (upper case) start p, followed by a blank or the end? */
static int
word_is(const char *p, const char *end, const char *w, const char **rest)
{
	size_t	 n = strlen(w);

	if ((size_t)(end - p) < n || strncasecmp(p, w, n) != 0)
		return 0;
	if (p + n < end && p[n] != ' ' && p[n] != '\t')
		return 0;
	*rest = skip_blank(p + n, end);
	return 1;
}

/* An RFC 3463 code of class c ("4.7.1") at p, followed by a blank or end. */
static size_t
enhanced_code(const char *p, const char *end, char c)
{
	const char	*q = p;
	int		 part, digits;

	if (end - q < 5 || q[0] != c || q[1] != '.')
		return 0;
	q += 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; q < end && isdigit((unsigned char)*q); q++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0 && (q >= end || *q++ != '.'))
			return 0;
	}
	if (q < end && *q != ' ' && *q != '\t')
		return 0;
	return (size_t)(q - p);
}

/*
 * A reply "NNN x.y.z text" in r->text, CRLF-ended: the code, the
 * enhanced code from the text if it has one of the right class, else
 * dflt, and the text (or deftext when there is none).
 */
static void
make_reply(struct policy_reply *r, const char *code, const char *dflt,
    const char *text, const char *end, const char *deftext)
{
	char	 clean[SMTP_REPLYLINE_MAX];
	size_t	 n;
	char	 enh[16];

	n = enhanced_code(text, end, code[0]);
	if (n > 0) {
		(void)clean_text(enh, sizeof(enh), text, n);
		text = skip_blank(text + n, end);
	} else
		(void)strlcpy(enh, dflt, sizeof(enh));
	if (clean_text(clean, sizeof(clean) - 32, text,
	    (size_t)(end - text)) == 0)
		(void)strlcpy(clean, deftext, sizeof(clean));
	/* Bounded so the line fits SMTP_REPLYLINE_MAX, as gcc can see. */
	(void)snprintf(r->text, sizeof(r->text), "%.3s %.15s %.480s\r\n",
	    code, enh, clean);
}

/*
 * Where a complete policy reply ends in buf (the octet after its empty
 * line), or 0 while it is incomplete.  Lines end in LF (CRLF taken too).
 */
size_t
policy_reply_end(const char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] == '\n')
			return i + 1;
		if (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n'))
			return i + 1;
	}
	return 0;
}

struct policy_action;

static enum policy_verdict parse_action(const char *, const char *,
		    struct policy_reply *);
static enum policy_verdict take_action(const struct policy_action *,
		    const char *, const char *, struct policy_reply *);
static enum policy_verdict prepend_action(const char *, const char *,
		    struct policy_reply *);
static int	is_numeric_action(const char *, const char *);
static void	request_transaction(struct buf *, const struct policy_ctx *);
static void	request_client(struct buf *, const struct peer *);
static void	request_instance(struct buf *, const struct policy_state *,
		    const struct policy_ctx *);
static void	request_tls(struct buf *, const struct tls_info *);
static enum policy_verdict numeric_action(const char *, const char *,
		    struct policy_reply *);

/*
 * The actions of Postfix's access(5) that we know by name, with the
 * reply a refusal gives when the server's text says none.
 */
static const struct policy_action {
	const char		*word;
	enum policy_verdict	 verdict;
	const char		*code, *status, *text;	/* NULL: no reply */
} policy_actions[] = {
	{ "OK",			PV_OK,		NULL, NULL, NULL },
	{ "DUNNO",		PV_DUNNO,	NULL, NULL, NULL },
	{ "REJECT",		PV_REFUSE, "554", "5.7.1", "Access denied" },
	{ "DEFER",		PV_REFUSE, "450", "4.7.1", "Try again later" },
	{ "DEFER_IF_PERMIT",	PV_DEFER_IF_PERMIT,
	    "450", "4.7.1", "Try again later" },
	{ "DEFER_IF_REJECT",	PV_DEFER_IF_REJECT,
	    "450", "4.7.1", "Try again later" },
	{ "PREPEND",		PV_PREPEND,	NULL, NULL, NULL },
	{ "WARN",		PV_WARN,	NULL, NULL, NULL },
};

/*
 * The verdict of one complete reply (up to and including its empty
 * line), SPEC 10.2.  Pure: no I/O, the fuzz target drives it.  Only the
 * first action= attribute counts; other attributes are ignored, as
 * Postfix ignores them.
 */
enum policy_verdict
policy_parse_reply(const char *buf, size_t len, struct policy_reply *r)
{
	const char	*p, *end, *nl, *a = NULL, *aend = NULL;

	r->verdict = PV_GARBLED;
	(void)strlcpy(r->text, POLICY_TEMPFAIL "\r\n", sizeof(r->text));
	for (p = buf, end = buf + len; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		aend = nl;
		if (aend > p && aend[-1] == '\r')
			aend--;
		if (aend == p)
			break;		/* the empty line */
		if (memchr(p, '=', (size_t)(aend - p)) == NULL)
			return r->verdict;	/* not attribute=value */
		if (a == NULL && aend - p >= 7 &&
		    strncasecmp(p, "action=", 7) == 0) {
			a = p + 7;
			break;
		}
	}
	if (a == NULL)
		return r->verdict;
	return parse_action(a, aend, r);
}

/* The action at a (up to aend) into r; its verdict. */
static enum policy_verdict
parse_action(const char *a, const char *aend, struct policy_reply *r)
{
	const char	*rest;
	size_t		 i;

	a = skip_blank(a, aend);
	while (aend > a && (aend[-1] == ' ' || aend[-1] == '\t'))
		aend--;
	for (i = 0; i < sizeof(policy_actions) / sizeof(policy_actions[0]);
	    i++)
		if (word_is(a, aend, policy_actions[i].word, &rest))
			return take_action(&policy_actions[i], rest, aend, r);
	if (is_numeric_action(a, aend))
		return numeric_action(a, aend, r);
	if (a < aend && isalpha((unsigned char)*a)) {
		r->verdict = PV_UNSUPPORTED;
		(void)clean_text(r->text, sizeof(r->text), a,
		    (size_t)(aend - a));
	}
	return r->verdict;
}

/* A named action, its text rest up to aend. */
static enum policy_verdict
take_action(const struct policy_action *act, const char *rest,
    const char *aend, struct policy_reply *r)
{
	if (act->verdict == PV_PREPEND)
		return prepend_action(rest, aend, r);
	r->verdict = act->verdict;
	if (act->verdict == PV_WARN)
		(void)clean_text(r->text, sizeof(r->text), rest,
		    (size_t)(aend - rest));
	else if (act->code != NULL)
		make_reply(r, act->code, act->status, rest, aend, act->text);
	return r->verdict;
}

/* PREPEND: a header "Name: value"; anything else is garbled. */
static enum policy_verdict
prepend_action(const char *rest, const char *aend, struct policy_reply *r)
{
	const char	*p = rest;

	while (p < aend && *p > ' ' && *p < 0x7f && *p != ':')
		p++;
	if (p == rest || p == aend || *p != ':')
		return r->verdict;
	/* A name too long for the line would be cut before its colon. */
	if ((size_t)(p - rest) + 1 >= SMTP_REPLYLINE_MAX - 2)
		return r->verdict;
	r->verdict = PV_PREPEND;
	(void)clean_text(r->text, SMTP_REPLYLINE_MAX - 2, rest,
	    (size_t)(aend - rest));
	return r->verdict;
}

/* "4NN text" or "5NN text", access(5)'s numeric actions? */
static int
is_numeric_action(const char *a, const char *aend)
{
	return aend - a >= 3 && (a[0] == '4' || a[0] == '5') &&
	    isdigit((unsigned char)a[1]) && isdigit((unsigned char)a[2]) &&
	    (aend - a == 3 || a[3] == ' ' || a[3] == '\t');
}

/* A refusal with the server's code and text. */
static enum policy_verdict
numeric_action(const char *a, const char *aend, struct policy_reply *r)
{
	char	 code[4];

	r->verdict = PV_REFUSE;
	memcpy(code, a, 3);
	code[3] = '\0';
	make_reply(r, code, a[0] == '4' ? "4.7.1" : "5.7.1",
	    skip_blank(a + 3, aend), aend, a[0] == '4' ?
	    "Try again later" : "Access denied");
	return r->verdict;
}

struct policy_state *
policy_new(const struct config *c)
{
	struct policy_state	*ps;
	const char		*addr;
	size_t			 i;

	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (ps->srv = calloc(c->npolicy + 1, sizeof(*ps->srv))) == NULL)
		fatalx("out of memory");
	ps->conf = c;
	ps->n = c->npolicy;
	(void)clock_gettime(CLOCK_REALTIME, &ps->started);
	for (i = 0; i < ps->n; i++) {
		addr = policy_stage(c->policy[i], &ps->srv[i].stages);
		ps->srv[i].addr = addr;
		ps->srv[i].kind = strncmp(addr, "unix:", 5) == 0 ? PK_UNIX :
		    strncmp(addr, "inet:", 5) == 0 ? PK_INET : PK_EXEC;
		ps->srv[i].where = addr + 5;
		ps->srv[i].rfd = ps->srv[i].wfd = -1;
		ps->srv[i].pid = -1;
	}
	return ps;
}

/* Drop the connection; an exec: program is stopped and reaped. */
static void
disconnect(struct policy_server *ps)
{
	long long	 deadline;

	if (ps->rfd != -1)
		(void)close(ps->rfd);
	if (ps->wfd != -1 && ps->wfd != ps->rfd)
		(void)close(ps->wfd);
	ps->rfd = ps->wfd = -1;
	if (ps->pid != -1) {
		/* TERM, then KILL after the handler's grace period. */
		(void)kill(-ps->pid, SIGTERM);
		deadline = conn_now_ms() + HANDLER_KILL_GRACE * 1000;
		while (waitpid(ps->pid, NULL, WNOHANG) == 0) {
			if (conn_now_ms() >= deadline) {
				(void)kill(-ps->pid, SIGKILL);
				(void)waitpid(ps->pid, NULL, 0);
				break;
			}
			(void)poll(NULL, 0, 10);
		}
		/* SPEC 10.2: what it started is gone too, TERM or not. */
		(void)kill(-ps->pid, SIGKILL);
		ps->pid = -1;
	}
}

void
policy_free(struct policy_state *ps)
{
	size_t	 i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++)
		disconnect(&ps->srv[i]);
	free(ps->srv);
	free(ps);
}

/* exec:PROGRAM: its stdin and stdout are our pipes, no arguments. */
static int
spawn_policy(struct policy_server *ps)
{
	char				*argv[2];
	int				 to[2], from[2], rc;

	if (spawn_pipes(to, from) == -1)
		return -1;
	argv[0] = (char *)ps->where;
	argv[1] = NULL;
	/* Its stderr is ours: a policy program's complaints reach the log. */
	rc = handler_spawn(&ps->pid, to[0], from[1], -1, argv, environ);
	(void)close(to[0]);
	(void)close(from[1]);
	if (rc != 0) {
		(void)close(to[1]);
		(void)close(from[0]);
		ps->pid = -1;
		errno = rc;
		return -1;
	}
	ps->wfd = to[1];
	ps->rfd = from[0];
	(void)fcntl(ps->wfd, F_SETFL, O_NONBLOCK);
	(void)fcntl(ps->rfd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Connect (or start) the server; 0 or -1 with errno set. */
static int
connect_server(struct policy_server *ps, long long deadline)
{
	switch (ps->kind) {
	case PK_UNIX:
		ps->rfd = net_connect_unix(ps->where, deadline);
		break;
	case PK_INET:
		ps->rfd = net_connect_inet(ps->where, deadline);
		break;
	case PK_EXEC:
		if (ps->deaths >= EXEC_DEATHS_MAX) {
			errno = ECHILD;
			return -1;
		}
		return spawn_policy(ps);
	}
	ps->wfd = ps->rfd;
	return ps->rfd == -1 ? -1 : 0;
}

/*
 * Read one reply into buf before the deadline; its length, or -1.
 * *extra: more came behind it, which no request of ours asked for.  A
 * close after part of a reply is EPROTO, not ECONNRESET: the server had
 * the request, so it is not asked again (SPEC 10.2).
 */
static ssize_t
read_reply(int fd, char *buf, size_t size, long long deadline, int *extra)
{
	size_t	 len = 0, end;
	ssize_t	 n;

	for (;;) {
		if ((end = policy_reply_end(buf, len)) > 0) {
			*extra = len > end;
			return (ssize_t)end;
		}
		if (len == size) {
			errno = EMSGSIZE;
			return -1;
		}
		n = read(fd, buf + len, size - len);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0 || (n == -1 && errno == ECONNRESET)) {
			errno = len > 0 ? EPROTO : ECONNRESET;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -1;
		if (!net_wait_fd(fd, POLLIN, deadline)) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

/* Append "name=value\n", the value with no control characters. */
static void
attr(struct buf *b, const char *name, const char *value)
{
	const char	*p;

	buf_append(b, name, strlen(name));
	buf_append(b, "=", 1);
	for (p = value; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x20 && *p != 0x7f)
			buf_append(b, p, 1);
	buf_append(b, "\n", 1);
}

/*
 * Postfix's ccert_fingerprint: the SHA-256 of the client's certificate
 * as colon-separated upper-case hex, from our "SHA256:hex"; "" if none.
 */
static void
colon_hex(char *dst, size_t len, const char *hash)
{
	static const char	 prefix[] = "SHA256:";
	size_t			 i, k = 0;

	dst[0] = '\0';
	if (strncmp(hash, prefix, sizeof(prefix) - 1) != 0)
		return;
	hash += sizeof(prefix) - 1;
	for (i = 0; hash[i] != '\0' && hash[i + 1] != '\0' && k + 3 < len;
	    i += 2) {
		if (k > 0)
			dst[k++] = ':';
		dst[k++] = (char)toupper((unsigned char)hash[i]);
		dst[k++] = (char)toupper((unsigned char)hash[i + 1]);
	}
	dst[k] = '\0';
}

/* The request, as Postfix sends it (SPEC 10.2); unknowns empty. */
static void
build_request(const struct policy_state *st, const struct policy_ctx *x,
    struct buf *b)
{
	const struct peer	*p = x->peer;

	request_transaction(b, x);
	request_client(b, p);
	request_instance(b, st, x);
	request_tls(b, &x->sess->tlsi);
	attr(b, "etrn_domain", "");
	attr(b, "server_address", p->local_addr);
	attr(b, "server_port", p->local_port);
	attr(b, "stress", "");
	attr(b, "compatibility_level", "3.6");
	attr(b, "mail_version", "smtpd-stdio-" SMTPD_VERSION);
	buf_append(b, "\n", 1);
}

/* The request's first attributes: the stage and the envelope so far. */
static void
request_transaction(struct buf *b, const struct policy_ctx *x)
{
	const struct session	*s = x->sess;
	char			 n[32];
	int			 eom = strcmp(x->state, "RCPT") != 0;

	attr(b, "request", "smtpd_access_policy");
	attr(b, "protocol_state", x->state);
	/* As Postfix: SMTP, ESMTP or LMTP, without S/A (SPEC 10.2). */
	attr(b, "protocol_name", s->conf->lmtp ? "LMTP" : s->esmtp ?
	    "ESMTP" : "SMTP");
	attr(b, "helo_name", s->helo);
	attr(b, "queue_id", x->id);
	attr(b, "sender", s->txn.mail_from != NULL ? s->txn.mail_from : "");
	attr(b, "recipient", x->recipient);
	/* Postfix counts the recipients only at the end of the message. */
	(void)snprintf(n, sizeof(n), "%zu", eom ? s->txn.nrcpt : 0);
	attr(b, "recipient_count", n);
}

static void
request_client(struct buf *b, const struct peer *p)
{
	attr(b, "client_address", p->remote_addr);
	attr(b, "client_name", p->remote_host[0] != '\0' ? p->remote_host :
	    "unknown");
	attr(b, "reverse_client_name", p->remote_host[0] != '\0' ?
	    p->remote_host : "unknown");
	attr(b, "client_port", p->remote_port);
}

static void
request_instance(struct buf *b, const struct policy_state *st,
    const struct policy_ctx *x)
{
	const struct session	*s = x->sess;
	char			 n[32], inst[80];

	/*
	 * One value per transaction (MAIL), across RSET, and across
	 * processes that reuse a pid: the pid, when this process started,
	 * and the transaction's number.
	 */
	(void)snprintf(inst, sizeof(inst), "%lx.%llx.%lx.%x", (long)getpid(),
	    (long long)st->started.tv_sec, st->started.tv_nsec,
	    s->mail_seq);
	attr(b, "instance", inst);
	(void)snprintf(n, sizeof(n), "%llu", (unsigned long long)x->size);
	attr(b, "size", x->size > 0 ? n : "0");
	attr(b, "sasl_method", s->auth_method);
	attr(b, "sasl_username", s->auth_user);
	attr(b, "sasl_sender", "");
}

static void
request_tls(struct buf *b, const struct tls_info *t)
{
	char	 n[32], fp[3 * 64];

	attr(b, "ccert_subject", t->client_cn);
	attr(b, "ccert_issuer", t->client_issuer_cn);
	colon_hex(fp, sizeof(fp), t->client_hash);
	attr(b, "ccert_fingerprint", fp);
	attr(b, "ccert_pubkey_fingerprint", "");
	attr(b, "encryption_protocol", t->protocol);
	attr(b, "encryption_cipher", t->cipher);
	(void)snprintf(n, sizeof(n), "%d", t->keybits);
	attr(b, "encryption_keysize", n);	/* 0 without TLS, as Postfix */
}

/*
 * SPEC 10.2: between two requests a kept connection has nothing to say.
 * Input there is the server's close (an exec: program's exit), or a
 * reply with no request outstanding: the connection is dropped either
 * way, and the next request goes on a new one.
 */
static void
drop_if_stale(struct policy_server *ps)
{
	struct pollfd	 pfd;

	if (ps->rfd == -1)
		return;
	pfd.fd = ps->rfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) != 1)
		return;
	log_info("policy %s: closed, or a reply with no request, between "
	    "requests: reconnecting", ps->addr);
	disconnect(ps);
}

/* A failed exchange: an exec: program that failed it has died once. */
static void
failed(struct policy_server *ps)
{
	if (ps->kind == PK_EXEC)
		ps->deaths++;
	disconnect(ps);
}

/* Send req and read one reply into buf: its length, or -1 with errno. */
static ssize_t
exchange(struct policy_server *ps, const struct buf *req, char *buf,
    size_t size, long long deadline, int *extra)
{
	if (net_write_all(ps->wfd, req->data, req->len, deadline) == -1)
		return -1;
	return read_reply(ps->rfd, buf, size, deadline, extra);
}

/*
 * The reply read from the server, n bytes, into r: 0, or -1 when it is
 * garbled.  extra: more came behind it.
 */
static int
take_reply(struct policy_server *ps, const char *buf, size_t n, int extra,
    struct policy_reply *r)
{
	char	 esc[POLICY_REPLY_MAX * 4 + 1];

	if (policy_parse_reply(buf, n, r) == PV_GARBLED) {
		log_warn("policy %s: garbled reply: %s", ps->addr,
		    log_escape(esc, sizeof(esc), buf, n));
		failed(ps);	/* out of step with it now */
		return -1;
	}
	if (extra) {
		log_warn("policy %s: a reply with no request: "
		    "dropping the connection", ps->addr);
		disconnect(ps);
	}
	return 0;
}

/*
 * One question to one server: its reply in r, or -1 (r->text is then
 * the 451).  A connection kept from an earlier request that the server
 * closed meanwhile, before or under the request: once more on a new one,
 * as Postfix does, but only if no octet of a reply came (EPROTO): a
 * server that began to answer had the request, and must not count it
 * twice.
 */
static int
ask(struct policy_server *ps, const struct buf *req, long long deadline,
    struct policy_reply *r)
{
	char		 buf[POLICY_REPLY_MAX];
	ssize_t		 n;
	int		 fresh, tries, extra = 0;

	for (tries = 0; tries < 2; tries++) {
		drop_if_stale(ps);
		fresh = ps->rfd == -1;
		if (fresh && connect_server(ps, deadline) == -1) {
			log_warn("policy %s: %s", ps->addr, strerror(errno));
			break;
		}
		if ((n = exchange(ps, req, buf, sizeof(buf), deadline,
		    &extra)) == -1) {
			log_warn("policy %s: no reply: %s", ps->addr,
			    strerror(errno));
			if (fresh || (errno != ECONNRESET && errno != EPIPE)) {
				failed(ps);
				break;
			}
			disconnect(ps);
			continue;
		}
		return take_reply(ps, buf, (size_t)n, extra, r);
	}
	r->verdict = PV_GARBLED;
	(void)strlcpy(r->text, POLICY_TEMPFAIL "\r\n", sizeof(r->text));
	return -1;
}

/* The first DEFER_IF_PERMIT and the first DEFER_IF_REJECT are kept. */
static void
remember_deferral(struct policy_state *st, const struct policy_reply *r)
{
	char	*slot = r->verdict == PV_DEFER_IF_PERMIT ? st->if_permit :
		    st->if_reject;

	if (slot[0] == '\0')
		(void)strlcpy(slot, r->text, SMTP_REPLYLINE_MAX);
}

/*
 * The DEFER_IF_PERMIT (if_reject 0) or DEFER_IF_REJECT reply (CRLF-ended)
 * of the last policy_check, for the --rcpt-check that follows it; NULL
 * when there is none.
 */
const char *
policy_deferred(const struct policy_state *st, int if_reject)
{
	const char	*d;

	if (st == NULL)
		return NULL;
	d = if_reject ? st->if_reject : st->if_permit;
	return d[0] != '\0' ? d : NULL;
}

/*
 * One server's verdict: 1 on to the next server, 0 accepted (OK), -1
 * refused (the reply, CRLF-ended, appended to reply).
 */
static int
take_verdict(struct policy_state *st, const struct policy_server *srv,
    const struct policy_reply *r, struct buf *reply, struct buf *headers,
    const char *id, const char *who)
{
	const char	*t = r->text;

	switch (r->verdict) {
	case PV_DUNNO:
		return 1;
	case PV_OK:
		return 0;
	case PV_PREPEND:
		buf_append(headers, r->text, strlen(r->text));
		buf_append(headers, "\n", 1);
		return 1;
	case PV_WARN:
		log_info("%s: policy %s: %s: WARN %s", id, srv->addr, who,
		    r->text);
		return 1;
	case PV_DEFER_IF_PERMIT:
	case PV_DEFER_IF_REJECT:
		remember_deferral(st, r);
		return 1;
	case PV_REFUSE:
		/* SPEC 10.2: after DEFER_IF_REJECT a 5xx is its 450. */
		if (r->text[0] == '5' && st->if_reject[0] != '\0')
			t = st->if_reject;
		break;
	case PV_UNSUPPORTED:
	case PV_GARBLED:
		log_warn("%s: policy %s: %s: unsupported action %s", id,
		    srv->addr, who, r->text);
		t = POLICY_TEMPFAIL "\r\n";
		break;
	}
	buf_append(reply, t, strlen(t));
	return -1;
}

/*
 * SPEC 10.2: with no check left to refuse (no --rcpt-check after this
 * one), a DEFER_IF_PERMIT is the reply; else the caller asks.
 */
static int
if_permit_decides(const struct policy_state *st, unsigned int stage)
{
	return st->if_permit[0] != '\0' && (stage == STAGE_DATA ||
	    st->conf->rcpt_check == NULL);
}

/*
 * Ask every server in order.  1: accepted, PREPEND headers appended to
 * headers (one per line, LF-ended, checked); 0: refused, the reply
 * (CRLF-ended) appended to reply.
 */
int
policy_check(struct policy_state *st, const struct policy_ctx *x,
    struct buf *reply, struct buf *headers)
{
	struct buf		 req = { NULL, 0, 0 };
	struct policy_reply	 r;
	long long		 deadline;
	size_t			 i, mark = headers->len;
	char			 who[SMTP_PATH_MAX * 4 + 3];
	const char		*id;
	int			 next = 1;
	unsigned int		 stage;

	stage = strcmp(x->state, "RCPT") == 0 ? STAGE_RCPT : STAGE_DATA;
	st->if_permit[0] = st->if_reject[0] = '\0';
	build_request(st, x, &req);
	id = x->id[0] != '\0' ? x->id : "-";	/* no id before DATA */
	(void)log_quote(who, sizeof(who), x->recipient, strlen(x->recipient));
	for (i = 0; i < st->n && next == 1; i++) {
		if ((st->srv[i].stages & stage) == 0)
			continue;
		deadline = conn_now_ms() + st->conf->timeout * 1000;
		if (ask(&st->srv[i], &req, deadline, &r) == -1) {
			buf_append(reply, r.text, strlen(r.text));
			next = -1;
		} else
			next = take_verdict(st, &st->srv[i], &r, reply,
			    headers, id, who);
	}
	if (next != -1 && if_permit_decides(st, stage)) {
		buf_append(reply, st->if_permit, strlen(st->if_permit));
		next = -1;
	}
	if (next == -1) {
		headers->len = mark;
		log_info("%s: policy: %s %s: %.*s", id, x->state, who,
		    (int)(reply->len >= 2 ? reply->len - 2 : reply->len),
		    reply->data);
	}
	buf_free(&req);
	return next != -1;
}
