/*
 * The session engine's milter actions answered (SPEC 13): the MAIL,
 * DATA and RCPT checks (SA_CHECK_MAIL, SA_CHECK_DATA, SA_CHECK_RCPT)
 * and the spooled message before its handler, through milter.c; the
 * verdicts and the filters' envelope changes go back to the engine.
 * serve.c's loop, deliver.c and policy-check.c call these, as they call
 * policy.c for --policy.
 */
#include <errno.h>
#include <string.h>

#include "smtpd-stdio.h"

static int	envelope(struct session *, const struct milter_edits *,
		    const char *);

/* The milter context of this session's checks. */
static void
ctx_init(struct milter_ctx *x, const struct session *s,
    const struct peer *p, const char *id)
{
	memset(x, 0, sizeof(*x));
	x->sess = s;
	x->peer = p;
	x->id = id;
	x->spool_fd = -1;
}

/* SPEC 13: the MAIL through the milters (SA_CHECK_MAIL). */
void
milter_check_mail(struct session *s, struct milter_state *ms,
    const struct peer *p)
{
	struct milter_ctx	 x;
	struct buf		 reply = { NULL, 0, 0 };
	char			 from[SMTP_PATH_MAX * 4 + 3];

	ctx_init(&x, s, p, "");
	if (milter_mail(ms, &x, &reply) == MV_ACCEPT) {
		session_mail_checked(s, 1, NULL);
		return;
	}
	buf_append(&reply, "", 1);
	log_info("milter: MAIL from=%s: %.*s", log_quote(from, sizeof(from),
	    s->txn.mail_from, strlen(s->txn.mail_from)),
	    (int)strcspn(reply.data, "\r\n"), reply.data);
	session_mail_checked(s, 0, reply.data);
	buf_free(&reply);
}

/* SPEC 13: the DATA command through the milters (SA_CHECK_DATA). */
void
milter_check_data(struct session *s, struct milter_state *ms,
    const struct peer *p)
{
	struct milter_ctx	 x;
	struct buf		 reply = { NULL, 0, 0 };

	ctx_init(&x, s, p, "");
	if (milter_data(ms, &x, &reply) == MV_ACCEPT) {
		session_data_checked(s, 1, NULL);
		return;
	}
	buf_append(&reply, "", 1);
	log_info("milter: DATA: %.*s", (int)strcspn(reply.data, "\r\n"),
	    reply.data);
	session_data_checked(s, 0, reply.data);
	buf_free(&reply);
}

/*
 * SPEC 13: the pending RCPT through the milters.  0 when one refused it
 * (the session heard so, and reply is spent).
 */
int
milter_check_rcpt(struct session *s, struct milter_state *ms,
    const struct peer *p, struct buf *reply)
{
	struct milter_ctx	 x;
	char			 to[SMTP_PATH_MAX * 4 + 3];

	ctx_init(&x, s, p, "");
	x.rcpt = s->pending.path;
	reply->len = 0;
	if (milter_rcpt(ms, &x, s->pending.path, s->pending.options,
	    reply) == MV_ACCEPT)
		return 1;
	buf_append(reply, "", 1);
	log_info("milter: RCPT to=%s: %.*s", log_quote(to, sizeof(to),
	    s->pending.path, strlen(s->pending.path)),
	    (int)strcspn(reply->data, "\r\n"), reply->data);
	session_rcpt_checked(s, 0, reply->data);
	return 0;
}

/* The envelope changes of the milters (SPEC 13); -1 if one cannot be. */
static int
envelope(struct session *s, const struct milter_edits *ed,
    const char *id)
{
	const char	*a;
	char		 esc[SMTP_REPLYLINE_MAX * 4 + 3];

	if (ed->chgfrom && session_set_sender(s, ed->from) == -1) {
		errno = EINVAL;
		return -1;
	}
	for (a = ed->delrcpt.data; a != NULL &&
	    a < ed->delrcpt.data + ed->delrcpt.len; a += strlen(a) + 1)
		session_del_rcpt(s, a);
	for (a = ed->addrcpt.data; a != NULL &&
	    a < ed->addrcpt.data + ed->addrcpt.len; a += strlen(a) + 1)
		if (session_add_rcpt(s, a) == -1) {
			errno = EINVAL;
			return -1;
		}
	if (ed->quarantine != NULL) {
		log_info("%s: milter: quarantine: %s", id, log_quote(esc,
		    sizeof(esc), ed->quarantine, strlen(ed->quarantine)));
		session_quarantine(s, ed->quarantine);
	}
	return 0;
}

/*
 * SPEC 13: the spooled message through the milters, before the
 * handler; then their changes: the spool rewritten (streamed), the
 * envelope the handler gets changed.  MV_REFUSE: the reply is in text.
 * A message whose recipients a filter all deleted is discarded.
 */
enum milter_verdict
milter_check_message(struct session *s, struct milter_state *ms,
    struct spool *sp, const struct peer *p, struct buf *text)
{
	static const char	 failed[] =
	    "451 4.3.0 Error: cannot apply the mail filter's changes\r\n";
	struct milter_ctx	 x;
	struct milter_edits	 ed;
	enum milter_verdict	 v;
	int			 crlf = session_crlf(s);

	ctx_init(&x, s, p, sp->id);
	x.spool_fd = sp->fd;
	x.spool_crlf = crlf;
	milter_edits_init(&ed);
	v = milter_message(ms, &x, &ed, text);
	if (v == MV_ACCEPT && (ed.failed || milter_rewrite(&ed, sp,
	    crlf) == -1 || envelope(s, &ed, sp->id) == -1)) {
		log_warn("%s: milter changes: %s", sp->id, ed.failed ?
		    "cannot keep the new body" : strerror(errno));
		buf_append(text, failed, sizeof(failed) - 1);
		v = MV_REFUSE;
	} else if (v == MV_ACCEPT && s->txn.nrcpt == 0)
		v = MV_DISCARD;
	else if (v == MV_REFUSE)
		log_info("%s: milter: end of message: %.*s", sp->id,
		    (int)strcspn(text->data, "\r\n"), text->data);
	milter_edits_free(&ed);
	return v;
}

/*
 * SPEC 13, RFC 8601 5: the client's Authentication-Results headers that
 * claim our --authserv-id go, so that no one can forge our verdicts.
 */
int
milter_strip_forged(const struct session *s, struct spool *sp)
{
	int	 n;

	if (sp->hscan != SPOOL_HS_MAYBE)
		return 0;	/* no such header: see scan_header_section */
	n = milter_strip_results(sp, s->conf->authserv_id,
	    session_crlf(s));
	if (n > 0)
		log_info("%s: removed %d Authentication-Results header%s "
		    "claiming %s", sp->id, n, n > 1 ? "s" : "",
		    s->conf->authserv_id);
	else if (n == -1)
		log_warn("%s: removing Authentication-Results: %s", sp->id,
		    strerror(errno));
	return n == -1 ? -1 : 0;
}

/* The end of the session: QUIT to the filters, and they are freed. */
void
milter_end(struct milter_state *ms, const struct session *s,
    const struct peer *p)
{
	struct milter_ctx	 x;

	ctx_init(&x, s, p, "");
	milter_free(ms, &x);
}
