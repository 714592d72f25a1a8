/*
 * The engine's questions to the --policy servers and --rcpt-check, SPEC
 * 10.2: a pending RCPT (SA_CHECK_RCPT, which also asks the milters once
 * those accepted it), and the spooled message at END-OF-MESSAGE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

/* What the RCPT checks said, until the session hears the verdict. */
struct rcpt_answer {
	struct buf	 reply;		/* a refusal, NUL-ended */
	struct buf	 hdr;		/* the policy's PREPEND headers */
	struct buf	 parsed;	/* --rcpt-check's own 2xx, NUL-ended */
	int		 code;		/* of that 2xx; 0: the plain 250 */
};

static void	 ask_init(struct policy_ctx *, const struct session *,
		    const struct peer *, const char *, const char *);
static uint64_t	 mail_size(const char *);
static int	 rcpt_policy(struct session *, struct policy_state *,
		    const struct peer *, struct rcpt_answer *);
static int	 rcpt_program(struct session *, struct policy_state *,
		    const struct peer *, struct rcpt_answer *);
static int	 run_rcpt_check(struct session *, const struct peer *,
		    struct buf *, struct buf *);
static int	 rcpt_not_deferred(struct session *,
		    const struct policy_state *);
static void	 rcpt_accept(struct session *, struct rcpt_answer *);

/* A question to the --policy servers about this session. */
static void
ask_init(struct policy_ctx *x, const struct session *s,
    const struct peer *p, const char *state, const char *id)
{
	memset(x, 0, sizeof(*x));
	x->conf = s->conf;
	x->peer = p;
	x->sess = s;
	x->state = state;
	x->id = id;
}

/* The SIZE= the client declared on MAIL, or 0: Postfix's size at RCPT. */
static uint64_t
mail_size(const char *options)
{
	const char	*p;

	for (p = options; p != NULL && *p != '\0'; p = strchr(p, ' ')) {
		while (*p == ' ')
			p++;
		if (strncmp(p, "SIZE=", 5) == 0)
			return strtoull(p + 5, NULL, 10);
	}
	return 0;
}

/*
 * SA_CHECK_RCPT: the pending RCPT through the --policy servers, then
 * --rcpt-check, then the milters.  Any of them may refuse it; the
 * session hears the verdict.
 */
void
policy_check_rcpt(struct session *s, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p)
{
	struct rcpt_answer	 a;

	memset(&a, 0, sizeof(a));
	if ((ps == NULL || rcpt_policy(s, ps, p, &a)) &&
	    (s->conf->rcpt_check == NULL || rcpt_program(s, ps, p, &a)) &&
	    rcpt_not_deferred(s, ps) &&
	    /* SPEC 13: the milters, once the checks above accepted it. */
	    (ms == NULL || milter_check_rcpt(s, ms, p, &a.reply)))
		rcpt_accept(s, &a);
	buf_free(&a.reply);
	buf_free(&a.hdr);
	buf_free(&a.parsed);
}

/* The --policy servers at RCPT: 0 when they refused (the session heard). */
static int
rcpt_policy(struct session *s, struct policy_state *ps,
    const struct peer *p, struct rcpt_answer *a)
{
	struct policy_ctx	 x;

	ask_init(&x, s, p, "RCPT", "");
	x.recipient = s->pending.path;
	x.size = mail_size(s->txn.mail_options);
	if (policy_check(ps, &x, &a->reply, &a->hdr))
		return 1;
	buf_append(&a->reply, "", 1);
	session_rcpt_checked(s, 0, a->reply.data);
	return 0;
}

/* --rcpt-check: 0 when it refused (the session heard). */
static int
rcpt_program(struct session *s, struct policy_state *ps,
    const struct peer *p, struct rcpt_answer *a)
{
	const char	*deferred;

	if ((a->code = run_rcpt_check(s, p, &a->reply, &a->parsed)) != -1)
		return 1;
	/* SPEC 10.2: after DEFER_IF_REJECT a 5xx is its 450. */
	deferred = a->reply.data[0] == '5' ? policy_deferred(ps, 1) : NULL;
	session_rcpt_checked(s, 0, deferred != NULL ? deferred :
	    a->reply.data);
	return 0;
}

/*
 * --rcpt-check for the pending RCPT: -1 refused (the reply, NUL-ended,
 * in reply), else the code of its 2xx reply in parsed (NUL-ended), or 0
 * for the plain 250.
 */
static int
run_rcpt_check(struct session *s, const struct peer *p, struct buf *reply,
    struct buf *parsed)
{
	struct handler_job	 job;
	struct handler_result	 res;
	int			 code;

	memset(&job, 0, sizeof(job));
	job.conf = s->conf;
	job.peer = p;
	job.sess = s;
	job.id = "";
	job.spool_fd = -1;
	job.rcpt = s->pending.path;
	job.rcpt_option = s->pending.options;
	handler_run(&job, &res);
	code = reply_parse_output(&res, parsed);
	if (res.end != HE_EXITED || res.status != 0 || code < 0 ||
	    code >= 300) {
		(void)reply_from_handler(&res, "", reply);
		buf_append(reply, "", 1);
		if (reply->data[0] != '2')
			code = -1;
	}
	handler_result_free(&res);
	if (code >= 200 && code < 300) {
		buf_append(parsed, "", 1);
		return code;
	}
	return code == -1 ? -1 : 0;
}

/* SPEC 10.2: DEFER_IF_PERMIT, once nothing later refused: 0 if it held. */
static int
rcpt_not_deferred(struct session *s, const struct policy_state *ps)
{
	const char	*deferred;
	char		 who[SMTP_PATH_MAX * 4 + 3];

	if ((deferred = policy_deferred(ps, 0)) == NULL)
		return 1;
	log_info("-: policy: RCPT %s: DEFER_IF_PERMIT applies",
	    log_quote(who, sizeof(who), s->pending.path,
	    strlen(s->pending.path)));
	session_rcpt_checked(s, 0, deferred);
	return 0;
}

/* Accepted: its PREPEND headers go with the transaction. */
static void
rcpt_accept(struct session *s, struct rcpt_answer *a)
{
	char	*h, *nl;

	buf_append(&a->hdr, "", 1);
	for (h = a->hdr.data; (nl = strchr(h, '\n')) != NULL; h = nl + 1) {
		*nl = '\0';
		session_prepend(s, h);
	}
	session_rcpt_checked(s, 1, a->code != 0 ? a->parsed.data : NULL);
}

/*
 * SPEC 10.2: the message through the --policy servers at
 * END-OF-MESSAGE.  0 and a reply in text when refused.  Their PREPEND
 * headers go into the spooled message, with the handler's line ends.
 */
int
policy_check_message(struct session *s, struct policy_state *ps,
    struct spool *sp, const struct peer *p, struct buf *text)
{
	static const char	 failed[] =
	    "451 4.3.0 Error: cannot add the policy's header\r\n";
	struct policy_ctx	 x;
	struct buf		 hdr = { NULL, 0, 0 }, lines = { NULL, 0, 0 };
	const char		*h, *nl;
	int			 ok;

	ask_init(&x, s, p, "END-OF-MESSAGE", sp->id);
	/* As Postfix: the recipient only when there is exactly one. */
	x.recipient = s->txn.nrcpt == 1 ? s->txn.rcpt[0] : "";
	x.size = s->dec.wire_size;
	ok = policy_check(ps, &x, text, &hdr);
	for (h = hdr.data; ok && hdr.len > 0 && h < hdr.data + hdr.len;
	    h = nl + 1) {
		nl = memchr(h, '\n', (size_t)(hdr.data + hdr.len - h));
		buf_append(&lines, h, (size_t)(nl - h));
		buf_append(&lines, session_crlf(s) ? "\r\n" : "\n",
		    session_crlf(s) ? 2 : 1);
	}
	if (ok && lines.len > 0 && (spool_insert(sp, lines.data,
	    lines.len) == -1 || spool_rewind(sp) == -1)) {
		log_warn("%s: policy header: %s", sp->id, strerror(errno));
		buf_append(text, failed, sizeof(failed) - 1);
		ok = 0;
	}
	buf_free(&hdr);
	buf_free(&lines);
	return ok;
}
