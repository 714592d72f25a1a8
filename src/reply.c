/*
 * From handler result to SMTP reply, SPEC 5.2: the exit-status table, and
 * the check that turns handler output into a well-formed reply or nothing.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "smtpd-stdio.h"

/* Only statuses that say "this message or recipient is wrong" bounce. */
static const struct status_reply {
	int		 status;
	const char	*reply;
} status_replies[] = {
	{ 65,  "554 5.6.0 Error: message refused by handler (data error)" },
	{ 67,  "550 5.1.1 Error: recipient unknown" },
	{ 68,  "550 5.1.2 Error: recipient domain unknown" },
	{ 69,  "554 5.3.0 Error: message refused by handler (unavailable)" },
	{ 76,  "554 5.5.0 Error: message refused by handler (protocol)" },
	{ 77,  "550 5.7.1 Error: message refused by handler (no permission)" },
	{ 100, "554 5.3.0 Error: message refused by handler" },
	{ 78,  "451 4.3.5 Error: handler configuration error, try again later" },
};
static const char reply_tempfail[] =
    "451 4.3.0 Error: temporary handler failure, try again later";

static int	reply_line_ok(const char *, size_t, int);
static int	has_enhanced_code(const char *, size_t);
static size_t	clean_line(const char *, size_t, char *, size_t);
static size_t	format_line(char *, const char *, size_t);
static const char *next_line(const char *, const char *, size_t *,
		    const char **);
static int	check_lines(const char *, size_t);
static int	parse_text(const char *, size_t, struct buf *, size_t);
static int	reply_of_output(const struct handler_result *, struct buf *,
		    size_t);
static int	code_of(const char *);
static const char *reply_for_status(const struct handler_result *);
static int	single_reply(const struct handler_result *, const char *,
		    struct buf *, size_t);

/* "DDD", "DDD text" or "DDD-text" with a code we may pass on. */
static int
reply_line_ok(const char *l, size_t len, int code)
{
	int	 c;

	if (len < 3 || !isdigit((unsigned char)l[0]) ||
	    !isdigit((unsigned char)l[1]) || !isdigit((unsigned char)l[2]))
		return 0;
	if (l[0] != '2' && l[0] != '4' && l[0] != '5')
		return 0;
	if (l[1] > '5')
		return 0;
	if (len > 3 && l[3] != ' ' && l[3] != '-')
		return 0;
	c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	return code == 0 || c == code ? c : 0;
}

/* RFC 3463 status-code "class.subject.detail" at the start of text. */
static int
has_enhanced_code(const char *t, size_t len)
{
	size_t	 i = 0, part, digits;

	if (len < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') ||
	    t[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; i < len && isdigit((unsigned char)t[i]);
		    i++)
			digits++;
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0 && (i >= len || t[i++] != '.'))
			return 0;
	}
	return i == len || t[i] == ' ';
}

/*
 * Copy a line with only its printable ASCII and spaces, at most size
 * octets of it; returns the length copied.  Reply text is ASCII (RFC
 * 5321 4.2): control characters, and every byte >= 0x80 (so C1 controls
 * and UTF-8 alike), are dropped, as SPEC 5.2 drops controls, rather
 * than replaced: a '?' for each byte of a UTF-8 character tells the
 * client nothing more.
 */
static size_t
clean_line(const char *l, size_t len, char *dst, size_t size)
{
	size_t	 i, n = 0;

	for (i = 0; i < len && n < size; i++)
		if ((unsigned char)l[i] >= 0x20 && (unsigned char)l[i] < 0x7f)
			dst[n++] = l[i];
	return n;
}

/*
 * One checked line as "DDD-text" with an enhanced code, CRLF-ended, at
 * most SMTP_REPLYLINE_MAX octets into line; returns its length.  The
 * last line of a reply gets ' ' at line[3] from the caller.
 */
static size_t
format_line(char *line, const char *l, size_t len)
{
	size_t	 n, tlen = len > 4 ? len - 4 : 0;

	n = (size_t)snprintf(line, SMTP_REPLYLINE_MAX, "%.3s-", l);
	/* A code of another class than the reply's is no code (RFC 3463). */
	if (!has_enhanced_code(l + 4, tlen) || l[4] != l[0])
		n += (size_t)snprintf(line + n, SMTP_REPLYLINE_MAX - n,
		    "%c.0.0%s", l[0], tlen > 0 ? " " : "");
	if (tlen > SMTP_REPLYLINE_MAX - 2 - n)
		tlen = SMTP_REPLYLINE_MAX - 2 - n;
	memcpy(line + n, l + 4, tlen);
	memcpy(line + n + tlen, "\r\n", 2);
	return n + tlen + 2;
}

/*
 * The next non-blank line of [p, end) without its line end: returns its
 * start (NULL when there is none), its length in *len, and in *next
 * where to look on.
 */
static const char *
next_line(const char *p, const char *end, size_t *len, const char **next)
{
	const char	*nl;
	size_t		 n;

	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			continue;	/* blank lines carry nothing */
		*len = n;
		*next = nl + 1;
		return p;
	}
	return NULL;
}

/*
 * Is every non-blank line a reply line with one code?  Returns the
 * code, 0 for no text at all, -1 for not a reply.
 */
static int
check_lines(const char *text, size_t len)
{
	char		 clean[SMTP_REPLYLINE_MAX];
	const char	*p = text, *end = text + len, *l;
	size_t		 n;
	int		 code = 0;

	while ((l = next_line(p, end, &n, &p)) != NULL) {
		/* A line of nothing but dropped bytes is no reply line. */
		n = clean_line(l, n, clean, sizeof(clean));
		if ((code = reply_line_ok(clean, n, code)) == 0)
			return -1;
	}
	return code;
}

/*
 * Handler output as reply lines appended to out, at most max octets of
 * them (whole lines, at least one); see reply_parse_text.
 */
static int
parse_text(const char *text, size_t len, struct buf *out, size_t max)
{
	char		 clean[SMTP_REPLYLINE_MAX], line[SMTP_REPLYLINE_MAX];
	char		 prev[SMTP_REPLYLINE_MAX];
	const char	*p = text, *end = text + len, *l;
	size_t		 n, i, used = 0, prevlen = 0;
	int		 code;

	if ((code = check_lines(text, len)) <= 0)
		return code;
	/* Each line goes out once the next is known to fit after it. */
	for (i = 0; (l = next_line(p, end, &n, &p)) != NULL; i++) {
		n = format_line(line, clean, clean_line(l, n, clean,
		    sizeof(clean)));
		if (i > 0 && used + prevlen + n > max)
			break;
		buf_append(out, prev, prevlen);
		used += prevlen;
		memcpy(prev, line, n);
		prevlen = n;
	}
	prev[3] = ' ';
	buf_append(out, prev, prevlen);
	return code;
}

/*
 * Turn handler output into reply lines in out (CRLF-terminated).  Returns
 * the reply code, 0 when the output holds no text at all, -1 when it is
 * not a reply.  Every line gets an enhanced status code and fits in 512.
 */
int
reply_parse_text(const char *text, size_t len, struct buf *out)
{
	return parse_text(text, len, out, SIZE_MAX);
}

/*
 * The handler's stdout as reply lines, as parse_text.  Output cut by the
 * limit (SPEC 5.1) was never "no output": when nothing but the cut line
 * and blank lines was there, it is not a reply (-1), so exit 0 gives 451
 * and never a 250 for a handler that printed a long refusal.
 */
static int
reply_of_output(const struct handler_result *r, struct buf *out, size_t max)
{
	int	 code;

	code = parse_text(r->out, r->outlen, out, max);
	return code == 0 && r->cut ? -1 : code;
}

int
reply_parse_output(const struct handler_result *r, struct buf *out)
{
	return reply_of_output(r, out, SIZE_MAX);
}

static int
code_of(const char *reply)
{
	return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

/* Non-zero exit, signal, timeout or exec failure, SPEC 5.2 item 4. */
static const char *
reply_for_status(const struct handler_result *r)
{
	size_t	 i;

	if (r->end != HE_EXITED)
		return reply_tempfail;
	for (i = 0; i < sizeof(status_replies) / sizeof(status_replies[0]); i++)
		if (status_replies[i].status == r->status)
			return status_replies[i].reply;
	return reply_tempfail;
}

/*
 * The reply for one handler run, appended to out, at most max octets of
 * handler text.  Returns the reply code.  A 2xx comes only from an exit
 * status of 0.
 */
static int
single_reply(const struct handler_result *r, const char *id,
    struct buf *out, size_t max)
{
	static const char	 queued[] = "250 2.0.0 OK: queued as ";
	struct buf	 parsed = { NULL, 0, 0 };
	const char	*text;
	char		 esc[HANDLER_OUTPUT_MAX];
	int		 code, ok;

	code = reply_of_output(r, &parsed, max);
	ok = r->end == HE_EXITED && r->status == 0;
	if (ok && code == 0) {
		/* Every accepted message: three copies, not a vsnprintf. */
		buf_append(out, queued, sizeof(queued) - 1);
		buf_append(out, id, strlen(id));
		buf_append(out, "\r\n", 2);
		code = 250;
	} else if ((ok && code > 0) || code >= 400)
		buf_append(out, parsed.data, parsed.len);
	else {
		if (ok)
			log_warn("%s: handler exited 0 but its output is not "
			    "an SMTP reply: %s", id, log_escape(esc,
			    sizeof(esc), r->out, r->outlen));
		text = ok ? reply_tempfail : reply_for_status(r);
		buf_appendf(out, "%s\r\n", text);
		code = code_of(text);
	}
	buf_free(&parsed);
	return code;
}

int
reply_from_handler(const struct handler_result *r, const char *id,
    struct buf *out)
{
	return single_reply(r, id, out, SIZE_MAX);
}

/* A CRLF-terminated reply, once per recipient (LMTP, SPEC 11). */
void
reply_repeat(const char *text, size_t n, struct buf *out)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		buf_append(out, text, strlen(text));
}

/*
 * Each recipient's own line, when the handler printed exactly nrcpt
 * complete lines, each a one-line reply (a 2xx only with exit 0, else
 * the exit status decides for it).  Returns the first recipient's reply
 * code, or 0 when the output is no such set of lines.
 */
static int
lines_per_rcpt(const struct handler_result *r, size_t nrcpt,
    struct buf *lines)
{
	struct buf	 one = { NULL, 0, 0 };
	const char	*p = r->out, *end = r->out + r->outlen, *l = NULL, *text;
	size_t		 n, count = 0;
	int		 ok, code = 0, first = 0;

	ok = r->end == HE_EXITED && r->status == 0;
	/* Past the limit, the lines we saw are not all there is. */
	while (!r->cut && (l = next_line(p, end, &n, &p)) != NULL) {
		one.len = 0;
		if (++count > nrcpt || (n > 3 && l[3] != ' ') ||
		    (code = reply_parse_text(l, n, &one)) <= 0)
			break;
		if (code < 300 && !ok) {
			text = reply_for_status(r);
			buf_appendf(lines, "%s\r\n", text);
			code = code_of(text);
		} else
			buf_append(lines, one.data, one.len);
		if (first == 0)
			first = code;
	}
	buf_free(&one);
	return l == NULL && count == nrcpt && !r->cut ? first : 0;
}

/*
 * LMTP, RFC 2033 4.2 and SPEC 11: one reply per recipient, in RCPT
 * order: their own lines, or else the single result repeated.  A
 * repeated result keeps the lines that fit in LMTP_OUTPUT_PER_RCPT
 * octets, so 1000 recipients never make a reply of megabytes.  Returns
 * the first recipient's reply code.
 */
int
reply_lmtp(const struct handler_result *r, const char *id, size_t nrcpt,
    struct buf *out)
{
	struct buf	 lines = { NULL, 0, 0 };
	int		 first = 0;

	if (nrcpt > 1)
		first = lines_per_rcpt(r, nrcpt, &lines);
	if (first != 0)
		buf_append(out, lines.data, lines.len);
	else {
		lines.len = 0;
		first = single_reply(r, id, &lines, nrcpt > 1 ?
		    LMTP_OUTPUT_PER_RCPT : SIZE_MAX);
		buf_append(&lines, "", 1);
		reply_repeat(lines.data, nrcpt, out);
	}
	buf_free(&lines);
	return first;
}
