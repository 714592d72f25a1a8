/*
 * libFuzzer target for the Dovecot auth-client server-line parser
 * (dovecot_parse_line() in src/auth.c).  The input is cut at each LF,
 * as dovecot_read() does, and every line parsed: whatever the bytes, a
 * line is refused or gives a known kind; a user name (it would become
 * SMTP_AUTH_USER) is NUL-terminated and free of control bytes, a CONT
 * carries only base64 characters, a MECH name only printable upper-case
 * ASCII, and a line with a NUL or an LF in it is always refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The backends are not driven here: a clock keeps conn.c out. */
long long
conn_now_ms(void)
{
	return 0;
}

static void
check_string(const char *s, size_t size, unsigned char lo, unsigned char hi)
{
	size_t	 i;

	if (memchr(s, '\0', size) == NULL)
		abort();
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < lo || (unsigned char)s[i] > hi ||
		    (unsigned char)s[i] == 0x7f)
			abort();
}

static void
check_line(const char *p, size_t len)
{
	struct dovecot_line	*dl;
	size_t			 i;
	int			 rc;

	if ((dl = malloc(sizeof(*dl))) == NULL)
		abort();
	rc = dovecot_parse_line(p, len, dl);
	if (rc != 0 && rc != -1)
		abort();
	if ((len == 0 || memchr(p, '\0', len) != NULL ||
	    memchr(p, '\n', len) != NULL) && rc != -1)
		abort();
	if (rc == 0) {
		if (dl->kind < DL_VERSION || dl->kind > DL_OTHER)
			abort();
		check_string(dl->user, sizeof(dl->user), 0x20, 0xff);
		check_string(dl->mech, sizeof(dl->mech), 0x21, 0x7e);
		for (i = 0; dl->mech[i] != '\0'; i++)
			if (dl->mech[i] >= 'a' && dl->mech[i] <= 'z')
				abort();
		check_string(dl->cont, sizeof(dl->cont), 0x2b, 0x7a);
		if (strspn(dl->cont, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl"
		    "mnopqrstuvwxyz0123456789+/=") != strlen(dl->cont))
			abort();
		if ((dl->kind == DL_OK || dl->kind == DL_FAIL ||
		    dl->kind == DL_CONT) && dl->id > 999999999UL)
			abort();
		if (dl->kind != DL_FAIL && dl->temp)
			abort();
	}
	free(dl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size, *lf;
	char		*line;
	size_t		 len;

	/* Each line in a buffer of its exact size, for ASan. */
	while (p < end) {
		lf = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((lf != NULL ? lf : end) - p);
		if ((line = malloc(len + (len == 0))) == NULL)
			abort();
		memcpy(line, p, len);
		check_line(line, len);
		free(line);
		p += len + 1;
	}
	/* And the whole input as one line, LFs and all. */
	if (size > 0) {
		if ((line = malloc(size)) == NULL)
			abort();
		memcpy(line, data, size);
		check_line(line, size);
		free(line);
	}
	return 0;
}
