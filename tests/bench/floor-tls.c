/*
 * The W4 floor: floor-smtpd.c with TLS through GnuTLS, the library
 * smtpd-stdio-tls links.  Per connection it reads the certificate and
 * key (as smtpd-stdio does), answers canned replies, offers STARTTLS and
 * on it does the handshake on fds 0 and 1 (or at once with -T), spools
 * each message to an unlinked file and runs the sink once per message.
 * Full handshakes only: no ticket keys, so no tickets.  Built with
 * -DFLOOR_OPENSSL it is floor-tls-openssl: the same on OpenSSL 3 used
 * directly (one SSL_CTX, no configuration file), the library libtls
 * wrapped before smtpd-stdio moved to GnuTLS, to show the library's
 * share of a session.
 * TCP_NODELAY on the socket, as smtpd-stdio sets once TLS starts: else
 * the reply behind the TLS 1.3 tickets waits 40 ms for a delayed ACK.
 *
 * usage: floor-tls [-T] cert key sink	(fd 0 and 1: the client)
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FLOOR_OPENSSL
#include <openssl/ssl.h>
#else
#include <gnutls/gnutls.h>
#endif

#define CHUNK	65536

#ifdef FLOOR_OPENSSL
static SSL_CTX	*ctx;
static SSL	*cctx;		/* NULL until TLS is up */

static ssize_t
io_write(const void *p, size_t len)
{
	if (cctx == NULL)
		return write(1, p, len);
	return SSL_write(cctx, p, (int)len) > 0 ? (ssize_t)len : -1;
}

static ssize_t
io_read(void *p, size_t len)
{
	int	 n;

	if (cctx == NULL)
		return read(0, p, len);
	n = SSL_read(cctx, p, (int)len);
	return n > 0 ? n : SSL_get_error(cctx, n) == SSL_ERROR_ZERO_RETURN ?
	    0 : -1;
}

static void
tls_start(void)
{
	if ((cctx = SSL_new(ctx)) == NULL || SSL_set_rfd(cctx, 0) != 1 ||
	    SSL_set_wfd(cctx, 1) != 1 || SSL_accept(cctx) != 1)
		errx(1, "handshake failed");
}

static void
tls_setup(const char *cert, const char *key)
{
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		errx(1, "TLS setup failed");
	SSL_CTX_set_num_tickets(ctx, 0);
}

static void
tls_close(void)
{
	(void)SSL_shutdown(cctx);
}
#else
static gnutls_certificate_credentials_t	 cred;
static gnutls_priority_t		 prio;
static gnutls_session_t			 cctx;	/* NULL until TLS is up */

static ssize_t
io_write(const void *p, size_t len)
{
	ssize_t	 n;

	if (cctx == NULL)
		return write(1, p, len);
	do
		n = gnutls_record_send(cctx, p, len);
	while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	return n < 0 ? -1 : n;
}

static ssize_t
io_read(void *p, size_t len)
{
	ssize_t	 n;

	if (cctx == NULL)
		return read(0, p, len);
	do
		n = gnutls_record_recv(cctx, p, len);
	while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
	return n < 0 ? -1 : n;
}

static void
tls_start(void)
{
	int	 r;

	if (gnutls_init(&cctx, GNUTLS_SERVER | GNUTLS_NO_TICKETS) < 0 ||
	    gnutls_priority_set(cctx, prio) < 0 ||
	    gnutls_credentials_set(cctx, GNUTLS_CRD_CERTIFICATE, cred) < 0)
		errx(1, "gnutls_init failed");
	gnutls_transport_set_int2(cctx, 0, 1);
	do
		r = gnutls_handshake(cctx);
	while (r < 0 && !gnutls_error_is_fatal(r));
	if (r < 0)
		errx(1, "handshake: %s", gnutls_strerror(r));
}

static void
tls_setup(const char *cert, const char *key)
{
	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key_file(cred, cert, key,
	    GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_priority_init(&prio, "NORMAL", NULL) < 0)
		errx(1, "TLS setup failed");
}

static void
tls_close(void)
{
	(void)gnutls_bye(cctx, GNUTLS_SHUT_WR);
}
#endif

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
	size_t			 len, off, keep = 0, i;
	ssize_t			 n;
	int			 spool = -1, data = 0, implicit = 0, one = 1;

	if (argc == 5 && strcmp(argv[1], "-T") == 0) {
		implicit = 1;
		argv++;
		argc--;
	}
	if (argc != 4)
		errx(64, "usage: floor-tls [-T] cert key sink");
	tls_setup(argv[1], argv[2]);
	argv += 2;
	if ((dir = getenv("TMPDIR")) == NULL || *dir == '\0')
		dir = "/tmp";
	(void)setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (implicit)
		tls_start();
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
				deliver(spool, argv[1]);
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
				put(cctx == NULL ? "250-floor\r\n250-STARTTLS\r\n"
				    "250 PIPELINING\r\n" :
				    "250-floor\r\n250 PIPELINING\r\n");
			else if (strncasecmp(p, "STARTTLS", 8) == 0) {
				put("220 go\r\n");
				flush();
				tls_start();
				keep = 0;	/* the rest of the read is dropped */
				break;
			} else if (strncasecmp(p, "DATA", 4) == 0) {
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
				if (cctx != NULL)
					tls_close();
				return 0;
			} else
				put("250 ok\r\n");
			off = (size_t)(lf - in) + 1;
		}
	}
}
