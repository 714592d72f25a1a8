/*
 * The arguments of MAIL and RCPT: the path (RFC 5321 4.1.2, with the
 * UTF-8 extensions of RFC 6531 3.3) and the ESMTP parameters that follow
 * it.  Pure functions: no I/O, no allocation, no state between calls.
 */
#include <string.h>

#include "smtpd-stdio.h"

/* Replies; the code and enhanced code are what callers and tests rely on. */
#define R_MAIL_SYNTAX	"501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX	"501 5.5.4 Syntax: RCPT TO:<address>"
#define R_MAIL_ADDR	"501 5.1.7 Bad sender address syntax"
#define R_RCPT_ADDR	"553 5.1.3 Bad recipient address syntax"
#define R_RCPT_CTRL	"501 5.1.3 Bad recipient address syntax"
#define R_NEED_UTF8	"553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_PARAM_SYNTAX	"501 5.5.4 Syntax error in parameters"
#define R_PARAM_DUP	"501 5.5.4 Duplicate parameter"
#define R_PARAM_LONG	"501 5.5.4 Parameters too long"
#define R_PARAM_UNSUPP	"555 5.5.4 Unsupported parameter"
#define R_BAD_SIZE	"501 5.5.4 Bad SIZE value"
#define R_SIZE_LIMIT	"552 5.3.4 Message size exceeds fixed limit"
#define R_BAD_BODY	"501 5.5.4 Bad BODY value"
#define R_NO_8BITMIME	"555 5.5.4 BODY=8BITMIME not supported"
#define R_NO_BINARYMIME	"555 5.5.4 BODY=BINARYMIME not supported"
#define R_BAD_SMTPUTF8	"501 5.5.4 SMTPUTF8 takes no value"
#define R_NO_SMTPUTF8	"555 5.5.4 SMTPUTF8 not supported"
#define R_BAD_REQUIRETLS "501 5.5.4 REQUIRETLS takes no value"
#define R_NO_REQUIRETLS	"555 5.5.4 REQUIRETLS needs TLS: issue STARTTLS first"
#define R_BAD_AUTH	"501 5.5.4 Bad AUTH value"
#define R_BAD_RET	"501 5.5.4 Bad RET value"
#define R_BAD_ENVID	"501 5.5.4 Bad ENVID value"
#define R_BAD_NOTIFY	"501 5.5.4 Bad NOTIFY value"
#define R_BAD_ORCPT	"501 5.5.4 Bad ORCPT value"

#ifndef nitems
#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#endif

#define SIZE_DIGITS_MAX	20	/* RFC 1870 6: size-value = 1*20DIGIT */
#define DOMAIN_LABEL_MAX 63	/* RFC 1035 2.3.4, RFC 5321 4.5.3.1.2 */

/* A bounded view of the bytes being parsed. */
struct cursor {
	const unsigned char	*p;		/* next byte */
	const unsigned char	*end;		/* one past the last byte */
	int			 utf8ok;	/* UTF8-non-ascii allowed */
	int			 nonascii;	/* consumed UTF8-non-ascii */
	int			 bad8;		/* met a refused byte >= 0x80 */
};

/* One ESMTP parameter as handed to its check function. */
struct param_arg {
	const unsigned char		*val;	/* NULL without "=" */
	size_t				 len;
	int				 utf8txn;
	const struct addr_limits	*lim;
	struct addr_result		*res;
};

struct addr_param {
	const char	*name;
	enum addr_verb	 verb;
	const char	*(*check)(const struct param_arg *);
};

static int	addr_fail(struct addr_result *, const char *);
static int	ascii_ieq(const unsigned char *, size_t, const char *);
static int	is_alnum(int);
static int	is_atext(int);
static int	is_hex(int);
static int	cur_utf8(struct cursor *);
static int	cur_peek(const struct cursor *, int);
static int	path_atom(struct cursor *);
static int	path_quoted(struct cursor *);
static int	path_local(struct cursor *);
static int	path_letdig(struct cursor *);
static int	path_subdomain(struct cursor *);
static int	path_domain(struct cursor *);
static int	path_ipv4(const unsigned char *, size_t);
static int	path_ipv6(const unsigned char *, size_t);
static size_t	hex_run(const unsigned char *, size_t);
static int	ipv6_colons(const unsigned char *, size_t, size_t *, int *);
static int	path_ldh(const unsigned char *, size_t);
static int	path_literal(struct cursor *);
static int	path_mailbox(struct cursor *);
static int	path_route(struct cursor *);
static int	path_postmaster(const struct cursor *, int);
static int	path_inner(enum addr_verb, struct cursor *, int,
		    const unsigned char **);
static int	has_control(const unsigned char *, const unsigned char *);
static int	addr_path(enum addr_verb, struct cursor *,
		    struct addr_result *);
static int	path_bracketed(enum addr_verb, struct cursor *,
		    const unsigned char **, const unsigned char **);
static int	path_bare(enum addr_verb, struct cursor *,
		    const unsigned char **, const unsigned char **);
static int	has_smtputf8(const unsigned char *, const unsigned char *);
static int	xtext_ok(const unsigned char *, size_t, int);
static int	value_chars_ok(const unsigned char *, const unsigned char *,
		    int, int);
static int	is_upper_hex(int);
static const char *param_size(const struct param_arg *);
static const char *param_body(const struct param_arg *);
static const char *param_binarymime(const struct param_arg *);
static const char *param_smtputf8(const struct param_arg *);
static const char *param_auth(const struct param_arg *);
static const char *param_requiretls(const struct param_arg *);
static const char *param_ret(const struct param_arg *);
static const char *param_envid(const struct param_arg *);
static const char *param_notify(const struct param_arg *);
static const char *param_orcpt(const struct param_arg *);
static int	param_keyword_ok(const unsigned char *, size_t);
static int	param_value_ok(const unsigned char *, size_t, int);
static int	param_append(struct addr_result *, size_t *,
		    const unsigned char *, size_t, const unsigned char *,
		    size_t);
static int	param_one(enum addr_verb, const unsigned char *, size_t,
		    const struct addr_limits *, int, unsigned int *,
		    struct addr_result *, size_t *);
static int	cur_prefix(struct cursor *, const char *);
static int	addr_params(enum addr_verb, struct cursor *,
		    const struct addr_limits *, int, struct addr_result *);

/* The parameters we know (SPEC 4); anything else gets 555. */
static const struct addr_param addr_params_tab[] = {
	{ "SIZE",	ADDR_MAIL,	param_size },		/* RFC 1870 */
	{ "BODY",	ADDR_MAIL,	param_body },		/* RFC 6152 */
	{ "SMTPUTF8",	ADDR_MAIL,	param_smtputf8 },	/* RFC 6531 */
	{ "AUTH",	ADDR_MAIL,	param_auth },		/* RFC 4954 */
	{ "RET",	ADDR_MAIL,	param_ret },		/* RFC 3461 */
	{ "ENVID",	ADDR_MAIL,	param_envid },		/* RFC 3461 */
	{ "NOTIFY",	ADDR_RCPT,	param_notify },		/* RFC 3461 */
	{ "ORCPT",	ADDR_RCPT,	param_orcpt },		/* RFC 3461 */
	{ "REQUIRETLS",	ADDR_MAIL,	param_requiretls },	/* RFC 8689 */
};
#define NPARAMS	nitems(addr_params_tab)

/* Fail with reply; a failed parse leaves no path or options behind. */
static int
addr_fail(struct addr_result *res, const char *reply)
{
	res->path[0] = '\0';
	res->options[0] = '\0';
	res->utf8 = 0;
	res->reply = reply;
	res->code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 +
	    (reply[2] - '0');
	return -1;
}

/* Case-insensitive ASCII comparison of p[0..len) with the string s. */
static int
ascii_ieq(const unsigned char *p, size_t len, const char *s)
{
	size_t	 i;
	int	 a, b;

	if (strlen(s) != len)
		return 0;
	for (i = 0; i < len; i++) {
		a = p[i];
		b = (unsigned char)s[i];
		if (a >= 'a' && a <= 'z')
			a -= 'a' - 'A';
		if (b >= 'a' && b <= 'z')
			b -= 'a' - 'A';
		if (a != b)
			return 0;
	}
	return 1;
}

static int
is_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

/* HEXDIG, either case (RFC 5234 B.1). */
static int
is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	    (c >= 'a' && c <= 'f');
}

/* RFC 5321 4.1.2 (RFC 5322 3.2.3): atext, ASCII part. */
static int
is_atext(int c)
{
	return is_alnum(c) || (c > 0 && c < 0x80 &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Length of the UTF8-non-ascii character at p (RFC 3629 4, RFC 6531 3.3),
 * or 0 when the bytes are not one.  C1 controls (U+0080-U+009F) are
 * refused too: no control character may be part of an address (SPEC 4).
 */
size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	/* The rows of RFC 3629 4's UTF8-2/3/4, lead bytes in order. */
	static const struct {
		unsigned char	 first, last;	/* lead bytes */
		unsigned char	 n;		/* octets */
		unsigned char	 lo, hi;	/* second octet */
	} rows[] = {
		{ 0xc2, 0xc2, 2, 0xa0, 0xbf },	/* C1 controls */
		{ 0xc3, 0xdf, 2, 0x80, 0xbf },
		{ 0xe0, 0xe0, 3, 0xa0, 0xbf },	/* overlong */
		{ 0xe1, 0xec, 3, 0x80, 0xbf },
		{ 0xed, 0xed, 3, 0x80, 0x9f },	/* surrogates */
		{ 0xee, 0xef, 3, 0x80, 0xbf },
		{ 0xf0, 0xf0, 4, 0x90, 0xbf },	/* overlong */
		{ 0xf1, 0xf3, 4, 0x80, 0xbf },
		{ 0xf4, 0xf4, 4, 0x80, 0x8f },	/* above U+10FFFF */
	};
	size_t	 r, i;

	for (r = 0; r < nitems(rows); r++)
		if (p[0] >= rows[r].first && p[0] <= rows[r].last)
			break;
	if (r == nitems(rows) || (size_t)(end - p) < rows[r].n ||
	    p[1] < rows[r].lo || p[1] > rows[r].hi)
		return 0;
	for (i = 2; i < rows[r].n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return rows[r].n;
}

/*
 * Consume one UTF8-non-ascii character where RFC 6531 allows one.  A byte
 * >= 0x80 outside a UTF-8 transaction is noted, to answer 553 5.6.7.
 */
static int
cur_utf8(struct cursor *c)
{
	size_t	 n;

	if (c->p >= c->end || *c->p < 0x80)
		return 0;
	if (!c->utf8ok) {
		c->bad8 = 1;
		return 0;
	}
	if ((n = utf8_len(c->p, c->end)) == 0)
		return 0;
	c->p += n;
	c->nonascii = 1;
	return 1;
}

static int
cur_peek(const struct cursor *c, int ch)
{
	return c->p < c->end && *c->p == ch;
}

/* Atom = 1*atext, RFC 6531 3.3: atext =/ UTF8-non-ascii. */
static int
path_atom(struct cursor *c)
{
	const unsigned char	*start = c->p;

	for (;;) {
		if (c->p < c->end && is_atext(*c->p))
			c->p++;
		else if (!cur_utf8(c))
			break;
	}
	return c->p > start;
}

/*
 * Quoted-string = DQUOTE *QcontentSMTP DQUOTE, RFC 5321 4.1.2:
 * qtextSMTP = %d32-33 / %d35-91 / %d93-126 (=/ UTF8-non-ascii, RFC 6531),
 * quoted-pairSMTP = %d92 %d32-126.
 */
static int
path_quoted(struct cursor *c)
{
	if (!cur_peek(c, '"'))
		return 0;
	c->p++;
	for (;;) {
		if (c->p >= c->end)
			return 0;
		if (*c->p == '"') {
			c->p++;
			return 1;
		}
		if (*c->p == '\\') {
			if (c->end - c->p < 2 || c->p[1] < 32 || c->p[1] > 126)
				return 0;
			c->p += 2;
		} else if (*c->p >= 32 && *c->p <= 126)
			c->p++;
		else if (!cur_utf8(c))
			return 0;
	}
}

/* Local-part = Dot-string / Quoted-string, at most 64 octets (4.5.3.1.1). */
static int
path_local(struct cursor *c)
{
	const unsigned char	*start = c->p;

	if (cur_peek(c, '"')) {
		if (!path_quoted(c))
			return 0;
	} else {
		if (!path_atom(c))
			return 0;
		while (cur_peek(c, '.')) {
			c->p++;
			if (!path_atom(c))
				return 0;
		}
	}
	return c->p - start <= SMTP_LOCALPART_MAX;
}

/* Let-dig = ALPHA / DIGIT; RFC 6531 3.3 allows U-labels, so UTF-8 too. */
static int
path_letdig(struct cursor *c)
{
	if (c->p < c->end && is_alnum(*c->p)) {
		c->p++;
		return 1;
	}
	return cur_utf8(c);
}

/*
 * sub-domain = Let-dig [Ldh-str]: no leading or trailing hyphen, and an
 * ASCII label (an A-label too) at most 63 octets (RFC 1035 2.3.4, RFC
 * 5321 4.5.3.1.2).  A U-label's limit is that of its A-label (RFC 5890
 * 2.3.2.1), which only a Punycode encoder could tell: the Domain limit
 * bounds it here.
 */
static int
path_subdomain(struct cursor *c)
{
	const unsigned char	*start = c->p, *q;
	int			 hyphen = 0;

	if (!path_letdig(c))
		return 0;
	for (;;) {
		if (cur_peek(c, '-')) {
			c->p++;
			hyphen = 1;
		} else if (path_letdig(c))
			hyphen = 0;
		else
			break;
	}
	if (hyphen)
		return 0;
	for (q = start; q < c->p; q++)
		if (*q >= 0x80)
			return 1;
	return c->p - start <= DOMAIN_LABEL_MAX;
}

/* Domain = sub-domain *("." sub-domain), at most 255 octets (4.5.3.1.2). */
static int
path_domain(struct cursor *c)
{
	const unsigned char	*start = c->p;

	if (!path_subdomain(c))
		return 0;
	while (cur_peek(c, '.')) {
		c->p++;
		if (!path_subdomain(c))
			return 0;
	}
	return c->p - start <= SMTP_DOMAIN_MAX;
}

/* IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT <= 255. */
static int
path_ipv4(const unsigned char *p, size_t len)
{
	size_t	 i = 0, digits;
	int	 part, value;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || p[i] != '.')
				return 0;
			i++;
		}
		value = 0;
		for (digits = 0; i < len && p[i] >= '0' && p[i] <= '9' &&
		    digits < 3; digits++, i++)
			value = value * 10 + (p[i] - '0');
		if (digits == 0 || value > 255)
			return 0;
	}
	return i == len;
}

/*
 * IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp, RFC 5321
 * 4.1.3.  Stricter than inet_pton(3): "::" stands for at least two
 * groups, so at most 6 groups (4 before an IPv4 tail) go besides it, and
 * the IPv4 tail is an IPv4-address-literal (Snum: leading zeros are fine).
 */
static int
path_ipv6(const unsigned char *p, size_t len)
{
	size_t	 i = 0, groups = 0, digits;
	int	 comp = 0;

	if (len >= 2 && p[0] == ':' && p[1] == ':') {
		comp = 1;
		i = 2;
	}
	while (i < len) {
		digits = hex_run(p + i, len - i);
		/* IPv6v4-full: 6 groups, IPv6v4-comp: at most 4 and "::". */
		if (i + digits < len && p[i + digits] == '.')
			return path_ipv4(p + i, len - i) &&
			    (comp ? groups <= 4 : groups == 6);
		if (digits == 0 || digits > 4)
			return 0;
		groups++;
		if ((i += digits) == len)
			break;
		if (!ipv6_colons(p, len, &i, &comp))
			return 0;
	}
	return comp ? groups <= 6 : groups == 8;
}

/* How many hex digits p starts with. */
static size_t
hex_run(const unsigned char *p, size_t len)
{
	size_t	 n;

	for (n = 0; n < len && is_hex(p[n]); n++)
		;
	return n;
}

/*
 * Step over the ":" after a group at p[*i], or the one "::" an address
 * may have (noted in *comp); 0 when it is neither, or a trailing ":".
 */
static int
ipv6_colons(const unsigned char *p, size_t len, size_t *i, int *comp)
{
	if (p[(*i)++] != ':' || *i == len)
		return 0;
	if (p[*i] == ':') {
		if (*comp)
			return 0;
		*comp = 1;
		(*i)++;
	}
	return 1;
}

/* Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig */
static int
path_ldh(const unsigned char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || !is_alnum(p[len - 1]))
		return 0;
	for (i = 0; i < len; i++)
		if (!is_alnum(p[i]) && p[i] != '-')
			return 0;
	return 1;
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]", RFC 5321 4.1.3.  Every byte inside is
 * dcontent (%d33-90 / %d94-126), so no UTF-8 here even with SMTPUTF8.
 */
static int
path_literal(struct cursor *c)
{
	const unsigned char	*start, *colon = NULL;
	size_t			 len;

	if (!cur_peek(c, '['))
		return 0;
	start = ++c->p;
	for (;;) {
		if (c->p >= c->end)
			return 0;
		if (*c->p == ']')
			break;
		if (*c->p < 33 || *c->p > 126 || *c->p == '[' ||
		    *c->p == '\\')
			return 0;
		if (*c->p == ':' && colon == NULL)
			colon = c->p;
		c->p++;
	}
	len = (size_t)(c->p - start);
	c->p++;
	if (colon == NULL)
		return path_ipv4(start, len);
	/* Standardized-tag ":" ...; "IPv6" is the one tag we know. */
	if (ascii_ieq(start, (size_t)(colon - start), "IPv6"))
		return path_ipv6(colon + 1, len - (size_t)(colon - start) - 1);
	return path_ldh(start, (size_t)(colon - start)) &&
	    (size_t)(colon - start) + 1 < len;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) */
static int
path_mailbox(struct cursor *c)
{
	if (!path_local(c) || !cur_peek(c, '@'))
		return 0;
	c->p++;
	if (cur_peek(c, '['))
		return path_literal(c);
	return path_domain(c);
}

/*
 * A-d-l = At-domain *( "," At-domain ) ":", At-domain = "@" Domain.  The
 * source route is parsed and dropped (RFC 5321 4.1.1.3, appendix C).
 */
static int
path_route(struct cursor *c)
{
	for (;;) {
		if (!cur_peek(c, '@'))
			return 0;
		c->p++;
		if (!path_domain(c))
			return 0;
		if (cur_peek(c, ':')) {
			c->p++;
			return 1;
		}
		if (!cur_peek(c, ','))
			return 0;
		c->p++;
	}
}

/* "postmaster" alone, ended by the byte stop (or the end of the bytes). */
static int
path_postmaster(const struct cursor *c, int stop)
{
	size_t	 n = sizeof("postmaster") - 1;

	if ((size_t)(c->end - c->p) < n || !ascii_ieq(c->p, n, "postmaster"))
		return 0;
	if (stop == '\0')
		return c->p + n == c->end;
	return c->p + n < c->end && c->p[n] == stop;
}

/*
 * What is inside the brackets (or the whole unbracketed path): an
 * optional source route and a Mailbox, or for RCPT "postmaster" alone
 * (RFC 5321 4.1.1.3).  stop is '>' inside brackets, else '\0' for the
 * end of the bytes.  *mbox gets the start of what is kept.
 */
static int
path_inner(enum addr_verb verb, struct cursor *c, int stop,
    const unsigned char **mbox)
{
	*mbox = c->p;
	if (verb == ADDR_RCPT && path_postmaster(c, stop)) {
		c->p += sizeof("postmaster") - 1;
		return 1;
	}
	if (cur_peek(c, '@')) {
		if (!path_route(c))
			return 0;
		*mbox = c->p;
	}
	return path_mailbox(c);
}

/* A control character makes a line a syntax error, 501 (SPEC 4). */
static int
has_control(const unsigned char *p, const unsigned char *end)
{
	for (; p < end; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 1;
	return 0;
}

/*
 * Reverse-path / Forward-path, RFC 5321 4.1.2: "<" path ">", "<>" for
 * MAIL, or (SPEC 4) a path without brackets that ends at the first space.
 * At most 256 octets with the brackets (4.5.3.1.3).
 */
static int
addr_path(enum addr_verb verb, struct cursor *c, struct addr_result *res)
{
	const unsigned char	*start = c->p, *end = c->end, *mbox, *mend;
	size_t			 pathlen;
	int			 ok;

	mbox = c->p;
	if (cur_peek(c, '<')) {
		ok = path_bracketed(verb, c, &mbox, &mend);
		pathlen = (size_t)(c->p - start);
	} else {
		ok = path_bare(verb, c, &mbox, &mend);
		pathlen = (size_t)(c->p - start) + 2;	/* as if bracketed */
	}
	ok = ok && (c->p == c->end || *c->p == ' ') &&
	    pathlen <= SMTP_PATH_MAX;
	if (!ok || (size_t)(mend - mbox) >= sizeof(res->path))
		return addr_fail(res, c->bad8 ? R_NEED_UTF8 :
		    verb == ADDR_MAIL ? R_MAIL_ADDR :
		    has_control(start, end) ? R_RCPT_CTRL : R_RCPT_ADDR);
	memcpy(res->path, mbox, (size_t)(mend - mbox));
	res->path[mend - mbox] = '\0';
	return 0;
}

/* "<" path ">", or "<>" for MAIL; the mailbox is *mbox up to *mend. */
static int
path_bracketed(enum addr_verb verb, struct cursor *c,
    const unsigned char **mbox, const unsigned char **mend)
{
	int	 ok;

	c->p++;
	if (cur_peek(c, '>') && verb == ADDR_MAIL) {
		*mbox = *mend = c->p++;
		return 1;
	}
	ok = path_inner(verb, c, '>', mbox);
	*mend = c->p;
	if (!ok || !cur_peek(c, '>'))
		return 0;
	c->p++;
	return 1;
}

/* A path without brackets (SPEC 4): it ends at the first space. */
static int
path_bare(enum addr_verb verb, struct cursor *c,
    const unsigned char **mbox, const unsigned char **mend)
{
	const unsigned char	*end = c->end, *space;
	int			 ok;

	if ((space = memchr(c->p, ' ', (size_t)(c->end - c->p))) != NULL)
		c->end = space;
	ok = path_inner(verb, c, '\0', mbox) && c->p == c->end;
	c->end = end;
	*mend = c->p;
	return ok;
}

/* Does the parameter list carry the SMTPUTF8 keyword (RFC 6531 3.4)? */
static int
has_smtputf8(const unsigned char *p, const unsigned char *end)
{
	const unsigned char	*tok;

	while (p < end) {
		if (*p == ' ') {
			p++;
			continue;
		}
		for (tok = p; p < end && *p != ' '; p++)
			;
		if (ascii_ieq(tok, (size_t)(p - tok), "SMTPUTF8"))
			return 1;
	}
	return 0;
}

/*
 * xtext, RFC 3461 4: xchar is %d33-42 / %d44-60 / %d62-126, hexchar is
 * "+" and two upper-case hex digits.  With utf8, UTF8-non-ascii too, as
 * utf-8-addr-unitext in RFC 6533 3 allows.
 */
static int
xtext_ok(const unsigned char *p, size_t len, int utf8)
{
	return len > 0 && value_chars_ok(p, p + len, utf8, 1);
}

/*
 * Are p up to end all esmtp-value characters, %d33-60 / %d62-126 (RFC
 * 5321 4.1.2), UTF8-non-ascii among them when utf8 (RFC 6531 3.3)?  With
 * xtext, "+" starts a hexchar: "+" and two upper-case hex digits.
 */
static int
value_chars_ok(const unsigned char *p, const unsigned char *end, int utf8,
    int xtext)
{
	size_t	 n;

	for (; p < end; p += n) {
		if (xtext && *p == '+')
			n = end - p >= 3 && is_upper_hex(p[1]) &&
			    is_upper_hex(p[2]) ? 3 : 0;
		else if (*p >= 0x80)
			n = utf8 ? utf8_len(p, end) : 0;
		else
			n = *p >= 33 && *p <= 126 && *p != '=';
		if (n == 0)
			return 0;
	}
	return 1;
}

/* A hex digit as xtext writes it, RFC 3461 4: 0-9, A-F. */
static int
is_upper_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* RFC 1870 6: SIZE=1*20DIGIT, refused at once when above our limit. */
static const char *
param_size(const struct param_arg *a)
{
	unsigned long long	 v = 0;
	size_t			 i;
	int			 big = 0;

	if (a->val == NULL || a->len > SIZE_DIGITS_MAX)
		return R_BAD_SIZE;
	for (i = 0; i < a->len; i++) {
		if (a->val[i] < '0' || a->val[i] > '9')
			return R_BAD_SIZE;
		if (v > (~0ULL - 9) / 10)
			big = 1;
		else
			v = v * 10 + (unsigned)(a->val[i] - '0');
	}
	if (a->lim->size_limit > 0 &&
	    (big || v > (unsigned long long)a->lim->size_limit))
		return R_SIZE_LIMIT;
	return NULL;
}

/* RFC 3030 3: BODY=BINARYMIME, needs BDAT; not with --7bit (SPEC 11). */
static const char *
param_binarymime(const struct param_arg *a)
{
	if (a->lim->sevenbit)
		return R_NO_BINARYMIME;
	a->res->binarymime = 1;
	return NULL;
}

/* RFC 6152 2: BODY=7BIT / 8BITMIME; refused with --7bit (SPEC 2). */
static const char *
param_body(const struct param_arg *a)
{
	if (a->val == NULL)
		return R_BAD_BODY;
	if (ascii_ieq(a->val, a->len, "7BIT"))
		return NULL;
	if (ascii_ieq(a->val, a->len, "BINARYMIME"))
		return param_binarymime(a);
	if (!ascii_ieq(a->val, a->len, "8BITMIME"))
		return R_BAD_BODY;
	return a->lim->sevenbit ? R_NO_8BITMIME : NULL;
}

/* RFC 6531 3.4: SMTPUTF8 has no value; only with --smtputf8 (SPEC 4). */
static const char *
param_smtputf8(const struct param_arg *a)
{
	if (!a->lim->smtputf8)
		return R_NO_SMTPUTF8;
	if (a->val != NULL)
		return R_BAD_SMTPUTF8;
	a->res->utf8 = 1;
	return NULL;
}

/*
 * RFC 8689 4: REQUIRETLS, offered (and so taken) only under TLS (SPEC
 * 8); the handler is then bound to relay it over verified TLS only.
 */
static const char *
param_requiretls(const struct param_arg *a)
{
	if (!a->lim->tls)
		return R_NO_REQUIRETLS;
	if (a->val != NULL)
		return R_BAD_REQUIRETLS;
	a->res->requiretls = 1;
	return NULL;
}

/* RFC 4954 5: AUTH=xtext, or AUTH=<> (which is xtext as well). */
static const char *
param_auth(const struct param_arg *a)
{
	if (a->val == NULL || !xtext_ok(a->val, a->len, 0))
		return R_BAD_AUTH;
	return NULL;
}

/* RFC 3461 4.3: RET=FULL / HDRS. */
static const char *
param_ret(const struct param_arg *a)
{
	if (a->val == NULL || (!ascii_ieq(a->val, a->len, "FULL") &&
	    !ascii_ieq(a->val, a->len, "HDRS")))
		return R_BAD_RET;
	return NULL;
}

/* RFC 3461 4.4: ENVID=xtext. */
static const char *
param_envid(const struct param_arg *a)
{
	if (a->val == NULL || !xtext_ok(a->val, a->len, 0))
		return R_BAD_ENVID;
	return NULL;
}

/*
 * RFC 3461 4.1: NOTIFY=NEVER, or a comma list of SUCCESS, FAILURE and
 * DELAY, each at most once.
 */
static const char *
param_notify(const struct param_arg *a)
{
	static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE",
	    "DELAY" };
	const unsigned char	*p, *end, *comma;
	unsigned int		 seen = 0;
	size_t			 i;

	if (a->val == NULL)
		return R_BAD_NOTIFY;
	p = a->val;
	end = a->val + a->len;
	for (;;) {
		if ((comma = memchr(p, ',', (size_t)(end - p))) == NULL)
			comma = end;
		for (i = 0; i < nitems(words); i++)
			if (ascii_ieq(p, (size_t)(comma - p), words[i]))
				break;
		if (i == nitems(words) || (seen & (1U << i)))
			return R_BAD_NOTIFY;
		seen |= 1U << i;
		if (comma == end)
			break;
		p = comma + 1;
	}
	if ((seen & 1U) && seen != 1U)
		return R_BAD_NOTIFY;	/* NEVER with anything else */
	return NULL;
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext, addr-type an atom. */
static const char *
param_orcpt(const struct param_arg *a)
{
	const unsigned char	*semi;
	size_t			 i, n;

	if (a->val == NULL ||
	    (semi = memchr(a->val, ';', a->len)) == NULL || semi == a->val)
		return R_BAD_ORCPT;
	n = (size_t)(semi - a->val);
	for (i = 0; i < n; i++)
		if (!is_atext(a->val[i]))
			return R_BAD_ORCPT;
	if (!xtext_ok(semi + 1, a->len - n - 1, a->utf8txn))
		return R_BAD_ORCPT;
	return NULL;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), RFC 5321 4.1.2 */
static int
param_keyword_ok(const unsigned char *p, size_t len)
{
	size_t	 i;

	if (len == 0 || !is_alnum(p[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!is_alnum(p[i]) && p[i] != '-')
			return 0;
	return 1;
}

/*
 * esmtp-value = 1*(%d33-60 / %d62-126), RFC 5321 4.1.2; RFC 6531 3.3
 * adds UTF8-non-ascii in a UTF-8 transaction.
 */
static int
param_value_ok(const unsigned char *p, size_t len, int utf8)
{
	return len > 0 && value_chars_ok(p, p + len, utf8, 0);
}

/* Add "KEYWORD[=value]" to res->options, keyword upper-cased (SPEC 5.1). */
static int
param_append(struct addr_result *res, size_t *olen, const unsigned char *kw,
    size_t kwlen, const unsigned char *val, size_t vlen)
{
	size_t	 need, i;
	char	*o;

	need = (*olen > 0) + kwlen + (val != NULL ? 1 + vlen : 0);
	if (need >= sizeof(res->options) - *olen)
		return -1;
	o = res->options + *olen;
	if (*olen > 0)
		*o++ = ' ';
	for (i = 0; i < kwlen; i++)
		*o++ = kw[i] >= 'a' && kw[i] <= 'z' ?
		    (char)(kw[i] - ('a' - 'A')) : (char)kw[i];
	if (val != NULL) {
		*o++ = '=';
		memcpy(o, val, vlen);
		o += vlen;
	}
	*o = '\0';
	*olen += need;
	return 0;
}

/* One esmtp-param = esmtp-keyword ["=" esmtp-value]. */
static int
param_one(enum addr_verb verb, const unsigned char *tok, size_t len,
    const struct addr_limits *lim, int utf8txn, unsigned int *seen,
    struct addr_result *res, size_t *olen)
{
	struct param_arg	 a = { NULL, 0, utf8txn, lim, res };
	const unsigned char	*eq;
	const char		*reply;
	size_t			 kwlen = len, i;

	if ((eq = memchr(tok, '=', len)) != NULL) {
		kwlen = (size_t)(eq - tok);
		a.val = eq + 1;
		a.len = len - kwlen - 1;
		if (!param_value_ok(a.val, a.len, utf8txn))
			return addr_fail(res, R_PARAM_SYNTAX);
	}
	if (!param_keyword_ok(tok, kwlen))
		return addr_fail(res, R_PARAM_SYNTAX);
	for (i = 0; i < NPARAMS; i++)
		if (ascii_ieq(tok, kwlen, addr_params_tab[i].name))
			break;
	if (i == NPARAMS || addr_params_tab[i].verb != verb)
		return addr_fail(res, R_PARAM_UNSUPP);
	if (*seen & (1U << i))
		return addr_fail(res, R_PARAM_DUP);
	*seen |= 1U << i;
	if ((reply = addr_params_tab[i].check(&a)) != NULL)
		return addr_fail(res, reply);
	if (param_append(res, olen, tok, kwlen, a.val, a.len) == -1)
		return addr_fail(res, R_PARAM_LONG);
	return 0;
}

/* Mail-parameters / Rcpt-parameters: esmtp-params split by spaces. */
static int
addr_params(enum addr_verb verb, struct cursor *c,
    const struct addr_limits *lim, int utf8txn, struct addr_result *res)
{
	const unsigned char	*tok;
	unsigned int		 seen = 0;
	size_t			 olen = 0;

	while (c->p < c->end) {
		if (*c->p == ' ') {
			c->p++;
			continue;
		}
		for (tok = c->p; c->p < c->end && *c->p != ' '; c->p++)
			;
		if (param_one(verb, tok, (size_t)(c->p - tok), lim, utf8txn,
		    &seen, res, &olen) == -1)
			return -1;
	}
	return 0;
}

/*
 * "FROM:" or "TO:" (prefix), with spaces before and after it (SPEC 4),
 * and then something: 0, or -1.
 */
static int
cur_prefix(struct cursor *c, const char *prefix)
{
	size_t	 plen = strlen(prefix);

	while (cur_peek(c, ' '))
		c->p++;
	if ((size_t)(c->end - c->p) < plen || !ascii_ieq(c->p, plen, prefix))
		return -1;
	c->p += plen;
	while (cur_peek(c, ' '))
		c->p++;
	return c->p == c->end ? -1 : 0;
}

/*
 * Parse "FROM:<path> params" or "TO:<path> params" (RFC 5321 4.1.1.2,
 * 4.1.1.3).  Returns 0 with res->path and res->options filled, or -1 with
 * res->reply (and res->code) set to the reply to send.
 */
int
addr_parse(enum addr_verb verb, const char *arg, size_t len,
    const struct addr_limits *lim, struct addr_result *res)
{
	const char	*syntax = verb == ADDR_MAIL ? R_MAIL_SYNTAX :
			    R_RCPT_SYNTAX;
	struct cursor	 c;
	int		 utf8txn;

	memset(res, 0, sizeof(*res));
	if (arg == NULL)
		return addr_fail(res, syntax);
	c.p = (const unsigned char *)arg;
	c.end = c.p + len;
	if (cur_prefix(&c, verb == ADDR_MAIL ? "FROM:" : "TO:") == -1)
		return addr_fail(res, syntax);

	/*
	 * RFC 6531 3.4: UTF-8 is allowed in addresses only in a transaction
	 * whose MAIL carries SMTPUTF8.  For MAIL, that parameter comes after
	 * the path: parse the path allowing UTF-8 if we could ever accept
	 * it, then look for the keyword.
	 */
	c.utf8ok = verb == ADDR_MAIL ? lim->smtputf8 : lim->utf8_txn;
	c.nonascii = c.bad8 = 0;
	if (addr_path(verb, &c, res) == -1)
		return -1;
	utf8txn = verb == ADDR_MAIL ? lim->smtputf8 &&
	    has_smtputf8(c.p, c.end) : lim->utf8_txn;
	if (c.nonascii && !utf8txn)
		return addr_fail(res, R_NEED_UTF8);
	return addr_params(verb, &c, lim, utf8txn, res);
}
