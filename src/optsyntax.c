/*
 * The syntax of option values, SPEC 2, 9, 10.2 and 13: host names, the
 * relay, policy and milter addresses, the auth backend.  Pure functions
 * on strings, no I/O: options.c checks the command line with them, and
 * policy.c reads a --policy ADDR's stage with policy_stage().
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpd-stdio.h"

#define DNS_NAME_MAX	253	/* RFC 1035 2.3.4, in text form */
#define DNS_LABEL_MAX	63

static int	 label_ok(const char *, size_t);
static int	 ipv4_ok(const char *, size_t);
static int	 port_ok(const char *);
static int	 address_literal_ok(const char *);

/* A label of a host name: letters, digits, inner hyphens (RFC 1123 2.1). */
static int
label_ok(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > DNS_LABEL_MAX || s[0] == '-' ||
	    s[len - 1] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/* A dotted-quad IPv4 address, as inet_pton() takes it (no leading 0s). */
static int
ipv4_ok(const char *s, size_t len)
{
	char	 buf[INET_ADDRSTRLEN];

	if (len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET, buf, &(struct in_addr){ 0 }) == 1;
}

/*
 * A host name of len octets: dot-separated labels, at most 253 octets.
 * A name whose last label is all digits must be an IPv4 address instead
 * (no top-level domain is numeric, RFC 3696 2), so 999.1.1.1 is refused.
 */
int
dns_name_ok(const char *s, size_t len)
{
	const char	*dot, *end = s + len, *last = s;
	const char	*p;

	if (len == 0 || len > DNS_NAME_MAX || s[len - 1] == '.')
		return 0;
	for (p = s; p < end; p = dot + 1) {
		if ((dot = memchr(p, '.', (size_t)(end - p))) == NULL)
			dot = end;
		if (!label_ok(p, (size_t)(dot - p)))
			return 0;
		last = p;
		if (dot == end)
			break;
	}
	if (strspn(last, "0123456789") >= (size_t)(end - last))
		return ipv4_ok(s, len);
	return 1;
}

/* An address literal, RFC 5321 4.1.3: [1.2.3.4] or [IPv6:...]. */
static int
address_literal_ok(const char *s)
{
	char	 buf[INET6_ADDRSTRLEN + 8];
	size_t	 len = strlen(s);

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' ||
	    len - 2 >= sizeof(buf))
		return 0;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5,
		    &(struct in6_addr){ 0 }) == 1;
	return ipv4_ok(buf, len - 2);
}

/* --hostname: it goes into every greeting and Received header. */
int
hostname_ok(const char *s)
{
	size_t	 len = strlen(s);

	if (len > SMTP_DOMAIN_MAX)
		return 0;
	return s[0] == '[' ? address_literal_ok(s) : dns_name_ok(s, len);
}

/* A port: 1 to 65535 in decimal, no sign, no leading zero. */
static int
port_ok(const char *s)
{
	const char	*errstr;

	if (s[0] == '0' || strspn(s, "0123456789") != strlen(s))
		return 0;
	(void)strtonum(s, 1, 65535, &errstr);
	return errstr == NULL;
}

/*
 * --relay HOST[:PORT]: a host name, a dotted-quad IPv4 address or an
 * IPv6 address in brackets.  The relay handler checks SMTP_RELAY with
 * the same rules, so a value accepted here is one it accepts too.
 */
int
relay_ok(const char *arg)
{
	char		 host[INET6_ADDRSTRLEN];
	const char	*port, *close;
	size_t		 hlen;

	if (arg[0] == '[') {
		if ((close = strchr(arg, ']')) == NULL)
			return 0;
		hlen = (size_t)(close - arg) - 1;
		if (hlen == 0 || hlen >= sizeof(host))
			return 0;
		memcpy(host, arg + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &(struct in6_addr){ 0 }) != 1)
			return 0;
		if (close[1] == '\0')
			return 1;
		return close[1] == ':' && port_ok(close + 2);
	}
	port = strchr(arg, ':');
	hlen = port != NULL ? (size_t)(port - arg) : strlen(arg);
	if (!dns_name_ok(arg, hlen))
		return 0;
	return port == NULL || port_ok(port + 1);
}

/* unix:PATH, inet:HOST:PORT or exec:PROGRAM, checked at start. */
int
policy_addr_ok(const char *a)
{
	const char	*colon;

	a = policy_stage(a, NULL);
	if (strncmp(a, "unix:", 5) == 0)
		return a[5] != '\0' &&
		    strlen(a + 5) < sizeof(((struct sockaddr_un *)0)->sun_path);
	if (strncmp(a, "exec:", 5) == 0)
		return a[5] != '\0';
	if (strncmp(a, "inet:", 5) == 0) {
		colon = strrchr(a + 5, ':');
		return colon != NULL && colon > a + 5 && colon[1] != '\0' &&
		    strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
		    strlen(colon + 1) <= 5 && atoi(colon + 1) >= 1 &&
		    atoi(colon + 1) <= 65535;
	}
	return 0;
}

/*
 * A Postfix admin puts postgrey in smtpd_recipient_restrictions and
 * never in smtpd_end_of_data_restrictions: asked at END-OF-MESSAGE of a
 * message with several recipients (recipient empty), it greylists a
 * triplet of its own.  "rcpt:ADDR" asks ADDR only at RCPT, "data:ADDR"
 * only at END-OF-MESSAGE; a bare ADDR is asked at both (SPEC 10.2).
 * Returns the address after the prefix.
 */
const char *
policy_stage(const char *a, unsigned int *stages)
{
	unsigned int	 st = STAGE_RCPT | STAGE_DATA;

	if (strncmp(a, "rcpt:", 5) == 0) {
		st = STAGE_RCPT;
		a += 5;
	} else if (strncmp(a, "data:", 5) == 0) {
		st = STAGE_DATA;
		a += 5;
	}
	if (stages != NULL)
		*stages = st;
	return a;
}

/* unix:PATH or inet:HOST:PORT, as --policy takes them (no exec:). */
int
milter_addr_ok(const char *a)
{
	return policy_stage(a, NULL) == a && strncmp(a, "exec:", 5) != 0 &&
	    policy_addr_ok(a);
}

/* --auth: dovecot:PATH (a UNIX socket) or checkpassword:PROGRAM. */
int
auth_spec_ok(const char *spec)
{
	struct sockaddr_un	 sun;
	const char		*rest;

	if (strncmp(spec, DOVECOT_PREFIX, strlen(DOVECOT_PREFIX)) == 0) {
		rest = spec + strlen(DOVECOT_PREFIX);
		return rest[0] != '\0' && strlen(rest) < sizeof(sun.sun_path);
	}
	if (strncmp(spec, CHECKPW_PREFIX, strlen(CHECKPW_PREFIX)) == 0)
		return spec[strlen(CHECKPW_PREFIX)] != '\0';
	return 0;
}
