/*
 * libFuzzer target for the session engine: arbitrary client bytes, fed
 * once whole and once in reads of arbitrary sizes.  Property: the replies,
 * the spooled message bytes and the handler runs are identical however
 * the input is split (SPEC 4, PIPELINING), BDAT chunks included (SPEC 11),
 * with and without --lmtp.
 *
 * STARTTLS and AUTH (SPEC 8, 9) too, with no I/O: the handshake is
 * session_tls_started() with a fixed struct tls_info (or
 * session_tls_failed(), from the first byte behind the STARTTLS line),
 * the backend's verdict comes from the password's first byte.
 *
 * The I/O layer drops the rest of the read a STARTTLS came in, so across
 * a STARTTLS a real split changes what the engine sees (SPEC 8: the
 * split-invariance rule does not reach across it).  Here both runs do
 * the same instead: at SA_STARTTLS the current read ends where the
 * engine stopped, as if the client had waited for the 220 (the only
 * well-behaved client, and what the I/O layer sees when nothing was
 * injected), and the bytes behind the line come after the handshake.
 * That keeps the whole input under the invariance check, post-TLS and
 * AUTH dialogues included, and adds one: both runs must agree on the
 * offset where the STARTTLS line ended, so the engine never consumes a
 * byte behind it however the input was split.
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

/* What a handshake gives: TLS 1.3, a client certificate. */
static const struct tls_info fuzz_tls = {
	.protocol = "TLSv1.3", .cipher = "TLS_AES_256_GCM_SHA384",
	.sni = "mx.fuzz.test", .client_subject = "/CN=client.fuzz.test",
	.client_hash = "SHA256:0123456789abcdef",
	.client_cn = "client.fuzz.test", .client_issuer_cn = "client.fuzz.test",
	.keybits = 256, .resumed = 1
};

/*
 * SA_AUTH: the backend's verdict from the password's first byte, and
 * the name it gives the user (the client's, or one of its own).
 */
static void
check_auth(struct session *s)
{
	const struct sasl	*sa = session_auth_request(s);
	unsigned char		 p0;

	if (sa == NULL)
		return;
	p0 = (unsigned char)sa->password[0];
	switch (p0 % 4) {
	case 0:
		session_auth_checked(s, AUTH_OK, NULL);
		break;
	case 1:
		session_auth_checked(s, AUTH_OK, "backend-name");
		break;
	case 2:
		session_auth_checked(s, AUTH_REFUSED, NULL);
		break;
	default:
		session_auth_checked(s, AUTH_TEMPFAIL, NULL);
		break;
	}
}

static void
drive(const struct config *c, unsigned int mechs, const char *in,
    size_t len, const uint8_t *splits, size_t nsplits, struct seen *seen)
{
	struct session		 s;
	size_t			 off = 0, end = 0, used, k = 0;
	const char		*refusal;
	struct buf		 text = { NULL, 0, 0 };
	size_t			 i;

	session_init(&s, c);
	if (c->tls_implicit)
		session_tls_started(&s, &fuzz_tls);
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
			/* LMTP: one reply per recipient, as deliver.c sends. */
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
		case SA_CHECK_MAIL:
			/*
			 * The milters' verdict (SPEC 13) from the sender's
			 * own bytes, as at RCPT: a 'q' in it refuses.
			 */
			off += used;
			if (strchr(s.txn.mail_from, 'q') != NULL)
				session_mail_checked(&s, 0,
				    "550 5.7.1 Command rejected\r\n");
			else
				session_mail_checked(&s, 1, NULL);
			break;
		case SA_CHECK_DATA:
			/* ... and a 'z' in the sender refuses its DATA. */
			off += used;
			if (strchr(s.txn.mail_from, 'z') != NULL)
				session_data_checked(&s, 0,
				    "451 4.7.1 Service unavailable\r\n");
			else
				session_data_checked(&s, 1, NULL);
			break;
		case SA_STARTTLS:
			/*
			 * The read ends here in both runs (see the top); a
			 * 0xff behind the line is a failed handshake, 0xfe
			 * the client gone in it.
			 */
			off += used;
			take_replies(&s, seen);
			buf_appendf(&seen->spool, "\n[starttls at %zu]\n", off);
			end = off;
			if (off < len && (unsigned char)in[off] >= 0xfe) {
				(void)session_tls_failed(&s,
				    (unsigned char)in[off] == 0xfe ? 0 : 1);
				off++;
				end = off;
			} else
				session_tls_started(&s, &fuzz_tls);
			break;
		case SA_AUTH:
			off += used;
			take_replies(&s, seen);
			check_auth(&s);
			break;
		case SA_AUTH_MECHS:
			/* The backend asked at the first EHLO that may offer AUTH. */
			off += used;
			session_auth_mechanisms(&s, mechs);
			break;
		case SA_CLOSE:
			take_replies(&s, seen);
			buf_appendf(&seen->spool, "\n[close %d user=%s]\n",
			    s.exit_status, s.auth_user);
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
	static const char *cert[] = { "cert.pem" }, *key[] = { "key.pem" };
	static const unsigned int mechs[] = {
		AUTH_MECH_PLAIN | AUTH_MECH_LOGIN, AUTH_MECH_PLAIN,
		AUTH_MECH_LOGIN, 0
	};
	struct config	 c;
	struct seen	 whole, split;
	size_t		 nsplits, hdr;
	unsigned int	 tlsauth = 0;

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
	/* ... and with DSN on, MAILs through the milters (SA_CHECK_MAIL). */
	if ((data[0] & 4) && (data[1] & 8))
		c.nmilter = 1;
	/* data[0] bit 3: LMTP (LHLO, one reply per recipient). */
	c.lmtp = (data[0] & 8) != 0;
	c.handler_argv = handler;
	nsplits = (size_t)(data[1] >> 4) + 1;
	/*
	 * data[0] bit 3: a third byte says how TLS and AUTH are set up, as
	 * options.c would allow them (SPEC 8, 9).  The engine only counts
	 * the certificates; it never opens them.
	 */
	hdr = 2;
	if ((data[0] & 8) && size >= 3) {
		tlsauth = data[2];
		hdr = 3;
	}
	data += hdr;
	size -= hdr;
	if (tlsauth & 1) {
		c.tls_cert = cert;
		c.tls_key = key;
		c.ntls_cert = c.ntls_key = 1;
		c.tls_implicit = (tlsauth & 2) != 0;
		c.require_tls = (tlsauth & 4) != 0;
	}
	if (tlsauth & 8) {
		c.auth = "checkpassword:/bin/false";
		c.auth_plaintext = (tlsauth & 16) != 0 || c.ntls_cert == 0;
		c.require_auth = (tlsauth & 32) != 0;
	}
	if (nsplits > size)
		nsplits = size;

	drive(&c, mechs[tlsauth >> 6], (const char *)data, size, NULL, 0,
	    &whole);
	drive(&c, mechs[tlsauth >> 6], (const char *)data, size, data,
	    nsplits, &split);
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
