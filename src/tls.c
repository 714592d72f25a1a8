/*
 * TLS configuration, SPEC 8: the keypairs (SNI), protocols, ciphers,
 * client certificates and session-ticket keys, read once per process
 * before the greeting, and what a finished handshake tells the handler.
 * The reads and writes through TLS are conn.c's; this file never waits.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "smtpd-stdio.h"

#define TICKET_KEY_LEN		48	/* tls_config_add_ticket_key() */
#define TICKET_KEYS_MAX		4
#define TLS_SESSION_LIFETIME	3600	/* seconds a ticket is good for */

static const char *credential_path(const char *, char *, size_t);
static void	 add_keypairs(struct tls_config *, const struct config *);
static void	 add_ticket_keys(struct tls_config *, const char *);
static void	 copy_clean(char *, size_t, const char *, int);

/*
 * libretls 3.7.0 (Debian 12) sets a session ticket up in its ticket-key
 * callback and then returns 0, success in LibreSSL's convention; OpenSSL
 * 3 reads 0 as "send no ticket", so with libretls no client could ever
 * resume.  The link wraps OpenSSL's SSL_CTX_callback_ctrl (-Wl,--wrap,
 * see the Makefile) to put our callback in front of libtls's: a ticket
 * whose cipher context libtls did set up is sent (1).  A ticket that
 * decrypts with the current key is renewed (2, as libtls already does for
 * an older key): OpenSSL 3 sends a TLS 1.3 server a new ticket after a
 * resumption only then, and OpenSSL's client uses a TLS 1.3 ticket once,
 * so without it such a client resumes every other connection only.
 * Everything else (errors, no key) passes through unchanged.
 */
typedef int (*ticket_key_cb)(void *, unsigned char *, unsigned char *,
    EVP_CIPHER_CTX *, void *, int);

static ticket_key_cb	 libtls_ticket_cb;

long	 __real_SSL_CTX_callback_ctrl(SSL_CTX *, int, void (*)(void));
long	 __wrap_SSL_CTX_callback_ctrl(SSL_CTX *, int, void (*)(void));

static int
ticket_cb(void *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, void *hctx, int enc)
{
	int	 r = libtls_ticket_cb(ssl, name, iv, cctx, hctx, enc);

	if (enc == 1 && r == 0 && EVP_CIPHER_CTX_get0_cipher(cctx) != NULL)
		return 1;
	if (enc == 0 && r == 1)
		return 2;	/* renew: a new ticket on a resumed session */
	return r;
}

long
__wrap_SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void))
{
	if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB && fp != NULL) {
		libtls_ticket_cb = (ticket_key_cb)fp;
		fp = (void (*)(void))ticket_cb;
	}
	return __real_SSL_CTX_callback_ctrl(ctx, cmd, fp);
}

/* A relative path is systemd's LoadCredential= name when it is set. */
static const char *
credential_path(const char *name, char *buf, size_t len)
{
	const char	*dir = getenv("CREDENTIALS_DIRECTORY");
	int		 n;

	if (name[0] == '/' || dir == NULL || dir[0] == '\0')
		return name;
	n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		usage_error("%s/%s: path too long", dir, name);
	return buf;
}

/* The first pair is the default; the others are chosen by SNI. */
static void
add_keypairs(struct tls_config *cfg, const struct config *c)
{
	char		 cbuf[PATH_MAX], kbuf[PATH_MAX];
	const char	*cert, *key;
	size_t		 i;
	int		 r;

	for (i = 0; i < c->ntls_cert; i++) {
		cert = credential_path(c->tls_cert[i], cbuf, sizeof(cbuf));
		key = credential_path(c->tls_key[i], kbuf, sizeof(kbuf));
		r = i == 0 ? tls_config_set_keypair_file(cfg, cert, key) :
		    tls_config_add_keypair_file(cfg, cert, key);
		if (r == -1)
			usage_error("--tls-cert %s --tls-key %s: %s", cert,
			    key, tls_config_error(cfg));
	}
}

/*
 * --tls-ticket-keys: 1 to 4 keys of 48 octets, newest last, the last one
 * encrypting new tickets.  Each key's revision is the start of its
 * SHA-256, so every process that reads the same file numbers the keys
 * alike: libtls sends the revision in clear in every ticket, so it must
 * not be octets of the key itself.
 */
static void
add_ticket_keys(struct tls_config *cfg, const char *name)
{
	unsigned char	 keys[TICKET_KEY_LEN * TICKET_KEYS_MAX + 1];
	unsigned char	 digest[EVP_MAX_MD_SIZE];
	char		 pbuf[PATH_MAX];
	const char	*path = credential_path(name, pbuf, sizeof(pbuf));
	size_t		 len = 0, i;
	uint32_t	 rev;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		usage_error("--tls-ticket-keys %s: %s", path,
		    strerror(errno));
	while (len < sizeof(keys) &&
	    (n = read(fd, keys + len, sizeof(keys) - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			usage_error("--tls-ticket-keys %s: %s", path,
			    strerror(errno));
		len += (size_t)n;
	}
	(void)close(fd);
	if (len == 0 || len % TICKET_KEY_LEN != 0 ||
	    len > TICKET_KEY_LEN * TICKET_KEYS_MAX)
		usage_error("--tls-ticket-keys %s: want 1 to %d keys of "
		    "%d octets, not %zu octets", path, TICKET_KEYS_MAX,
		    TICKET_KEY_LEN, len);
	if (tls_config_set_session_lifetime(cfg, TLS_SESSION_LIFETIME) == -1)
		usage_error("--tls-ticket-keys: %s", tls_config_error(cfg));
	for (i = 0; i < len; i += TICKET_KEY_LEN) {
		if (EVP_Digest(keys + i, TICKET_KEY_LEN, digest, NULL,
		    EVP_sha256(), NULL) != 1)
			usage_error("--tls-ticket-keys: SHA-256 failed");
		memcpy(&rev, digest, sizeof(rev));
		if (tls_config_add_ticket_key(cfg, rev, keys + i,
		    TICKET_KEY_LEN) == -1)
			usage_error("--tls-ticket-keys %s: key %zu: %s",
			    path, i / TICKET_KEY_LEN + 1, tls_config_error(cfg));
	}
	explicit_bzero(keys, sizeof(keys));
}

/*
 * The server context of SPEC 8, or NULL without --tls-cert.  Everything
 * that can be wrong with the files shows here, before the greeting: a
 * misconfigured host refuses at once (usage_error, exit 64).
 */
struct tls *
tlsconf_server(const struct config *c, char **argv)
{
	static const unsigned char	 sid[] = "smtpd-stdio";
	struct tls_config		*cfg;
	struct tls			*server;
	uint32_t			 protocols;

	(void)argv;
	if (c->ntls_cert == 0)
		return NULL;
	if (tls_init() == -1 || (cfg = tls_config_new()) == NULL)
		usage_error("cannot initialise TLS");
	add_keypairs(cfg, c);
	if (tls_config_parse_protocols(&protocols, c->tls_protocols) == -1 ||
	    tls_config_set_protocols(cfg, protocols) == -1)
		usage_error("--tls-protocols %s: not a protocol list",
		    c->tls_protocols);
	if (tls_config_set_ciphers(cfg, c->tls_ciphers) == -1)
		usage_error("--tls-ciphers %s: %s", c->tls_ciphers,
		    tls_config_error(cfg));
	/* Asked for, never checked: its hash is the handler's to pin. */
	if (c->tls_ask_client_cert) {
		tls_config_verify_client_optional(cfg);
		tls_config_insecure_noverifycert(cfg);
	}
	/* Resumed sessions must belong to this service. */
	if (tls_config_set_session_id(cfg, sid, sizeof(sid) - 1) == -1)
		usage_error("TLS session id: %s", tls_config_error(cfg));
	if (c->tls_ticket_keys != NULL)
		add_ticket_keys(cfg, c->tls_ticket_keys);
	if ((server = tls_server()) == NULL)
		usage_error("cannot make a TLS server context");
	if (tls_configure(server, cfg) == -1)
		usage_error("TLS: %s", tls_error(server));
	tls_config_free(cfg);
	return server;
}

void
tlsconf_free(struct tls *server)
{
	tls_free(server);
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

/* What the handshake on cctx gave, SPEC 8's SMTP_TLS_* variables. */
void
tlsconf_info(struct tls *cctx, struct tls_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	copy_clean(ti->protocol, sizeof(ti->protocol),
	    tls_conn_version(cctx), 0);
	copy_clean(ti->cipher, sizeof(ti->cipher), tls_conn_cipher(cctx), 0);
	copy_clean(ti->sni, sizeof(ti->sni), tls_conn_servername(cctx), 1);
	ti->resumed = tls_conn_session_resumed(cctx) == 1;
	ti->bits = tls_conn_cipher_strength(cctx) > 0 ?
	    tls_conn_cipher_strength(cctx) : 0;
	if (tls_peer_cert_provided(cctx)) {
		copy_clean(ti->client_issuer, sizeof(ti->client_issuer),
		    tls_peer_cert_issuer(cctx), 0);
		copy_clean(ti->client_subject, sizeof(ti->client_subject),
		    tls_peer_cert_subject(cctx), 0);
		copy_clean(ti->client_hash, sizeof(ti->client_hash),
		    tls_peer_cert_hash(cctx), 0);
	}
}
