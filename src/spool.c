/*
 * The spool: one unlinked file per message, which becomes the handler's
 * stdin.  It never has a name anyone can see (O_TMPFILE, else
 * mkstemp+unlink), so nothing is left behind; and it is never reused, so
 * whatever a handler leaves running can only ever read its own message.
 */
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/* A new unlinked file under $TMPDIR: a spool, or a milter's new body. */
int
spool_open(void)
{
	const char	*dir;
	char		 path[PATH_MAX];
	int		 fd;

	if ((dir = getenv("TMPDIR")) == NULL || dir[0] == '\0')
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
	/* No O_TMPFILE here: a random name, unlinked at once. */
	if (snprintf(path, sizeof(path), "%s/smtpd-stdio.XXXXXXXXXX", dir) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1)
		return -1;
	(void)unlink(path);
	return fd;
}

/*
 * A message id, unique across hosts (messages from many meet in one
 * queue, SPEC 12): seconds and microseconds (so ids sort by time), pid
 * and a counter in hex, then 40 random bits in lower-case hex.  Letters,
 * digits and dots only: safe in file names.  The bits come from
 * getrandom(2): libbsd's arc4random seeds a ChaCha state on first use,
 * which costs a one-message session 12 % more instructions; it stays as
 * the fallback.
 */
void
spool_new_id(char *id, size_t len)
{
	static unsigned int	 counter;
	struct timeval		 tv;
	unsigned char		 r[5];

	(void)gettimeofday(&tv, NULL);
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		arc4random_buf(r, sizeof(r));
	(void)snprintf(id, len, "%llX%05lX.%lX.%u.%02x%02x%02x%02x%02x",
	    (unsigned long long)tv.tv_sec, (unsigned long)tv.tv_usec,
	    (unsigned long)getpid(), ++counter, r[0], r[1], r[2], r[3], r[4]);
}

/* The trace header, RFC 5321 4.4, folded as RFC 5322 2.2.3 allows. */
size_t
received_header(char *dst, size_t len, const struct received_info *ri,
    time_t now)
{
	const char	*eol = ri->crlf ? "\r\n" : "\n";
	char		 date[64], addr[80] = "", forpart[SMTP_PATH_MAX + 16] = "";
	char		 tls[128] = "";
	struct tm	 tm;
	int		 n;

	(void)localtime_r(&now, &tm);
	(void)strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (ri->peer->remote_addr[0] != '\0')
		(void)snprintf(addr, sizeof(addr), " [%s]",
		    ri->peer->remote_addr);
	if (ri->single_rcpt != NULL)
		(void)snprintf(forpart, sizeof(forpart), "%s\tfor <%s>", eol,
		    ri->single_rcpt);
	/* SPEC 8, as Postfix writes it. */
	if (ri->tls != NULL)
		(void)snprintf(tls, sizeof(tls), "\t(%s cipher %s)%s",
		    ri->tls->protocol, ri->tls->cipher, eol);
	n = snprintf(dst, len, "Received: from %s (%s%s)%s%s"
	    "\tby %s (smtpd-stdio) with %s id %s%s;%s%s%s%s",
	    ri->helo, ri->peer->remote_host[0] != '\0' ?
	    ri->peer->remote_host : "unknown", addr, eol, tls,
	    ri->hostname, ri->protocol, ri->id, forpart,
	    ri->single_rcpt != NULL ? " " : eol,
	    ri->single_rcpt != NULL ? "" : "\t", date, eol);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

/*
 * Start the spool for a new message in a file of its own, then write the
 * Received header if wanted.  -1 on failure.
 */
int
spool_begin(struct spool *sp, const struct received_info *ri)
{
	char	 hdr[2048];
	size_t	 n;

	spool_close(sp);
	sp->size = 0;
	sp->failed = 0;
	if ((sp->fd = spool_open()) == -1)
		goto fail;
	if (ri == NULL)
		return 0;
	if ((n = received_header(hdr, sizeof(hdr), ri, time(NULL))) == 0) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	return spool_write(sp, hdr, n);
fail:
	sp->failed = 1;
	return -1;
}

int
spool_write(struct spool *sp, const char *p, size_t len)
{
	ssize_t	 n;

	if (sp->failed)
		return -1;
	while (len > 0) {
		if ((n = write(sp->fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			sp->failed = 1;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		sp->size += (uint64_t)n;
	}
	return 0;
}

/*
 * len bytes of from at *off onto to's position: by the kernel
 * (copy_file_range), else through a buffer; never the message in memory.
 */
int
spool_copy(int from, off_t *off, int to, uint64_t len)
{
	char	 buf[8192];
	size_t	 want;
	ssize_t	 n, w;

	while (len > 0) {
		want = len > (uint64_t)1 << 30 ? (size_t)1 << 30 : (size_t)len;
		n = copy_file_range(from, off, to, NULL, want, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EXDEV || errno == ENOSYS ||
		    errno == EOPNOTSUPP || errno == EINVAL)) {
			if (want > sizeof(buf))
				want = sizeof(buf);
			if ((n = pread(from, buf, want, *off)) > 0 &&
			    (w = write(to, buf, (size_t)n)) != n)
				return -1;
			if (n > 0)
				*off += n;
		}
		if (n <= 0)
			return -1;	/* an error, or the file is shorter */
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * SPEC 10.2: headers that a policy PREPENDs at END-OF-MESSAGE, when the
 * message is spooled already.  They go where those of RCPT went, at
 * header_end, in a new file: the head, the headers, then the rest.  -1
 * (the old file kept) if that fails.
 */
int
spool_insert(struct spool *sp, const char *text, size_t len)
{
	struct spool	 n = *sp;
	uint64_t	 total = sp->size;
	off_t		 off = 0;

	if ((n.fd = spool_open()) == -1)
		return -1;
	n.size = 0;
	n.failed = 0;
	if (spool_copy(sp->fd, &off, n.fd, sp->header_end) == -1 ||
	    spool_write(&n, text, len) == -1 ||
	    spool_copy(sp->fd, &off, n.fd, total - sp->header_end) == -1) {
		(void)close(n.fd);
		return -1;
	}
	(void)close(sp->fd);
	sp->fd = n.fd;
	sp->size = total + len;
	return 0;
}

/* Done with the message: the handler that read it has exited. */
void
spool_close(struct spool *sp)
{
	if (sp->fd != -1)
		(void)close(sp->fd);
	sp->fd = -1;
}

int
spool_rewind(struct spool *sp)
{
	return lseek(sp->fd, 0, SEEK_SET) == -1 ? -1 : 0;
}
