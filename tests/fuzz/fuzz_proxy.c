/*
 * libFuzzer target for the PROXY header parser (src/proxy.c): whatever
 * the bytes, proxy_need() never asks for more than the header still has
 * (so a reader following it never takes a byte after the header), it is
 * consistent at every prefix, and proxy_parse() gives only addresses
 * inet_pton() takes back and decimal ports.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* proxy_read() is not driven here; these keep conn.c out of the build. */
int
conn_wait_input(long long deadline)
{
	(void)deadline;
	return 0;
}

int
conn_is_socket(void)
{
	return 0;
}

static void
check_addr(const char *a)
{
	unsigned char	 buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, a, buf) != 1 && inet_pton(AF_INET6, a, buf) != 1)
		abort();
}

static void
check_port(const char *p)
{
	if (p[0] == '\0' || strspn(p, "0123456789") != strlen(p) ||
	    strtol(p, NULL, 10) > 65535)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_result	 r;
	size_t			 len = 0;
	ssize_t			 need;

	/* Read as proxy_read() does: exactly what proxy_need() asks. */
	while ((need = proxy_need(data, len)) > 0) {
		if (len + (size_t)need > size)
			return 0;	/* the input ends inside the header */
		len += (size_t)need;
	}
	if (need < 0)
		return 0;
	/* Complete at len: no shorter prefix was, none asked past len. */
	for (size_t i = 0; i < len; i++) {
		need = proxy_need(data, i);
		if (need == 0 || (need > 0 && i + (size_t)need > len))
			abort();
	}
	if (proxy_parse(data, len, &r) == -1 || !r.addresses)
		return 0;
	check_addr(r.remote_addr);
	check_addr(r.local_addr);
	check_port(r.remote_port);
	check_port(r.local_port);
	return 0;
}
