/*
 * libFuzzer harness for addr_parse(): arbitrary bytes as the argument of
 * MAIL or RCPT, under limits chosen by the first input byte.  Besides the
 * sanitizers, it checks what the session relies on: a well-formed reply
 * on failure; on success a clean path and option list, the same result
 * when the normalised "<path> options" is parsed again, ASCII domain
 * labels of at most 63 octets, and IPv6 literals that inet_pton(3)
 * accepts too (RFC 5321's grammar is the stricter one).
 *
 * Build and run from the top of the tree:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *	    $(pkg-config --cflags libbsd-overlay) \
 *	    tests/fuzz/fuzz_addr.c src/addr.c -o fuzz_addr
 *	./fuzz_addr -max_total_time=60 corpus/
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	check(int, const char *);
static void	check_failure(const struct addr_result *);
static void	check_clean(const char *, size_t, int);
static void	check_success(enum addr_verb, const struct addr_limits *,
		    const struct addr_result *);
static void	check_domain(const char *);
static void	check_again(enum addr_verb, const struct addr_limits *,
		    const struct addr_result *);

static void
check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_addr: invariant broken: %s\n", what);
		abort();
	}
}

/* "DDD X.Y.Z text": one of the codes addr_parse may give, no CR or LF. */
static void
check_failure(const struct addr_result *res)
{
	const char	*r = res->reply;

	check(r != NULL, "failure without reply");
	check(res->code == 501 || res->code == 552 || res->code == 553 ||
	    res->code == 555, "unexpected reply code");
	check(atoi(r) == res->code && r[3] == ' ' && r[4] == r[0] &&
	    r[5] == '.', "reply text does not match code");
	check(strpbrk(r, "\r\n") == NULL, "CR or LF in reply");
	check(strlen(r) + 2 <= SMTP_REPLYLINE_MAX, "reply too long");
}

/* NUL-terminated inside its buffer, no control characters. */
static void
check_clean(const char *s, size_t size, int eightbit)
{
	const unsigned char	*p;
	const char		*nul;

	nul = memchr(s, '\0', size);
	check(nul != NULL, "result not NUL-terminated");
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		check(*p >= 0x20 && *p != 0x7f, "control character in result");
		check(*p < 0x80 || eightbit, "8-bit byte outside UTF-8 txn");
	}
}

static void
check_success(enum addr_verb verb, const struct addr_limits *lim,
    const struct addr_result *res)
{
	size_t	 olen;
	int	 utf8txn;

	utf8txn = verb == ADDR_MAIL ? lim->smtputf8 && res->utf8 :
	    lim->utf8_txn;
	check(res->reply == NULL, "success with a reply");
	check(verb == ADDR_MAIL || !res->utf8, "SMTPUTF8 on RCPT");
	check(!res->utf8 || lim->smtputf8, "SMTPUTF8 without --smtputf8");
	check_clean(res->path, sizeof(res->path), utf8txn);
	check_clean(res->options, sizeof(res->options), utf8txn);
	check(strlen(res->path) + 2 <= SMTP_PATH_MAX, "path too long");
	check(verb == ADDR_MAIL || res->path[0] != '\0', "RCPT TO:<>");
	olen = strlen(res->options);
	check(olen == 0 || (res->options[0] != ' ' &&
	    res->options[olen - 1] != ' '), "stray space in options");
	check(strstr(res->options, "  ") == NULL, "double space in options");
	check_domain(res->path);
}

/*
 * The domain (the literal, else what follows the last "@"): ASCII labels of at most 63 octets; an
 * IPv6 literal inet_pton(3) takes once leading zeros are cut from the
 * IPv4 tail's numbers (Snum allows them, inet_pton does not).
 */
static void
check_domain(const char *path)
{
	const char	*d, *q, *close, *last;
	char		 v6[SMTP_PATH_MAX], *w;
	struct in6_addr	 in6;
	size_t		 label = 0;
	int		 ascii = 1, tail;

	/* dcontent may hold "@" but never "[". */
	if ((d = strrchr(path, '[')) == NULL && (d = strrchr(path, '@')) ==
	    NULL)
		return;		/* postmaster */
	if (*d == '@')
		d++;
	if (strncasecmp(d, "[IPv6:", 6) == 0) {
		close = strchr(d, ']');
		check(close != NULL && close[1] == '\0', "bad literal");
		/* The IPv4 tail, if any, follows the last ":". */
		last = memrchr(d, ':', (size_t)(close - d));
		tail = memchr(last, '.', (size_t)(close - last)) != NULL;
		for (q = d + 6, w = v6; q < close; q++) {
			/* Drop a leading zero of an IPv4 tail's number. */
			if (tail && q > last && *q == '0' && q + 1 < close &&
			    q[1] >= '0' && q[1] <= '9' &&
			    (w == v6 || w[-1] == '.' || w[-1] == ':'))
				continue;
			*w++ = *q;
		}
		*w = '\0';
		check(inet_pton(AF_INET6, v6, &in6) == 1,
		    "IPv6 literal inet_pton refuses");
		return;
	}
	if (*d == '[')
		return;
	for (q = d;; q++) {
		if (*q == '.' || *q == '\0') {
			check(!ascii || label <= 63, "label over 63 octets");
			if (*q == '\0')
				break;
			label = 0;
			ascii = 1;
			continue;
		}
		label++;
		if ((unsigned char)*q >= 0x80)
			ascii = 0;
	}
}

/* The normalised form must parse to the same result. */
static void
check_again(enum addr_verb verb, const struct addr_limits *lim,
    const struct addr_result *res)
{
	static char		 line[SMTP_PATH_MAX + SMTP_MAILLINE_MAX + 16];
	static struct addr_result again;
	int			 n;

	n = snprintf(line, sizeof(line), "%s<%s>%s%s",
	    verb == ADDR_MAIL ? "FROM:" : "TO:", res->path,
	    res->options[0] != '\0' ? " " : "", res->options);
	check(n > 0 && (size_t)n < sizeof(line), "normalised line too long");
	check(addr_parse(verb, line, (size_t)n, lim, &again) == 0,
	    "normalised form refused");
	check(strcmp(again.path, res->path) == 0, "path changed");
	check(strcmp(again.options, res->options) == 0, "options changed");
	check(again.utf8 == res->utf8, "utf8 changed");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long long	 limits[] = { 0, 1, 1000, 33554432 };
	static struct addr_result res;
	struct addr_limits	 lim;
	enum addr_verb		 verb;
	char			*arg;
	int			 r;

	if (size == 0)
		return 0;
	verb = (data[0] & 1) ? ADDR_RCPT : ADDR_MAIL;
	lim.smtputf8 = (data[0] >> 1) & 1;
	lim.sevenbit = (data[0] >> 2) & 1;
	lim.utf8_txn = (data[0] >> 3) & 1;
	lim.size_limit = limits[(data[0] >> 4) & 3];

	/* An exact-size copy, so that any read past len is caught. */
	if ((arg = malloc(size - 1 > 0 ? size - 1 : 1)) == NULL)
		abort();
	memcpy(arg, data + 1, size - 1);
	r = addr_parse(verb, arg, size - 1, &lim, &res);
	free(arg);

	check(r == 0 || r == -1, "bad return value");
	if (r == -1)
		check_failure(&res);
	else {
		check_success(verb, &lim, &res);
		check_again(verb, &lim, &res);
	}
	return 0;
}
