/*
 * --milter, SPEC 13: the client side of the Sendmail milter protocol,
 * version 6, towards existing filter daemons (rspamd, OpenDKIM,
 * OpenDMARC, clamav-milter), one connection per filter per session.
 * The frames and replies are milter-proto.c's; this file talks.
 *
 * A filter is first spoken to at the session's first MAIL: option
 * negotiation, then connect and HELO, then MAIL.  A session that never
 * starts a transaction costs the filters nothing.  A filter that fails
 * (unreachable, silent past --timeout, out of protocol) is dropped and
 * --milter-default-action decides for the rest of the session.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define MILTER_REJECT	"550 5.7.1 Command rejected\r\n"
#define MILTER_TEMPFAIL	"451 4.7.1 Service unavailable - try again later\r\n"
#define DEFAULT_TEMPFAIL MILTER_TEMPFAIL
#define DEFAULT_REJECT	"554 5.7.1 Service unavailable - mail filter failed\r\n"

/*
 * The modifications we can make: what is negotiated, nothing more.
 * Under --lmtp the recipients are the client's, one reply each (SPEC
 * 11): a filter may not add or delete them there.
 */
#define MILTER_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | \
			 SMFIF_CHGFROM | SMFIF_QUARANTINE | MILTER_RCPT_ACTIONS)
#define MILTER_RCPT_ACTIONS (SMFIF_ADDRCPT | SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT)

/* A filter's answer to one request. */
enum answer {
	AN_CONTINUE,
	AN_ACCEPT,	/* no more of this transaction (session, at connect) */
	AN_REFUSE,	/* the reply is in the caller's buffer */
	AN_DISCARD,
	AN_SKIP,	/* no more body chunks */
	AN_FAILED	/* dropped: the default action decides */
};

struct filter {
	const char	*addr;		/* as given, for the log */
	int		 fd;		/* -1 until connected */
	int		 dead;		/* failed: never asked again */
	int		 opened;	/* negotiated and connect stage sent */
	int		 accepted;	/* accept at connect or HELO: session */
	int		 txn_accepted;	/* accept from MAIL on: transaction */
	int		 in_txn;	/* MAIL sent, no end of message yet */
	int		 data_sent;	/* this transaction's DATA stage */
	int		 helo_sent;
	int		 helo_tls;	/* the TLS state the HELO was sent in */
	char		 helo[SMTP_CMDLINE_MAX];
	struct buf	 conn_refusal;	/* refused at connect: this reply, always */
	struct buf	 helo_refusal;	/* the HELO was refused: this reply */
	uint32_t	 actions;	/* SMFIF_* negotiated */
	uint32_t	 protocol;	/* SMFIP_* negotiated */
	char		*frame;		/* the reply being read */
};

struct milter_state {
	const struct config	*conf;
	struct filter		*f;
	size_t			 n;
	const char		*block;		/* every later MAIL, RCPT and end of data */
	int			 discard;	/* a filter discarded the transaction */
};

struct milter_state *
milter_new(const struct config *c)
{
	struct milter_state	*ms;
	size_t			 i;

	if ((ms = calloc(1, sizeof(*ms))) == NULL ||
	    (ms->f = calloc(c->nmilter + 1, sizeof(*ms->f))) == NULL)
		fatalx("out of memory");
	ms->conf = c;
	ms->n = c->nmilter;
	for (i = 0; i < ms->n; i++) {
		ms->f[i].addr = c->milter[i];
		ms->f[i].fd = -1;
	}
	return ms;
}

static void
disconnect(struct filter *f)
{
	if (f->fd != -1)
		(void)close(f->fd);
	f->fd = -1;
}

/*
 * The filter is gone for this session (logged with why), and the
 * default action decides what the client hears from now on.
 */
static enum answer
fail(struct milter_state *ms, struct filter *f, const char *id,
    const char *why)
{
	static const char *const words[] = { "tempfail", "accept", "reject" };

	log_warn("%s: milter %s: %s; default action %s", id[0] != '\0' ? id :
	    "-", f->addr, why, words[ms->conf->milter_default]);
	disconnect(f);
	f->dead = 1;
	f->in_txn = 0;
	if (ms->conf->milter_default == MILTER_DEFAULT_TEMPFAIL)
		ms->block = DEFAULT_TEMPFAIL;
	else if (ms->conf->milter_default == MILTER_DEFAULT_REJECT)
		ms->block = DEFAULT_REJECT;
	return AN_FAILED;
}

/* Connect to a filter; 0, or -1 with errno set. */
static int
open_socket(struct filter *f, long long deadline)
{
	if (strncmp(f->addr, "inet:", 5) == 0)
		f->fd = net_connect_inet(f->addr + 5, deadline);
	else
		f->fd = net_connect_unix(f->addr + 5, deadline);
	return f->fd == -1 ? -1 : 0;
}

/*
 * One frame from the filter into f->frame, before the deadline.  Its
 * length (command included), or -1: closed, late, or a length no filter
 * may send (checked before anything is read into memory).
 */
static ssize_t
read_frame(struct filter *f, long long deadline)
{
	unsigned char	 hdr[4];
	size_t		 got = 0, want = 4;
	ssize_t		 n, size = 0;
	char		*dst = (char *)hdr;

	for (;;) {
		if (got == want && size == 0) {
			if ((size = milter_frame_size(hdr, 4)) == -1) {
				errno = EMSGSIZE;
				return -1;
			}
			want = (size_t)size - 4;
			got = 0;
			dst = f->frame;
		}
		if (got == want && size > 0)
			return size - 4;
		n = read(f->fd, dst + got, want - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0) {
			errno = ECONNRESET;
			return -1;
		} else if (errno == EAGAIN && !net_wait_fd(f->fd, POLLIN,
		    deadline)) {
			errno = ETIMEDOUT;
			return -1;
		} else if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
}

/*
 * Send the frames in req.  Anything the filter sent that we did not ask
 * for (a reply with no request outstanding, or its close) means it is
 * out of step with us: -1.
 */
static int
send_frames(struct filter *f, const struct buf *req, long long deadline)
{
	struct pollfd	 pfd = { f->fd, POLLIN, 0 };

	if (poll(&pfd, 1, 0) != 0) {
		errno = EPROTO;
		return -1;
	}
	return net_write_all(f->fd, req->data, req->len, deadline);
}

/* SMFIC_OPTNEG, the first exchange: version 6, what we can do. */
static int
negotiate(struct milter_state *ms, struct filter *f, const char *id)
{
	struct buf		 req = { NULL, 0, 0 };
	struct milter_optneg	 o;
	long long		 deadline;
	ssize_t			 n;
	size_t			 off;
	char			 why[128];

	deadline = conn_now_ms() + ms->conf->timeout * 1000;
	if ((f->frame = malloc(MILTER_FRAME_MAX)) == NULL)
		fatalx("out of memory");
	memset(&o, 0, sizeof(o));
	o.offered_actions = MILTER_ACTIONS;
	if (ms->conf->lmtp)
		o.offered_actions &= ~(uint32_t)MILTER_RCPT_ACTIONS;
	off = milter_frame_begin(&req, SMFIC_OPTNEG);
	milter_put_u32(&req, MILTER_VERSION);
	milter_put_u32(&req, o.offered_actions);
	milter_put_u32(&req, MILTER_PROTOCOL_OFFER);
	milter_frame_end(&req, off);
	if (open_socket(f, deadline) == -1 ||
	    send_frames(f, &req, deadline) == -1 ||
	    (n = read_frame(f, deadline)) == -1) {
		(void)snprintf(why, sizeof(why), "%s", strerror(errno));
		buf_free(&req);
		return fail(ms, f, id, why), -1;
	}
	buf_free(&req);
	if (f->frame[0] != SMFIC_OPTNEG ||
	    milter_parse_optneg(f->frame + 1, (size_t)n - 1, &o) == -1)
		return fail(ms, f, id, "bad option negotiation"), -1;
	f->actions = o.actions;
	f->protocol = o.protocol;
	return 0;
}

/* One macro "name\0value\0", left out when we have no value. */
static void
macro(struct buf *b, const char *name, const char *value)
{
	if (value == NULL || value[0] == '\0')
		return;
	milter_put_str(b, name);
	milter_put_str(b, value);
}

/* The connect stage's macros: the client and us, as Postfix sends them. */
static void
connect_macros(struct buf *b, const struct milter_ctx *x)
{
	const struct session	*s = x->sess;
	const struct peer	*p = x->peer;
	const char		*name = p->remote_host[0] != '\0' ?
				    p->remote_host : "unknown";
	char			 under[SMTP_DOMAIN_MAX + 80];

	(void)snprintf(under, sizeof(under), "%s [%s]", name,
	    p->remote_addr);
	if (p->remote_addr[0] == '\0')
		(void)strlcpy(under, name, sizeof(under));
	macro(b, "j", s->conf->hostname);
	/* rspamd takes its Authentication-Results id from it. */
	macro(b, "{daemon_name}", s->conf->authserv_id);
	macro(b, "{client_addr}", p->remote_addr);
	macro(b, "{client_port}", p->remote_port);
	macro(b, "{client_name}", name);
	macro(b, "_", under);
	macro(b, "{if_addr}", p->local_addr);
}

/* The macros of a stage, as Postfix sends them (SPEC 13). */
static void
stage_macros(struct buf *b, char stage, const struct milter_ctx *x)
{
	const struct session	*s = x->sess;
	size_t			 off = milter_frame_begin(b, SMFIC_MACRO);

	buf_append(b, &stage, 1);
	switch (stage) {
	case SMFIC_CONNECT:
		connect_macros(b, x);
		break;
	case SMFIC_HELO:
		macro(b, "{tls_version}", s->tlsi.protocol);
		macro(b, "{cipher}", s->tlsi.cipher);
		macro(b, "{cert_subject}", s->tlsi.client_subject);
		break;
	case SMFIC_MAIL:
		macro(b, "{auth_type}", s->auth_method);
		macro(b, "{auth_authen}", s->auth_user);
		macro(b, "{mail_addr}", s->txn.mail_from);
		break;
	case SMFIC_RCPT:
		macro(b, "{rcpt_addr}", x->rcpt);
		break;
	default:
		macro(b, "i", x->id);
		break;
	}
	if (b->len == off + 6)
		b->len = off;	/* no macro to send */
	else
		milter_frame_end(b, off);
}

/* SMFIC_CONNECT: host name, family, port, address (libmilter's order). */
static void
connect_frame(struct buf *b, const struct peer *p)
{
	size_t		 off = milter_frame_begin(b, SMFIC_CONNECT);
	uint16_t	 port = (uint16_t)strtoul(p->remote_port, NULL, 10);
	unsigned char	 nport[2] = { (unsigned char)(port >> 8),
			    (unsigned char)(port & 0xff) };

	milter_put_str(b, p->remote_host[0] != '\0' ? p->remote_host :
	    "unknown");
	if (p->remote_addr[0] == '\0')
		buf_append(b, "U", 1);
	else {
		buf_append(b, strchr(p->remote_addr, ':') != NULL ? "6" : "4",
		    1);
		buf_append(b, nport, 2);
		milter_put_str(b, p->remote_addr);
	}
	milter_frame_end(b, off);
}

/* The stage's "no reply" flag: the filter asked us not to wait. */
static int
no_reply(const struct filter *f, char stage)
{
	static const struct {
		char		 stage;
		uint32_t	 flag;
	} nr[] = {
		{ SMFIC_CONNECT, SMFIP_NR_CONN }, { SMFIC_HELO, SMFIP_NR_HELO },
		{ SMFIC_MAIL, SMFIP_NR_MAIL }, { SMFIC_RCPT, SMFIP_NR_RCPT },
		{ SMFIC_DATA, SMFIP_NR_DATA }, { SMFIC_HEADER, SMFIP_NR_HDR },
		{ SMFIC_EOH, SMFIP_NR_EOH }, { SMFIC_BODY, SMFIP_NR_BODY },
	};

	if (stage == SMFIC_ABORT || stage == SMFIC_QUIT)
		return 1;	/* never answered */
	size_t	 i;

	for (i = 0; i < sizeof(nr) / sizeof(nr[0]); i++)
		if (nr[i].stage == stage)
			return (f->protocol & nr[i].flag) != 0;
	return 0;
}

/* continue, accept, reject, tempfail, reply code: the stage is decided. */
static int
final_answer(char cmd)
{
	return cmd == SMFIR_CONTINUE || cmd == SMFIR_ACCEPT ||
	    cmd == SMFIR_REJECT || cmd == SMFIR_TEMPFAIL ||
	    cmd == SMFIR_REPLYCODE;
}

/* What a final answer means; a refusal's reply is appended to reply. */
static enum answer
verdict(const struct milter_reply *r, struct buf *reply)
{
	switch (r->cmd) {
	case SMFIR_CONTINUE:
		return AN_CONTINUE;
	case SMFIR_ACCEPT:
		return AN_ACCEPT;
	case SMFIR_REJECT:
		buf_append(reply, MILTER_REJECT, strlen(MILTER_REJECT));
		return AN_REFUSE;
	case SMFIR_TEMPFAIL:
		buf_append(reply, MILTER_TEMPFAIL, strlen(MILTER_TEMPFAIL));
		return AN_REFUSE;
	default:
		buf_append(reply, r->text, strlen(r->text));
		return AN_REFUSE;
	}
}

/*
 * One modification at end of message, if negotiated; -1 if not (the
 * filter broke the protocol).
 */
static int
take_edit(const struct filter *f, struct milter_edits *ed,
    const struct milter_reply *r)
{
	if (ed == NULL || (f->actions & milter_reply_action(r->cmd)) == 0)
		return -1;
	return milter_edit(ed, r, (f->protocol & SMFIP_HDR_LEADSPC) != 0);
}

/*
 * A skip (in the body, if negotiated) or a discard (after HELO) ends
 * the filter's answer: AN_SKIP or AN_DISCARD; AN_CONTINUE for neither.
 */
static enum answer
stop_answer(const struct filter *f, char stage, char cmd)
{
	if (cmd == SMFIR_SKIP && stage == SMFIC_BODY &&
	    (f->protocol & SMFIP_SKIP) != 0)
		return AN_SKIP;
	if (cmd == SMFIR_DISCARD && stage != SMFIC_CONNECT &&
	    stage != SMFIC_HELO)
		return AN_DISCARD;
	return AN_CONTINUE;
}

/*
 * The latest a progress message can push the wait, --handler-timeout
 * from now (as Sendmail's overall E timeout), or --timeout if longer: a
 * filter that only ever says "wait" is a silent one.
 */
static long long
progress_cap(const struct milter_state *ms)
{
	return conn_now_ms() + (ms->conf->handler_timeout >
	    ms->conf->timeout ? ms->conf->handler_timeout :
	    ms->conf->timeout) * 1000;
}

/*
 * The filter's answer to a request of the stage: progress extends the
 * wait; modifications are taken at end of message only (ed), skip in
 * the body only.
 */
static enum answer
read_answer(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, char stage, struct milter_edits *ed,
    struct buf *reply)
{
	struct milter_reply	 r;
	long long		 deadline, cap;
	ssize_t			 n;
	enum answer		 a;
	char			 why[160];

	/* Progress extends the wait by --timeout, never past the cap. */
	deadline = conn_now_ms() + ms->conf->timeout * 1000;
	cap = progress_cap(ms);
	for (;;) {
		if ((n = read_frame(f, deadline)) == -1) {
			(void)snprintf(why, sizeof(why), "no reply: %s",
			    strerror(errno));
			return fail(ms, f, x->id, why);
		}
		if (milter_parse_reply(f->frame, (size_t)n, &r) == -1)
			break;
		if (r.cmd == SMFIR_PROGRESS) {
			deadline = conn_now_ms() + ms->conf->timeout * 1000;
			if (deadline > cap)
				deadline = cap;
		} else if ((a = stop_answer(f, stage, r.cmd)) != AN_CONTINUE)
			return a;
		else if (final_answer(r.cmd))
			return verdict(&r, reply);
		else if (take_edit(f, ed, &r) == -1)
			break;
	}
	(void)snprintf(why, sizeof(why), "reply '%c' (0x%02x) out of protocol "
	    "at stage '%c'", r.cmd > 0x20 && r.cmd < 0x7f ? r.cmd : '?',
	    (unsigned char)r.cmd, stage);
	return fail(ms, f, x->id, why);
}

/* Send req (a stage's macros and command), then its answer if any. */
static enum answer
ask(struct milter_state *ms, struct filter *f, const struct milter_ctx *x,
    const struct buf *req, char stage, struct milter_edits *ed,
    struct buf *reply)
{
	char	 why[160];

	if (send_frames(f, req, conn_now_ms() + ms->conf->timeout *
	    1000) == -1) {
		(void)snprintf(why, sizeof(why), "%s", errno == EPROTO ?
		    "reply with no request outstanding" : strerror(errno));
		return fail(ms, f, x->id, why);
	}
	if (no_reply(f, stage))
		return AN_CONTINUE;
	return read_answer(ms, f, x, stage, ed, reply);
}

/* A stage with its macros: the frames are built, then ask()ed. */
static enum answer
ask_stage(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, char stage, const struct buf *cmd,
    struct buf *reply)
{
	struct buf	 req = { NULL, 0, 0 };
	enum answer	 a;

	if (stage != SMFIC_HEADER && stage != SMFIC_BODY && stage != SMFIC_EOH)
		stage_macros(&req, stage, x);
	buf_append(&req, cmd->data, cmd->len);
	a = ask(ms, f, x, &req, stage, NULL, reply);
	buf_free(&req);
	return a;
}

/* A frame of command cmd whose data are the strings given, NULL-ended. */
static void
str_frame(struct buf *b, char cmd, const char *s1, const char *s2)
{
	size_t	 off = milter_frame_begin(b, cmd);

	if (s1 != NULL)
		milter_put_str(b, s1);
	if (s2 != NULL)
		milter_put_str(b, s2);
	milter_frame_end(b, off);
}

/* MAIL and RCPT: "<path>" then each ESMTP parameter, as strings. */
static void
path_frame(struct buf *b, char cmd, const char *path, const char *params)
{
	size_t		 off = milter_frame_begin(b, cmd);
	const char	*p, *sp;

	buf_append(b, "<", 1);
	buf_append(b, path, strlen(path));
	milter_put_str(b, ">");
	for (p = params; p != NULL && *p != '\0'; p = sp) {
		while (*p == ' ')
			p++;
		if ((sp = strchr(p, ' ')) == NULL)
			sp = p + strlen(p);
		if (sp > p) {
			buf_append(b, p, (size_t)(sp - p));
			buf_append(b, "", 1);
		}
	}
	milter_frame_end(b, off);
}

/*
 * SMFIC_HEADER for one spooled header (cut at MILTER_HEADER_MAX):
 * name, then the value without the blank after the colon (unless the
 * filter asked for it) and with LF between folded lines, as Postfix
 * sends it.
 */
static void
header_frame(struct buf *b, const struct buf *h, int leadspc)
{
	size_t		 i = 0, nlen = msg_header_name(h->data, h->len, &i);
	size_t		 off = milter_frame_begin(b, SMFIC_HEADER);
	size_t		 vend = h->len - (h->data[h->len - 1] == '\n');

	buf_append(b, h->data, nlen);
	buf_append(b, "", 1);
	while (!leadspc && i < h->len && (h->data[i] == ' ' ||
	    h->data[i] == '\t'))
		i++;
	for (; i < vend; i++) {
		/* Folds as LF, as Postfix sends them; a NUL would cut it. */
		if ((h->data[i] == '\r' && (i + 1 == vend ||
		    h->data[i + 1] == '\n')) || h->data[i] == '\0')
			continue;
		buf_append(b, &h->data[i], 1);
	}
	buf_append(b, "", 1);
	milter_frame_end(b, off);
}

/*
 * The body from the spool in SMFIC_BODY chunks of at most MILTER_CHUNK
 * octets, with CRLF line ends as on the wire (the spool has LF unless
 * --crlf or BINARYMIME).  Stops at the first answer but continue.
 */
static enum answer
send_body(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, off_t off, int crlf, struct buf *reply)
{
	char		 in[MILTER_CHUNK / 2];
	const char	*p, *lf, *end;
	struct buf	 req = { NULL, 0, 0 };
	enum answer	 a = AN_CONTINUE;
	ssize_t		 n;
	size_t		 fo;

	while (a == AN_CONTINUE &&
	    (n = pread(x->spool_fd, in, sizeof(in), off)) > 0) {
		off += n;
		req.len = 0;
		fo = milter_frame_begin(&req, SMFIC_BODY);
		for (p = in, end = in + n; p < end; p = lf + 1) {
			if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL ||
			    crlf) {
				buf_append(&req, p, (size_t)(end - p));
				break;
			}
			buf_append(&req, p, (size_t)(lf - p));
			buf_append(&req, "\r\n", 2);
		}
		milter_frame_end(&req, fo);
		a = ask(ms, f, x, &req, SMFIC_BODY, NULL, reply);
	}
	buf_free(&req);
	return a == AN_SKIP ? AN_CONTINUE : a;
}

/* Each header, then the end of the headers; *body: where the body is. */
static enum answer
send_headers(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, off_t *body, struct buf *reply)
{
	struct msgread	 rd;
	struct buf	 h = { NULL, 0, 0 }, req = { NULL, 0, 0 };
	enum answer	 a = AN_CONTINUE;
	off_t		 end;

	msgread_init(&rd, x->spool_fd, 0);
	while (msg_next_header(&rd, &h, &end, body)) {
		if (a != AN_CONTINUE || (f->protocol & SMFIP_NOHDRS) != 0)
			continue;
		req.len = 0;
		header_frame(&req, &h, (f->protocol & SMFIP_HDR_LEADSPC) != 0);
		a = ask(ms, f, x, &req, SMFIC_HEADER, NULL, reply);
	}
	if (a == AN_CONTINUE && (f->protocol & SMFIP_NOEOH) == 0) {
		req.len = 0;
		str_frame(&req, SMFIC_EOH, NULL, NULL);
		a = ask(ms, f, x, &req, SMFIC_EOH, NULL, reply);
	}
	buf_free(&h);
	buf_free(&req);
	return a;
}

/*
 * The message to one filter: DATA, the headers, the end of headers, the
 * body, the end of message (whose answer may bring modifications).
 */
static enum answer
send_message(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, struct milter_edits *ed, struct buf *reply)
{
	struct buf	 req = { NULL, 0, 0 };
	enum answer	 a = AN_CONTINUE;
	off_t		 body = 0;

	/* BDAT has no DATA command: the stage comes now. */
	if (!f->data_sent && (f->protocol & SMFIP_NODATA) == 0) {
		str_frame(&req, SMFIC_DATA, NULL, NULL);
		a = ask_stage(ms, f, x, SMFIC_DATA, &req, reply);
	}
	if (a == AN_CONTINUE)
		a = send_headers(ms, f, x, &body, reply);
	if (a == AN_CONTINUE && (f->protocol & SMFIP_NOBODY) == 0)
		a = send_body(ms, f, x, body, x->spool_crlf, reply);
	if (a == AN_CONTINUE) {
		req.len = 0;
		stage_macros(&req, SMFIC_BODYEOB, x);
		str_frame(&req, SMFIC_BODYEOB, NULL, NULL);
		a = ask(ms, f, x, &req, SMFIC_BODYEOB, ed, reply);
		f->in_txn = 0;	/* its transaction is over */
	}
	buf_free(&req);
	return a;
}

/* The default action has spoken: its reply, for the rest of the session. */
static int
blocked(const struct milter_state *ms, struct buf *reply)
{
	if (ms->block == NULL)
		return 0;
	buf_append(reply, ms->block, strlen(ms->block));
	return 1;
}

static enum answer open_filter(struct milter_state *, struct filter *,
		    const struct milter_ctx *);
static enum answer send_helo(struct milter_state *, struct filter *,
		    const struct milter_ctx *);
static enum answer kept_refusal(const struct filter *, struct buf *);

/*
 * Negotiate and send the connect stage once, the HELO stage whenever
 * the HELO (or the TLS under it) changed since.  A refused HELO is
 * answered again until the client greets anew; a refused connect is
 * the answer for the rest of the session, as Postfix does.
 */
static enum answer
greet_filter(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x, struct buf *reply)
{
	const struct session	*s = x->sess;
	enum answer		 a = AN_CONTINUE;

	if (!f->opened)
		a = open_filter(ms, f, x);
	if (a == AN_CONTINUE && f->conn_refusal.len == 0 &&
	    (!f->helo_sent || f->helo_tls != s->tls ||
	    strcmp(f->helo, s->helo) != 0))
		a = send_helo(ms, f, x);
	if (a == AN_ACCEPT)
		f->accepted = 1;
	if (a != AN_CONTINUE && a != AN_REFUSE)
		return a;
	return kept_refusal(f, reply);
}

/* Negotiate, then the connect stage unless the filter declined it. */
static enum answer
open_filter(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x)
{
	struct buf	 req = { NULL, 0, 0 };
	enum answer	 a = AN_CONTINUE;

	if (negotiate(ms, f, x->id) == -1)
		return AN_FAILED;
	f->opened = 1;
	if ((f->protocol & SMFIP_NOCONNECT) == 0) {
		connect_frame(&req, x->peer);
		a = ask_stage(ms, f, x, SMFIC_CONNECT, &req, &f->conn_refusal);
	}
	buf_free(&req);
	return a;
}

/* The HELO stage for the session's HELO, noted as sent. */
static enum answer
send_helo(struct milter_state *ms, struct filter *f,
    const struct milter_ctx *x)
{
	const struct session	*s = x->sess;
	struct buf		 req = { NULL, 0, 0 };
	enum answer		 a = AN_CONTINUE;

	f->helo_sent = 1;
	f->helo_tls = s->tls;
	(void)strlcpy(f->helo, s->helo, sizeof(f->helo));
	f->helo_refusal.len = 0;
	if ((f->protocol & SMFIP_NOHELO) == 0) {
		str_frame(&req, SMFIC_HELO, s->helo, NULL);
		a = ask_stage(ms, f, x, SMFIC_HELO, &req, &f->helo_refusal);
	}
	buf_free(&req);
	return a;
}

/* A refused connect or HELO stands: its reply again, AN_REFUSE. */
static enum answer
kept_refusal(const struct filter *f, struct buf *reply)
{
	const struct buf	*r = f->conn_refusal.len > 0 ?
			    &f->conn_refusal : &f->helo_refusal;

	if (r->len == 0)
		return AN_CONTINUE;
	buf_append(reply, r->data, r->len);
	return AN_REFUSE;
}

/*
 * What one filter's answer means for the transaction: 1 if it is
 * refused (the reply is in reply).  accept and discard end this
 * filter's part in it; a failure is for the default action to decide.
 */
static int
refuses(struct milter_state *ms, struct filter *f, enum answer a,
    struct buf *reply)
{
	switch (a) {
	case AN_ACCEPT:
		f->txn_accepted = 1;
		return 0;
	case AN_DISCARD:
		ms->discard = 1;
		f->txn_accepted = 1;
		return 0;
	case AN_REFUSE:
		return 1;
	case AN_FAILED:
		return blocked(ms, reply);
	default:
		return 0;
	}
}

/* SMFIC_ABORT to the filters in a transaction: RSET, or a refused one. */
static void
abort_all(struct milter_state *ms, const struct milter_ctx *x)
{
	struct buf	 req = { NULL, 0, 0 };
	size_t		 i;

	str_frame(&req, SMFIC_ABORT, NULL, NULL);
	for (i = 0; i < ms->n; i++) {
		if (ms->f[i].in_txn && !ms->f[i].dead)
			(void)ask(ms, &ms->f[i], x, &req, SMFIC_ABORT, NULL,
			    NULL);
		ms->f[i].in_txn = 0;
		ms->f[i].txn_accepted = 0;
		ms->f[i].data_sent = 0;
	}
	buf_free(&req);
}

/* Is the filter to hear this transaction's next stage? */
static int
in_transaction(const struct filter *f)
{
	return !f->dead && !f->accepted && f->in_txn && !f->txn_accepted;
}

/*
 * MAIL (SPEC 13): each filter hears connect and HELO first if it has
 * not yet, then the sender and its parameters.
 */
enum milter_verdict
milter_mail(struct milter_state *ms, const struct milter_ctx *x,
    struct buf *reply)
{
	const struct txn	*t = &x->sess->txn;
	struct buf		 req = { NULL, 0, 0 };
	struct filter		*f;
	enum answer		 a;
	size_t			 i;

	abort_all(ms, x);
	ms->discard = 0;
	for (i = 0; i < ms->n && ms->block == NULL; i++) {
		f = &ms->f[i];
		if (f->dead || f->accepted)
			continue;
		if ((a = greet_filter(ms, f, x, reply)) == AN_CONTINUE) {
			f->in_txn = 1;
			req.len = 0;
			path_frame(&req, SMFIC_MAIL, t->mail_from,
			    t->mail_options);
			if ((f->protocol & SMFIP_NOMAIL) == 0)
				a = ask_stage(ms, f, x, SMFIC_MAIL, &req,
				    reply);
		}
		if (refuses(ms, f, a, reply)) {
			buf_free(&req);
			return MV_REFUSE;
		}
	}
	buf_free(&req);
	return blocked(ms, reply) ? MV_REFUSE : MV_ACCEPT;
}

/*
 * Ask each filter in the transaction that has not declined the stage
 * (the no flag) cmd, until one refuses; cmd is freed.
 */
static enum milter_verdict
ask_each(struct milter_state *ms, const struct milter_ctx *x, char stage,
    uint32_t no, struct buf *cmd, struct buf *reply)
{
	struct filter	*f;
	size_t		 i;
	int		 refused = 0;

	for (i = 0; i < ms->n && ms->block == NULL && !refused; i++) {
		f = &ms->f[i];
		if (!in_transaction(f) || (f->protocol & no) != 0)
			continue;
		if (stage == SMFIC_DATA)
			f->data_sent = 1;
		refused = refuses(ms, f, ask_stage(ms, f, x, stage, cmd,
		    reply), reply);
	}
	buf_free(cmd);
	if (!refused && blocked(ms, reply))
		refused = 1;
	return refused ? MV_REFUSE : MV_ACCEPT;
}

/* RCPT: a refusal refuses this recipient only. */
enum milter_verdict
milter_rcpt(struct milter_state *ms, const struct milter_ctx *x,
    const char *rcpt, const char *params, struct buf *reply)
{
	struct buf	 req = { NULL, 0, 0 };

	path_frame(&req, SMFIC_RCPT, rcpt, params);
	return ask_each(ms, x, SMFIC_RCPT, SMFIP_NORCPT, &req, reply);
}

/* The DATA command: a refusal refuses the message before its bytes. */
enum milter_verdict
milter_data(struct milter_state *ms, const struct milter_ctx *x,
    struct buf *reply)
{
	struct buf	 req = { NULL, 0, 0 };

	str_frame(&req, SMFIC_DATA, NULL, NULL);
	return ask_each(ms, x, SMFIC_DATA, SMFIP_NODATA, &req, reply);
}

/*
 * End of data: the spooled message to each filter in turn, before the
 * handler runs.  Their modifications are gathered in ed, applied by
 * the caller if no filter refuses; those of a filter that fails before
 * its answer to the end of message are dropped with it.
 */
enum milter_verdict
milter_message(struct milter_state *ms, const struct milter_ctx *x,
    struct milter_edits *ed, struct buf *reply)
{
	struct milter_edits	 fe;
	struct filter		*f;
	enum answer		 a;
	size_t			 i;

	for (i = 0; i < ms->n && ms->block == NULL && !ms->discard; i++) {
		f = &ms->f[i];
		if (!in_transaction(f))
			continue;
		/* Its changes count only once it has answered. */
		milter_edits_init(&fe);
		fe.filter = (int)i;
		/* A new body: no more than the client may send, and a margin. */
		if (ms->conf->size_limit > 0)
			fe.body_max = (uint64_t)ms->conf->size_limit +
			    MILTER_EDITS_MAX;
		a = send_message(ms, f, x, &fe, reply);
		if ((a == AN_CONTINUE || a == AN_ACCEPT) &&
		    milter_edits_merge(ed, &fe) == -1)
			ed->failed = 1;
		milter_edits_free(&fe);
		if (refuses(ms, f, a, reply))
			return MV_REFUSE;
		if (ms->discard)
			return MV_DISCARD;
	}
	if (blocked(ms, reply))
		return MV_REFUSE;
	return ms->discard ? MV_DISCARD : MV_ACCEPT;
}

/* The end of the session: ABORT where a transaction is open, then QUIT. */
void
milter_free(struct milter_state *ms, const struct milter_ctx *x)
{
	struct buf	 req = { NULL, 0, 0 };
	size_t		 i;

	if (ms == NULL)
		return;
	abort_all(ms, x);
	str_frame(&req, SMFIC_QUIT, NULL, NULL);
	for (i = 0; i < ms->n; i++) {
		if (ms->f[i].fd != -1 && !ms->f[i].dead)
			(void)ask(ms, &ms->f[i], x, &req, SMFIC_QUIT, NULL,
			    NULL);
		disconnect(&ms->f[i]);
		free(ms->f[i].frame);
		buf_free(&ms->f[i].conn_refusal);
		buf_free(&ms->f[i].helo_refusal);
	}
	buf_free(&req);
	free(ms->f);
	free(ms);
}
