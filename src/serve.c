/*
 * The action loop around the session engine.  session.c is fed the
 * client's bytes and asks for what it cannot do itself, one enum
 * session_action at a time; answer() below says who answers each
 * request.  This is the only place that waits for the client.
 */
#include <string.h>

#include "smtpd-stdio.h"

/* One session as the loop holds it: the engine and who answers it. */
struct served {
	struct session		 s;
	struct spool		 sp;
	struct deadlines	 dl;
	struct policy_state	*ps;
	struct milter_state	*ms;
	struct auth_backend	*ab;
	const struct peer	*peer;
	struct tls		*server;
	char			*in;		/* INPUT_CHUNK octets */
	size_t			 off;		/* taken by the engine */
	size_t			 len;		/* read */
	int			 status;	/* of SA_CLOSE */
};

/* What an answer tells the loop. */
#define GO_ON		0
#define GONE		(-1)	/* a write to the client failed */
#define CLOSED		1	/* SA_CLOSE: the session is over */

static int	 answer(struct served *, enum session_action);
static int	 flush_replies(struct served *);
static int	 answer_input(struct served *);
static int	 answer_deliver(struct served *);
static int	 answer_close(struct served *);
static int	 answer_starttls(struct served *);
static void	 checks_new(struct served *);
static void	 forget_input(struct served *);
static void	 stop(struct session *);
static int	 talks_in_greet_pause(const struct config *, long long);
static void	 session_open(struct served *, int, const struct handover *);
static void	 session_close(struct served *, int);

/*
 * The engine asks, a module answers: one line per enum session_action,
 * calling the module of its concern (answer_* are this loop's own: they
 * write our replies first).  GONE if a write to the client failed,
 * CLOSED once the session is over, else GO_ON.
 */
static int
answer(struct served *v, enum session_action act)
{
	struct session		*s = &v->s;
	const struct peer	*p = v->peer;

	switch (act) {
	case SA_NEED_INPUT:	return answer_input(v);
	case SA_FLUSH:		return flush_replies(v);
	case SA_CLOSE:		return answer_close(v);
	case SA_SPOOL:		message_spool(s, &v->sp, p); break;
	case SA_DELIVER:	return answer_deliver(v);
	case SA_CHECK_RCPT:	policy_check_rcpt(s, v->ps, v->ms, p); break;
	case SA_CHECK_MAIL:	milter_check_mail(s, v->ms, p); break;
	case SA_CHECK_DATA:	milter_check_data(s, v->ms, p); break;
	case SA_STARTTLS:	return answer_starttls(v);
	case SA_AUTH:		auth_answer(s, v->ab, p); break;
	case SA_AUTH_MECHS:	auth_offer(s, v->ab); break;
	}
	return GO_ON;
}

/*
 * Write all queued replies in one go.  GONE if the client is gone.  A
 * reply starts the time the client has for its next command line.
 */
static int
flush_replies(struct served *v)
{
	struct session	*s = &v->s;
	int		 r;

	if (s->out.len == 0)
		return GO_ON;
	/* SPEC 10.3: a client that does not read is cut at both limits. */
	r = conn_write(s->out.data, s->out.len, deadline_ours(&v->dl,
	    s->conf));
	buf_consume(&s->out, s->out.len);
	deadline_replied(&v->dl, s->conf);
	return r == -1 ? GONE : GO_ON;
}

/*
 * Our replies out, then wait for the client's next bytes and tell the
 * session what became of the wait: data, end of file, timeout, or a
 * stop signal.
 */
static int
answer_input(struct served *v)
{
	if (flush_replies(v) == GONE)
		return GONE;
	v->off = v->len = 0;
	switch (conn_read(v->in, INPUT_CHUNK, &v->len,
	    deadline_next(&v->s, &v->dl))) {
	case INPUT_DATA:
		break;
	case INPUT_EOF:
		(void)session_eof(&v->s);
		break;
	case INPUT_TIMEOUT:
		deadline_log_timeout(&v->dl);
		(void)session_timeout(&v->s);
		break;
	case INPUT_STOP:
		stop(&v->s);
		break;
	case INPUT_ERROR:	/* SPEC 8: a broken TLS record, logged */
		(void)session_tls_failed(&v->s, EXIT_FAIL);
		break;
	}
	return GO_ON;
}

static int
answer_deliver(struct served *v)
{
	if (flush_replies(v) == GONE)
		return GONE;
	/*
	 * Never start a handler after a stop request; after one that ran,
	 * its reply goes out, then the 421.
	 */
	if (!conn_stop_requested())
		deliver_message(&v->s, &v->sp, v->ps, v->ms, v->peer);
	if (conn_stop_requested())
		stop(&v->s);
	return GO_ON;
}

static int
answer_close(struct served *v)
{
	v->status = v->s.exit_status;
	if (flush_replies(v) == GONE)
		return GONE;
	conn_linger();
	return CLOSED;
}

static int
answer_starttls(struct served *v)
{
	if (flush_replies(v) == GONE)
		return GONE;
	/* SPEC 8: what came behind STARTTLS is never read. */
	if (v->off < v->len)
		log_info("STARTTLS: %zu bytes behind the command discarded",
		    v->len - v->off);
	v->off = v->len = 0;
	/*
	 * SPEC 10.2: an exec: policy program ends with this process's part
	 * of the session, before the hand-over.
	 */
	if (v->s.conf->tls_handover) {
		policy_free(v->ps);
		/* SPEC 13: the filters hear QUIT from us. */
		milter_end(v->ms, &v->s, v->peer);
		checks_new(v);
	}
	(void)starttls_run(&v->s, v->server, &v->dl, v->peer);
	return GO_ON;
}

/* The --policy servers and --milter filters, for a new session. */
static void
checks_new(struct served *v)
{
	const struct config	*c = v->s.conf;

	v->ps = c->npolicy > 0 ? policy_new(c) : NULL;
	v->ms = c->nmilter > 0 ? milter_new(c) : NULL;
}

/*
 * SPEC 9: a SASL line was read (an AUTH refused before TLS included):
 * every byte of it in our input buffer goes, all but what is unread.
 */
static void
forget_input(struct served *v)
{
	explicit_bzero(v->in, v->off);
	explicit_bzero(v->in + v->len, INPUT_CHUNK - v->len);
	v->s.input_secret = 0;
}

/* SPEC 6: a stop signal ends the session with 421 4.3.2 and exit 1. */
static void
stop(struct session *s)
{
	log_info("stopping on signal %d", conn_stop_requested());
	(void)session_stop(s);
}

/*
 * --greet-pause: wait that long before the greeting; a client that talks
 * meanwhile does not wait for it, as spam bots do not (Postfix
 * postscreen's greet_wait).  On a socket only, as the synchronization
 * check (SPEC 4): over pipes scripts send whole dialogues.  It ends at
 * --session-timeout at the latest, which then ends the session.
 */
static int
talks_in_greet_pause(const struct config *c, long long session_end)
{
	long long	 end = conn_now_ms() + c->greet_pause;

	if (c->greet_pause == 0 || !c->sync_check)
		return 0;
	/* SPEC 10.3: a wait for the client, within --session-timeout. */
	(void)conn_wait_input(end < session_end ? end : session_end);
	if (!conn_spoke_first())
		return 0;
	log_info("client talked during the %lld ms greeting pause",
	    c->greet_pause);
	return 1;
}

/*
 * What comes before the first command: the greeting (session_init), or
 * a refusal, or with --tls the handshake (the client speaks first: its
 * ClientHello), or after smtpd-stdio's hand-over the answer to its
 * STARTTLS.
 */
static void
session_open(struct served *v, int bad_proxy, const struct handover *ho)
{
	struct session	*s = &v->s;

	if (bad_proxy == BAD_HANDOVER)
		(void)session_bad_handover(s);
	else if (bad_proxy)
		(void)session_bad_proxy(s);
	else if (s->conf->tls_implicit)
		(void)starttls_run(s, v->server, &v->dl, v->peer);
	else if (ho != NULL) {
		v->dl.session_end = ho->session_end;
		session_resume(s, ho, v->server != NULL);
	} else if (conn_spoke_first() ||
	    talks_in_greet_pause(s->conf, v->dl.session_end))
		(void)session_pregreet(s);
}

/* The session is over: its line in the log, and everything freed. */
static void
session_close(struct served *v, int status)
{
	const struct peer	*p = v->peer;

	log_info("disconnect from %s: messages=%lld errors=%lld exit=%d",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    v->s.messages, v->s.errors, status);
	milter_end(v->ms, &v->s, p);
	session_free(&v->s);
	policy_free(v->ps);
	if (v->ab != NULL)
		auth_free(v->ab);
	conn_tls_free();
}

/*
 * Serve the session on fds 0 and 1 to its end; its exit status.
 * bad_proxy is proxy_header()'s 1, or BAD_HANDOVER; ho is the state
 * smtpd-stdio handed over with the session, or NULL.
 */
int
serve(const struct config *c, const struct peer *p, int bad_proxy,
    struct tls *server, const struct handover *ho)
{
	/* One session per process: static, zeroed, off the stack. */
	static char		 in[INPUT_CHUNK];
	static struct served	 v;
	enum session_action	 act;
	size_t			 used;
	int			 r;

	v.sp.fd = -1;		/* no spool file yet; the rest is zero */
	v.peer = p;
	v.server = server;
	v.in = in;
	deadline_start(&v.dl, c);
	session_init(&v.s, c);
	checks_new(&v);
	if (c->auth != NULL)
		v.ab = auth_new(c->auth);
	session_open(&v, bad_proxy, ho);
	do {
		act = session_feed(&v.s, v.in + v.off, v.len - v.off, &used);
		v.off += used;
		deadline_count(&v.s, &v.dl, used);
		if (v.s.input_secret)
			forget_input(&v);
	} while ((r = answer(&v, act)) == GO_ON);
	/* SPEC 7: a failed write to the client is exit 1. */
	session_close(&v, r == GONE ? EXIT_FAIL : v.status);
	return r == GONE ? EXIT_FAIL : v.status;
}
