/*
 * Connections with deadlines, for the servers we are a client of: the
 * policy servers (policy.c), the milters (milter.c) and Dovecot's auth
 * service (auth.c).  Non-blocking sockets; every wait ends at the
 * caller's absolute deadline (SPEC 10.3), read from clock.c.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

static int	connect_to(const struct sockaddr *, socklen_t, long long);

/* Wait for fd until deadline; 1 ready, 0 timed out or failed. */
int
net_wait_fd(int fd, short events, long long deadline)
{
	struct pollfd	 pfd;
	long long	 left;
	int		 r;

	for (;;) {
		if ((left = deadline - conn_now_ms()) <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = events;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return 0;
		if (r > 0)
			return 1;
	}
}

/* A non-blocking connect within the deadline; the fd or -1. */
static int
connect_to(const struct sockaddr *sa, socklen_t salen, long long deadline)
{
	int		 fd, err;
	socklen_t	 elen = sizeof(err);

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if (connect(fd, sa, salen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN)
		goto fail;
	if (!net_wait_fd(fd, POLLOUT, deadline)) {
		errno = ETIMEDOUT;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
		goto fail;
	if (err == 0)
		return fd;
	errno = err;
fail:
	err = errno;
	(void)close(fd);
	errno = err;
	return -1;
}

/* A UNIX-domain stream socket at path. */
int
net_connect_unix(const char *path, long long deadline)
{
	struct sockaddr_un	 sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	return connect_to((struct sockaddr *)&sun, sizeof(sun), deadline);
}

/* host:port or [host]:port: each of its addresses until one connects. */
int
net_connect_inet(const char *where, long long deadline)
{
	struct addrinfo	 hints, *res, *ai;
	char		 host[SMTP_DOMAIN_MAX + 3];
	const char	*colon = strrchr(where, ':');
	size_t		 hlen = (size_t)(colon - where);
	int		 fd = -1, gai;

	if (hlen >= sizeof(host)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(host, where, hlen);
	host[hlen] = '\0';
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		log_warn("policy inet:%s: %s", where, gai_strerror(gai));
		errno = EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
		fd = connect_to(ai->ai_addr, ai->ai_addrlen, deadline);
	freeaddrinfo(res);
	return fd;
}

/* Write all of p, len bytes, before the deadline; 0 or -1. */
int
net_write_all(int fd, const char *p, size_t len, long long deadline)
{
	ssize_t	 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN && net_wait_fd(fd, POLLOUT,
		    deadline))
			continue;
		if (n == -1 && errno == EAGAIN)
			errno = ETIMEDOUT;
		return -1;
	}
	return 0;
}
