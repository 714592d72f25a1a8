/*
 * Who is on the other end, SPEC 3: the socket on fd 0, else the UCSPI
 * variables, else systemd's REMOTE_ADDR.  No DNS lookups.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

static int	sockaddr_format(const struct sockaddr_storage *, char *, size_t,
		    char *, size_t);
static void	copy_addr(char *, size_t, const char *);
static void	copy_env_addr(char *, size_t, const char *);
static void	copy_env_port(char *, size_t, const char *);
static void	copy_env_host(char *, size_t, const char *);

/* Text form of an address; IPv4-mapped IPv6 is shown as IPv4. */
static int
sockaddr_format(const struct sockaddr_storage *ss, char *addr, size_t alen,
    char *port, size_t plen)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct in_addr			 v4;

	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		if (inet_ntop(AF_INET, &sin->sin_addr, addr, alen) == NULL)
			return -1;
		(void)snprintf(port, plen, "%u", ntohs(sin->sin_port));
		return 0;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&v4, &sin6->sin6_addr.s6_addr[12], sizeof(v4));
			if (inet_ntop(AF_INET, &v4, addr, alen) == NULL)
				return -1;
		} else if (inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
		    alen) == NULL)
			return -1;
		(void)snprintf(port, plen, "%u", ntohs(sin6->sin6_port));
		return 0;
	default:
		return -1;
	}
}

/*
 * An address, kept only when inet_pton() takes it, and written back in
 * canonical form: "cafe" or "1.2.3.4x" from a variable never reach the
 * handler or the Received header, and "::ffff:192.0.2.1" (any spelling)
 * is shown as "192.0.2.1".
 */
static void
copy_addr(char *dst, size_t len, const char *v)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;

	dst[0] = '\0';
	if (v == NULL)
		return;
	/*
	 * inet_pton() takes only the canonical dotted quad (four decimal
	 * parts, no leading zeros), so that text needs no inet_ntop().
	 */
	if (inet_pton(AF_INET, v, &a4) == 1)
		(void)strlcpy(dst, v, len);
	else if (inet_pton(AF_INET6, v, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
			(void)inet_ntop(AF_INET, &a4, dst, len);
		} else
			(void)inet_ntop(AF_INET6, &a6, dst, len);
	}
}

static void
copy_env_addr(char *dst, size_t len, const char *name)
{
	copy_addr(dst, len, getenv(name));
}

/* A port variable: 1 to 65535 in decimal, else nothing. */
static void
copy_env_port(char *dst, size_t len, const char *name)
{
	const char	*v, *errstr;
	long long	 port;

	if ((v = getenv(name)) == NULL || strspn(v, "0123456789") != strlen(v))
		return;
	port = strtonum(v, 1, 65535, &errstr);
	if (errstr == NULL)
		(void)snprintf(dst, len, "%lld", port);
}

/* TCPREMOTEHOST goes into the Received header: hostname bytes only. */
static void
copy_env_host(char *dst, size_t len, const char *name)
{
	const char	*v;

	if ((v = getenv(name)) == NULL || v[0] == '\0' ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(v) ||
	    strlen(v) >= len)
		return;
	(void)strlcpy(dst, v, len);
}

void
peer_lookup(struct peer *p)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;

	memset(p, 0, sizeof(*p));
	sl = sizeof(ss);
	if (getpeername(0, (struct sockaddr *)&ss, &sl) == 0 &&
	    sockaddr_format(&ss, p->remote_addr, sizeof(p->remote_addr),
	    p->remote_port, sizeof(p->remote_port)) == 0) {
		sl = sizeof(ss);
		if (getsockname(0, (struct sockaddr *)&ss, &sl) != 0 ||
		    sockaddr_format(&ss, p->local_addr, sizeof(p->local_addr),
		    p->local_port, sizeof(p->local_port)) != 0)
			p->local_addr[0] = p->local_port[0] = '\0';
	} else if (getenv("TCPREMOTEIP") != NULL) {
		copy_env_addr(p->remote_addr, sizeof(p->remote_addr),
		    "TCPREMOTEIP");
		copy_env_port(p->remote_port, sizeof(p->remote_port),
		    "TCPREMOTEPORT");
		copy_env_addr(p->local_addr, sizeof(p->local_addr),
		    "TCPLOCALIP");
		copy_env_port(p->local_port, sizeof(p->local_port),
		    "TCPLOCALPORT");
	} else {
		copy_env_addr(p->remote_addr, sizeof(p->remote_addr),
		    "REMOTE_ADDR");
		copy_env_port(p->remote_port, sizeof(p->remote_port),
		    "REMOTE_PORT");
	}
	copy_env_host(p->remote_host, sizeof(p->remote_host), "TCPREMOTEHOST");
}

/*
 * SPEC 10.1: the addresses a PROXY header gave replace the socket's (the
 * load balancer's).  TCPREMOTEHOST named the balancer, so it goes too.
 */
void
peer_from_proxy(struct peer *p, const struct proxy_result *r)
{
	if (!r->addresses)
		return;
	copy_addr(p->remote_addr, sizeof(p->remote_addr), r->remote_addr);
	(void)strlcpy(p->remote_port, r->remote_port, sizeof(p->remote_port));
	copy_addr(p->local_addr, sizeof(p->local_addr), r->local_addr);
	(void)strlcpy(p->local_port, r->local_port, sizeof(p->local_port));
	p->remote_host[0] = '\0';
}
