/*
 * The client connection: reads of fd 0 and writes to fd 1 against
 * absolute deadlines, the lingering close, and the signals that ask us to
 * stop (SPEC 6).  SIGTERM, SIGHUP and SIGINT stay blocked except inside
 * the waits here, so a stop request is seen at the next wait for the
 * client and never in the middle of a handler run or a spool write.
 * Once TLS is up (SPEC 8) the same reads and writes go through tls.c,
 * waiting in the same place on what it wants (TLS_WANT_POLLIN/OUT).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

static volatile sig_atomic_t	 stop_signal;
static sigset_t			 wait_mask;	/* the mask inside waits */
static int			 in_socket;	/* fd 0 is a socket */
static int			 out_socket;	/* fd 1 is a socket */
static struct tls_conn		*tls_conn;	/* NULL: plaintext */

static void	 on_stop_signal(int);
static int	 wait_fd(int, short, long long);
static int	 out_ready(long long);
static enum conn_input tls_conn_read(char *, size_t, size_t *, long long);
static int	 tls_conn_write(const char *, size_t, long long);
static void	 tls_conn_close(long long);

static void
on_stop_signal(int sig)
{
	stop_signal = sig;
}

void
conn_init(void)
{
	struct sigaction	 sa;
	struct stat		 st;
	sigset_t		 stops;

	/* A client that hangs up must not kill us mid-write (SPEC 6). */
	(void)signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigemptyset(&stops);
	(void)sigaddset(&stops, SIGTERM);
	(void)sigaddset(&stops, SIGHUP);
	(void)sigaddset(&stops, SIGINT);
	(void)sigprocmask(SIG_BLOCK, &stops, &wait_mask);
	(void)sigdelset(&wait_mask, SIGTERM);
	(void)sigdelset(&wait_mask, SIGHUP);
	(void)sigdelset(&wait_mask, SIGINT);
	in_socket = fstat(0, &st) == 0 && S_ISSOCK(st.st_mode);
	out_socket = fstat(1, &st) == 0 && S_ISSOCK(st.st_mode);
	/*
	 * Replies go out in whole batches, but some answer twice per round
	 * trip: a BDAT LAST (the batch before the handler runs, then its
	 * reply), and after a TLS 1.3 handshake the tickets, then the reply.
	 * With Nagle the second write waits for the client's delayed ACK
	 * (40 ms on Linux).  Not a TCP socket (UNIX, a pipe): ignored.
	 */
	if (out_socket)
		(void)setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
}

/* fd 0 is a socket: the protocol synchronization check is on (SPEC 4). */
int
conn_is_socket(void)
{
	return in_socket;
}

/*
 * The signal that asked us to stop, or 0.  It may still be pending (it
 * is blocked outside the waits): buffered input can go on without a
 * wait, and must not start another handler run after a stop request.
 */
int
conn_stop_requested(void)
{
	static const int	 sigs[] = { SIGTERM, SIGHUP, SIGINT };
	sigset_t		 pending;
	size_t			 i;

	if (stop_signal == 0 && sigpending(&pending) == 0)
		for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			if (sigismember(&pending, sigs[i]) == 1)
				return sigs[i];
	return stop_signal;
}

/*
 * Wait until fd is ready for events or the deadline (CLOCK_MONOTONIC ms)
 * passes: 1 ready, 0 deadline, -1 a stop signal, -2 poll failed.  The
 * stop signals are let in only here, atomically with the wait (ppoll),
 * so one that arrived earlier is never missed.
 */
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd	 pfd = { fd, events, 0 };
	struct timespec	 ts;
	long long	 left;
	int		 r;

	for (;;) {
		if (stop_signal)
			return -1;
		if ((left = deadline - conn_now_ms()) <= 0)
			return 0;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		r = ppoll(&pfd, 1, &ts, &wait_mask);
		if (r > 0)
			return 1;
		if (r == -1 && errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			return -2;
		}
	}
}

/* fd 0 has input (or EOF) before the deadline: 1, else 0. */
int
conn_wait_input(long long deadline)
{
	return wait_fd(0, POLLIN, deadline) == 1;
}

/*
 * fd 1 can take octets before the deadline: 1, else 0.  Past it, only a
 * write that need not wait goes (a handler's reply after a long run).
 */
static int
out_ready(long long deadline)
{
	struct pollfd	 pfd = { 1, POLLOUT, 0 };
	long long	 left;
	int		 r;

	do {
		left = deadline - conn_now_ms();
		r = poll(&pfd, 1, left > 0 ? (int)left : 0);
	} while (r == -1 && errno == EINTR);
	return r > 0;
}

/* One read of the client, waiting until the deadline at most. */
enum conn_input
conn_read(char *buf, size_t size, size_t *got, long long deadline)
{
	ssize_t	 n;
	int	 r;

	if (tls_conn != NULL)
		return tls_conn_read(buf, size, got, deadline);
	for (;;) {
		if ((r = wait_fd(0, POLLIN, deadline)) == 0)
			return INPUT_TIMEOUT;
		if (r == -1)
			return INPUT_STOP;
		if (r == -2)
			return INPUT_EOF;	/* cannot wait: as if gone */
		n = read(0, buf, size);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n == -1)
				log_info("read from client: %s",
				    strerror(errno));
			return INPUT_EOF;
		}
		*got = (size_t)n;
		return INPUT_DATA;
	}
}

/*
 * Write all of p before the deadline; -1 if the client is gone or does
 * not read.  On a socket, never block: send(2) with MSG_DONTWAIT leaves
 * the socket's own flags alone.  On a pipe, wait for room first, then
 * write PIPE_BUF octets at most, which POLLOUT promises to take without
 * blocking (SPEC 10.3: a deadline over pipes too).  A stop signal does
 * not cut a write short: the reply being written is the one the client
 * must get.
 */
int
conn_write(const char *p, size_t len, long long deadline)
{
	ssize_t		 n;

	if (tls_conn != NULL)
		return tls_conn_write(p, len, deadline);
	while (len > 0) {
		if (out_socket)
			n = send(1, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else if (out_ready(deadline))
			n = write(1, p, len < PIPE_BUF ? len : PIPE_BUF);
		else {
			log_info("write to client: timeout");
			return -1;
		}
		if (n >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_info("write to client: %s", strerror(errno));
			return -1;
		}
		if (!out_ready(deadline)) {
			log_info("write to client: timeout");
			return -1;
		}
	}
	return 0;
}

/*
 * Closing a socket with unread input makes the kernel send a reset, and a
 * reset can destroy our last reply before the client reads it (a 554 to
 * an early talker, a 421).  So half-close, then read what the client
 * still sends until it closes too: LINGER_MS in all, LINGER_BYTES at
 * most, however the client trickles.
 */
void
conn_linger(void)
{
	char		 buf[4096];
	long long	 deadline = conn_now_ms() + LINGER_MS;
	size_t		 total = 0;
	ssize_t		 n;
	const char	*why;

	if (tls_conn != NULL)
		tls_conn_close(deadline);
	if (!in_socket || shutdown(1, SHUT_WR) == -1)
		return;
	for (;;) {
		why = "at the cap";
		if (total >= LINGER_BYTES)
			break;
		why = "at the deadline";
		if (wait_fd(0, POLLIN, deadline) != 1)
			break;
		why = "at end of input";
		if ((n = read(0, buf, sizeof(buf))) <= 0)
			break;
		total += (size_t)n;
	}
	log_debug("lingering close: %zu octets read, stopped %s", total, why);
}

/* Bytes (not EOF) waiting before the greeting went out. */
int
conn_spoke_first(void)
{
	char	 byte;

	return in_socket && recv(0, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

#ifdef NO_TLS
/*
 * The build without the TLS library (see tls-exec.c): a process of it never has
 * --tls-cert, so TLS never starts.
 */
int
conn_tls_start(struct tls *server, long long deadline, struct tls_info *ti)
{
	(void)server;
	(void)deadline;
	(void)ti;
	return -1;
}

void
conn_tls_free(void)
{
}

static enum conn_input
tls_conn_read(char *buf, size_t size, size_t *got, long long deadline)
{
	(void)buf;
	(void)size;
	(void)got;
	(void)deadline;
	return INPUT_EOF;
}

static int
tls_conn_write(const char *p, size_t len, long long deadline)
{
	(void)p;
	(void)len;
	(void)deadline;
	return -1;
}

static void
tls_conn_close(long long deadline)
{
	(void)deadline;
}
#else
static int	 tls_wait(ssize_t, long long, int);
static void	 tls_conn_drain(char *, size_t, size_t *);

/*
 * After a tls.c call returned r: wait for what it wants.  1: call it
 * again; 0: the deadline passed; -1: a stop signal (only if stoppable);
 * -2: done or failed.
 */
static int
tls_wait(ssize_t r, long long deadline, int stoppable)
{
	struct pollfd	 pfd = { 0, POLLIN, 0 };
	long long	 left;

	if (r == TLS_WANT_AGAIN)
		return 1;
	if (r != TLS_WANT_POLLIN && r != TLS_WANT_POLLOUT)
		return -2;
	if (r == TLS_WANT_POLLOUT) {
		pfd.fd = 1;
		pfd.events = POLLOUT;
	}
	if (stoppable)
		return wait_fd(pfd.fd, pfd.events, deadline);
	if ((left = deadline - conn_now_ms()) <= 0)
		return 0;
	return poll(&pfd, 1, (int)left) == 0 ? 0 : 1;
}

/*
 * SPEC 8: the TLS handshake on fds 0 and 1 before the deadline.  0 when
 * it is done (ti filled), 1 when the client went away, -1 when it failed
 * or timed out (logged).  A stop signal waits for the handshake's end.
 */
int
conn_tls_start(struct tls *server, long long deadline, struct tls_info *ti)
{
	struct tls_conn	*tc;
	ssize_t		 r;
	int		 w;

	if (!in_socket)
		(void)fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	if (!out_socket)
		(void)fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
	if ((tc = tlsio_accept(server, in_socket, out_socket)) == NULL)
		return -1;
	while ((w = tls_wait(r = tlsio_handshake(tc), deadline, 0)) != -2)
		if (w == 0) {
			log_info("TLS handshake: timeout");
			tlsio_free(tc);
			return -1;
		}
	if (r == -1) {
		if (tlsio_eof(tc))
			log_info("TLS handshake: client closed");
		else
			log_info("TLS handshake failed: %s", tlsio_error(tc));
		w = tlsio_eof(tc) ? 1 : -1;
		tlsio_free(tc);
		return w;
	}
	tls_conn = tc;
	tlsio_info(tc, ti);
	return 0;
}

/* The session is over: free the TLS connection, if any. */
void
conn_tls_free(void)
{
	tlsio_free(tls_conn);
	tls_conn = NULL;
}

/*
 * After one record, what else decrypts without waiting: the session
 * sees the same bytes however the client's records split them, so the
 * pipelining check (SPEC 4) is decided on decrypted bytes alike.  An
 * EOF or error behind them comes again at the next read.
 */
static void
tls_conn_drain(char *buf, size_t size, size_t *got)
{
	ssize_t	 n;

	while (*got < size &&
	    (n = tlsio_read(tls_conn, buf + *got, size - *got)) > 0)
		*got += (size_t)n;
}

/*
 * conn_read() under TLS: decrypted bytes, EOF after close_notify or the
 * client's EOF, or SPEC 8's error: a record that fails to decrypt or
 * authenticate is no hang-up (exit 1).
 */
static enum conn_input
tls_conn_read(char *buf, size_t size, size_t *got, long long deadline)
{
	ssize_t	 n;
	int	 w;

	for (;;) {
		if ((n = tlsio_read(tls_conn, buf, size)) > 0) {
			*got = (size_t)n;
			tls_conn_drain(buf, size, got);
			return INPUT_DATA;
		}
		if ((w = tls_wait(n, deadline, 1)) == 0)
			return INPUT_TIMEOUT;
		if (w == -1)
			return INPUT_STOP;
		if (w == -2 && n == 0)
			return INPUT_EOF;
		if (w == -2) {
			log_warn("TLS read: %s", tlsio_error(tls_conn));
			return INPUT_ERROR;
		}
	}
}

static int
tls_conn_write(const char *p, size_t len, long long deadline)
{
	ssize_t	 n;
	int	 w;

	while (len > 0) {
		if ((n = tlsio_write(tls_conn, p, len)) > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		/* A stop signal does not cut the reply short (above). */
		if ((w = tls_wait(n, deadline, 0)) == 0) {
			log_info("write to client: timeout");
			return -1;
		}
		if (w == -2) {
			log_info("TLS write: %s", tlsio_error(tls_conn));
			return -1;
		}
	}
	return 0;
}

/* close_notify, as far as the deadline lets it go out. */
static void
tls_conn_close(long long deadline)
{
	while (tls_wait(tlsio_close(tls_conn), deadline, 1) == 1)
		;
}
#endif /* NO_TLS */
