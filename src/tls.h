/*
 * tls.c and tls-io.c only: the server configuration as GnuTLS holds it,
 * which tls.c builds and tls-io.c serves each connection with.
 */
#ifndef SMTPD_STDIO_TLS_H
#define SMTPD_STDIO_TLS_H

#include <gnutls/gnutls.h>

#define TICKET_MASTER_LEN	64	/* what GnuTLS takes as its ticket key */

struct tls {
	gnutls_certificate_credentials_t	 cred;
	gnutls_priority_t			 prio;
	unsigned char				 ticket_key[TICKET_MASTER_LEN];
	int					 tickets;
	int					 ask_client_cert;
};

#endif /* SMTPD_STDIO_TLS_H */
