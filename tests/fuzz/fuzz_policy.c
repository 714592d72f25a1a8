/*
 * libFuzzer target for the policy reply parser (src/policy.c): whatever
 * the bytes, policy_reply_end() finds an end inside the input or none,
 * policy_parse_reply() gives a known verdict, and the text it makes is
 * one line of printable ASCII that fits a reply line: a refusal is
 * "NNN x.y.z text" CRLF with a 4xx or 5xx code, a PREPEND a header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* policy_check() is not driven here: stubs keep conn.c, session.c out. */
long long
conn_now_ms(void)
{
	return 0;
}

const char *
session_protocol(const struct session *s)
{
	(void)s;
	return "ESMTP";
}

static void
check_printable(const char *t, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*in = (const char *)data;
	struct policy_reply	 r;
	size_t			 end, len;

	end = policy_reply_end(in, size);
	if (end > size)
		abort();
	if (end > 0 && (in[end - 1] != '\n' ||
	    policy_reply_end(in, end) != end))
		abort();
	switch (policy_parse_reply(in, end > 0 ? end : size, &r)) {
	case PV_DEFER_IF_PERMIT:	/* a 450 reply, held for later */
	case PV_DEFER_IF_REJECT:
		if (r.text[0] != '4')
			abort();
		/* FALLTHROUGH */
	case PV_REFUSE:
		len = strlen(r.text);
		if (len < 11 || len > SMTP_REPLYLINE_MAX ||
		    (r.text[0] != '4' && r.text[0] != '5') ||
		    r.text[3] != ' ' || r.text[4] != r.text[0] ||
		    r.text[5] != '.' || memcmp(r.text + len - 2, "\r\n", 2) != 0)
			abort();
		check_printable(r.text, len - 2);
		break;
	case PV_PREPEND:
		/* A header line that fits a line with its CRLF. */
		if (strchr(r.text, ':') == NULL || r.text[0] == ':' ||
		    strlen(r.text) + 2 > SMTP_REPLYLINE_MAX)
			abort();
		check_printable(r.text, strlen(r.text));
		break;
	case PV_WARN:
	case PV_UNSUPPORTED:
		if (strlen(r.text) >= sizeof(r.text))
			abort();
		check_printable(r.text, strlen(r.text));
		break;
	case PV_OK:
	case PV_DUNNO:
	case PV_GARBLED:
		break;
	default:
		abort();
	}
	return 0;
}
