/*
 * libFuzzer target for fmt.c and what spool.c builds with it: each must
 * give, byte for byte and with the same truncation, what the snprintf
 * calls it replaced gave.  The references below are those calls, kept
 * here verbatim: the queue id, the Received header, the numbers, the
 * "%.3s" reply and the "%.3f" duration of the log line.
 */
#include <sys/time.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpd-stdio.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct input {
	const uint8_t	*p;
	size_t		 len;
};

static uint64_t
take_u64(struct input *in)
{
	uint64_t	 v = 0;
	size_t		 i;

	for (i = 0; i < 8 && in->len > 0; i++, in->p++, in->len--)
		v = v << 8 | *in->p;
	return v;
}

/* The next NUL-free string of at most max bytes into dst. */
static void
take_str(struct input *in, char *dst, size_t max)
{
	size_t	 n = 0;

	while (in->len > 0 && n < max && *in->p != 0) {
		dst[n++] = (char)*in->p;
		in->p++;
		in->len--;
	}
	if (in->len > 0) {
		in->p++;
		in->len--;
	}
	dst[n] = '\0';
}

static void
same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();
}

/* fmt_* against snprintf, cut at cap bytes. */
static void
check_numbers(uint64_t v, uint64_t bits, size_t cap)
{
	char		 a[64], b[64];
	struct fmt	 f;
	double		 d;
	int		 n;

	memcpy(&d, &bits, sizeof(d));
	fmt_init(&f, a, cap);
	fmt_u(&f, v);
	fmt_mem(&f, "|", 1);
	fmt_i(&f, (long long)v);
	fmt_mem(&f, "|", 1);
	fmt_num(&f, v, 16, (int)(v % 7), 1);
	fmt_mem(&f, "|", 1);
	fmt_num(&f, v & 0xff, 16, 2, 0);
	fmt_mem(&f, "|", 1);
	fmt_fixed3(&f, d);
	(void)fmt_end(&f);
	n = snprintf(b, cap, "%llu|%lld|%0*llX|%02x|%.3f",
	    (unsigned long long)v, (long long)v, (int)(v % 7),
	    (unsigned long long)v, (unsigned int)(v & 0xff), d);
	if (n < 0 || (size_t)n != f.len || fmt_full(&f) != ((size_t)n >= cap))
		abort();
	if (cap > 0)
		same(a, strlen(a), b, strlen(b));
}

/* The reply= field of the log line, "%.3s", and a string after it. */
static void
check_strn(struct input *in, size_t cap)
{
	char		 s[8], a[16], b[16];
	struct fmt	 f;

	take_str(in, s, sizeof(s) - 1);
	fmt_init(&f, a, cap % sizeof(a));
	fmt_strn(&f, s, 3);
	fmt_str(&f, s);
	(void)fmt_end(&f);
	if ((size_t)snprintf(b, cap % sizeof(b), "%.3s%s", s, s) != f.len)
		abort();
	if (cap % sizeof(a) > 0)
		same(a, strlen(a), b, strlen(b));
}

/* spool_format_id() against spool_new_id()'s old snprintf. */
static void
check_id(uint64_t v, uint64_t w, size_t cap)
{
	char		 a[64], b[64];
	struct timeval	 tv;
	unsigned char	 r[5];

	tv.tv_sec = (time_t)(v >> 1);
	tv.tv_usec = (suseconds_t)(w % 1000000);
	memcpy(r, &w, sizeof(r));
	if (cap == 0)
		return;
	spool_format_id(a, cap, &tv, (unsigned long)(w >> 32),
	    (unsigned int)v, r);
	(void)snprintf(b, cap, "%llX%05lX.%lX.%u.%02x%02x%02x%02x%02x",
	    (unsigned long long)tv.tv_sec, (unsigned long)tv.tv_usec,
	    (unsigned long)(w >> 32), (unsigned int)v, r[0], r[1], r[2], r[3],
	    r[4]);
	same(a, strlen(a), b, strlen(b));
}

/* received_header() as it was, with snprintf. */
static size_t
old_received_header(char *dst, size_t len, const struct received_info *ri,
    time_t now)
{
	const char	*eol = ri->crlf ? "\r\n" : "\n";
	char		 date[64], addr[80] = "", forpart[SMTP_PATH_MAX + 16] = "";
	char		 tls[128] = "";
	struct tm	 tm;
	int		 n;

	(void)localtime_r(&now, &tm);
	(void)strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (ri->peer->remote_addr[0] != '\0')
		(void)snprintf(addr, sizeof(addr), " [%s]",
		    ri->peer->remote_addr);
	if (ri->single_rcpt != NULL)
		(void)snprintf(forpart, sizeof(forpart), "%s\tfor <%s>", eol,
		    ri->single_rcpt);
	if (ri->tls != NULL)
		(void)snprintf(tls, sizeof(tls), "\t(%s cipher %s)%s",
		    ri->tls->protocol, ri->tls->cipher, eol);
	n = snprintf(dst, len, "Received: from %s (%s%s)%s%s"
	    "\tby %s (smtpd-stdio) with %s id %s%s;%s%s%s%s",
	    ri->helo, ri->peer->remote_host[0] != '\0' ?
	    ri->peer->remote_host : "unknown", addr, eol, tls,
	    ri->hostname, ri->protocol, ri->id, forpart,
	    ri->single_rcpt != NULL ? " " : eol,
	    ri->single_rcpt != NULL ? "" : "\t", date, eol);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

static void
check_received(struct input *in, uint64_t v, size_t cap)
{
	static char		 a[2048], b[2048];
	char			 helo[600], host[8], proto[16], id[64];
	char			 rcpt[600];
	struct peer		 p;
	struct tls_info		 t;
	struct received_info	 ri;
	size_t			 na, nb;

	memset(&p, 0, sizeof(p));
	memset(&t, 0, sizeof(t));
	take_str(in, helo, sizeof(helo) - 1);
	take_str(in, p.remote_addr, sizeof(p.remote_addr) - 1);
	take_str(in, p.remote_host, sizeof(p.remote_host) - 1);
	take_str(in, host, sizeof(host) - 1);
	take_str(in, proto, sizeof(proto) - 1);
	take_str(in, id, sizeof(id) - 1);
	take_str(in, rcpt, sizeof(rcpt) - 1);
	take_str(in, t.protocol, sizeof(t.protocol) - 1);
	take_str(in, t.cipher, sizeof(t.cipher) - 1);
	ri.helo = helo;
	ri.peer = &p;
	ri.hostname = host;
	ri.protocol = proto;
	ri.id = id;
	ri.single_rcpt = v & 1 ? rcpt : NULL;
	ri.tls = v & 2 ? &t : NULL;
	ri.crlf = (v & 4) != 0;
	/* Now and then the same second twice: the date is cached. */
	na = received_header(a, cap, &ri, (time_t)(v >> 3 & 0xffffffffff));
	nb = old_received_header(b, cap, &ri, (time_t)(v >> 3 & 0xffffffffff));
	same(a, na, b, nb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input	 in = { data, size };
	uint64_t	 v, w;
	size_t		 cap;

	v = take_u64(&in);
	w = take_u64(&in);
	cap = (size_t)(w >> 56) % 65;
	check_numbers(v, w, cap);
	check_id(v, w, cap);
	check_strn(&in, cap);
	check_received(&in, v, (size_t)(w % 2048) + 1);
	return 0;
}
