/*
 * libFuzzer target for handler output -> SMTP reply (reply.c).  Whatever
 * a handler prints, the reply is either nothing or well-formed lines: one
 * code, first digit 2, 4 or 5, "DDD-" then "DDD " last, an enhanced code,
 * nothing but printable ASCII and SP before each CRLF (no control
 * character, no byte >= 0x80), at most 512 octets with CRLF; and a 2xx
 * only with exit status 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_reply(const char *r, size_t len)
{
	const char	*p = r, *end = r + len, *nl;
	size_t		 i, l;

	if (len == 0 || (r[0] != '2' && r[0] != '4' && r[0] != '5'))
		abort();
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL ||
		    nl == p || nl[-1] != '\r')
			abort();
		l = (size_t)(nl - p) + 1;
		if (l > SMTP_REPLYLINE_MAX || l < 11 || memcmp(p, r, 3) != 0)
			abort();
		if (p[3] != (nl + 1 == end ? ' ' : '-') || p[4] != r[0] ||
		    p[5] != '.')
			abort();
		for (i = 0; i < l - 2; i++)
			if ((unsigned char)p[i] < 0x20 ||
			    (unsigned char)p[i] > 0x7e)
				abort();	/* RFC 5321 4.2: ASCII text */
	}
}

/* The start of the line that ends at nl, not before p. */
static const char *
last_line_of(const char *p, const char *nl)
{
	while (nl > p && nl[-1] != '\n')
		nl--;
	return nl;
}

/*
 * Under --lmtp: exactly nrcpt replies, each well-formed and at most 512
 * octets when one result is repeated (SPEC 11), a 2xx only on exit 0.
 */
static void
check_lmtp(const struct handler_result *res, size_t nrcpt)
{
	struct buf	 out = { NULL, 0, 0 };
	const char	*p, *end, *nl;
	size_t		 n = 0;

	(void)reply_lmtp(res, "ID", nrcpt, &out);
	for (p = out.data, end = out.data + out.len; p < end; p = nl + 1) {
		/* One reply: from p to the end of its line with "DDD ". */
		for (nl = p; (nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL;
		    nl++)
			if (last_line_of(p, nl)[3] == ' ')
				break;
		if (nl == NULL || (nrcpt > 1 && nl + 1 - p > SMTP_REPLYLINE_MAX))
			abort();
		check_reply(p, (size_t)(nl + 1 - p));
		if (p[0] == '2' && !(res->end == HE_EXITED && res->status == 0))
			abort();
		n++;
	}
	if (n != nrcpt)
		abort();
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct handler_result	 res;
	struct buf		 out = { NULL, 0, 0 };
	int			 code;

	if (size < 1)
		return 0;
	memset(&res, 0, sizeof(res));
	res.end = (enum handler_end)(data[0] & 3);
	res.status = data[0] >> 2;
	/* Any length: under --lmtp the output that counts is 512 per RCPT. */
	res.outlen = size - 1;
	if ((res.out = malloc(size)) == NULL)
		abort();
	memcpy(res.out, data + 1, res.outlen);

	code = reply_from_handler(&res, "ID", &out);
	check_reply(out.data, out.len);
	if (code / 100 != out.data[0] - '0')
		abort();
	if (code / 100 == 2 && !(res.end == HE_EXITED && res.status == 0))
		abort();	/* 2xx only on exit 0 (SPEC 5.2) */
	buf_free(&out);
	res.cut = size & 1;
	check_lmtp(&res, 1 + data[0] % 5);
	free(res.out);
	return 0;
}
