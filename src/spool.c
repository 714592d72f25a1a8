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

static const char	*received_date(time_t);
static void		 received_for(struct fmt *, const char *, const char *);
static void		 received_by(struct fmt *, const struct received_info *,
			    const char *);

/* A new unlinked file under $TMPDIR: a spool, or a milter's new body. */
int
spool_open(void)
{
	/* Nothing here sets TMPDIR: looked up once, not per message. */
	static const char	*dir;
	char			 path[PATH_MAX];
	int			 fd;

	if (dir == NULL && ((dir = getenv("TMPDIR")) == NULL ||
	    dir[0] == '\0'))
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
	spool_format_id(id, len, &tv, (unsigned long)getpid(), ++counter, r);
}

/*
 * "%llX%05lX.%lX.%u.%02x%02x%02x%02x%02x", without printf: the digits
 * straight into a buffer that holds any id, then copied as snprintf
 * would cut it.
 */
void
spool_format_id(char *id, size_t len, const struct timeval *tv,
    unsigned long pid, unsigned int counter, const unsigned char r[5])
{
	static const char	 hex[] = "0123456789abcdef";
	char			 tmp[4 * FMT_NUM_MAX + 16];
	struct fmt		 f;
	size_t			 n;
	int			 i;

	fmt_init(&f, tmp, sizeof(tmp));
	fmt_num(&f, (unsigned long long)tv->tv_sec, 16, 1, 1);
	fmt_num(&f, (unsigned long)tv->tv_usec, 16, 5, 1);
	fmt_lit(&f, ".");
	fmt_num(&f, pid, 16, 1, 1);
	fmt_lit(&f, ".");
	fmt_u(&f, counter);
	n = f.len;
	tmp[n++] = '.';
	for (i = 0; i < 5; i++) {
		tmp[n++] = hex[r[i] >> 4];
		tmp[n++] = hex[r[i] & 0xf];
	}
	fmt_init(&f, id, len);
	fmt_mem(&f, tmp, n);
	(void)fmt_end(&f);
}

/*
 * The date of the Received header, RFC 5322 3.3, made once per second:
 * strftime and the time zone lookup cost more than the rest of it.
 */
static const char *
received_date(time_t now)
{
	static char	 date[64];
	static time_t	 made;
	static int	 valid;
	struct tm	 tm;

	if (valid && made == now)
		return date;
	(void)localtime_r(&now, &tm);
	(void)strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	made = now;
	valid = 1;
	return date;
}

/*
 * "<eol>\tfor <rcpt>" as it was cut to its own buffer before, so that an
 * overlong recipient (a filter's) gives the same bytes as it always did.
 */
static void
received_for(struct fmt *f, const char *eol, const char *rcpt)
{
	char		 forpart[SMTP_PATH_MAX + 16];
	struct fmt	 sub;
	size_t		 len = strlen(rcpt);

	if (len <= SMTP_PATH_MAX) {	/* fits in forpart: no cut to copy */
		fmt_str(f, eol);
		fmt_lit(f, "\tfor <");
		fmt_mem(f, rcpt, len);
		fmt_lit(f, ">");
		return;
	}
	fmt_init(&sub, forpart, sizeof(forpart));
	fmt_str(&sub, eol);
	fmt_lit(&sub, "\tfor <");
	fmt_str(&sub, rcpt);
	fmt_lit(&sub, ">");
	fmt_str(f, fmt_end(&sub));
}

/* "\tby HOST (smtpd-stdio) with PROTO id ID", then the "for" clause. */
static void
received_by(struct fmt *f, const struct received_info *ri, const char *eol)
{
	fmt_lit(f, "\tby ");
	fmt_str(f, ri->hostname);
	fmt_lit(f, " (smtpd-stdio) with ");
	fmt_str(f, ri->protocol);
	fmt_lit(f, " id ");
	fmt_str(f, ri->id);
	if (ri->single_rcpt != NULL) {
		received_for(f, eol, ri->single_rcpt);
		fmt_lit(f, "; ");
	} else {
		fmt_lit(f, ";");
		fmt_str(f, eol);
		fmt_lit(f, "\t");
	}
}

/*
 * The trace header, RFC 5321 4.4, folded as RFC 5322 2.2.3 allows; the
 * TLS comment (SPEC 8) as Postfix writes it.  The address and TLS parts
 * fit in any case: their fields are bounded by struct peer and tls_info.
 */
size_t
received_header(char *dst, size_t len, const struct received_info *ri,
    time_t now)
{
	const char	*eol = ri->crlf ? "\r\n" : "\n";
	struct fmt	 f;

	fmt_init(&f, dst, len);
	fmt_lit(&f, "Received: from ");
	fmt_str(&f, ri->helo);
	fmt_lit(&f, " (");
	fmt_str(&f, ri->peer->remote_host[0] != '\0' ?
	    ri->peer->remote_host : "unknown");
	if (ri->peer->remote_addr[0] != '\0') {
		fmt_lit(&f, " [");
		fmt_str(&f, ri->peer->remote_addr);
		fmt_lit(&f, "]");
	}
	fmt_lit(&f, ")");
	fmt_str(&f, eol);
	if (ri->tls != NULL) {
		fmt_lit(&f, "\t(");
		fmt_str(&f, ri->tls->protocol);
		fmt_lit(&f, " cipher ");
		fmt_str(&f, ri->tls->cipher);
		fmt_lit(&f, ")");
		fmt_str(&f, eol);
	}
	received_by(&f, ri, eol);
	fmt_str(&f, received_date(now));
	fmt_str(&f, eol);
	(void)fmt_end(&f);
	return fmt_full(&f) ? 0 : f.len;
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
