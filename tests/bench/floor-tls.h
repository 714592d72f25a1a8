/*
 * The TLS of the W4 floor, floor-tls: floor-smtpd.c built with
 * -DFLOOR_TLS includes this.  TLS through GnuTLS, the library
 * smtpd-stdio-tls links.  Per connection it reads the certificate and
 * key (as smtpd-stdio does), offers STARTTLS and on it does the handshake
 * on fds 0 and 1 (or at once with -T).  Full handshakes only: no ticket
 * keys, so no tickets.  Built with -DFLOOR_OPENSSL too it is
 * floor-tls-openssl: the same on OpenSSL 3 used directly (one SSL_CTX,
 * no configuration file), the library libtls wrapped before smtpd-stdio
 * moved to GnuTLS, to show the library's share of a session.
 * TCP_NODELAY on the socket, as smtpd-stdio sets once TLS starts: else
 * the reply behind the TLS 1.3 tickets waits 40 ms for a delayed ACK.
 *
 * usage: floor-tls [-T] cert key sink	(fd 0 and 1: the client)
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#ifdef FLOOR_OPENSSL
#include <openssl/ssl.h>
#else
#include <gnutls/gnutls.h>
#endif

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

/* STARTTLS is offered until TLS is up. */
#define EHLO_REPLY	(cctx == NULL ? "250-floor\r\n250-STARTTLS\r\n" \
			    "250 PIPELINING\r\n" : "250-floor\r\n250 PIPELINING\r\n")

static void
io_close(void)
{
	if (cctx != NULL)
		tls_close();
}

/* floor-tls [-T] cert key sink: TLS set up (and started, with -T); the sink. */
static char *
tls_open(int argc, char **argv)
{
	int	 implicit = 0, one = 1;

	if (argc == 5 && strcmp(argv[1], "-T") == 0) {
		implicit = 1;
		argv++;
		argc--;
	}
	if (argc != 4)
		errx(64, "usage: floor-tls [-T] cert key sink");
	tls_setup(argv[1], argv[2]);
	(void)setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (implicit)
		tls_start();
	return argv[3];
}
