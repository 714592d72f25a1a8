/*
 * One TLS connection on fds 0 and 1 through GnuTLS, SPEC 8: the record
 * layer under conn.c, and what a finished handshake tells the handler.
 * Nothing here waits: a call that would block says which way
 * (TLS_WANT_POLLIN/OUT) and conn.c waits against its deadlines.  The
 * configuration it serves with is tls.c's.
 */
#include <sys/socket.h>

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"
#include "tls.h"

#define TLS_SESSION_LIFETIME	3600	/* seconds a ticket is good for */

struct tls_conn {
	gnutls_session_t	 s;
	gnutls_packet_t		 pkt;		/* decrypted, partly read */
	size_t			 pkt_off;
	int			 in_socket, out_socket;
	int			 eof;		/* read(2) saw EOF */
	int			 err;		/* last GnuTLS error */
};

static int	 host_name_char(char);
static void	 copy_clean(char *, size_t, const char *, int);
static ssize_t	 raw_pull(gnutls_transport_ptr_t, void *, size_t);
static ssize_t	 raw_push(gnutls_transport_ptr_t, const void *, size_t);
static int	 raw_pull_timeout(gnutls_transport_ptr_t, unsigned int);
static ssize_t	 io_result(struct tls_conn *, ssize_t);
static void	 client_cert_info(struct tls_conn *, struct tls_info *);
static void	 subject_oneline(gnutls_x509_crt_t, char *, size_t);
static void	 common_name(gnutls_x509_crt_t, int, char *, size_t);

/*
 * GnuTLS reads and writes fds 0 and 1 through these, so the same code
 * serves a socket and a pair of pipes, never blocks, and tells the
 * client's EOF (SPEC 8: it went away, exit 0) from a broken handshake.
 */
static ssize_t
raw_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct tls_conn	*tc = p;
	ssize_t		 n;

	do
		n = tc->in_socket ? recv(0, buf, len, MSG_DONTWAIT) :
		    read(0, buf, len);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		gnutls_transport_set_errno(tc->s, errno == EWOULDBLOCK ?
		    EAGAIN : errno);
	if (n == 0)
		tc->eof = 1;
	return n;
}

static ssize_t
raw_push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct tls_conn	*tc = p;
	ssize_t		 n;

	do
		n = tc->out_socket ? send(1, buf, len, MSG_DONTWAIT |
		    MSG_NOSIGNAL) : write(1, buf, len);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		gnutls_transport_set_errno(tc->s, errno == EWOULDBLOCK ?
		    EAGAIN : errno);
	return n;
}

/* Never waits: GnuTLS asks only whether a read could go on now. */
static int
raw_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct pollfd	 pfd = { 0, POLLIN, 0 };

	(void)p;
	(void)ms;
	return poll(&pfd, 1, 0);
}

/* A connection on fds 0 and 1 (sockets or pipes), or NULL (logged). */
struct tls_conn *
tlsio_accept(struct tls *t, int in_socket, int out_socket)
{
	struct tls_conn	*tc;
	int		 r;

	if ((tc = calloc(1, sizeof(*tc))) == NULL) {
		log_warn("TLS: out of memory");
		return NULL;
	}
	tc->in_socket = in_socket;
	tc->out_socket = out_socket;
	/* SPEC 8: no ticket, not even TLS 1.3's, without ticket keys. */
	if ((r = gnutls_init(&tc->s, GNUTLS_SERVER | GNUTLS_NONBLOCK |
	    GNUTLS_NO_SIGNAL | (t->tickets ? 0 : GNUTLS_NO_TICKETS))) < 0 ||
	    (r = gnutls_priority_set(tc->s, t->prio)) < 0 ||
	    (r = gnutls_credentials_set(tc->s, GNUTLS_CRD_CERTIFICATE,
	    t->cred)) < 0 || (t->tickets &&
	    (r = gnutls_session_ticket_enable_server(tc->s,
	    &(gnutls_datum_t){ t->ticket_key, TICKET_MASTER_LEN })) < 0)) {
		log_warn("TLS: %s", gnutls_strerror(r));
		tlsio_free(tc);
		return NULL;
	}
	/* Asked for, never checked: its hash is the handler's to pin. */
	if (t->ask_client_cert)
		gnutls_certificate_server_set_request(tc->s, GNUTLS_CERT_REQUEST);
	gnutls_db_set_cache_expiration(tc->s, TLS_SESSION_LIFETIME);
	gnutls_handshake_set_timeout(tc->s, 0);	/* our deadlines hold */
	gnutls_transport_set_ptr(tc->s, tc);
	gnutls_transport_set_pull_function(tc->s, raw_pull);
	gnutls_transport_set_push_function(tc->s, raw_push);
	gnutls_transport_set_pull_timeout_function(tc->s, raw_pull_timeout);
	return tc;
}

void
tlsio_free(struct tls_conn *tc)
{
	if (tc == NULL)
		return;
	if (tc->pkt != NULL)
		gnutls_packet_deinit(tc->pkt);
	if (tc->s != NULL)
		gnutls_deinit(tc->s);
	free(tc);
}

/*
 * What a GnuTLS call's result r means for conn.c: r itself when ≥ 0,
 * TLS_WANT_POLLIN/OUT when it would block, -1 when it failed (tc->err).
 */
static ssize_t
io_result(struct tls_conn *tc, ssize_t r)
{
	if (r >= 0)
		return r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return gnutls_record_get_direction(tc->s) == 0 ?
		    TLS_WANT_POLLIN : TLS_WANT_POLLOUT;
	/* A warning alert (a refused renegotiation...) is no failure. */
	if (!gnutls_error_is_fatal((int)r) || r == GNUTLS_E_REHANDSHAKE)
		return TLS_WANT_AGAIN;
	tc->err = (int)r;
	return -1;
}

/* The handshake: 0 done, TLS_WANT_*, or -1 failed (tlsio_eof: EOF). */
ssize_t
tlsio_handshake(struct tls_conn *tc)
{
	return io_result(tc, gnutls_handshake(tc->s));
}

/*
 * Decrypted bytes: > 0, 0 after close_notify or at EOF, TLS_WANT_*, or
 * -1 (a record that does not decrypt, say).  The decrypted record is
 * read from GnuTLS's own buffer and cleared there before it goes back,
 * so a SASL password is left in no buffer of the library (SPEC 9).
 */
ssize_t
tlsio_read(struct tls_conn *tc, void *buf, size_t size)
{
	gnutls_datum_t	 d;
	ssize_t		 r;
	size_t		 n;

	if (tc->pkt == NULL) {
		r = gnutls_record_recv_packet(tc->s, &tc->pkt);
		if (r == GNUTLS_E_PREMATURE_TERMINATION && tc->eof)
			r = 0;	/* a TCP EOF without close_notify */
		if (r <= 0) {
			tc->pkt = NULL;
			return io_result(tc, r);
		}
		tc->pkt_off = 0;
	}
	gnutls_packet_get(tc->pkt, &d, NULL);
	n = d.size - tc->pkt_off < size ? d.size - tc->pkt_off : size;
	memcpy(buf, d.data + tc->pkt_off, n);
	tc->pkt_off += n;
	if (tc->pkt_off == d.size) {
		explicit_bzero(d.data, d.size);
		gnutls_packet_deinit(tc->pkt);
		tc->pkt = NULL;
	}
	return (ssize_t)n;
}

/* Like write(2): bytes taken, TLS_WANT_*, or -1. */
ssize_t
tlsio_write(struct tls_conn *tc, const void *buf, size_t len)
{
	return io_result(tc, gnutls_record_send(tc->s, buf, len));
}

/* close_notify: 0 sent, TLS_WANT_*, -1 failed. */
ssize_t
tlsio_close(struct tls_conn *tc)
{
	return io_result(tc, gnutls_bye(tc->s, GNUTLS_SHUT_WR));
}

/* read(2) under TLS saw the client's EOF. */
int
tlsio_eof(const struct tls_conn *tc)
{
	return tc->eof;
}

const char *
tlsio_error(const struct tls_conn *tc)
{
	return gnutls_strerror(tc->err);
}

/* What a host name may hold: ASCII letters, digits, dots and hyphens. */
static int
host_name_char(char c)
{
	return c == '.' || c == '-' || (c >= '0' && c <= '9') ||
	    ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/*
 * Printable ASCII of src into dst: what the client's certificate or SNI
 * says goes into the environment and the logs.  With name set, only what
 * a host name may hold; anything else empties it.
 */
static void
copy_clean(char *dst, size_t len, const char *src, int name)
{
	size_t	 i, k = 0;

	for (i = 0; src != NULL && src[i] != '\0' && k + 1 < len; i++) {
		if (name && !host_name_char(src[i]))
			break;
		if (src[i] >= 0x20 && src[i] <= 0x7e)
			dst[k++] = src[i];
	}
	if (name && src != NULL && src[i] != '\0')
		k = 0;
	dst[k] = '\0';
}

/*
 * The subject as OpenSSL's one-line form, "/C=DE/O=Example/CN=mx", in
 * the certificate's order: the form handlers written for libtls (and
 * Postfix's logs) know.
 */
static void
subject_oneline(gnutls_x509_crt_t crt, char *buf, size_t len)
{
	gnutls_x509_dn_t	 dn;
	gnutls_x509_ava_st	 ava;
	struct buf		 out = { NULL, 0, 0 };
	const char		*oid;
	int			 i, j;

	buf[0] = '\0';
	if (gnutls_x509_crt_get_subject(crt, &dn) < 0)
		return;
	for (i = 0; gnutls_x509_dn_get_rdn_ava(dn, i, 0, &ava) == 0; i++)
		for (j = 0; gnutls_x509_dn_get_rdn_ava(dn, i, j, &ava) == 0;
		    j++) {
			oid = gnutls_x509_dn_oid_name((const char *)
			    ava.oid.data, GNUTLS_X509_DN_OID_RETURN_OID);
			buf_appendf(&out, "/%s=", oid);
			buf_append(&out, ava.value.data, ava.value.size);
		}
	buf_append(&out, "", 1);
	copy_clean(buf, len, out.data, 0);
	buf_free(&out);
}

/*
 * The subject's (or with issuer set, the issuer's) CommonName, printable
 * ASCII, "" if none: Postfix's ccert_subject and ccert_issuer.
 */
static void
common_name(gnutls_x509_crt_t crt, int issuer, char *buf, size_t len)
{
	char	 cn[256];
	size_t	 n = sizeof(cn);
	int	 r;

	buf[0] = '\0';
	r = issuer ? gnutls_x509_crt_get_issuer_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n) :
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
	    0, 0, cn, &n);
	if (r == 0)
		copy_clean(buf, len, cn, 0);
}

/* SMTP_TLS_CLIENT_HASH and _SUBJECT: SHA256:hex of the DER, as libtls. */
static void
client_cert_info(struct tls_conn *tc, struct tls_info *ti)
{
	const gnutls_datum_t	*certs;
	gnutls_x509_crt_t	 crt;
	unsigned char		 md[32];
	size_t			 mdlen = sizeof(md), i;
	unsigned int		 n = 0;
	int			 k;

	certs = gnutls_certificate_get_peers(tc->s, &n);
	if (certs == NULL || n == 0 || gnutls_fingerprint(GNUTLS_DIG_SHA256,
	    &certs[0], md, &mdlen) < 0 || mdlen != sizeof(md))
		return;
	k = snprintf(ti->client_hash, sizeof(ti->client_hash), "SHA256:");
	for (i = 0; i < mdlen; i++)
		k += snprintf(ti->client_hash + k, sizeof(ti->client_hash) -
		    (size_t)k, "%02x", md[i]);
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
		subject_oneline(crt, ti->client_subject,
		    sizeof(ti->client_subject));
		common_name(crt, 0, ti->client_cn, sizeof(ti->client_cn));
		common_name(crt, 1, ti->client_issuer_cn,
		    sizeof(ti->client_issuer_cn));
	}
	gnutls_x509_crt_deinit(crt);
}

/* What the handshake on tc gave, SPEC 8's SMTP_TLS_* variables. */
void
tlsio_info(struct tls_conn *tc, struct tls_info *ti)
{
	char		 sni[256];
	size_t		 len = sizeof(sni);
	unsigned int	 type;

	memset(ti, 0, sizeof(*ti));
	switch (gnutls_protocol_get_version(tc->s)) {
	case GNUTLS_TLS1_2:
		(void)strlcpy(ti->protocol, "TLSv1.2", sizeof(ti->protocol));
		break;
	case GNUTLS_TLS1_3:
		(void)strlcpy(ti->protocol, "TLSv1.3", sizeof(ti->protocol));
		break;
	default:
		copy_clean(ti->protocol, sizeof(ti->protocol),
		    gnutls_protocol_get_name(gnutls_protocol_get_version(
		    tc->s)), 0);
	}
	copy_clean(ti->cipher, sizeof(ti->cipher), gnutls_ciphersuite_get(
	    tc->s), 0);
	if (gnutls_server_name_get(tc->s, sni, &len, &type, 0) == 0 &&
	    type == GNUTLS_NAME_DNS)
		copy_clean(ti->sni, sizeof(ti->sni), sni, 1);
	ti->keybits = (int)gnutls_cipher_get_key_size(gnutls_cipher_get(
	    tc->s)) * 8;
	ti->resumed = gnutls_session_is_resumed(tc->s) != 0;
	client_cert_info(tc, ti);
}
