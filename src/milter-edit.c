/*
 * The message side of --milter, SPEC 13: the spooled message read back
 * header by header (what the filters are sent), and the filters'
 * modifications applied to it by writing a new spool file from the old
 * one, streamed: the message is never held in memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/*
 * Reading the spooled message back, buffered, from an offset of our own
 * (pread: the file position stays where the handler will want it).
 */
void
msgread_init(struct msgread *rd, int fd, off_t off)
{
	rd->fd = fd;
	rd->base = off;
	rd->len = rd->pos = 0;
}

off_t
msgread_tell(const struct msgread *rd)
{
	return rd->base + (off_t)rd->pos;
}

/* The next octet without taking it, or -1 at the end (or an error). */
int
msgread_peek(struct msgread *rd)
{
	ssize_t	 n;

	if (rd->pos == rd->len) {
		rd->base += (off_t)rd->len;
		rd->len = rd->pos = 0;
		if ((n = pread(rd->fd, rd->buf, sizeof(rd->buf), rd->base)) <= 0)
			return -1;
		rd->len = (size_t)n;
	}
	return (unsigned char)rd->buf[rd->pos];
}

/*
 * One line, its line end included, appended to b as far as b stays
 * within max (the rest is read and dropped); its length, 0 at the end.
 */
size_t
msgread_line(struct msgread *rd, struct buf *b, size_t max)
{
	const char	*p, *lf;
	size_t		 n = 0, span, keep;

	while (msgread_peek(rd) != -1) {
		p = rd->buf + rd->pos;
		lf = memchr(p, '\n', rd->len - rd->pos);
		span = lf != NULL ? (size_t)(lf - p) + 1 : rd->len - rd->pos;
		keep = b->len < max ? max - b->len : 0;
		buf_append(b, p, span < keep ? span : keep);
		rd->pos += span;
		n += span;
		if (lf != NULL)
			break;
	}
	return n;
}

/*
 * A header field's first line: a name of printable octets, then ':',
 * blanks allowed before it (RFC 5322 4.5.1, obs-optional: Dovecot,
 * Sendmail and others take "Name : value" as a header, so a reader that
 * took it as the start of the body would hide it, and every header
 * after it, from the filters and from --authserv-id).  The name's
 * length, 0 if none; *value (if not NULL): where the value starts,
 * after the ':'.
 */
size_t
msg_header_name(const char *p, size_t len, size_t *value)
{
	size_t	 i, n;

	for (i = 0; i < len && p[i] > ' ' && p[i] < 0x7f && p[i] != ':'; i++)
		;
	for (n = i; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (n == 0 || i == len || p[i] != ':')
		return 0;
	if (value != NULL)
		*value = i + 1;
	return n;
}

size_t
msg_header_name_len(const char *p, size_t len)
{
	return msg_header_name(p, len, NULL);
}

/*
 * The next header field (with its folded lines) into h, as in the spool,
 * at most MILTER_HEADER_MAX octets of it (a longer one is read whole
 * and kept cut: the rewrite copies it from the spool, a filter gets the
 * cut one, as Postfix cuts at header_size_limit).  0 at the end of the
 * header section: *end is then where the section ends (the empty line,
 * or a line that is no header: RFC 5322 takes it as the body) and *body
 * where the body starts.
 */
int
msg_next_header(struct msgread *rd, struct buf *h, off_t *end, off_t *body)
{
	off_t	 start = msgread_tell(rd);
	size_t	 n;
	int	 c;

	h->len = 0;
	*end = *body = start;
	if ((n = msgread_line(rd, h, MILTER_HEADER_MAX)) == 0)
		return 0;
	if ((n == 1 && h->data[0] == '\n') ||
	    (n == 2 && h->data[0] == '\r' && h->data[1] == '\n')) {
		*body = msgread_tell(rd);
		return 0;
	}
	/*
	 * No name: the body.  A last line without its line end that has
	 * one is a header (as mail readers take it: a forged
	 * Authentication-Results there must go too).
	 */
	if (msg_header_name_len(h->data, h->len) == 0) {
		msgread_init(rd, rd->fd, start);
		return 0;
	}
	while ((c = msgread_peek(rd)) == ' ' || c == '\t')
		(void)msgread_line(rd, h, MILTER_HEADER_MAX);
	return 1;
}

void
milter_edits_init(struct milter_edits *ed)
{
	memset(ed, 0, sizeof(*ed));
	ed->body_fd = -1;
	ed->body_owner = -1;
}

void
milter_edits_free(struct milter_edits *ed)
{
	buf_free(&ed->headers);
	buf_free(&ed->addrcpt);
	buf_free(&ed->delrcpt);
	if (ed->body_fd != -1)
		(void)close(ed->body_fd);
	free(ed->quarantine);
	milter_edits_init(ed);
}

/*
 * One filter's changes (from) added to those of the filters before it
 * (to), once that filter has answered the end of message: a filter that
 * fails halfway is as if absent, its changes with it (SPEC 13).  -1 when
 * the header edits together go beyond MILTER_EDITS_MAX.  from is left
 * empty.
 */
int
milter_edits_merge(struct milter_edits *to, struct milter_edits *from)
{
	int	 r = 0;

	if (to->headers.len + from->headers.len > MILTER_EDITS_MAX ||
	    to->addrcpt.len + from->addrcpt.len > MILTER_EDITS_MAX ||
	    to->delrcpt.len + from->delrcpt.len > MILTER_EDITS_MAX)
		r = -1;
	else {
		buf_append(&to->headers, from->headers.data, from->headers.len);
		buf_append(&to->addrcpt, from->addrcpt.data, from->addrcpt.len);
		buf_append(&to->delrcpt, from->delrcpt.data, from->delrcpt.len);
		to->naddrcpt += from->naddrcpt;
	}
	/* A filter's new body replaces the whole body, another's too. */
	if (from->body_fd != -1) {
		if (to->body_fd != -1)
			(void)close(to->body_fd);
		to->body_fd = from->body_fd;
		from->body_fd = -1;
	}
	if (from->chgfrom) {
		to->chgfrom = 1;
		(void)strlcpy(to->from, from->from, sizeof(to->from));
	}
	if (from->quarantine != NULL) {
		free(to->quarantine);
		to->quarantine = from->quarantine;
		from->quarantine = NULL;
	}
	to->failed |= from->failed;
	milter_edits_free(from);
	return r;
}

static void	body_write(struct milter_edits *, const char *, size_t);

/*
 * SMFIR_REPLBODY: the new body goes to a file, never into memory, and
 * no larger than body_max: -1 beyond it (a filter cannot fill the disk).
 */
static int
keep_body(struct milter_edits *ed, const char *p, size_t len)
{
	if (ed->body_max > 0 && (ed->body_owner != ed->filter ? 0 :
	    ed->body_len) + len > ed->body_max)
		return -1;
	if (ed->body_owner != ed->filter)
		ed->body_len = 0;
	ed->body_len += len;

	if (ed->body_fd == -1 && (ed->body_fd = spool_open()) == -1)
		ed->failed = 1;
	/* A filter's new body replaces the whole body, another's too. */
	if (!ed->failed && ed->body_owner != ed->filter &&
	    (ftruncate(ed->body_fd, 0) == -1 ||
	    lseek(ed->body_fd, 0, SEEK_SET) == -1))
		ed->failed = 1;
	ed->body_owner = ed->filter;
	body_write(ed, p, len);
	return 0;
}

/* Append to the body file; a failure is noted in ed->failed. */
static void
body_write(struct milter_edits *ed, const char *p, size_t len)
{
	ssize_t	 n;

	while (!ed->failed && len > 0) {
		if ((n = write(ed->body_fd, p, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			ed->failed = 1;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* An address for ADDRCPT or DELRCPT, within the bound on edits. */
static int
keep_address(struct buf *list, const char *addr)
{
	if (list->len + strlen(addr) + 1 > MILTER_EDITS_MAX)
		return -1;
	buf_append(list, addr, strlen(addr) + 1);
	return 0;
}

/*
 * Keep one modification (a parsed, negotiated SMFIR_*), to be applied
 * if no filter refuses the message.  -1 when the filter asks for more
 * than MILTER_EDITS_MAX: it breaks the protocol's spirit, not ours.
 */
int
milter_edit(struct milter_edits *ed, const struct milter_reply *r,
    int leadspc)
{
	char	 flag = (char)leadspc;

	switch (r->cmd) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (ed->headers.len + 6 + strlen(r->name) + strlen(r->value) +
		    2 > MILTER_EDITS_MAX)
			return -1;
		buf_append(&ed->headers, &r->cmd, 1);
		buf_append(&ed->headers, &flag, 1);
		buf_append(&ed->headers, &r->index, 4);
		buf_append(&ed->headers, r->name, strlen(r->name) + 1);
		buf_append(&ed->headers, r->value, strlen(r->value) + 1);
		return 0;
	case SMFIR_REPLBODY:
		return keep_body(ed, r->data, r->len);
	case SMFIR_CHGFROM:
		ed->chgfrom = 1;
		(void)strlcpy(ed->from, r->addr, sizeof(ed->from));
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		ed->naddrcpt++;
		return keep_address(&ed->addrcpt, r->addr);
	case SMFIR_DELRCPT:
		return keep_address(&ed->delrcpt, r->addr);
	case SMFIR_QUARANTINE:
		free(ed->quarantine);
		if ((ed->quarantine = strdup(r->value)) == NULL)
			fatalx("out of memory");
		return 0;
	default:
		return -1;
	}
}

/* One header edit, read back from milter_edits.headers. */
struct hdr_op {
	char		 cmd;
	int		 leadspc;
	uint32_t	 index;
	const char	*name;
	const char	*value;
	uint32_t	 seen;		/* CHGHEADER: headers of its name so far */
	int		 done;
};

static size_t
parse_ops(const struct buf *b, struct hdr_op **ops)
{
	const char	*p = b->data, *end = b->data + b->len;
	size_t		 n = 0;

	/* Each op takes at least 8 octets: a bound for the array. */
	if ((*ops = calloc(b->len / 8 + 1, sizeof(**ops))) == NULL)
		fatalx("out of memory");
	while (p < end) {
		(*ops)[n].cmd = p[0];
		(*ops)[n].leadspc = p[1];
		memcpy(&(*ops)[n].index, p + 2, 4);
		(*ops)[n].name = p + 6;
		(*ops)[n].value = (*ops)[n].name + strlen((*ops)[n].name) + 1;
		p = (*ops)[n].value + strlen((*ops)[n].value) + 1;
		n++;
	}
	return n;
}

/* "Name: value" with the spool's line ends, folds kept. */
static int
write_header(struct spool *n, const struct hdr_op *op, int crlf)
{
	struct buf	 b = { NULL, 0, 0 };
	const char	*eol = crlf ? "\r\n" : "\n", *v;
	int		 r;

	buf_append(&b, op->name, strlen(op->name));
	buf_append(&b, op->leadspc ? ":" : ": ", op->leadspc ? 1 : 2);
	for (v = op->value; *v != '\0'; v++) {
		if (*v == '\r' && v[1] == '\n')
			continue;
		if (*v == '\n')
			buf_append(&b, eol, strlen(eol));
		else
			buf_append(&b, v, 1);
	}
	buf_append(&b, eol, strlen(eol));
	r = spool_write(n, b.data, b.len);
	buf_free(&b);
	return r;
}

/* INSHEADER at position k (0: the top), or at k and beyond. */
static int
write_inserts(struct spool *n, const struct hdr_op *ops, size_t nops,
    uint32_t k, int beyond, int crlf)
{
	size_t	 i;

	for (i = 0; i < nops; i++)
		if (ops[i].cmd == SMFIR_INSHEADER && (ops[i].index == k ||
		    (beyond && ops[i].index > k)) &&
		    write_header(n, &ops[i], crlf) == -1)
			return -1;
	return 0;
}

/*
 * A spooled header, copied, or changed by the CHGHEADER that names its
 * occurrence (1-based; 0 counts as 1, as libmilter says; the last one
 * if several do), or deleted by one with an empty value.
 */
static int
copy_or_change(struct spool *n, struct hdr_op *ops, size_t nops,
    const struct buf *h, const struct spool *sp, off_t from, off_t to,
    int crlf)
{
	size_t		 nlen = msg_header_name_len(h->data, h->len), i;
	struct hdr_op	*hit = NULL;
	char		 last;

	for (i = 0; i < nops; i++) {
		if (ops[i].cmd != SMFIR_CHGHEADER ||
		    strlen(ops[i].name) != nlen ||
		    strncasecmp(ops[i].name, h->data, nlen) != 0 ||
		    ++ops[i].seen != (ops[i].index > 0 ? ops[i].index : 1))
			continue;
		ops[i].done = 1;
		hit = &ops[i];
	}
	if (hit == NULL) {
		/* As it is, from the spool: h may be cut. */
		n->size += (uint64_t)(to - from);
		if (spool_copy(sp->fd, &from, n->fd, (uint64_t)(to - from)) ==
		    -1)
			return -1;
		/* The message's last line, without its end: it gets one. */
		if (pread(sp->fd, &last, 1, to - 1) == 1 && last != '\n')
			return spool_write(n, crlf ? "\r\n" : "\n", crlf ? 2 : 1);
		return 0;
	}
	return hit->value[0] == '\0' ? 0 : write_header(n, hit, crlf);
}

/* ADDHEADER at the end, then a CHGHEADER whose header was not there. */
static int
write_added(struct spool *n, const struct hdr_op *ops, size_t nops,
    int crlf)
{
	size_t	 i;

	for (i = 0; i < nops; i++)
		if (ops[i].cmd == SMFIR_ADDHEADER &&
		    write_header(n, &ops[i], crlf) == -1)
			return -1;
	for (i = 0; i < nops; i++)
		if (ops[i].cmd == SMFIR_CHGHEADER && !ops[i].done &&
		    ops[i].value[0] != '\0' &&
		    write_header(n, &ops[i], crlf) == -1)
			return -1;
	return 0;
}

/* The new body (CRLF from the filter) with the spool's line ends. */
static int
write_body(struct spool *n, int fd, int crlf)
{
	char		 in[8192], out[8192 + 1];
	off_t		 off = 0;
	ssize_t		 r, i;
	size_t		 o;
	int		 cr = 0;	/* a CR held back from the last chunk */

	while ((r = pread(fd, in, sizeof(in), off)) > 0) {
		off += r;
		for (i = 0, o = 0; i < r; i++) {
			if (cr && !(in[i] == '\n' && !crlf))
				out[o++] = '\r';
			cr = in[i] == '\r';
			if (!cr)
				out[o++] = in[i];
		}
		if (spool_write(n, out, o) == -1)
			return -1;
	}
	if (cr && spool_write(n, "\r", 1) == -1)
		return -1;
	return r == 0 ? 0 : -1;
}

/*
 * After the headers: the old rest as it is (from the end of the header
 * section, at end; the body at body), or the empty line and the
 * filter's new body.
 */
static int
write_rest(struct spool *n, const struct spool *sp,
    const struct milter_edits *ed, off_t end, off_t body, int crlf)
{
	off_t	 off = end;

	/* A body with no empty line before it gets one (RFC 5322 2.1). */
	if (ed->body_fd == -1 && end == body && (uint64_t)end < sp->size &&
	    spool_write(n, crlf ? "\r\n" : "\n", crlf ? 2 : 1) == -1)
		return -1;
	if (ed->body_fd == -1) {
		if (spool_copy(sp->fd, &off, n->fd, sp->size - (uint64_t)end)
		    == -1)
			return -1;
		n->size += sp->size - (uint64_t)end;
		return 0;
	}
	if (spool_write(n, crlf ? "\r\n" : "\n", crlf ? 2 : 1) == -1)
		return -1;
	return write_body(n, ed->body_fd, crlf);
}

/*
 * Apply the header edits and the new body: a new spool file written
 * from the old one, which it replaces.  0, or -1 (the old one kept).
 * crlf: the spool's lines end in CRLF (--crlf, BINARYMIME).
 */
int
milter_rewrite(const struct milter_edits *ed, struct spool *sp, int crlf)
{
	struct spool	 n = *sp;
	struct msgread	 rd;
	struct buf	 h = { NULL, 0, 0 };
	struct hdr_op	*ops;
	size_t		 nops;
	uint32_t	 k = 0;
	off_t		 end = 0, body = 0, from = 0;
	int		 ok = 1;

	if (ed->headers.len == 0 && ed->body_fd == -1)
		return 0;
	nops = parse_ops(&ed->headers, &ops);
	n.size = 0;
	n.failed = 0;
	if ((n.fd = spool_open()) == -1)
		ok = 0;
	msgread_init(&rd, sp->fd, 0);
	for (; ok && msg_next_header(&rd, &h, &end, &body);
	    from = msgread_tell(&rd))
		ok = write_inserts(&n, ops, nops, k++, 0, crlf) == 0 &&
		    copy_or_change(&n, ops, nops, &h, sp, from,
		    msgread_tell(&rd), crlf) == 0;
	ok = ok && write_inserts(&n, ops, nops, k, 1, crlf) == 0 &&
	    write_added(&n, ops, nops, crlf) == 0 &&
	    write_rest(&n, sp, ed, end, body, crlf) == 0;
	free(ops);
	buf_free(&h);
	if (!ok) {
		if (n.fd != -1)
			(void)close(n.fd);
		return -1;
	}
	(void)close(sp->fd);
	sp->fd = n.fd;
	sp->size = n.size;
	return spool_rewind(sp);
}

/* Skip blanks, line breaks and RFC 5322 comments (nested). */
static const char *
skip_cfws(const char *p, const char *end)
{
	int	 depth = 0;

	for (; p < end; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' &&
		    *p != '\n')
			break;
	}
	return p;
}

/*
 * Does this spooled header claim to be ours: "Authentication-Results:"
 * whose authserv-id (RFC 8601 2.2: a token or a quoted string after
 * optional CFWS) is id, compared without case as a domain name is?
 */
static int
claims_authserv_id(const struct buf *h, const char *id)
{
	static const char	 name[] = "Authentication-Results";
	const char		*p, *end = h->data + h->len, *v;
	size_t			 voff = 0;
	size_t			 nlen = msg_header_name(h->data, h->len, &voff);

	if (nlen != sizeof(name) - 1 || strncasecmp(h->data, name, nlen) != 0)
		return 0;
	p = skip_cfws(h->data + voff, end);
	if (p < end && *p == '"') {
		for (v = ++p; p < end && *p != '"'; p++)
			;
	} else
		for (v = p; p < end && *p != ';' && *p != '(' && *p != ' ' &&
		    *p != '\t' && *p != '\r' && *p != '\n'; p++)
			;
	return (size_t)(p - v) == strlen(id) &&
	    strncasecmp(v, id, (size_t)(p - v)) == 0;
}

/*
 * SPEC 13, RFC 8601 5: the Authentication-Results headers of the
 * client's message (after header_end: not ours, nor a policy's) that
 * claim our authserv-id are removed, before any filter or the handler
 * sees it, by the same rewrite as the filters' changes.  The number
 * removed, or -1.
 */
int
milter_strip_results(struct spool *sp, const char *id, int crlf)
{
	struct milter_edits	 ed;
	struct milter_reply	 r;
	struct msgread		 rd;
	struct buf		 h = { NULL, 0, 0 };
	off_t			 start, end, body;
	uint32_t		 k = 0;
	int			 n = 0;

	milter_edits_init(&ed);
	msgread_init(&rd, sp->fd, 0);
	memset(&r, 0, sizeof(r));
	r.cmd = SMFIR_CHGHEADER;
	r.name = "Authentication-Results";
	r.value = "";
	for (start = 0; msg_next_header(&rd, &h, &end, &body);
	    start = msgread_tell(&rd)) {
		if (msg_header_name_len(h.data, h.len) == strlen(r.name) &&
		    strncasecmp(h.data, r.name, strlen(r.name)) == 0)
			k++;
		if ((uint64_t)start < sp->header_end ||
		    !claims_authserv_id(&h, id))
			continue;
		r.index = k;	/* counted in the message as received */
		n++;
		if (milter_edit(&ed, &r, 0) == -1)
			break;
	}
	buf_free(&h);
	if (n > 0 && milter_rewrite(&ed, sp, crlf) == -1)
		n = -1;
	milter_edits_free(&ed);
	return n;
}
