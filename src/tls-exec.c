/*
 * smtpd-stdio without GnuTLS.  Loading a shared library costs every
 * process its relocations and symbol lookups, more than the rest of a
 * plaintext session costs (README, Performance).  So smtpd-stdio is
 * built twice: smtpd-stdio without TLS, static, and smtpd-stdio-tls with
 * it (tls.c), installed next to it.  smtpd-stdio serves a session until
 * the client says STARTTLS, then runs smtpd-stdio-tls in its place with
 * the same command line and the little state that must survive (SPEC 8
 * resets the session there anyway); with --tls it does so at once.
 */
#include <sys/mman.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define TLS_PROGRAM	"smtpd-stdio-tls"

static char	 failure[PATH_MAX + 128];	/* why there is no hand-over */
static char	 tls_path[PATH_MAX];		/* smtpd-stdio-tls */
static char	**tls_argv;

static int	 find_tls_program(const char *);

/*
 * smtpd-stdio-tls is the file next to the one we run from, whatever
 * argv[0] says.  It runs with argv[0] "smtpd-stdio-tls": a program
 * without TLS started so is a copy of this one in its place, and must
 * not run itself again, in a loop.  0, or -1 with failure set.
 */
static int
find_tls_program(const char *argv0)
{
	const char	*base = strrchr(argv0, '/');
	char		 self[PATH_MAX], *slash;
	ssize_t		 n;

	if (strcmp(base != NULL ? base + 1 : argv0, TLS_PROGRAM) == 0) {
		(void)snprintf(failure, sizeof(failure), "TLS: %s was run "
		    "as %s, but has no TLS: install smtpd-stdio-tls", argv0,
		    TLS_PROGRAM);
		return -1;
	}
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1) {
		(void)snprintf(failure, sizeof(failure), "TLS: cannot find "
		    "my own file: %s", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) != NULL)
		*slash = '\0';
	if (snprintf(tls_path, sizeof(tls_path), "%s/%s", self,
	    TLS_PROGRAM) >= (int)sizeof(tls_path) || access(tls_path,
	    X_OK) == -1) {
		(void)snprintf(failure, sizeof(failure), "TLS: cannot run "
		    "%s/%s: %s", self, TLS_PROGRAM, errno != 0 ?
		    strerror(errno) : "path too long");
		return -1;
	}
	return 0;
}

/*
 * With --tls-cert: find smtpd-stdio-tls; with --tls run it now, before
 * anything is read.  Returns on failure, which tlsconf_server() reports
 * once the log is open: under inetd stderr is the client's socket.
 */
void
tlsconf_handover(const struct config *c, char **argv)
{
	if (c->ntls_cert == 0)
		return;
	errno = 0;
	if (find_tls_program(argv[0]) == -1)
		return;
	argv[0] = TLS_PROGRAM;
	tls_argv = argv;
	if (!c->tls_implicit)
		return;
	(void)execv(tls_path, argv);
	(void)snprintf(failure, sizeof(failure), "TLS: cannot run %s: %s",
	    tls_path, strerror(errno));
}

/*
 * At STARTTLS: the state in a memfd on HANDOVER_FD, then
 * smtpd-stdio-tls.  Returns only if that failed (logged).
 */
void
tlsconf_exec(const struct handover *ho)
{
	int	 fd;

	if ((fd = memfd_create(HANDOVER_NAME, 0)) == -1 ||
	    write(fd, ho, sizeof(*ho)) != (ssize_t)sizeof(*ho) ||
	    (fd != HANDOVER_FD && dup2(fd, HANDOVER_FD) == -1)) {
		log_warn("TLS: cannot hand over: %s", strerror(errno));
		if (fd != -1)
			(void)close(fd);
		return;
	}
	if (fd != HANDOVER_FD)
		(void)close(fd);
	(void)execv(tls_path, tls_argv);
	log_warn("TLS: cannot run %s: %s", tls_path, strerror(errno));
	(void)close(HANDOVER_FD);
}

/* No session is ever handed to smtpd-stdio itself. */
int
tlsconf_resumed(struct handover *ho)
{
	(void)ho;
	return 0;
}

/* What can be checked without GnuTLS is, before the greeting. */
struct tls *
tlsconf_server(const struct config *c)
{
	if (c->ntls_cert == 0)
		return NULL;
	if (failure[0] != '\0')
		setup_error("%s", failure);
	tlsfiles_check(c);
	return NULL;
}

struct tls *
tlsconf_try(const struct config *c)
{
	return tlsconf_server(c);
}

void
tlsconf_free(struct tls *server)
{
	(void)server;
}
