/*
 * What SPEC 8's options name, checked without a TLS library: in both
 * links, so smtpd-stdio refuses a misconfigured host before its greeting
 * (file not there or unreadable, ticket keys of the wrong size, an
 * unknown protocol) while only smtpd-stdio-tls loads GnuTLS, at
 * STARTTLS.  What only GnuTLS can judge (a key that does not match, a
 * priority string) is tls.c's.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/* A relative path is systemd's LoadCredential= name when it is set. */
const char *
tlsfiles_path(const char *name, char *buf, size_t len)
{
	const char	*dir = getenv("CREDENTIALS_DIRECTORY");
	int		 n;

	if (name[0] == '/' || dir == NULL || dir[0] == '\0')
		return name;
	n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		setup_error("%s/%s: path too long", dir, name);
	return buf;
}

/* --tls-protocols: TLSFILES_TLS12 and/or TLSFILES_TLS13, or exit 64. */
unsigned int
tlsfiles_protocols(const char *list)
{
	char		 copy[64], *p, *word;
	unsigned int	 v = 0;

	if (strcmp(list, "secure") == 0)
		return TLSFILES_TLS12 | TLSFILES_TLS13;
	if (strlcpy(copy, list, sizeof(copy)) >= sizeof(copy))
		v = ~0U;
	for (p = copy; v != ~0U && (word = strsep(&p, ",")) != NULL; )
		if (strcmp(word, "tlsv1.2") == 0)
			v |= TLSFILES_TLS12;
		else if (strcmp(word, "tlsv1.3") == 0)
			v |= TLSFILES_TLS13;
		else
			v = ~0U;
	if (v == 0 || v == ~0U)
		setup_error("--tls-protocols %s: want a comma list of "
		    "tlsv1.2 and tlsv1.3, or secure", list);
	return v;
}

/*
 * The --tls-ticket-keys file into keys (size octets): 1 to 4 keys of
 * 48 octets, newest last; its length.  Another size is exit 64, naming
 * the file's real size.  A file others than its owner may read, its
 * group included, is allowed but logged: whoever reads the keys
 * decrypts every session resumed with them.
 */
size_t
tlsfiles_ticket_keys(const char *name, unsigned char *keys, size_t size)
{
	char		 pbuf[PATH_MAX];
	const char	*path = tlsfiles_path(name, pbuf, sizeof(pbuf));
	struct stat	 st;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		setup_error("--tls-ticket-keys %s: %s", path, strerror(errno));
	while (len < size && (n = read(fd, keys + len, size - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			setup_error("--tls-ticket-keys %s: %s", path,
			    strerror(errno));
		len += (size_t)n;
	}
	(void)close(fd);
	/* A larger file is named by its size, not where we stopped. */
	if (S_ISREG(st.st_mode) && st.st_size > (off_t)len)
		len = st.st_size > (off_t)INT_MAX ? (size_t)INT_MAX :
		    (size_t)st.st_size;
	if (len == 0 || len % TICKET_KEY_LEN != 0 ||
	    len > TICKET_KEY_LEN * TICKET_KEYS_MAX) {
		explicit_bzero(keys, size);
		setup_error("--tls-ticket-keys %s: want 1 to %d keys of "
		    "%d octets, not %zu octets", path, TICKET_KEYS_MAX,
		    TICKET_KEY_LEN, len);
	}
	if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0)
		log_warn("--tls-ticket-keys %s: readable by others (mode "
		    "%04o)", path, (unsigned int)(st.st_mode & 07777));
	return len;
}

/*
 * Keypair i's certificate and key, their paths resolved into cbuf and
 * kbuf (PATH_MAX each), both readable, or exit 64.
 */
void
tlsfiles_pair(const struct config *c, size_t i, char *cbuf, char *kbuf,
    const char **cert, const char **key)
{
	*cert = tlsfiles_path(c->tls_cert[i], cbuf, PATH_MAX);
	*key = tlsfiles_path(c->tls_key[i], kbuf, PATH_MAX);
	if (access(*cert, R_OK) == -1 || access(*key, R_OK) == -1)
		setup_error("--tls-cert %s --tls-key %s: %s", *cert, *key,
		    strerror(errno));
}

/* smtpd-stdio: every file readable, the lists known, or exit 64. */
void
tlsfiles_check(const struct config *c)
{
	unsigned char	 keys[TICKET_KEY_LEN * TICKET_KEYS_MAX + 1];
	char		 cbuf[PATH_MAX], kbuf[PATH_MAX];
	const char	*cert, *key;
	size_t		 i;

	for (i = 0; i < c->ntls_cert; i++)
		tlsfiles_pair(c, i, cbuf, kbuf, &cert, &key);
	(void)tlsfiles_protocols(c->tls_protocols);
	if (c->tls_ticket_keys != NULL) {
		(void)tlsfiles_ticket_keys(c->tls_ticket_keys, keys,
		    sizeof(keys));
		explicit_bzero(keys, sizeof(keys));
	}
}
