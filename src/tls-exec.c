/*
 * smtpd-stdio without GnuTLS.  Loading a shared library costs every
 * process its relocations and symbol lookups, more than the rest of a
 * plaintext session costs (README, Performance).  So smtpd-stdio is
 * built twice: smtpd-stdio without TLS, static, and smtpd-stdio-tls with
 * it (tls.c), installed next to it.  A command line with --tls-cert is
 * handed, unchanged but for argv[0], to smtpd-stdio-tls.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define TLS_PROGRAM	"smtpd-stdio-tls"

static char	 failure[PATH_MAX + 128];	/* why the hand-over failed */

/*
 * Run smtpd-stdio-tls, the file next to the one we run from, whatever
 * argv[0] says.  It runs with argv[0] "smtpd-stdio-tls": a program
 * without TLS started so is a copy of this one in its place, and it
 * must not run itself again, in a loop.  Returns only on failure, which
 * tlsconf_server() reports once the log is open: under inetd stderr is
 * the client's socket (SPEC 8).
 */
void
tlsconf_handover(const struct config *c, char **argv)
{
	char		 self[PATH_MAX], path[PATH_MAX];
	const char	*base = strrchr(argv[0], '/');
	char		*slash;
	ssize_t		 n;

	if (c->ntls_cert == 0)
		return;
	if (strcmp(base != NULL ? base + 1 : argv[0], TLS_PROGRAM) == 0) {
		(void)snprintf(failure, sizeof(failure), "TLS: %s was run "
		    "as %s, but has no TLS: install smtpd-stdio-tls",
		    argv[0], TLS_PROGRAM);
		return;
	}
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1) {
		(void)snprintf(failure, sizeof(failure), "TLS: cannot find "
		    "my own file: %s", strerror(errno));
		return;
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	if (snprintf(path, sizeof(path), "%s/%s", self, TLS_PROGRAM) >=
	    (int)sizeof(path)) {
		(void)snprintf(failure, sizeof(failure), "TLS: %s/%s: path "
		    "too long", self, TLS_PROGRAM);
		return;
	}
	argv[0] = (char *)TLS_PROGRAM;
	(void)execv(path, argv);
	(void)snprintf(failure, sizeof(failure), "TLS: cannot run %s: %s",
	    path, strerror(errno));
}

struct tls *
tlsconf_server(const struct config *c)
{
	if (c->ntls_cert > 0)
		setup_error("%s", failure);
	return NULL;
}

void
tlsconf_free(struct tls *server)
{
	(void)server;
}
