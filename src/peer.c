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
static void	copy_env(char *, size_t, const char *, const char *);
static void	copy_env_host(char *, size_t, const char *);
static void	unmap_v4(char *, size_t);

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

/* "::ffff:192.0.2.1" (any spelling) from a variable becomes "192.0.2.1". */
static void
unmap_v4(char *addr, size_t len)
{
	struct in6_addr	 a6;
	struct in_addr	 v4;

	if (inet_pton(AF_INET6, addr, &a6) != 1 ||
	    !IN6_IS_ADDR_V4MAPPED(&a6))
		return;
	memcpy(&v4, &a6.s6_addr[12], sizeof(v4));
	(void)inet_ntop(AF_INET, &v4, addr, len);
}

/* Copy an address or port variable if it looks like one. */
static void
copy_env(char *dst, size_t len, const char *name, const char *ok)
{
	const char	*v;

	if ((v = getenv(name)) == NULL || v[0] == '\0' ||
	    strspn(v, ok) != strlen(v) || strlen(v) >= len)
		return;
	(void)strlcpy(dst, v, len);
}

/* TCPREMOTEHOST goes into the Received header: hostname bytes only. */
static void
copy_env_host(char *dst, size_t len, const char *name)
{
	copy_env(dst, len, name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
}

void
peer_lookup(struct peer *p)
{
	static const char	 ipchars[] = "0123456789abcdefABCDEF.:";
	static const char	 digits[] = "0123456789";
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
		copy_env(p->remote_addr, sizeof(p->remote_addr),
		    "TCPREMOTEIP", ipchars);
		copy_env(p->remote_port, sizeof(p->remote_port),
		    "TCPREMOTEPORT", digits);
		copy_env(p->local_addr, sizeof(p->local_addr),
		    "TCPLOCALIP", ipchars);
		copy_env(p->local_port, sizeof(p->local_port),
		    "TCPLOCALPORT", digits);
	} else {
		copy_env(p->remote_addr, sizeof(p->remote_addr),
		    "REMOTE_ADDR", ipchars);
		copy_env(p->remote_port, sizeof(p->remote_port),
		    "REMOTE_PORT", digits);
	}
	unmap_v4(p->remote_addr, sizeof(p->remote_addr));
	unmap_v4(p->local_addr, sizeof(p->local_addr));
	copy_env_host(p->remote_host, sizeof(p->remote_host), "TCPREMOTEHOST");
}
