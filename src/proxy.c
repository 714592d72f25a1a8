/*
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2
 * binary), SPEC 10.1: a load balancer in front tells us who the client
 * is.  proxy_need() and proxy_parse() are pure, so the reader can take
 * exactly the header and not one byte more (on port 465 a TLS ClientHello
 * follows it at once), and the fuzzer can drive them; proxy_read() is
 * the I/O around them: one peek and one read on a socket when the header
 * came in one segment, else exact reads.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define V1_PREFIX	"PROXY "
#define V1_PREFIX_LEN	6
#define V2_SIG		"\r\n\r\n\0\r\nQUIT\n"
#define V2_SIG_LEN	12
#define V2_HEADER_LEN	16	/* signature, version/command, family, length */
#define V2_INET_LEN	12	/* two IPv4 addresses, two ports */
#define V2_INET6_LEN	36	/* two IPv6 addresses, two ports */

static int	 v1_parse(const char *, size_t, struct proxy_result *);
static int	 v1_word(const char **, const char *, char *, size_t);
static int	 v1_port(const char *, char *, size_t);
static int	 v1_addresses(int, const char *, const char *,
		    struct proxy_result *);
static int	 v2_parse(const unsigned char *, size_t,
		    struct proxy_result *);
static int	 v2_addresses(int, const unsigned char *,
		    struct proxy_result *);
static ssize_t	 read_some(unsigned char *, size_t, long long);
static ssize_t	 peek_header(unsigned char *, size_t, long long);

/*
 * How many more octets the header needs, given the first len of them: 0
 * when it is complete, -1 when it cannot be a valid header.  Never more
 * than the header still has, so a reader that asks for exactly this many
 * never takes a byte that follows it.
 */
ssize_t
proxy_need(const unsigned char *buf, size_t len)
{
	size_t	 n;

	if (len < V1_PREFIX_LEN)
		return (ssize_t)(V1_PREFIX_LEN - len);	/* both are longer */
	if (memcmp(buf, V1_PREFIX, V1_PREFIX_LEN) == 0) {
		if (buf[len - 1] == '\n')
			return 0;
		return len < PROXY_V1_MAX ? 1 : -1;	/* one at a time */
	}
	n = len < V2_SIG_LEN ? len : V2_SIG_LEN;
	if (memcmp(buf, V2_SIG, n) != 0)
		return -1;
	if (len < V2_HEADER_LEN)
		return (ssize_t)(V2_HEADER_LEN - len);
	n = V2_HEADER_LEN + ((size_t)buf[14] << 8 | buf[15]);
	return len < n ? (ssize_t)(n - len) : 0;
}

/* A complete header (proxy_need() said 0): 0, or -1 if it is malformed. */
int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	memset(r, 0, sizeof(*r));
	if (len >= V1_PREFIX_LEN && memcmp(buf, V1_PREFIX, V1_PREFIX_LEN) == 0)
		return v1_parse((const char *)buf, len, r);
	if (len >= V2_HEADER_LEN && memcmp(buf, V2_SIG, V2_SIG_LEN) == 0)
		return v2_parse(buf, len, r);
	return -1;
}

/* One space-separated word of a v1 line into dst; -1 if too long. */
static int
v1_word(const char **p, const char *end, char *dst, size_t dlen)
{
	const char	*sp;
	size_t		 n;

	if ((sp = memchr(*p, ' ', (size_t)(end - *p))) == NULL)
		sp = end;
	n = (size_t)(sp - *p);
	if (n == 0 || n >= dlen)
		return -1;
	memcpy(dst, *p, n);
	dst[n] = '\0';
	*p = sp < end ? sp + 1 : end;
	return 0;
}

/* A v1 port: 0 to 65535, decimal, no leading zeros; copied as it is. */
static int
v1_port(const char *s, char *dst, size_t dlen)
{
	size_t	 n = strlen(s);

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1) ||
	    strspn(s, "0123456789") != n || (n == 5 && strcmp(s, "65535") > 0))
		return -1;
	(void)strlcpy(dst, s, dlen);
	return 0;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", or "PROXY UNKNOWN ...". */
static int
v1_parse(const char *buf, size_t len, struct proxy_result *r)
{
	const char	*p = buf + V1_PREFIX_LEN, *end;
	char		 proto[8];
	int		 af;

	if (len < V1_PREFIX_LEN + 2 || buf[len - 2] != '\r')
		return -1;
	end = buf + len - 2;
	if (memchr(buf, '\0', len) != NULL || v1_word(&p, end, proto,
	    sizeof(proto)) == -1)
		return -1;
	if (strcmp(proto, "UNKNOWN") == 0)
		return 0;			/* keep the socket's addresses */
	if (end[-1] == ' ')
		return -1;	/* v1_word() would take "25 " as "25" */
	if (strcmp(proto, "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		af = AF_INET6;
	else
		return -1;
	return v1_addresses(af, p, end, r);
}

/* "SRC DST SPORT DPORT" of family af, p up to end, nothing after. */
static int
v1_addresses(int af, const char *p, const char *end, struct proxy_result *r)
{
	char		 port[8];
	unsigned char	 a[sizeof(struct in6_addr)];

	if (v1_word(&p, end, r->remote_addr, sizeof(r->remote_addr)) == -1 ||
	    inet_pton(af, r->remote_addr, a) != 1 ||
	    v1_word(&p, end, r->local_addr, sizeof(r->local_addr)) == -1 ||
	    inet_pton(af, r->local_addr, a) != 1 ||
	    v1_word(&p, end, port, sizeof(port)) == -1 ||
	    v1_port(port, r->remote_port, sizeof(r->remote_port)) == -1 ||
	    v1_word(&p, end, port, sizeof(port)) == -1 ||
	    v1_port(port, r->local_port, sizeof(r->local_port)) == -1 ||
	    p != end)
		return -1;
	r->addresses = 1;
	return 0;
}

/*
 * Version 2: LOCAL, or PROXY over INET/INET6; AF_UNSPEC and AF_UNIX keep
 * ours.  HAProxy's spec (2.2) defines 0x00 and family x stream (0x11,
 * 0x21, 0x31) or datagram (0x12, 0x22, 0x32) and has receivers reject
 * every other value; a datagram transport is no SMTP client either.
 */
static int
v2_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	size_t			 alen = len - V2_HEADER_LEN;
	int			 af, cmd = buf[12] & 0x0f, fam = buf[13] >> 4;

	if (buf[12] >> 4 != 2 || cmd > 1)
		return -1;
	if (cmd == 0)
		return 0;		/* LOCAL: keep ours, whatever follows */
	if (buf[13] != 0x00 && buf[13] != 0x11 && buf[13] != 0x21 &&
	    buf[13] != 0x31)
		return -1;
	if (fam == 0 || fam == 3)
		return 0;		/* AF_UNSPEC, AF_UNIX: keep ours */
	if (fam == 1 && alen >= V2_INET_LEN)
		af = AF_INET;
	else if (fam == 2 && alen >= V2_INET6_LEN)
		af = AF_INET6;
	else
		return -1;
	return v2_addresses(af, buf + V2_HEADER_LEN, r);
}

/* The source and destination of family af at a; TLVs after are skipped. */
static int
v2_addresses(int af, const unsigned char *a, struct proxy_result *r)
{
	if (inet_ntop(af, a, r->remote_addr, sizeof(r->remote_addr)) == NULL)
		return -1;
	a += af == AF_INET ? 4 : 16;
	if (inet_ntop(af, a, r->local_addr, sizeof(r->local_addr)) == NULL)
		return -1;
	a += af == AF_INET ? 4 : 16;
	(void)snprintf(r->remote_port, sizeof(r->remote_port), "%u",
	    (unsigned)a[0] << 8 | a[1]);
	(void)snprintf(r->local_port, sizeof(r->local_port), "%u",
	    (unsigned)a[2] << 8 | a[3]);
	r->addresses = 1;
	return 0;
}

/* Up to want octets of fd 0 before the deadline: n, 0 at EOF, -1 else. */
static ssize_t
read_some(unsigned char *p, size_t want, long long deadline)
{
	ssize_t	 n;

	for (;;) {
		if (!conn_wait_input(deadline))
			return -1;
		n = read(0, p, want);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n;
	}
}

/*
 * On a socket, the header usually arrives in one segment (HAProxy sends
 * it so): peek at it, walk proxy_need() over what is there, and take
 * exactly the header in one read.  Returns its length in buf, or 0 when
 * the peek does not hold a whole header (the caller then reads it piece
 * by piece), or -1 when it cannot be one.
 */
static ssize_t
peek_header(unsigned char *buf, size_t size, long long deadline)
{
	ssize_t	 n, need;
	size_t	 len = 0;

	if (!conn_is_socket() || !conn_wait_input(deadline) ||
	    (n = recv(0, buf, size, MSG_PEEK)) <= 0)
		return 0;
	while ((need = proxy_need(buf, len)) > 0 && len + (size_t)need <=
	    (size_t)n)
		len += (size_t)need;
	if (need < 0)
		return -1;
	if (need > 0)
		return 0;
	return recv(0, buf, len, 0) == (ssize_t)len ? (ssize_t)len : -1;
}

/*
 * Read the header from fd 0 before the deadline, exactly: PROXY_OK (r
 * filled in), PROXY_EOF, or PROXY_BAD (malformed, late, or a read error).
 * What follows the header stays unread.  Of a v2 header only what holds
 * the addresses is kept; its TLVs are read and dropped in pieces.
 */
enum proxy_status
proxy_read(long long deadline, struct proxy_result *r)
{
	unsigned char	 buf[PROXY_KEEP], skip[4096];
	size_t		 len = 0, want;
	ssize_t		 need, n;

	if ((n = peek_header(buf, sizeof(buf), deadline)) == -1)
		return PROXY_BAD;
	if (n > 0)
		return proxy_parse(buf, (size_t)n, r) == -1 ? PROXY_BAD : PROXY_OK;
	while ((need = proxy_need(buf, len)) > 0 && len < sizeof(buf)) {
		want = (size_t)need < sizeof(buf) - len ?
		    (size_t)need : sizeof(buf) - len;
		if ((n = read_some(buf + len, want, deadline)) <= 0)
			return n == 0 ? PROXY_EOF : PROXY_BAD;
		len += (size_t)n;
	}
	for (; need > 0; need -= n) {
		want = (size_t)need < sizeof(skip) ? (size_t)need : sizeof(skip);
		if ((n = read_some(skip, want, deadline)) <= 0)
			return n == 0 ? PROXY_EOF : PROXY_BAD;
	}
	if (need < 0 || proxy_parse(buf, len, r) == -1)
		return PROXY_BAD;
	return PROXY_OK;
}
