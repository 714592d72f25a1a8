/*
 * libFuzzer target for the session engine: arbitrary client bytes, fed
 * once whole and once in reads of arbitrary sizes.  Property: the replies,
 * the spooled message bytes and the handler runs are identical however
 * the input is split (SPEC 4, PIPELINING), BDAT chunks included (SPEC 11),
 * with and without --lmtp.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * What the I/O layer would see: reply bytes, and the messages the handler
 * ran on.  Bytes spooled for a message that is then refused (too big,
 * 8-bit) depend on where reads end and are not compared.
 */
struct seen {
	struct buf	 replies;
	struct buf	 spool;		/* delivered messages and runs */
	struct buf	 pending;	/* the message being spooled */
	unsigned int	 seq;
};

static void
take_replies(struct session *s, struct seen *seen)
{
	buf_append(&seen->replies, s->out.data, s->out.len);
	buf_consume(&s->out, s->out.len);
}

/* 0..3 from the recipient's bytes: which verdict the checks give. */
static unsigned int
rcpt_verdict(const char *path)
{
	unsigned int	 h = 0;

	while (*path != '\0')
		h = h * 31 + (unsigned char)*path++;
	return h & 3;
}

static void
drive(const struct config *c, const char *in, size_t len,
    const uint8_t *splits, size_t nsplits, struct seen *seen)
{
	struct session		 s;
	size_t			 off = 0, end = 0, used, k = 0;
	const char		*refusal;
	struct buf		 text = { NULL, 0, 0 };
	size_t			 i;

	session_init(&s, c);
	for (;;) {
		switch (session_feed(&s, in + off, end - off, &used)) {
		case SA_NEED_INPUT:
			off += used;
			take_replies(&s, seen);
			if (end == len) {
				(void)session_eof(&s);
				break;
			}
			/* The next read: 1 to 256 bytes, or all if unsplit. */
			end += nsplits == 0 ? len : 1 + (size_t)splits[k++ % nsplits];
			if (end > len)
				end = len;
			break;
		case SA_FLUSH:
			off += used;
			take_replies(&s, seen);
			break;
		case SA_SPOOL:
			off += used;
			if (seen->seq != s.txn_seq) {
				seen->seq = s.txn_seq;
				seen->pending.len = 0;
			}
			buf_append(&seen->pending, s.data, s.datalen);
			session_spooled(&s, 1);
			break;
		case SA_DELIVER:
			off += used;
			take_replies(&s, seen);
			if (seen->seq != s.txn_seq)
				seen->pending.len = 0;	/* empty message */
			refusal = session_refusal(&s);
			/* A refused message's bytes reach no handler. */
			if (refusal == NULL)
				buf_append(&seen->spool, seen->pending.data,
				    seen->pending.len);
			seen->pending.len = 0;
			seen->seq = s.txn_seq;
			buf_appendf(&seen->spool, "\n[%s from=<%s> rcpts=%zu]\n",
			    refusal != NULL ? "refused" : "handler",
			    s.txn.mail_from, s.txn.nrcpt);
			/* LMTP: one reply per recipient, as main.c sends. */
			text.len = 0;
			for (i = 0; i < (c->lmtp ? s.txn.nrcpt : 1); i++)
				buf_appendf(&text, "%s", refusal != NULL ?
				    refusal : "250 2.0.0 OK\r\n");
			buf_append(&text, "", 1);
			session_delivered(&s, text.data);
			break;
		case SA_CHECK_RCPT:
			/*
			 * The checks' verdict comes from the recipient's own
			 * bytes, so both runs see the same: accept, accept
			 * with the checker's text, or refuse (SPEC 10.2).
			 */
			off += used;
			switch (rcpt_verdict(s.pending.path)) {
			case 0:
				session_rcpt_checked(&s, 1, NULL);
				break;
			case 1:
				session_rcpt_checked(&s, 1,
				    "250 2.1.5 checked\r\n");
				break;
			case 2:
				session_rcpt_checked(&s, 0,
				    "450 4.7.1 greylisted\r\n");
				break;
			default:
				session_rcpt_checked(&s, 0,
				    "550-5.1.1 no such user\r\n"
				    "550 5.1.1 really\r\n");
				break;
			}
			break;
		case SA_CLOSE:
			take_replies(&s, seen);
			session_free(&s);
			buf_free(&text);
			return;
		}
	}
}

static int
same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->data, b->data, a->len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char	*handler[] = { "true", NULL };
	struct config	 c;
	struct seen	 whole, split;
	size_t		 nsplits;

	if (size < 2)
		return 0;
	memset(&c, 0, sizeof(c));
	memset(&whole, 0, sizeof(whole));
	memset(&split, 0, sizeof(split));
	c.hostname = "fuzz.test";
	c.size_limit = 4096;
	c.max_recipients = 5;
	c.exec_room = 2048;	/* small, so the E2BIG refusal is reached too */
	c.max_messages = data[0] & 3;
	c.max_errors = 1 + (data[0] >> 4);
	c.smtputf8 = data[1] & 1;
	c.sevenbit = !c.smtputf8 && (data[1] & 2);
	c.crlf = (data[1] & 4) != 0;
	c.dsn = (data[1] & 8) != 0;
	c.received = 1;
	/* data[0] bit 2: RCPTs go through the checks (SA_CHECK_RCPT). */
	if (data[0] & 4)
		c.rcpt_check = "check";
	/* data[0] bit 3: LMTP (LHLO, one reply per recipient). */
	c.lmtp = (data[0] & 8) != 0;
	c.handler_argv = handler;
	nsplits = (size_t)(data[1] >> 4) + 1;
	data += 2;
	size -= 2;
	if (nsplits > size)
		nsplits = size;

	drive(&c, (const char *)data, size, NULL, 0, &whole);
	drive(&c, (const char *)data, size, data, nsplits, &split);
	if (!same(&whole.replies, &split.replies) ||
	    !same(&whole.spool, &split.spool))
		abort();	/* split-invariance violated */
	buf_free(&whole.replies);
	buf_free(&whole.spool);
	buf_free(&whole.pending);
	buf_free(&split.replies);
	buf_free(&split.spool);
	buf_free(&split.pending);
	return 0;
}
