/*
 * SA_STARTTLS and --tls answered, SPEC 8: the handshake here when this
 * is smtpd-stdio-tls, else the hand-over of the session to it.
 */
#include <string.h>

#include "smtpd-stdio.h"

static void	 hand_over(const struct session *, const struct deadlines *,
		    const struct peer *);

/*
 * The handshake, after STARTTLS or at once with --tls.  0: the session
 * goes on under TLS; -1: it ended (EOF: exit 0, else exit 1).
 */
int
starttls_run(struct session *s, struct tls *server, struct deadlines *dl,
    const struct peer *p)
{
	struct tls_info	 ti;
	int		 r;

	if (server == NULL) {
		hand_over(s, dl, p);	/* returns only if it failed */
		session_tls_unavailable(s);
		return -1;
	}
	/* SPEC 10.3: --session-timeout caps the handshake too. */
	r = conn_tls_start(server, deadline_ours(dl, s->conf), &ti);
	if (r != 0) {
		(void)session_tls_failed(s, r == 1 ? EXIT_OK : EXIT_FAIL);
		return -1;
	}
	log_info("TLS: %s cipher %s%s%s%s%s", ti.protocol, ti.cipher,
	    ti.resumed ? " resumed" : "", ti.sni[0] != '\0' ? " sni=" : "",
	    ti.sni, ti.client_hash[0] != '\0' ? " client-cert" : "");
	session_tls_started(s, &ti);
	deadline_replied(dl, s->conf);
	return 0;
}

/*
 * smtpd-stdio has no TLS library; smtpd-stdio-tls goes on with the
 * session from the STARTTLS on, answers it and does the handshake.
 * Returns only if it could not be run (logged).
 */
static void
hand_over(const struct session *s, const struct deadlines *dl,
    const struct peer *p)
{
	struct handover	 ho;

	memset(&ho, 0, sizeof(ho));
	(void)strlcpy(ho.magic, HANDOVER_MAGIC, sizeof(ho.magic));
	ho.peer = *p;
	ho.session_end = dl->session_end;
	ho.errors = s->errors;
	ho.messages = s->messages;
	ho.txn_seq = s->txn_seq;
	ho.esmtp = s->esmtp;
	ho.log = s->conf->log;	/* setup_fds() chose syslog under inetd */
	(void)strlcpy(ho.helo, s->helo, sizeof(ho.helo));
	tlsconf_exec(&ho);
}
