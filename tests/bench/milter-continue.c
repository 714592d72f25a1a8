/*
 * A milter (Sendmail milter protocol, version 6) for W1milter that
 * answers "continue" to everything: it negotiates no modifications and
 * no protocol options, so it hears every stage and answers each one but
 * macros and abort; QUIT closes.  One process, poll(2) over all
 * connections, so what W1milter measures is smtpd-stdio's side of the
 * protocol, not a filter's.
 *
 * usage: milter-continue SOCKET
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <err.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXCONN		1024
#define FRAME_MAX	(65536 + 16)

static struct pollfd	 pfd[MAXCONN + 1];
static char		*in[MAXCONN + 1];
static size_t		 inlen[MAXCONN + 1];
static int		 nfds = 1;

/* Answer one frame: cmd and its data. -1 to close. */
static int
answer(int fd, char cmd)
{
	static const char	 cont[] = { 0, 0, 0, 1, 'c' };
	static const char	 optneg[] = { 0, 0, 0, 13, 'O', 0, 0, 0, 6,
				    0, 0, 0, 0, 0, 0, 0, 0 };

	switch (cmd) {
	case 'O':
		return write(fd, optneg, sizeof(optneg)) ==
		    (ssize_t)sizeof(optneg) ? 0 : -1;
	case 'D':
	case 'A':
		return 0;
	case 'Q':
		return -1;
	default:
		return write(fd, cont, sizeof(cont)) == (ssize_t)sizeof(cont) ?
		    0 : -1;
	}
}

/* Read what came and answer every complete frame in it. */
static int
serve(int i)
{
	uint32_t	 n;
	ssize_t		 r;
	size_t		 off = 0;

	r = read(pfd[i].fd, in[i] + inlen[i], FRAME_MAX - inlen[i]);
	if (r <= 0)
		return -1;
	inlen[i] += (size_t)r;
	while (inlen[i] - off >= 4) {
		memcpy(&n, in[i] + off, 4);
		n = ntohl(n);
		if (n == 0 || n > FRAME_MAX - 4)
			return -1;
		if (inlen[i] - off < 4 + (size_t)n)
			break;
		if (answer(pfd[i].fd, in[i][off + 4]) == -1)
			return -1;
		off += 4 + n;
	}
	memmove(in[i], in[i] + off, inlen[i] - off);
	inlen[i] -= off;
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun;
	int			 s, c, i;

	if (argc != 2)
		errx(64, "usage: milter-continue SOCKET");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(argv[1]) >= sizeof(sun.sun_path))
		errx(64, "socket path too long");
	memcpy(sun.sun_path, argv[1], strlen(argv[1]));
	(void)unlink(argv[1]);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(s, 128) == -1)
		err(1, "%s", argv[1]);
	pfd[0].fd = s;
	pfd[0].events = POLLIN;
	for (;;) {
		if (poll(pfd, (nfds_t)nfds, -1) == -1)
			err(1, "poll");
		for (i = nfds - 1; i >= 1; i--) {
			if (pfd[i].revents == 0 || serve(i) == 0)
				continue;
			(void)close(pfd[i].fd);
			free(in[i]);
			pfd[i] = pfd[--nfds];
			in[i] = in[nfds];
			inlen[i] = inlen[nfds];
		}
		if ((pfd[0].revents & POLLIN) && nfds <= MAXCONN &&
		    (c = accept(s, NULL, NULL)) != -1) {
			if ((in[nfds] = malloc(FRAME_MAX)) == NULL)
				err(1, "malloc");
			inlen[nfds] = 0;
			pfd[nfds].fd = c;
			pfd[nfds].events = POLLIN;
			pfd[nfds++].revents = 0;
		}
	}
}
