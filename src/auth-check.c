/*
 * The engine's AUTH actions answered through the --auth backend, SPEC 9:
 * the mechanisms to offer (SA_AUTH_MECHS) and the credentials the session
 * collected (SA_AUTH).
 */
#include <string.h>
#include <time.h>

#include "smtpd-stdio.h"

static enum auth_verdict ask_backend(const struct session *,
		    struct auth_backend *, const struct sasl *,
		    const struct peer *, char *, size_t);

/*
 * The credentials, through the backend.  A refusal waits 1 s; the
 * password is cleared whatever the outcome (the session does that in
 * session_auth_checked).
 */
void
auth_answer(struct session *s, struct auth_backend *ab,
    const struct peer *p)
{
	const struct sasl	*sa = session_auth_request(s);
	enum auth_verdict	 v = AUTH_REFUSED;
	char			 user[AUTH_USER_MAX], esc[AUTH_USER_MAX * 4 + 3];
	static const char *const words[] = { "ok", "refused", "tempfail" };

	if (sa == NULL)
		return;
	(void)strlcpy(user, sa->user, sizeof(user));
	if (!sa->authz_bad)
		v = ask_backend(s, ab, sa, p, user, sizeof(user));
	log_info("AUTH %s from %s: user=%s %s%s",
	    sa->mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    log_quote(esc, sizeof(esc), sa->user, strlen(sa->user)), words[v],
	    sa->authz_bad ? " (authorization identity not the user)" : "");
	if (v == AUTH_REFUSED)
		(void)nanosleep(&(struct timespec){ 1, 0 }, NULL);
	session_auth_checked(s, v, user);
}

/* The backend's verdict on sa; user becomes the name it knows. */
static enum auth_verdict
ask_backend(const struct session *s, struct auth_backend *ab,
    const struct sasl *sa, const struct peer *p, char *user, size_t len)
{
	struct auth_request	 req;

	memset(&req, 0, sizeof(req));
	req.mech = sa->mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN";
	req.user = sa->user;
	req.password = sa->password;
	req.peer = p;
	req.secured = s->tls;
	req.deadline = conn_now_ms() + s->conf->timeout * 1000;
	req.handler_timeout = s->conf->handler_timeout;
	return auth_check(ab, &req, user, len);
}

/*
 * What the backend offers, asked at the first EHLO that may offer AUTH,
 * never before the greeting or the handshake.  Dovecot gets
 * AUTH_MECH_WAIT seconds (or --timeout, if less).
 */
void
auth_offer(struct session *s, struct auth_backend *ab)
{
	long long	 wait = s->conf->timeout < AUTH_MECH_WAIT ?
			    s->conf->timeout : AUTH_MECH_WAIT;

	session_auth_mechanisms(s, auth_mechanisms(ab,
	    conn_now_ms() + wait * 1000));
}
