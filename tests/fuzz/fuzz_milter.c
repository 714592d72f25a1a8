/*
 * libFuzzer target for the milter protocol parser (src/milter-proto.c):
 * the input is a stream of frames as a filter would send them.  Whatever
 * the bytes, a frame's size is capped before it is trusted, a reply that
 * parses has what its command needs (header names with no ':' or blank,
 * folded values that cannot start a new header, addresses without
 * blanks, a REPLYCODE that is a 4xx/5xx reply of CRLF-ended lines), and
 * option negotiation never grants an action we did not offer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_header(const struct milter_reply *r)
{
	const char	*p;

	if (r->name == NULL || r->value == NULL || r->name[0] == '\0' ||
	    strpbrk(r->name, ": \t\r\n") != NULL)
		abort();
	for (p = r->value; *p != '\0'; p++)
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
			abort();
}

static void
check_reply(const struct milter_reply *r)
{
	size_t	 len = strlen(r->text);

	switch (r->cmd) {
	case SMFIR_REPLYCODE:
		if (len < 11 || (r->text[0] != '4' && r->text[0] != '5') ||
		    memcmp(r->text + len - 2, "\r\n", 2) != 0 ||
		    r->text[4] != r->text[0] || r->text[5] != '.')
			abort();
		break;
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		check_header(r);
		break;
	case SMFIR_CHGFROM:
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_DELRCPT:
		if (strlen(r->addr) >= sizeof(r->addr) ||
		    strpbrk(r->addr, " \t\r\n") != NULL)
			abort();
		break;
	case SMFIR_QUARANTINE:
		if (r->value == NULL || strpbrk(r->value, "\r\n") != NULL)
			abort();
		break;
	default:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_reply	 r;
	struct milter_optneg	 o;
	ssize_t			 n;
	size_t			 off = 0;

	while ((n = milter_frame_size(data + off, size - off)) > 0) {
		if (n - 4 > MILTER_FRAME_MAX || n < 5)
			abort();
		if ((size_t)n > size - off)
			break;
		memset(&o, 0, sizeof(o));
		o.offered_actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
		if (data[off + 4] == SMFIC_OPTNEG &&
		    milter_parse_optneg((const char *)data + off + 5,
		    (size_t)n - 5, &o) == 0 &&
		    ((o.actions & ~o.offered_actions) != 0 ||
		    (o.protocol & ~MILTER_PROTOCOL_OFFER) != 0 ||
		    o.version > MILTER_VERSION))
			abort();
		if (milter_parse_reply((const char *)data + off + 4,
		    (size_t)n - 4, &r) == 0)
			check_reply(&r);
		off += (size_t)n;
	}
	return 0;
}
