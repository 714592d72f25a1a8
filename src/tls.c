/*
 * TLS through GnuTLS, SPEC 8: the server configuration (keypairs chosen
 * by SNI, protocols, ciphers, client certificates, session-ticket keys),
 * one connection on fds 0 and 1, and what a finished handshake tells
 * the handler.  Nothing here waits: a call that would block says which
 * way (TLS_WANT_POLLIN/OUT) and conn.c waits against its deadlines.
 * GnuTLS is linked dynamically from its Debian package, so a security
 * update reaches the next connection (README, TLS).
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define TICKET_MASTER_LEN	64	/* what GnuTLS takes as its ticket key */
#define TLS_SESSION_LIFETIME	3600	/* seconds a ticket is good for */

/*
 * SPEC 8's "secure" ciphers: TLS 1.2 AEAD suites with forward secrecy
 * (no static RSA key exchange, no CBC); TLS 1.3's suites are AEAD.  Our
 * order wins, OpenSSL's: AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM.
 */
#define CIPHERS_SECURE	"NORMAL:-CIPHER-ALL:+AES-256-GCM:" \
			"+CHACHA20-POLY1305:+AES-128-GCM:-RSA"

struct tls {
	gnutls_certificate_credentials_t	 cred;
	gnutls_priority_t			 prio;
	unsigned char				 ticket_key[TICKET_MASTER_LEN];
	int					 tickets;
	int					 ask_client_cert;
};

static struct tls	*building;	/* tlsconf_server()'s, for tlsconf_try() */

struct tls_conn {
	gnutls_session_t	 s;
	gnutls_packet_t		 pkt;		/* decrypted, partly read */
	size_t			 pkt_off;
	int			 in_socket, out_socket;
	int			 eof;		/* read(2) saw EOF */
	int			 err;		/* last GnuTLS error */
};

static int	 keypair_mismatch(gnutls_certificate_credentials_t,
		    unsigned int);
static void	 add_keypairs(struct tls *, const struct config *);
static void	 add_ticket_keys(struct tls *, const char *);
static void	 set_priority(struct tls *, const struct config *);
static void	 copy_clean(char *, size_t, const char *, int);
static ssize_t	 raw_pull(gnutls_transport_ptr_t, void *, size_t);
static ssize_t	 raw_push(gnutls_transport_ptr_t, const void *, size_t);
static int	 raw_pull_timeout(gnutls_transport_ptr_t, unsigned int);
static ssize_t	 io_result(struct tls_conn *, ssize_t);
static void	 client_cert_info(struct tls_conn *, struct tls_info *);
static void	 subject_oneline(gnutls_x509_crt_t, char *, size_t);
static void	 common_name(gnutls_x509_crt_t, int, char *, size_t);

/*
 * Does keypair i's key belong to its certificate?  GnuTLS's own check
 * signs and verifies a test message: 2.9 M instructions with a P-256 key,
 * a third of a whole TLS session's process.  Comparing the public key's
 * SHA-256 key id, taken from the certificate and from the key's own
 * parameters, tells the same for nothing.  0 when they match.
 */
static int
keypair_mismatch(gnutls_certificate_credentials_t cred, unsigned int i)
{
	gnutls_x509_privkey_t	 key = NULL;
	gnutls_x509_crt_t	*crts = NULL;
	unsigned char		 kid[64], cid[64];
	size_t			 klen = sizeof(kid), clen = sizeof(cid);
	unsigned int		 n = 0, j;
	int			 bad;

	bad = gnutls_certificate_get_x509_key(cred, i, &key) < 0 ||
	    gnutls_certificate_get_x509_crt(cred, i, &crts, &n) < 0 ||
	    n == 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid,
	    &klen) < 0 ||
	    gnutls_x509_crt_get_key_id(crts[0], GNUTLS_KEYID_USE_SHA256, cid,
	    &clen) < 0 || klen != clen || memcmp(kid, cid, klen) != 0;
	for (j = 0; j < n; j++)
		gnutls_x509_crt_deinit(crts[j]);
	gnutls_free(crts);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return bad;
}

/*
 * The first pair is the default; GnuTLS picks another one when the name
 * the client asked for (SNI) is among its certificate's names.
 */
static void
add_keypairs(struct tls *t, const struct config *c)
{
	char		 cbuf[PATH_MAX], kbuf[PATH_MAX];
	const char	*cert, *key;
	size_t		 i;
	int		 r;

	for (i = 0; i < c->ntls_cert; i++) {
		tlsfiles_pair(c, i, cbuf, kbuf, &cert, &key);
		r = gnutls_certificate_set_x509_key_file2(t->cred, cert, key,
		    GNUTLS_X509_FMT_PEM, NULL, 0);
		if (r < 0)
			setup_error("--tls-cert %s --tls-key %s: %s", cert,
			    key, gnutls_strerror(r));
		if (keypair_mismatch(t->cred, (unsigned int)r))
			setup_error("--tls-cert %s --tls-key %s: %s", cert,
			    key, gnutls_strerror(
			    GNUTLS_E_CERTIFICATE_KEY_MISMATCH));
	}
}

/*
 * --tls-ticket-keys: 1 to 4 keys of 48 octets, newest last.  GnuTLS
 * takes one 64-octet master key per session: the newest key, stretched
 * by HMAC-SHA512, both encrypts new tickets and opens them, so every
 * process that reads the same file opens the others' tickets.  GnuTLS
 * names the key in each ticket after a key it derives from the master,
 * never by octets of ours.  The older keys are read and checked but
 * unused: GnuTLS 3.7 has no ticket-key callback to try them, so a client
 * holding a ticket from before a rotation does one full handshake.
 */
static void
add_ticket_keys(struct tls *t, const char *name)
{
	static const char	 label[] = "smtpd-stdio session-ticket key";
	unsigned char		 keys[TICKET_KEY_LEN * TICKET_KEYS_MAX + 1];
	size_t			 len;
	int			 r;

	len = tlsfiles_ticket_keys(name, keys, sizeof(keys));
	r = gnutls_hmac_fast(GNUTLS_MAC_SHA512, keys + len - TICKET_KEY_LEN,
	    TICKET_KEY_LEN, label, sizeof(label) - 1, t->ticket_key);
	explicit_bzero(keys, sizeof(keys));
	if (r < 0)
		setup_error("--tls-ticket-keys: %s", gnutls_strerror(r));
	t->tickets = 1;
}

/*
 * SPEC 8: --tls-ciphers is "secure" or a GnuTLS priority string;
 * --tls-protocols' versions are appended to it.
 */
static void
set_priority(struct tls *t, const struct config *c)
{
	char		 prio[1024];
	const char	*err_pos = NULL, *vers;
	int		 r;

	switch (tlsfiles_protocols(c->tls_protocols)) {
	case TLSFILES_TLS12:
		vers = "+VERS-TLS1.2";
		break;
	case TLSFILES_TLS13:
		vers = "+VERS-TLS1.3";
		break;
	default:
		vers = "+VERS-TLS1.3:+VERS-TLS1.2";
	}
	r = snprintf(prio, sizeof(prio), "%s:-VERS-ALL:%s:%%SERVER_PRECEDENCE",
	    strcmp(c->tls_ciphers, "secure") == 0 ? CIPHERS_SECURE :
	    c->tls_ciphers, vers);
	if (r < 0 || (size_t)r >= sizeof(prio))
		setup_error("--tls-ciphers: too long");
	if ((r = gnutls_priority_init2(&t->prio, prio, &err_pos, 0)) < 0)
		setup_error("--tls-ciphers %s: %s%s%s", c->tls_ciphers,
		    gnutls_strerror(r), err_pos != NULL ? " at " : "",
		    err_pos != NULL ? err_pos : "");
}

/*
 * The server configuration of SPEC 8, or NULL without --tls-cert.
 * Everything that can be wrong with the files shows here, before the
 * greeting: a misconfigured host refuses at once (exit 64), saying why
 * in the log, never to the client (setup_error).
 */
/* This is the TLS program: nothing to hand over to (tls-exec.c). */
void
tlsconf_handover(const struct config *c, char **argv)
{
	(void)c;
	(void)argv;
}

void
tlsconf_exec(const struct handover *ho)
{
	(void)ho;
}

/*
 * SPEC 8: the session smtpd-stdio handed over at STARTTLS, if there is
 * one: a memfd of ours on HANDOVER_FD holding it.  1 and *ho filled, 0
 * if there is none, -1 if there is one this build cannot read (another
 * version's smtpd-stdio, during an upgrade).  Run before setup_fds(),
 * which closes the fd anyway.
 */
int
tlsconf_resumed(struct handover *ho)
{
	static const char	 want[] = "/memfd:" HANDOVER_NAME;
	struct stat		 st;
	char			 link[64], fdpath[32];
	ssize_t			 n;
	int			 ok;

	(void)snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d",
	    HANDOVER_FD);
	if ((n = readlink(fdpath, link, sizeof(link) - 1)) == -1)
		return 0;
	link[n] = '\0';
	if (strncmp(link, want, sizeof(want) - 1) != 0) {
		(void)close(HANDOVER_FD);
		return 0;
	}
	ok = fstat(HANDOVER_FD, &st) == 0 && st.st_size == sizeof(*ho) &&
	    pread(HANDOVER_FD, ho, sizeof(*ho), 0) == (ssize_t)sizeof(*ho) &&
	    memcmp(ho->magic, HANDOVER_MAGIC, sizeof(HANDOVER_MAGIC)) == 0;
	(void)close(HANDOVER_FD);
	if (!ok)
		return -1;
	ho->peer.remote_addr[sizeof(ho->peer.remote_addr) - 1] = '\0';
	ho->peer.remote_port[sizeof(ho->peer.remote_port) - 1] = '\0';
	ho->peer.local_addr[sizeof(ho->peer.local_addr) - 1] = '\0';
	ho->peer.local_port[sizeof(ho->peer.local_port) - 1] = '\0';
	ho->peer.remote_host[sizeof(ho->peer.remote_host) - 1] = '\0';
	ho->helo[sizeof(ho->helo) - 1] = '\0';
	return 1;
}

/*
 * After a hand-over TLS set-up errors do not end the session: they are
 * logged and STARTTLS gets a 454 (session_resume).  NULL then, and what
 * was built so far is freed.
 */
struct tls *
tlsconf_try(const struct config *c)
{
	static jmp_buf	 escape;
	struct tls	*t;

	if (setjmp(escape) != 0) {
		setup_errors_to(NULL);
		tlsconf_free(building);
		building = NULL;
		return NULL;
	}
	setup_errors_to(&escape);
	t = tlsconf_server(c);
	setup_errors_to(NULL);
	building = NULL;
	return t;
}

struct tls *
tlsconf_server(const struct config *c)
{
	struct tls	*t;
	int		 r;

	if (c->ntls_cert == 0)
		return NULL;
	if ((t = building = calloc(1, sizeof(*t))) == NULL)
		setup_error("TLS: out of memory");
	if ((r = gnutls_certificate_allocate_credentials(&t->cred)) < 0)
		setup_error("TLS: %s", gnutls_strerror(r));
	/* Our own check, keypair_mismatch(), costs nothing; V2: indexes. */
	gnutls_certificate_set_flags(t->cred,
	    GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH | GNUTLS_CERTIFICATE_API_V2);
	add_keypairs(t, c);
	set_priority(t, c);
	t->ask_client_cert = c->tls_ask_client_cert;
	if (c->tls_ticket_keys != NULL)
		add_ticket_keys(t, c->tls_ticket_keys);
	return t;
}

void
tlsconf_free(struct tls *t)
{
	if (t == NULL)
		return;
	if (t->cred != NULL)
		gnutls_certificate_free_credentials(t->cred);
	if (t->prio != NULL)
		gnutls_priority_deinit(t->prio);
	explicit_bzero(t->ticket_key, sizeof(t->ticket_key));
	free(t);
}

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
		if (src[i] < 0x20 || src[i] > 0x7e) {
			if (name)
				break;
			continue;
		}
		if (name && !(src[i] == '.' || src[i] == '-' ||
		    (src[i] >= '0' && src[i] <= '9') ||
		    ((src[i] | 0x20) >= 'a' && (src[i] | 0x20) <= 'z')))
			break;
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
tlsconf_info(struct tls_conn *tc, struct tls_info *ti)
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
