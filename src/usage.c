/*
 * Usage and set-up errors, SPEC 1, 7 and 8: the bottom of the house.
 * It needs libc and log.c only, so that any module may report a bad
 * option value without pulling options.c (and all it checks) in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "smtpd-stdio.h"

static jmp_buf	*setup_escape;	/* setup_errors_to() */

/* SPEC 1: one line on stderr, exit 64, nothing on stdout. */
void
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	(void)fputs("smtpd-stdio: ", stderr);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputs(" (see smtpd-stdio --help)\n", stderr);
	exit(EXIT_USAGE);
}

/*
 * SPEC 8: a set-up failure once the log is open (certificate, key,
 * ticket keys, the TLS program): logged where SPEC 6 says, and the usage
 * line on stderr, which is /dev/null when it was the client's socket.
 */
void
setup_error(const char *fmt, ...)
{
	char	 line[LOG_LINE_MAX];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (setup_escape != NULL) {
		log_warn("%s", line);
		longjmp(*setup_escape, 1);
	}
	log_syslog_only(line);
	usage_error("%s", line);
}

/* With j set, setup_error logs and jumps there instead of exiting. */
void
setup_errors_to(jmp_buf *j)
{
	setup_escape = j;
}
