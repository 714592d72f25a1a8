/*
 * The Sendmail milter protocol, version 6 (libmilter 8.14+, as Postfix's
 * milter8.c speaks it): frames, option negotiation and the filter's
 * replies.  Pure: bytes in, checked structures out, no I/O; milter.c
 * does the talking and tests/fuzz/fuzz_milter.c drives this part.
 *
 * A frame is a 4-octet length in network order, then that many octets:
 * one command character and its data.  Strings in the data end in NUL.
 */
#include <arpa/inet.h>

#include <string.h>

#include "smtpd-stdio.h"

/* Start a frame of command cmd in b; milter_frame_end() sets its length. */
size_t
milter_frame_begin(struct buf *b, char cmd)
{
	size_t	 off = b->len;

	buf_append(b, "\0\0\0\0", 4);
	buf_append(b, &cmd, 1);
	return off;
}

void
milter_frame_end(struct buf *b, size_t off)
{
	uint32_t	 n = htonl((uint32_t)(b->len - off - 4));

	memcpy(b->data + off, &n, 4);
}

/* A string and its NUL, as every string in a frame is sent. */
void
milter_put_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

void
milter_put_u32(struct buf *b, uint32_t v)
{
	v = htonl(v);
	buf_append(b, &v, 4);
}

/*
 * The whole frame's size (length octets included) once its length is
 * in buf, 0 while fewer than 4 octets are, -1 for a length that no
 * filter may send: 0, or above MILTER_FRAME_MAX (the length is the
 * filter's word, so it is capped before anything is read into memory).
 */
ssize_t
milter_frame_size(const unsigned char *buf, size_t len)
{
	uint32_t	 n;

	if (len < 4)
		return 0;
	memcpy(&n, buf, 4);
	n = ntohl(n);
	if (n == 0 || n > MILTER_FRAME_MAX)
		return -1;
	return (ssize_t)n + 4;
}

/* A NUL-terminated string at *p within end; advances *p.  NULL if none. */
static const char *
take_str(const char **p, const char *end)
{
	const char	*s = *p, *nul;

	if (s >= end || (nul = memchr(s, '\0', (size_t)(end - s))) == NULL)
		return NULL;
	*p = nul + 1;
	return s;
}

static int
take_u32(const char **p, const char *end, uint32_t *v)
{
	if (end - *p < 4)
		return -1;
	memcpy(v, *p, 4);
	*v = ntohl(*v);
	*p += 4;
	return 0;
}

/*
 * The filter's SMFIC_OPTNEG answer: its version (2 to 6 are spoken
 * alike for what we use), the actions it wants and the protocol flags
 * it asks for, each kept only where we offered it, as Postfix does:
 * what we cannot do is never negotiated, and a modification outside
 * the result is a protocol error later.  The macro lists a version 6
 * filter may append are ignored: we send Postfix's set.
 */
int
milter_parse_optneg(const char *data, size_t len, struct milter_optneg *o)
{
	const char	*p = data, *end = data + len;

	if (take_u32(&p, end, &o->version) == -1 ||
	    take_u32(&p, end, &o->actions) == -1 ||
	    take_u32(&p, end, &o->protocol) == -1)
		return -1;
	if (o->version < 2 || o->version > MILTER_VERSION)
		return -1;
	o->actions &= o->offered_actions;
	o->protocol &= MILTER_PROTOCOL_OFFER;
	return 0;
}

/* Printable ASCII or a tab: what may go into a header we write. */
static int
header_text_ok(const char *s, int allow_lf)
{
	for (; *s != '\0'; s++)
		if (!((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) &&
		    *s != '\t' && !(allow_lf && (*s == '\n' || *s == '\r')) &&
		    (unsigned char)*s < 0x80)
			return 0;
	return 1;
}

/* A header name: printable ASCII but ':' and space (RFC 5322 2.2). */
static int
header_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == ':')
			return 0;
	return 1;
}

/*
 * A folded value: every line break must be followed by a blank, so the
 * filter cannot end the header and start another (or the body).
 */
static int
header_value_ok(const char *v)
{
	const char	*p;

	if (!header_text_ok(v, 1))
		return 0;
	for (p = v; *p != '\0'; p++) {
		if (*p == '\r' && p[1] != '\n')
			return 0;
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
			return 0;
	}
	return 1;
}

/* SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER. */
static int
parse_header_op(const char *p, const char *end, struct milter_reply *r)
{
	if (r->cmd != SMFIR_ADDHEADER && take_u32(&p, end, &r->index) == -1)
		return -1;
	if ((r->name = take_str(&p, end)) == NULL ||
	    (r->value = take_str(&p, end)) == NULL)
		return -1;
	if (!header_name_ok(r->name) || !header_value_ok(r->value))
		return -1;
	return 0;
}

/* An address from CHGFROM, ADDRCPT, DELRCPT: printable, no brackets kept. */
static int
parse_address(const char *p, const char *end, struct milter_reply *r)
{
	const char	*a;
	size_t		 n;

	if ((a = take_str(&p, end)) == NULL)
		return -1;
	n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	if (n >= sizeof(r->addr))
		return -1;
	memcpy(r->addr, a, n);
	r->addr[n] = '\0';
	if (!header_text_ok(r->addr, 0) || strchr(r->addr, '\t') != NULL ||
	    strchr(r->addr, ' ') != NULL)
		return -1;
	/* ESMTP arguments (CHGFROM, ADDRCPT_PAR) may follow; not used. */
	r->value = p < end ? take_str(&p, end) : NULL;
	return 0;
}

/*
 * SMFIR_REPLYCODE: "NNN x.y.z text" with a 4xx or 5xx code, one line or
 * several joined with CRLF.  Made a reply of ours by SPEC 5.2's rules
 * (an enhanced code of the right class added where missing).  A text
 * that starts as a refusal but is no reply we can send (too long, a
 * code like "5501") is still that refusal, in our words: a filter's
 * reject never becomes --milter-default-action accept.
 */
static int
parse_replycode(const char *p, const char *end, struct milter_reply *r)
{
	static const char	 rej[] = "550 5.7.1 Command rejected\r\n";
	static const char	 tmp[] = "451 4.7.1 Service unavailable - try "
				    "again later\r\n";
	struct buf		 out = { NULL, 0, 0 };
	const char		*t;
	int			 code;

	if ((t = take_str(&p, end)) == NULL || (t[0] != '4' && t[0] != '5'))
		return -1;
	code = reply_parse_text(t, strlen(t), &out);
	if (code < 400 || code > 599 || code / 100 != t[0] - '0' ||
	    out.len >= sizeof(r->text)) {
		buf_free(&out);
		(void)strlcpy(r->text, t[0] == '5' ? rej : tmp,
		    sizeof(r->text));
		return 0;
	}
	memcpy(r->text, out.data, out.len);
	r->text[out.len] = '\0';
	buf_free(&out);
	return 0;
}

/*
 * One reply frame's command and data, checked.  0, or -1 when it breaks
 * the protocol (an unknown command, a field missing, a header that
 * would not be a header, a text that is no SMTP reply).
 */
int
milter_parse_reply(const char *frame, size_t len, struct milter_reply *r)
{
	const char	*p = frame + 1, *end = frame + len;

	/* Not the whole struct: its text buffer is large, replies many. */
	r->index = 0;
	r->name = r->value = NULL;
	r->addr[0] = r->text[0] = '\0';
	if (len < 1)
		return -1;
	r->cmd = frame[0];
	r->data = p;
	r->len = len - 1;
	switch (r->cmd) {
	case SMFIR_CONTINUE:
	case SMFIR_ACCEPT:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_DISCARD:
	case SMFIR_PROGRESS:
	case SMFIR_SKIP:
		return 0;
	case SMFIR_REPLYCODE:
		return parse_replycode(p, end, r);
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		return parse_header_op(p, end, r);
	case SMFIR_CHGFROM:
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
		return parse_address(p, end, r);
	case SMFIR_QUARANTINE:
		if ((r->value = take_str(&p, end)) == NULL ||
		    !header_text_ok(r->value, 0))
			return -1;
		return 0;
	case SMFIR_REPLBODY:
		return 0;
	default:
		return -1;
	}
}

/* The action flag a modification needs, 0 for the other replies. */
uint32_t
milter_reply_action(char cmd)
{
	switch (cmd) {
	case SMFIR_ADDHEADER:
		return SMFIF_ADDHDRS;
	case SMFIR_INSHEADER:
		return SMFIF_ADDHDRS;
	case SMFIR_CHGHEADER:
		return SMFIF_CHGHDRS;
	case SMFIR_REPLBODY:
		return SMFIF_CHGBODY;
	case SMFIR_CHGFROM:
		return SMFIF_CHGFROM;
	case SMFIR_ADDRCPT:
		return SMFIF_ADDRCPT;
	case SMFIR_ADDRCPT_PAR:
		return SMFIF_ADDRCPT_PAR;
	case SMFIR_DELRCPT:
		return SMFIF_DELRCPT;
	case SMFIR_QUARANTINE:
		return SMFIF_QUARANTINE;
	default:
		return 0;
	}
}
