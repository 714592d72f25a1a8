/*
 * TLS through GnuTLS, SPEC 8: the server configuration (keypairs chosen
 * by SNI, protocols, ciphers, client certificates, session-ticket keys)
 * and the hand-over from smtpd-stdio.  Its set-up errors go to
 * setup_error.  The connection itself is tls-io.c's, below conn.c.
 * GnuTLS is linked dynamically from its Debian package, so a security
 * update reaches the next connection (README, TLS).
 */
#include <sys/stat.h>

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"
#include "tls.h"

/*
 * SPEC 8's "secure" ciphers: TLS 1.2 AEAD suites with forward secrecy
 * (no static RSA key exchange, no CBC); TLS 1.3's suites are AEAD.  Our
 * order wins, OpenSSL's: AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM.
 */
#define CIPHERS_SECURE	"NORMAL:-CIPHER-ALL:+AES-256-GCM:" \
			"+CHACHA20-POLY1305:+AES-128-GCM:-RSA"

static struct tls	*building;	/* tlsconf_server()'s, for tlsconf_try() */

static int	 keypair_mismatch(gnutls_certificate_credentials_t,
		    unsigned int);
static void	 add_keypairs(struct tls *, const struct config *);
static void	 add_ticket_keys(struct tls *, const char *);
static void	 set_priority(struct tls *, const struct config *);

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

