/*
 * The per-connection floor: the least a program started once per
 * connection by inetd or systemd-socket-activate can do and still take
 * mail the way smtpd-stdio does.  It answers every command with a canned
 * reply (no parsing, no checks, no logging), writes the message as it
 * arrives to an unlinked spool file, and runs the sink once per message
 * with that file on stdin.  The load client cannot tell it from a real
 * server, so W1 and W3 measure the same dialogue against it.
 * Built with -DFLOOR_TLS it is floor-tls, the W4 floor (floor-tls.h).
 *
 * usage: floor-smtpd sink	(fd 0 and 1: the client)
 */
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FLOOR_TLS
#include "floor-tls.h"
#else
#define io_read(p, len)		read(0, (p), (len))
#define io_write(p, len)	write(1, (p), (len))
#define io_close()		((void)0)
#define EHLO_REPLY		"250-floor\r\n250 PIPELINING\r\n"
#endif

#define CHUNK	65536

extern char **environ;

static char	 out[4096];
static size_t	 outlen;

static void
put(const char *s)
{
	size_t	 n = strlen(s);

	memcpy(out + outlen, s, n);
	outlen += n;
}

static void
flush(void)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < outlen) {
		if ((n = io_write(out + off, outlen - off)) == -1) {
			if (errno == EINTR)
				continue;
			exit(1);
		}
		off += (size_t)n;
	}
	outlen = 0;
}

static void
deliver(int spool, char *sink)
{
	posix_spawn_file_actions_t	 fa;
	char				*args[2] = { sink, NULL };
	pid_t				 pid;
	int				 status;

	if (lseek(spool, 0, SEEK_SET) == -1)
		err(74, "lseek");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, spool, 0);
	if (posix_spawn(&pid, sink, &fa, NULL, args, environ) != 0 ||
	    waitpid(pid, &status, 0) == -1)
		status = 1;
	posix_spawn_file_actions_destroy(&fa);
	put(status == 0 ? "250 2.0.0 OK\r\n" : "451 4.3.0 sink failed\r\n");
	if (ftruncate(spool, 0) == -1)
		err(74, "ftruncate");
}

int
main(int argc, char **argv)
{
	static const char	 end[] = "\r\n.\r\n";
	static char		 in[2 * CHUNK];
	const char		*dir, *p, *lf;
	char			*sink;
	size_t			 len, off, keep = 0, i;
	ssize_t			 n;
	int			 spool = -1, data = 0;

#ifdef FLOOR_TLS
	sink = tls_open(argc, argv);
#else
	if (argc != 2)
		errx(64, "usage: floor-smtpd sink");
	sink = argv[1];
#endif
	if ((dir = getenv("TMPDIR")) == NULL || *dir == '\0')
		dir = "/tmp";
	put("220 floor ESMTP\r\n");
	for (;;) {
		flush();
		if ((n = io_read(in + keep, CHUNK)) <= 0)
			return 0;
		len = keep + (size_t)n;
		off = 0;
		keep = 0;
		while (off < len) {
			if (data) {
				/* The end of data, perhaps across reads. */
				p = memmem(in + off, len - off, end, 5);
				if (p == NULL) {
					/* Hold back what may start "\r\n.\r\n". */
					i = len - off > 4 ? 4 : len - off;
					if (write(spool, in + off, len - off - i)
					    != (ssize_t)(len - off - i))
						err(74, "spool");
					memmove(in, in + len - i, i);
					keep = i;
					break;
				}
				p += 5;
				if (write(spool, in + off, (size_t)(p - in) - off)
				    == -1)
					err(74, "spool");
				off = (size_t)(p - in);
				deliver(spool, sink);
				data = 0;
				continue;
			}
			if ((lf = memchr(in + off, '\n', len - off)) == NULL) {
				keep = len - off;
				memmove(in, in + off, keep);
				break;
			}
			p = in + off;
			if (strncasecmp(p, "EHLO", 4) == 0)
				put(EHLO_REPLY);
#ifdef FLOOR_TLS
			else if (strncasecmp(p, "STARTTLS", 8) == 0) {
				put("220 go\r\n");
				flush();
				tls_start();
				keep = 0;	/* the rest of the read is dropped */
				break;
			}
#endif
			else if (strncasecmp(p, "DATA", 4) == 0) {
				put("354 go\r\n");
				if (spool == -1 && (spool = open(dir, O_TMPFILE |
				    O_RDWR | O_CLOEXEC, 0600)) == -1)
					err(74, "spool");
				data = 1;
				/* The CRLF of DATA starts the terminator. */
				off = (size_t)(lf - in) - 1;
				continue;
			} else if (strncasecmp(p, "QUIT", 4) == 0) {
				put("221 bye\r\n");
				flush();
				io_close();
				return 0;
			} else
				put("250 ok\r\n");
			off = (size_t)(lf - in) + 1;
		}
	}
}
