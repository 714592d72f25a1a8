/*
 * The message of the current transaction: its id, its spool file as the
 * handler reads it (our Received header, the policy's PREPEND headers,
 * the data the session hands over on SA_SPOOL), and its one log line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "smtpd-stdio.h"

static void	 spool_prepend(struct session *, struct spool *);

/* The id of the current transaction's message, made at its first use. */
void
message_id(const struct session *s, struct spool *sp)
{
	if (sp->seq == s->txn_seq)
		return;
	sp->seq = s->txn_seq;
	spool_new_id(sp->id, sizeof(sp->id));
	spool_close(sp);
	sp->started = 0;
	sp->size = 0;
}

/*
 * SPEC 10.2: the headers of policy PREPEND actions at RCPT, right after
 * our Received header, with the line ends the handler gets.
 */
static void
spool_prepend(struct session *s, struct spool *sp)
{
	const struct buf	*h = &s->txn.prepend;
	const char		*p, *nl, *end = h->data + h->len;

	for (p = h->data; h->len > 0 && p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		if (spool_write(sp, p, (size_t)(nl - p)) == -1 ||
		    spool_write(sp, session_crlf(s) ? "\r\n" : "\n",
		    session_crlf(s) ? 2 : 1) == -1)
			break;
	}
}

/* Start the spool for the current transaction if not done yet. */
void
message_start(struct session *s, struct spool *sp, const struct peer *p)
{
	struct received_info	 ri;
	char			 from[SMTP_PATH_MAX * 4 + 3];

	message_id(s, sp);
	if (sp->started)
		return;
	sp->started = 1;
	ri.helo = s->helo;
	ri.peer = p;
	ri.hostname = s->conf->hostname;
	ri.protocol = session_protocol(s);
	ri.id = sp->id;
	ri.single_rcpt = s->txn.nrcpt == 1 ? s->txn.rcpt[0] : NULL;
	ri.tls = s->tls ? &s->tlsi : NULL;
	ri.crlf = session_crlf(s);
	if (spool_begin(sp, s->conf->received ? &ri : NULL) == -1)
		log_warn("%s: spool: %s (from=%s)", sp->id, strerror(errno),
		    log_quote(from, sizeof(from), s->txn.mail_from,
		    strlen(s->txn.mail_from)));
	else
		spool_prepend(s, sp);
	sp->header_end = sp->size;
	sp->hscan = SPOOL_HS_LINE;
}

/*
 * Only a line of the client's header section that starts with 'A' or
 * 'a' can start an Authentication-Results header, so without one
 * milter_strip_forged need not read the spool back.  Lines as its
 * reader splits them (at LF); the section ends at the latest at a line
 * that starts with CR or LF (empty, or no header and no continuation).
 */
static void
scan_header_section(struct spool *sp, const char *p, size_t len)
{
	const char	*end = p + len, *nl;

	while (p < end && (sp->hscan == SPOOL_HS_LINE ||
	    sp->hscan == SPOOL_HS_MID)) {
		if (sp->hscan == SPOOL_HS_MID) {
			if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
				return;
			p = nl + 1;
			sp->hscan = SPOOL_HS_LINE;
		} else if (*p == 'A' || *p == 'a')
			sp->hscan = SPOOL_HS_MAYBE;
		else if (*p == '\r' || *p == '\n')
			sp->hscan = SPOOL_HS_BODY;
		else
			sp->hscan = SPOOL_HS_MID;
	}
}

/* SA_SPOOL: the session's decoded data bytes into the spool. */
void
message_spool(struct session *s, struct spool *sp, const struct peer *p)
{
	int	 ok;

	message_start(s, sp, p);
	scan_header_section(sp, s->data, s->datalen);
	ok = spool_write(sp, s->data, s->datalen) == 0;
	if (!ok && sp->failed == 1) {
		log_warn("%s: spool write: %s", sp->id, strerror(errno));
		sp->failed = 2;		/* said once */
	}
	session_spooled(s, ok);
}

/* The handler= field of the message's log line: one word. */
const char *
message_handler_status(const struct handler_result *r, char *buf,
    size_t len)
{
	struct fmt	 f;

	fmt_init(&f, buf, len);
	switch (r->end) {
	case HE_EXITED:
		fmt_lit(&f, "exit:");
		fmt_i(&f, r->status);
		break;
	case HE_SIGNALED:
		fmt_lit(&f, "signal:");
		fmt_i(&f, r->status);
		break;
	case HE_TIMEOUT:
		fmt_lit(&f, "timeout");
		break;
	case HE_EXEC_FAILED:
		fmt_lit(&f, "exec-failed");
		break;
	}
	return fmt_end(&f);
}

/*
 * One line per message, SPEC 6, whether the handler ran or not.  What
 * the client chose is quoted (log_quote), so it cannot add fields.  It
 * is the line "%s: client=%s helo=%s from=%s rcpts=%zu size=%llu
 * handler=%s reply=%.3s duration=%.3fs" made without printf (fmt.c).
 */
void
message_log(const struct session *s, const struct spool *sp,
    const struct peer *p, uint64_t size, const char *handler,
    const char *reply, const struct timespec *t0)
{
	struct timespec	 t1;
	struct fmt	 f;
	char		 line[LOG_LINE_MAX], q[SMTP_CMDLINE_MAX * 4 + 3];

	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	fmt_init(&f, line, sizeof(line));
	fmt_str(&f, sp->id);
	fmt_lit(&f, ": client=");
	fmt_str(&f, p->remote_addr[0] != '\0' ? p->remote_addr : "unknown");
	fmt_lit(&f, " helo=");
	fmt_str(&f, log_quote(q, sizeof(q), s->helo, strlen(s->helo)));
	fmt_lit(&f, " from=");
	fmt_str(&f, log_quote(q, SMTP_PATH_MAX * 4 + 3, s->txn.mail_from,
	    strlen(s->txn.mail_from)));
	fmt_lit(&f, " rcpts=");
	fmt_u(&f, s->txn.nrcpt);
	fmt_lit(&f, " size=");
	fmt_u(&f, size);
	fmt_lit(&f, " handler=");
	fmt_str(&f, handler);
	fmt_lit(&f, " reply=");
	fmt_strn(&f, reply, 3);
	fmt_lit(&f, " duration=");
	fmt_fixed3(&f, (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9);
	fmt_lit(&f, "s");
	log_info_text(fmt_end(&f));
}
