/*
 * smtpd-stdio without libtls.  OpenSSL linked into a static PIE brings
 * some 20000 relocations that every process applies at start: 265 000
 * instructions and a hundred page faults, more than the rest of a
 * plaintext session costs (README, Performance).  So smtpd-stdio is
 * built twice: smtpd-stdio without TLS, and smtpd-stdio-tls with it
 * (tls.c), installed next to it.  A command line with --tls-cert is
 * handed, unchanged, to smtpd-stdio-tls before anything else happens.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define TLS_PROGRAM	"smtpd-stdio-tls"

struct tls *
tlsconf_server(const struct config *c, char **argv)
{
	char	 self[PATH_MAX], path[PATH_MAX];
	char	*slash;
	ssize_t	 n;

	if (c->ntls_cert == 0)
		return NULL;
	/* The file we run from, whatever argv[0] says: its sibling. */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1)
		usage_error("TLS: cannot find my own file: %s",
		    strerror(errno));
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		usage_error("TLS: %s is not an absolute path", self);
	*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/%s", self, TLS_PROGRAM) >=
	    (int)sizeof(path))
		usage_error("TLS: %s/%s: path too long", self, TLS_PROGRAM);
	(void)execv(path, argv);
	usage_error("TLS: cannot run %s: %s", path, strerror(errno));
}

void
tlsconf_free(struct tls *server)
{
	(void)server;
}
