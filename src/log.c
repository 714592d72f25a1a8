/*
 * Diagnostics: syslog (facility mail) or stderr.  Client text is escaped
 * with log_escape() before it gets here; nothing here goes to fd 0 or 1.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#define LIBBSD_NETBSD_VIS	/* strnvisx(dst, dlen, src, len, flag) */
#include <vis.h>

#include "smtpd-stdio.h"

static enum log_target	log_to = LOGTO_STDERR;
static const char	*log_name = "smtpd-stdio";
static int		log_verbose;
static int		log_journal;	/* stderr is a journald stream */
static pid_t		log_prefix_pid;	/* whose log_prefix() is made */

static int	stderr_is_journal(void);
static void	log_emit(int, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));
static void	log_write(int, const char *);
static const char *log_prefix(void);

/*
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * gave us; then journald adds name and pid itself and reads a "<N>"
 * priority prefix (sd-daemon(3)).
 */
static int
stderr_is_journal(void)
{
	const char		*v;
	struct stat		 st;
	unsigned long long	 dev, ino;

	if ((v = getenv("JOURNAL_STREAM")) == NULL ||
	    sscanf(v, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/* Another program's name on its log lines (redis-worker, redis-stream). */
void
log_ident(const char *name)
{
	log_name = name;
	log_prefix_pid = 0;
}

/*
 * "name[pid]: " of a stderr line, made again only when the pid or the
 * name changes; NULL if it would not fit, and then log_write makes it.
 */
static const char *
log_prefix(void)
{
	static char	 prefix[64];
	struct fmt	 f;
	pid_t		 pid = getpid();

	if (pid == log_prefix_pid)
		return prefix;
	fmt_init(&f, prefix, sizeof(prefix));
	fmt_str(&f, log_name);
	fmt_lit(&f, "[");
	fmt_i(&f, (long)pid);
	fmt_lit(&f, "]: ");
	(void)fmt_end(&f);
	if (fmt_full(&f))
		return NULL;
	log_prefix_pid = pid;
	return prefix;
}

void
log_init(enum log_target to, int verbose)
{
	log_to = to;
	log_verbose = verbose;
	log_journal = to == LOGTO_STDERR && stderr_is_journal();
	if (to == LOGTO_SYSLOG)
		openlog(log_name, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void
log_emit(int prio, const char *fmt, va_list ap)
{
	char	 line[LOG_LINE_MAX];

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	log_write(prio, line);
}

/* A line made already, as log_emit() would have made it: no printf. */
static void
log_write(int prio, const char *line)
{
	char		 out[LOG_LINE_MAX + 32];
	const char	*prefix;
	struct fmt	 f;

	if (log_to == LOGTO_SYSLOG) {
		syslog(prio, "%s", line);
		return;
	}
	fmt_init(&f, out, sizeof(out));
	if (log_journal) {
		fmt_mem(&f, "<", 1);
		fmt_i(&f, prio);
		fmt_mem(&f, ">", 1);
	} else if ((prefix = log_prefix()) != NULL)
		fmt_str(&f, prefix);
	else {
		fmt_str(&f, log_name);
		fmt_lit(&f, "[");
		fmt_i(&f, (long)getpid());
		fmt_lit(&f, "]: ");
	}
	fmt_str(&f, line);
	fmt_mem(&f, "\n", 1);
	(void)fmt_end(&f);
	/* One write(2) per line: never a partial line in a shared stream. */
	if (write(STDERR_FILENO, out, fmt_full(&f) ? sizeof(out) - 1 :
	    f.len) == -1)
		return;		/* nowhere left to complain */
}

/* An info line built by the caller, at most LOG_LINE_MAX - 1 bytes. */
void
log_info_text(const char *line)
{
	log_write(LOG_INFO, line);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, fmt, ap);
	va_end(ap);
	_exit(EXIT_SOFTWARE);
}

/*
 * A line that also goes to stderr (setup_error): to syslog when that is
 * the log, so it is not written twice to stderr.
 */
void
log_syslog_only(const char *line)
{
	if (log_to == LOGTO_SYSLOG)
		syslog(LOG_ERR, "%s", line);
}

/*
 * Escape untrusted bytes (client text, handler output) into dst so that a
 * log line can never be split or carry terminal controls; flags adds to
 * the vis(3) flags.  A dst of 4 * len + 1 bytes always holds all of it;
 * a smaller one holds as much as surely fits.  Returns dst.
 */
static const char *
escape(char *dst, size_t dstlen, const char *src, size_t len, int flags)
{
	size_t	 i;

	if (dstlen == 0)
		return dst;
	/* Plain printable ASCII, the usual case, needs no escaping. */
	for (i = 0; i < len && i < dstlen - 1; i++)
		if ((unsigned char)src[i] < 0x20 ||
		    (unsigned char)src[i] > 0x7e || src[i] == '\\' ||
		    ((flags & VIS_DQ) && src[i] == '"'))
			break;
	if (i == len || i == dstlen - 1) {
		memcpy(dst, src, i);
		dst[i] = '\0';
		return dst;
	}
	/* strnvisx needs up to 4 bytes per input byte. */
	if (len > (dstlen - 1) / 4)
		len = (dstlen - 1) / 4;
	if (strnvisx(dst, dstlen, src, len, VIS_CSTYLE | VIS_OCTAL |
	    VIS_TAB | VIS_NL | flags) == -1)
		dst[0] = '\0';
	return dst;
}

const char *
log_escape(char *dst, size_t dstlen, const char *src, size_t len)
{
	return escape(dst, dstlen, src, len, 0);
}

/*
 * A client-supplied value as one field of a key=value line: in double
 * quotes, with " and \ escaped as \" and \\, so that no HELO or address
 * can make a line look as if it had more fields.  dst needs 4 * len + 3.
 */
const char *
log_quote(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t	 n;

	if (dstlen < 3) {
		if (dstlen > 0)
			dst[0] = '\0';
		return dst;
	}
	dst[0] = '"';
	(void)escape(dst + 1, dstlen - 2, src, len, VIS_DQ);
	n = strlen(dst);
	dst[n] = '"';
	dst[n + 1] = '\0';
	return dst;
}
