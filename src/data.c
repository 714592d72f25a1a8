/*
 * DATA decoding, RFC 5321 4.1.1.4 and 4.5.2: find the end of the message,
 * undo dot-stuffing, turn line ends into what the handler wants and count
 * the RFC 1870 size.  A pure state machine over bytes, so it gives the
 * same result however the input is split into reads.
 *
 * The message ends only at <CRLF>.<CRLF>.  Every other dot line (after a
 * bare LF, or ended by a bare LF or CR) is data, so no variant can make us
 * see an end of data that a peer further down would not (SMTP smuggling).
 *
 * BDAT content (RFC 3030) goes through the same decoder with nodots set:
 * line ends are converted the same way, but a dot is just a byte and
 * nothing ends the data; the chunk's octet count does.
 */
#include <stdint.h>
#include <string.h>

#include "smtpd-stdio.h"

/* The most bytes one input byte can produce: ".", CR, LF. */
#define DATA_EMIT_MAX	3

struct emitter {
	struct data_decoder	*d;
	char			*out;
	size_t			 len;
};

static void	emit_byte(struct emitter *, char);
static void	emit_eol(struct emitter *);
static void	text_byte(struct emitter *, char);
static void	crlf_ends_line(struct emitter *);
static void	after_cr(struct emitter *, char);
static void	after_dot(struct emitter *, char);
static void	after_dot_cr(struct emitter *, char);
static void	step(struct emitter *, char);
static size_t	text_run(struct emitter *, const char *, size_t, size_t);

void
data_init(struct data_decoder *d, int crlf_out, int check_8bit)
{
	memset(d, 0, sizeof(*d));
	/* The CRLF that ended the DATA command starts the first line. */
	d->state = DS_BOL;
	d->bol_crlf = 1;
	d->crlf_out = crlf_out;
	d->check_8bit = check_8bit;
}

static void
emit_byte(struct emitter *e, char c)
{
	e->out[e->len++] = c;
	e->d->wire_size++;
	if ((unsigned char)c >= 0x80 && e->d->check_8bit)
		e->d->eightbit = 1;
}

/* A line end: counted as CRLF (RFC 1870), written as LF or CRLF. */
static void
emit_eol(struct emitter *e)
{
	if (e->d->crlf_out)
		e->out[e->len++] = '\r';
	e->out[e->len++] = '\n';
	e->d->wire_size += 2;
}

/* A byte inside a line. */
static void
text_byte(struct emitter *e, char c)
{
	struct data_decoder	*d = e->d;

	switch (c) {
	case '\r':
		d->state = DS_CR;
		break;
	case '\n':
		/* A bare LF ends a line for the handler, never the data. */
		emit_eol(e);
		d->state = DS_BOL;
		d->bol_crlf = 0;
		break;
	default:
		emit_byte(e, c);
		d->state = DS_TEXT;
		break;
	}
}

/* A CRLF ends a line: the next begins. */
static void
crlf_ends_line(struct emitter *e)
{
	emit_eol(e);
	e->d->state = DS_BOL;
	e->d->bol_crlf = 1;
}

/* DS_CR: an LF ends the line; a bare CR is data. */
static void
after_cr(struct emitter *e, char c)
{
	if (c == '\n')
		crlf_ends_line(e);
	else {
		emit_byte(e, '\r');
		text_byte(e, c);
	}
}

/* DS_DOT: a dot began the line. */
static void
after_dot(struct emitter *e, char c)
{
	if (c == '\r')
		e->d->state = DS_DOT_CR;
	else if (c == '\n') {
		/* A lone dot ended by bare LF: data. */
		emit_byte(e, '.');
		text_byte(e, c);
	} else
		text_byte(e, c);	/* the stuffed dot goes */
}

/* DS_DOT_CR: "<CRLF>.<CRLF>" ends the data. */
static void
after_dot_cr(struct emitter *e, char c)
{
	if (c == '\n' && e->d->bol_crlf) {
		e->d->done = 1;
	} else if (c == '\n') {
		/* "<LF>.<CRLF>": a lone dot that is data. */
		emit_byte(e, '.');
		crlf_ends_line(e);
	} else {
		/* ".<CR>x": the dot was stuffing, the CR is data. */
		emit_byte(e, '\r');
		text_byte(e, c);
	}
}

static void
step(struct emitter *e, char c)
{
	struct data_decoder	*d = e->d;

	switch (d->state) {
	case DS_TEXT:
		text_byte(e, c);
		break;
	case DS_CR:
		after_cr(e, c);
		break;
	case DS_BOL:
		if (c == '.' && !d->nodots)
			d->state = DS_DOT;
		else
			text_byte(e, c);
		break;
	case DS_DOT:
		after_dot(e, c);
		break;
	case DS_DOT_CR:
		after_dot_cr(e, c);
		break;
	}
}

/*
 * Fast path inside a line: copy bytes up to the next CR or LF at once,
 * found with memchr, and (for --7bit) look for 8-bit bytes eight at a time.
 * Returns how many input bytes were taken.
 */
static size_t
text_run(struct emitter *e, const char *in, size_t len, size_t room)
{
	const char	*p;
	uint64_t	 any = 0, w;
	size_t		 i;

	if (len > room)
		len = room;
	if ((p = memchr(in, '\n', len)) != NULL)
		len = (size_t)(p - in);
	if ((p = memchr(in, '\r', len)) != NULL)
		len = (size_t)(p - in);
	memcpy(e->out + e->len, in, len);
	e->len += len;
	e->d->wire_size += len;
	if (e->d->check_8bit && !e->d->eightbit) {
		for (i = 0; i + 8 <= len; i += 8) {
			memcpy(&w, in + i, 8);
			any |= w;
		}
		for (; i < len; i++)
			any |= (unsigned char)in[i];
		e->d->eightbit = (any & 0x8080808080808080ULL) != 0;
	}
	return len;
}

/*
 * Decode input into out (cap bytes).  Returns the input bytes consumed;
 * stops early at the end of data (d->done) or when out is nearly full.
 * *outlen is the number of bytes written to out.
 */
size_t
data_decode(struct data_decoder *d, const char *in, size_t len, char *out,
    size_t cap, size_t *outlen)
{
	struct emitter	 e = { d, out, 0 };
	size_t		 i = 0, n;

	while (i < len && !d->done && cap - e.len >= DATA_EMIT_MAX) {
		/* Fast paths for the common case; step() decides the rest. */
		if (d->state == DS_TEXT && len - i >= 2 && in[i] == '\r' &&
		    in[i + 1] == '\n') {
			emit_eol(&e);		/* CRLF inside the message */
			d->state = DS_BOL;
			d->bol_crlf = 1;
			i += 2;
			continue;
		}
		if (d->state == DS_BOL && (in[i] != '.' || d->nodots) &&
		    in[i] != '\r' && in[i] != '\n')
			d->state = DS_TEXT;	/* a line not starting with a dot */
		if (d->state == DS_TEXT &&
		    (n = text_run(&e, in + i, len - i, cap - e.len)) > 0) {
			i += n;
			continue;
		}
		step(&e, in[i++]);
	}
	*outlen = e.len;
	return i;
}
