/*
 * SA_DELIVER answered: the spooled message through its checks (forged
 * Authentication-Results, the --policy servers at END-OF-MESSAGE, the
 * milters) to its handler, and the reply back to the session.
 */
#include <string.h>
#include <time.h>

#include "smtpd-stdio.h"

static const char *check_spooled(struct session *, struct spool *,
		    struct policy_state *, struct milter_state *,
		    const struct peer *, struct buf *, const char **);
static void	 refuse(struct session *, struct spool *, const struct peer *,
		    const char *, const char *, const struct timespec *);
static void	 run_handler(struct session *, struct spool *,
		    const struct peer *, const struct timespec *);

/* Run the handler on the spooled message and hand its reply back. */
void
deliver_message(struct session *s, struct spool *sp, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p)
{
	struct buf		 text = { NULL, 0, 0 };
	struct timespec		 t0;
	const char		*refusal, *hstatus = "none";

	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((refusal = session_refusal(s)) == NULL)
		refusal = check_spooled(s, sp, ps, ms, p, &text, &hstatus);
	if (refusal != NULL)
		refuse(s, sp, p, refusal, hstatus, &t0);
	else
		run_handler(s, sp, p, &t0);
	buf_free(&text);
}

/*
 * The checks of the spooled message before its handler: forged
 * Authentication-Results out, the --policy servers at END-OF-MESSAGE,
 * the milters.  NULL to go on; else the reply (in text, or static),
 * and *hstatus says why no handler ran.
 */
static const char *
check_spooled(struct session *s, struct spool *sp, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p, struct buf *text,
    const char **hstatus)
{
	static const char	 no_storage[] =
	    "452 4.3.1 Error: insufficient system storage\r\n";
	enum milter_verdict	 mv = MV_ACCEPT;

	message_start(s, sp, p);
	if (sp->failed || spool_rewind(sp) == -1 ||
	    milter_strip_forged(s, sp) == -1)
		return no_storage;
	if ((ps != NULL && !policy_check_message(s, ps, sp, p, text)) ||
	    (ms != NULL && (mv = milter_check_message(s, ms, sp, p,
	    text)) == MV_REFUSE)) {
		buf_append(text, "", 1);
		return text->data;
	}
	if (mv != MV_DISCARD)
		return NULL;
	/* SPEC 13: as if delivered; only the log knows. */
	buf_appendf(text, "250 2.0.0 OK: queued as %s\r\n%c", sp->id, '\0');
	*hstatus = "milter-discard";
	return text->data;
}

/* No handler runs: the refusal (or a discard's 250) goes back, logged. */
static void
refuse(struct session *s, struct spool *sp, const struct peer *p,
    const char *refusal, const char *hstatus, const struct timespec *t0)
{
	struct buf	 lmtp = { NULL, 0, 0 };

	message_id(s, sp);
	spool_close(sp);
	message_log(s, sp, p, s->dec.wire_size, hstatus, refusal, t0);
	if (s->conf->lmtp) {
		/* SPEC 11: the refusal for every recipient. */
		reply_repeat(refusal, s->txn.nrcpt, &lmtp);
		buf_append(&lmtp, "", 1);
		refusal = lmtp.data;
	}
	session_delivered(s, refusal);
	buf_free(&lmtp);
}

/* The handler on the spooled message; its reply goes back, logged. */
static void
run_handler(struct session *s, struct spool *sp, const struct peer *p,
    const struct timespec *t0)
{
	struct handler_job	 job;
	struct handler_result	 res;
	struct buf		 text = { NULL, 0, 0 };
	char			 st[32];

	memset(&job, 0, sizeof(job));
	job.conf = s->conf;
	job.peer = p;
	job.sess = s;
	job.id = sp->id;
	job.spool_fd = sp->fd;
	job.spool_size = sp->size;
	if (s->conf->lmtp)
		job.out_limit = handler_lmtp_limit(s->txn.nrcpt);
	handler_run(&job, &res);
	spool_close(sp);
	if (s->conf->lmtp)
		(void)reply_lmtp(&res, sp->id, s->txn.nrcpt, &text);
	else
		(void)reply_from_handler(&res, sp->id, &text);
	handler_result_free(&res);
	buf_append(&text, "", 1);
	message_log(s, sp, p, sp->size,
	    message_handler_status(&res, st, sizeof(st)), text.data, t0);
	session_delivered(s, text.data);
	buf_free(&text);
}
