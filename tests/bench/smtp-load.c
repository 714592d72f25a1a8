/*
 * The benchmark's SMTP client.  Runs N sessions against 127.0.0.1:PORT,
 * C at a time (one forked worker per concurrent stream), each session
 * sending M messages of S bytes, and checks every reply code.  MAIL, RCPT
 * and DATA go in one write when the server offers PIPELINING (as Postfix's
 * smtp client does), one by one otherwise.
 *
 * usage: smtp-load -p port [-n sessions] [-c concurrency] [-m messages]
 *        [-s size] [-B chunk] [-P] [-t | -T] [-r]
 * -B: send each message with BDAT (RFC 3030) in chunks of at most chunk
 * octets instead of DATA: MAIL, RCPT, the BDAT commands and the whole
 * message in one write, then the replies (one round trip per message).
 * -P: begin every connection with a PROXY protocol v1 header, as HAProxy's
 * send-proxy does (for smtpd-stdio --proxy-protocol).
 * -t: STARTTLS after the first EHLO, then EHLO again (W4); -T: implicit
 * TLS, the handshake first (port 465 style).  -r: each worker keeps the
 * TLS session (the ticket) of one connection and offers it on its next,
 * as a resuming MTA does; without -r every handshake is a full one.
 * OpenSSL's client uses a TLS 1.3 ticket once, so the worker keeps the
 * newest ticket of every connection (the new-session callback, which
 * runs when a ticket arrives after the handshake); a connection resumes
 * only if the server sent one on the previous, resumed or not (smtpd-stdio
 * renews tickets for that).  TLS
 * is OpenSSL's (libssl): libtls's client saves its session at the end of
 * the handshake, before a TLS 1.3 server has sent its ticket, so it
 * never resumes TLS 1.3.  The server's certificate is not verified.
 * prints one line: elapsed=SECONDS data=SECONDS sessions=N messages=N
 * fails=N resumed=N
 * (data: summed time from the first body byte sent to the final reply;
 * resumed: handshakes that resumed a session)
 * exits 1 if any reply was not the one expected.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define PROXY_V1	"PROXY TCP4 192.0.2.7 127.0.0.1 54321 25\r\n"

static int	 send_proxy;
static int	 use_tls;	/* 0, 't' STARTTLS, 'T' implicit */
static int	 resume;
static SSL_CTX	*ssl_ctx;
static SSL_SESSION *saved;	/* this worker's last session, with -r */
static size_t	 bdat_chunk;	/* -B: BDAT chunk size, 0 = DATA */

struct conn {
	int	 fd;
	SSL	*ssl;		/* NULL until TLS is up */
	char	 buf[8192];
	size_t	 len;
	int	 pipelining;
};

/* OpenSSL's new-session callback: a TLS 1.3 ticket arrived; the newest
 * is kept. */
static int
keep_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	if (saved != NULL)
		SSL_SESSION_free(saved);
	saved = sess;
	return 1;		/* we keep the reference */
}

static void
tls_setup(void)
{
	if ((ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		errx(71, "SSL_CTX_new");
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ssl_ctx, keep_session);
}

/* The handshake on c->fd; 1 if it resumed a session, -1 on failure. */
static int
tls_start(struct conn *c)
{
	if ((c->ssl = SSL_new(ssl_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_set_tlsext_host_name(c->ssl, "bench.test") != 1)
		errx(71, "SSL_new");
	if (resume && saved != NULL)
		(void)SSL_set_session(c->ssl, saved);
	if (SSL_connect(c->ssl) != 1) {
		warnx("TLS handshake: %s",
		    ERR_error_string(ERR_get_error(), NULL));
		return -1;
	}
	c->len = 0;
	return SSL_session_reused(c->ssl) ? 1 : 0;
}

static ssize_t
conn_write(struct conn *c, const char *p, size_t len)
{
	int	 n;

	if (c->ssl == NULL)
		return write(c->fd, p, len);
	n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? n : -1;
}

static ssize_t
conn_read(struct conn *c, char *p, size_t len)
{
	int	 n;

	if (c->ssl == NULL)
		return read(c->fd, p, len);
	n = SSL_read(c->ssl, p, (int)len);
	return n > 0 ? n : -1;
}

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
send_all(struct conn *c, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = conn_write(c, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one whole reply; return its code, -1 on EOF or garbage. */
static int
reply(struct conn *c)
{
	char	*lf;
	size_t	 n;
	ssize_t	 r;
	int	 code, last;

	for (;;) {
		while ((lf = memchr(c->buf, '\n', c->len)) == NULL) {
			if (c->len == sizeof(c->buf))
				return -1;
			r = conn_read(c, c->buf + c->len,
			    sizeof(c->buf) - c->len);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;
			c->len += (size_t)r;
		}
		n = (size_t)(lf - c->buf) + 1;
		if (n < 4)
			return -1;
		code = atoi(c->buf);
		last = c->buf[3] != '-';
		if (memmem(c->buf, n, "PIPELINING", 10) != NULL)
			c->pipelining = 1;
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
		if (last)
			return code;
	}
}

static int
expect(struct conn *c, int want, const char *what)
{
	int	 code = reply(c);

	if (code == want)
		return 0;
	warnx("%s: got %d, wanted %d", what, code, want);
	return -1;
}

static int
command(struct conn *c, const char *cmd, int want)
{
	if (send_all(c, cmd, strlen(cmd)) == -1)
		return -1;
	return expect(c, want, cmd);
}

/*
 * One message by BDAT: envelope, every chunk and its BDAT line in one
 * writev (as a pipelining client may, RFC 3030 4.2), then every reply.
 */
static int
bdat_message(struct conn *c, const char *body, size_t len, double *data)
{
	static char		 env[] = "MAIL FROM:<bench@example.org>\r\n"
				    "RCPT TO:<sink@example.net>\r\n";
	static char		 cmds[IOV_MAX / 2][32];
	struct iovec		 iov[IOV_MAX];
	size_t			 off = 0, n, chunks = 0, i, k = 0;
	ssize_t			 w;
	double			 t0 = now();

	iov[k].iov_base = env;
	iov[k++].iov_len = sizeof(env) - 1;
	do {
		if (chunks == IOV_MAX / 2 - 1)
			errx(64, "-B: too many chunks for one writev");
		n = len - off > bdat_chunk ? bdat_chunk : len - off;
		iov[k].iov_base = cmds[chunks];
		iov[k++].iov_len = (size_t)snprintf(cmds[chunks],
		    sizeof(cmds[0]), "BDAT %zu%s\r\n", n,
		    off + n == len ? " LAST" : "");
		iov[k].iov_base = (char *)body + off;
		iov[k++].iov_len = n;
		off += n;
		chunks++;
	} while (off < len);
	for (i = 0; i < k; ) {
		if ((w = writev(c->fd, iov + i, (int)(k - i))) == -1) {
			if (errno == EINTR)
				continue;
			warn("writev");
			return -1;
		}
		for (; i < k && (size_t)w >= iov[i].iov_len; i++)
			w -= (ssize_t)iov[i].iov_len;
		if (i < k) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	if (expect(c, 250, "MAIL") == -1 || expect(c, 250, "RCPT") == -1)
		return -1;
	for (i = 0; i < chunks; i++)
		if (expect(c, 250, "BDAT") == -1)
			return -1;
	*data += now() - t0;
	return 0;
}

/*
 * One session; adds the data-phase time to *data, counts a resumed
 * handshake in *resumed.  -1 on failure.
 */
static int
session(int port, long msgs, const char *body, size_t bodylen, double *data,
    long *resumed)
{
	static const char	 env[] = "MAIL FROM:<bench@example.org>\r\n"
				    "RCPT TO:<sink@example.net>\r\nDATA\r\n";
	struct sockaddr_in	 sin;
	struct conn		 c;
	double			 t0;
	long			 i;
	int			 one = 1, rc = -1, r;

	memset(&c, 0, sizeof(c));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(71, "socket");
	(void)setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		warn("connect");
		goto out;
	}
	if (send_proxy && send_all(&c, PROXY_V1, sizeof(PROXY_V1) - 1) == -1)
		goto out;
	if (use_tls == 'T') {
		if ((r = tls_start(&c)) == -1)
			goto out;
		*resumed += r;
	}
	if (expect(&c, 220, "greeting") == -1 ||
	    command(&c, "EHLO bench.example.org\r\n", 250) == -1)
		goto out;
	if (use_tls == 't') {
		if (command(&c, "STARTTLS\r\n", 220) == -1 ||
		    (r = tls_start(&c)) == -1)
			goto out;
		*resumed += r;
		c.pipelining = 0;
		if (command(&c, "EHLO bench.example.org\r\n", 250) == -1)
			goto out;
	}
	for (i = 0; i < msgs; i++) {
		if (bdat_chunk > 0) {
			/* The body without its ".\r\n": BDAT has no dots. */
			if (bdat_message(&c, body, bodylen - 3, data) == -1)
				goto out;
			continue;
		}
		if (c.pipelining) {
			if (send_all(&c, env, sizeof(env) - 1) == -1 ||
			    expect(&c, 250, "MAIL") == -1 ||
			    expect(&c, 250, "RCPT") == -1 ||
			    expect(&c, 354, "DATA") == -1)
				goto out;
		} else if (command(&c, "MAIL FROM:<bench@example.org>\r\n",
		    250) == -1 ||
		    command(&c, "RCPT TO:<sink@example.net>\r\n", 250) == -1 ||
		    command(&c, "DATA\r\n", 354) == -1)
			goto out;
		t0 = now();
		if (send_all(&c, body, bodylen) == -1 ||
		    expect(&c, 250, "end of data") == -1)
			goto out;
		*data += now() - t0;
	}
	if (command(&c, "QUIT\r\n", 221) == -1)
		goto out;
	rc = 0;
out:
	if (c.ssl != NULL) {
		(void)SSL_shutdown(c.ssl);	/* our close_notify */
		SSL_free(c.ssl);
	}
	(void)close(c.fd);
	return rc;
}

/* The message, dot-stuffing-free, exactly size octets, then ".\r\n". */
static char *
make_body(size_t size, size_t *len)
{
	static const char	 hdr[] = "From: <bench@example.org>\r\n"
				    "To: <sink@example.net>\r\n"
				    "Subject: smtpd-stdio benchmark\r\n\r\n";
	char			*b;
	size_t			 i = 0, line;

	if (size < sizeof(hdr) + 2)
		size = sizeof(hdr) + 2;
	if ((b = malloc(size + 3)) == NULL)
		err(71, "malloc");
	memcpy(b, hdr, sizeof(hdr) - 1);
	i = sizeof(hdr) - 1;
	while (i < size) {
		line = size - i > 78 ? 78 : size - i;
		if (size - i - line == 1)
			line--;			/* no lone byte at the end */
		memset(b + i, 'x', line - 2);
		memcpy(b + i + line - 2, "\r\n", 2);
		i += line;
	}
	memcpy(b + size, ".\r\n", 3);
	*len = size + 3;
	return b;
}

int
main(int argc, char **argv)
{
	struct { double data; long fails, resumed; } r, sum = { 0, 0, 0 };
	char	*body;
	size_t	 bodylen, size = 1024;
	double	 t0, t1;
	long	 sessions = 1, msgs = 1, per, i;
	int	 port = 0, conc = 1, ch, w, p[2], status;
	pid_t	 pid;

	while ((ch = getopt(argc, argv, "p:n:c:m:s:B:PtTr")) != -1) {
		switch (ch) {
		case 'p': port = atoi(optarg); break;
		case 'n': sessions = atol(optarg); break;
		case 'c': conc = atoi(optarg); break;
		case 'm': msgs = atol(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 'P': send_proxy = 1; break;
		case 't': case 'T': use_tls = ch; break;
		case 'r': resume = 1; break;
		case 'B': bdat_chunk = (size_t)atol(optarg); break;
		default:
			errx(64, "usage: smtp-load -p port [-n sessions] "
			    "[-c concurrency] [-m messages] [-s size] "
			    "[-B chunk] [-P] [-t | -T] [-r]");
		}
	}
	if (port <= 0 || conc < 1 || sessions < conc)
		errx(64, "bad arguments");
	/* BDAT messages are written to the socket itself, not through TLS. */
	if (bdat_chunk > 0 && use_tls)
		errx(64, "-B and -t/-T do not go together");
	body = make_body(size, &bodylen);
	if (use_tls)
		tls_setup();
	if (pipe(p) == -1)
		err(71, "pipe");
	t0 = now();
	for (w = 0; w < conc; w++) {
		per = sessions / conc + (w < sessions % conc ? 1 : 0);
		if ((pid = fork()) == -1)
			err(71, "fork");
		if (pid == 0) {
			(void)close(p[0]);
			r.data = 0;
			r.fails = 0;
			r.resumed = 0;
			for (i = 0; i < per; i++)
				if (session(port, msgs, body, bodylen,
				    &r.data, &r.resumed) == -1)
					r.fails++;
			if (write(p[1], &r, sizeof(r)) != sizeof(r))
				_exit(1);
			_exit(0);
		}
	}
	(void)close(p[1]);
	while (read(p[0], &r, sizeof(r)) == sizeof(r)) {
		sum.data += r.data;
		sum.fails += r.fails;
		sum.resumed += r.resumed;
	}
	while (wait(&status) > 0)
		;
	t1 = now();
	printf("elapsed=%.6f data=%.6f sessions=%ld messages=%ld fails=%ld "
	    "resumed=%ld\n", t1 - t0, sum.data, sessions, sessions * msgs,
	    sum.fails, sum.resumed);
	return sum.fails > 0 ? 1 : 0;
}
