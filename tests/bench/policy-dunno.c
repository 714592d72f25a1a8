/*
 * A Postfix policy server (policy delegation protocol) for W1policy that
 * answers action=DUNNO to every request: per connection it reads
 * name=value lines up to an empty line, answers, and keeps the
 * connection for the next request.  One process, poll(2) over all
 * connections, so what W1policy measures is smtpd-stdio's side of the
 * protocol, not an interpreter's.
 *
 * usage: policy-dunno SOCKET
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAXCONN	1024

static struct pollfd	 pfd[MAXCONN + 1];
static char		 last[MAXCONN + 1];	/* the connection's last byte */
static int		 nfds = 1;

/* Answer every request that ended in buf (a blank line: "\n\n"). */
static int
serve(int i)
{
	static const char	 dunno[] = "action=DUNNO\n\n";
	char			 buf[8192];
	ssize_t			 n, k;

	if ((n = read(pfd[i].fd, buf, sizeof(buf))) <= 0)
		return -1;
	for (k = 0; k < n; k++) {
		if (buf[k] == '\n' && last[i] == '\n' &&
		    write(pfd[i].fd, dunno, sizeof(dunno) - 1) !=
		    (ssize_t)sizeof(dunno) - 1)
			return -1;
		/* After an answer the next request starts afresh. */
		last[i] = buf[k] == '\n' && last[i] == '\n' ? 0 : buf[k];
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun;
	int			 i, fd;

	if (argc != 2)
		errx(64, "usage: policy-dunno SOCKET");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(argv[1]) >= sizeof(sun.sun_path))
		errx(64, "%s: path too long", argv[1]);
	strcpy(sun.sun_path, argv[1]);
	(void)unlink(argv[1]);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 512) == -1)
		err(71, "%s", argv[1]);
	pfd[0].fd = fd;
	pfd[0].events = POLLIN;
	for (;;) {
		if (poll(pfd, (nfds_t)nfds, -1) == -1)
			err(71, "poll");
		if ((pfd[0].revents & POLLIN) && nfds <= MAXCONN &&
		    (fd = accept(pfd[0].fd, NULL, NULL)) != -1) {
			pfd[nfds].fd = fd;
			pfd[nfds].events = POLLIN;
			pfd[nfds].revents = 0;
			last[nfds++] = 0;
		}
		for (i = nfds - 1; i >= 1; i--) {
			if (pfd[i].revents == 0 || serve(i) == 0)
				continue;
			(void)close(pfd[i].fd);
			pfd[i] = pfd[--nfds];
			last[i] = last[nfds];
		}
	}
}
