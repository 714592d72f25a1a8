/*
 * smtpd-stdio: process setup and the I/O loop around the session
 * engine.  This is the only place that waits: for the client, for the
 * spool, for the handler.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/*
 * SPEC 10.3: by when the client must have sent what it owes us.  Every
 * wait gets one absolute deadline, the nearest of these, never a timeout
 * re-armed per read, so trickling bytes cannot stretch any of them.
 */
struct deadlines {
	long long	 session_end;	/* --session-timeout */
	long long	 line_end;	/* --timeout, from our last reply */
	long long	 data_start;	/* the 354 or first BDAT; 0 outside */
	uint64_t	 data_bytes;	/* read since data_start */
	unsigned int	 data_seq;	/* the transaction data_start is for */
	const char	*nearest;	/* which one next_deadline chose */
};

#define DATA_RATE_GRACE_MS	10000	/* --min-data-rate applies after */
#define BAD_HANDOVER		2	/* proxy_header()'s 1 is a bad header */

static int	 flush_replies(struct session *, struct deadlines *);
static long long next_deadline(const struct session *, struct deadlines *);
static long long rate_deadline(const struct config *, struct deadlines *);
static void	 rate_count(const struct session *, struct deadlines *,
		    size_t);
static void	 client_input(struct session *, struct deadlines *, char *,
		    size_t, size_t *);
static void	 stop(struct session *);
static int	 talks_in_greet_pause(const struct config *, long long);
static const char *check_spooled(struct session *, struct spool *,
		    struct policy_state *, struct milter_state *,
		    const struct peer *, struct buf *, const char **);
static void	 deliver(struct session *, struct spool *,
		    struct policy_state *, struct milter_state *,
		    const struct peer *);
static int	 rcpt_program(struct session *, const struct peer *,
		    struct buf *, struct buf *);
static void	 check_rcpt(struct session *, struct policy_state *,
		    struct milter_state *, const struct peer *);
static int	 check_message(struct session *, struct policy_state *,
		    struct spool *, const struct peer *, struct buf *);
static uint64_t	 mail_size(const char *);
static int	 start_tls(struct session *, struct tls *, struct deadlines *,
		    const struct peer *);
static void	 hand_over(const struct session *, const struct deadlines *,
		    const struct peer *);
static void	 authenticate(struct session *, struct auth_backend *,
		    const struct peer *);
static void	 forget_input(struct session *, char *, size_t, size_t,
		    size_t);
static void	 ask_mechanisms(struct session *, struct auth_backend *);
static int	 serve(const struct config *, const struct peer *, int,
		    struct tls *, const struct handover *);
static int	 proxy_header(const struct config *, struct peer *);
static struct tls *setup(struct config *, int);
static void	 session_open(struct session *, struct tls *,
		    struct deadlines *, const struct peer *, int,
		    const struct handover *);

/*
 * fds 0-2 exist, nothing else is inherited, and log lines never reach
 * the client: under inetd fd 2 is the client socket too.
 */
static void
setup_fds(struct config *c)
{
	struct stat	 st0, st2;
	int		 fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		(void)close(fd);
	closefrom(3);
	if (fstat(0, &st0) == 0 && fstat(2, &st2) == 0 &&
	    S_ISSOCK(st2.st_mode) && st0.st_dev == st2.st_dev &&
	    st0.st_ino == st2.st_ino) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1) {
			(void)dup2(fd, 2);
			(void)close(fd);
		}
		c->log = LOGTO_SYSLOG;
	}
}

/*
 * What the recipients may add to the handler's argv and environment
 * before exec would fail with E2BIG (SPEC 2): the kernel's total less
 * what is already there, our other variables, and the pointers.
 */
static void
exec_limits(struct config *c)
{
	extern char	**environ;
	long		  argmax = sysconf(_SC_ARG_MAX);
	size_t		  used = EXEC_FIXED_VARS, i;

	if (argmax < EXEC_STRING_MAX)
		argmax = EXEC_STRING_MAX;
	for (i = 0; environ[i] != NULL; i++)
		used += strlen(environ[i]) + 1 + sizeof(char *);
	for (i = 0; c->handler_argv[i] != NULL; i++) {
		used += strlen(c->handler_argv[i]) + 1 + sizeof(char *);
		if (strcmp(c->handler_argv[i], "{recipients}") == 0)
			c->argv_rcpt_copies++;
	}
	c->exec_room = (size_t)argmax > used ? (size_t)argmax - used : 0;
}

/*
 * Write all queued replies in one go.  -1 if the client is gone.  A
 * reply starts the time the client has for its next command line.
 */
static int
flush_replies(struct session *s, struct deadlines *dl)
{
	long long	 now = conn_now_ms();
	int		 r;

	if (s->out.len == 0)
		return 0;
	/* SPEC 10.3: a client that does not read is cut at both limits. */
	r = conn_write(s->out.data, s->out.len, dl->session_end <
	    now + s->conf->timeout * 1000 ? dl->session_end :
	    now + s->conf->timeout * 1000);
	buf_consume(&s->out, s->out.len);
	dl->line_end = conn_now_ms() + s->conf->timeout * 1000;
	return r;
}

/*
 * The deadline of the next wait for the client.  In a command line it is
 * --timeout after our last reply.  In a message the client may idle
 * --timeout between reads, and after a grace period it must have kept up
 * --min-data-rate on average since that transaction's 354 (or first
 * BDAT): a clock that restarts with each transaction, so that neither a
 * handler's run nor an earlier message counts.  With BDAT the message
 * runs from the first BDAT to the last; between chunks, where the client
 * sends command lines, the line deadline holds as well.
 */
static long long
next_deadline(const struct session *s, struct deadlines *dl)
{
	const struct config	*c = s->conf;
	long long		 now = conn_now_ms(), end, rate_end;

	if (!session_in_message(s)) {
		dl->data_start = 0;
		end = dl->line_end;
		dl->nearest = "command line (--timeout)";
	} else {
		rate_count(s, dl, 0);
		end = session_reading_message(s) ? now + c->timeout * 1000 :
		    dl->line_end;
		dl->nearest = "idle in a message (--timeout)";
		if (c->min_data_rate > 0 &&
		    (rate_end = rate_deadline(c, dl)) < end) {
			end = rate_end;
			dl->nearest = "data rate (--min-data-rate)";
		}
	}
	if (dl->session_end <= end) {
		end = dl->session_end;
		dl->nearest = "session (--session-timeout)";
	}
	return end;
}

/*
 * used octets of input were just taken by the session: in a message they
 * count for --min-data-rate, whether they came in a read of their own or
 * behind the command that began the message (a first BDAT chunk sent
 * with the envelope), and the clock starts with the transaction.
 */
static void
rate_count(const struct session *s, struct deadlines *dl, size_t used)
{
	if (!session_in_message(s))
		return;
	if (dl->data_start == 0 || dl->data_seq != s->txn_seq) {
		dl->data_start = conn_now_ms();
		dl->data_bytes = 0;
		dl->data_seq = s->txn_seq;
	}
	dl->data_bytes += used;
}

/* n octets since data_start are on time until n / rate s after it. */
static long long
rate_deadline(const struct config *c, struct deadlines *dl)
{
	long long	 end;

	end = dl->data_start + (long long)(dl->data_bytes * 1000 /
	    (uint64_t)c->min_data_rate);
	if (end < dl->data_start + DATA_RATE_GRACE_MS)
		end = dl->data_start + DATA_RATE_GRACE_MS;
	return end;
}

/*
 * The checks of the spooled message before its handler: forged
 * Authentication-Results out, the --policy servers at END-OF-MESSAGE,
 * the milters.  NULL to go on; else the reply (in text, or static),
 * and *hstatus says why no handler ran.
 */
static const char *
check_spooled(struct session *s, struct spool *sp, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p, struct buf *text,
    const char **hstatus)
{
	static const char	 no_storage[] =
	    "452 4.3.1 Error: insufficient system storage\r\n";
	enum milter_verdict	 mv = MV_ACCEPT;

	message_start(s, sp, p);
	if (sp->failed || spool_rewind(sp) == -1 ||
	    milter_strip_forged(s, sp) == -1)
		return no_storage;
	if ((ps != NULL && !check_message(s, ps, sp, p, text)) ||
	    (ms != NULL && (mv = milter_check_message(s, ms, sp, p,
	    text)) == MV_REFUSE)) {
		buf_append(text, "", 1);
		return text->data;
	}
	if (mv != MV_DISCARD)
		return NULL;
	/* SPEC 13: as if delivered; only the log knows. */
	buf_appendf(text, "250 2.0.0 OK: queued as %s\r\n%c", sp->id, '\0');
	*hstatus = "milter-discard";
	return text->data;
}

/* Run the handler on the spooled message and hand its reply back. */
static void
deliver(struct session *s, struct spool *sp, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p)
{
	struct handler_job	 job;
	struct handler_result	 res;
	struct buf		 text = { NULL, 0, 0 };
	struct buf		 lmtp = { NULL, 0, 0 };
	struct timespec		 t0;
	const char		*refusal, *hstatus = "none";
	char			 st[32];

	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((refusal = session_refusal(s)) == NULL)
		refusal = check_spooled(s, sp, ps, ms, p, &text, &hstatus);
	if (refusal != NULL) {
		message_id(s, sp);
		spool_close(sp);
		message_log(s, sp, p, s->dec.wire_size, hstatus, refusal, &t0);
		if (s->conf->lmtp) {
			/* SPEC 11: the refusal for every recipient. */
			reply_repeat(refusal, s->txn.nrcpt, &lmtp);
			buf_append(&lmtp, "", 1);
			refusal = lmtp.data;
		}
		session_delivered(s, refusal);
		buf_free(&text);
		buf_free(&lmtp);
		return;
	}
	memset(&job, 0, sizeof(job));
	job.conf = s->conf;
	job.peer = p;
	job.sess = s;
	job.id = sp->id;
	job.spool_fd = sp->fd;
	job.spool_size = sp->size;
	if (s->conf->lmtp)
		job.out_limit = handler_lmtp_limit(s->txn.nrcpt);
	handler_run(&job, &res);
	spool_close(sp);
	if (s->conf->lmtp)
		(void)reply_lmtp(&res, sp->id, s->txn.nrcpt, &text);
	else
		(void)reply_from_handler(&res, sp->id, &text);
	handler_result_free(&res);
	buf_append(&text, "", 1);
	message_log(s, sp, p, sp->size,
	    message_handler_status(&res, st, sizeof(st)),
	    text.data, &t0);
	session_delivered(s, text.data);
	buf_free(&text);
}

/* The SIZE= the client declared on MAIL, or 0: Postfix's size at RCPT. */
static uint64_t
mail_size(const char *options)
{
	const char	*p;

	for (p = options; p != NULL && *p != '\0'; p = strchr(p, ' ')) {
		while (*p == ' ')
			p++;
		if (strncmp(p, "SIZE=", 5) == 0)
			return strtoull(p + 5, NULL, 10);
	}
	return 0;
}

/*
 * SPEC 10.2: a pending RCPT through the --policy servers, then
 * --rcpt-check.  Either may refuse it; the session hears the verdict.
 */
static void
check_rcpt(struct session *s, struct policy_state *ps,
    struct milter_state *ms, const struct peer *p)
{
	struct policy_ctx	 x;
	struct buf		 reply = { NULL, 0, 0 }, hdr = { NULL, 0, 0 };
	struct buf		 parsed = { NULL, 0, 0 };
	const char		*deferred;
	char			*h, *nl, who[SMTP_PATH_MAX * 4 + 3];
	int			 code = 0;

	if (ps != NULL) {
		memset(&x, 0, sizeof(x));
		x.conf = s->conf;
		x.peer = p;
		x.sess = s;
		x.state = "RCPT";
		x.id = "";
		x.recipient = s->pending.path;
		x.size = mail_size(s->txn.mail_options);
		if (!policy_check(ps, &x, &reply, &hdr)) {
			buf_append(&reply, "", 1);
			session_rcpt_checked(s, 0, reply.data);
			goto done;
		}
	}
	if (s->conf->rcpt_check != NULL &&
	    (code = rcpt_program(s, p, &reply, &parsed)) == -1) {
		/* SPEC 10.2: after DEFER_IF_REJECT a 5xx is its 450. */
		deferred = reply.data[0] == '5' ? policy_deferred(ps, 1) : NULL;
		session_rcpt_checked(s, 0, deferred != NULL ? deferred :
		    reply.data);
		goto done;
	}
	/* SPEC 10.2: DEFER_IF_PERMIT, once nothing later refused. */
	if ((deferred = policy_deferred(ps, 0)) != NULL) {
		log_info("-: policy: RCPT %s: DEFER_IF_PERMIT applies",
		    log_quote(who, sizeof(who), s->pending.path,
		    strlen(s->pending.path)));
		session_rcpt_checked(s, 0, deferred);
		goto done;
	}
	/* SPEC 13: the milters, once the checks above accepted it. */
	if (ms != NULL && !milter_check_rcpt(s, ms, p, &reply))
		goto done;
	/* Accepted: its PREPEND headers go with the transaction. */
	buf_append(&hdr, "", 1);
	for (h = hdr.data; (nl = strchr(h, '\n')) != NULL; h = nl + 1) {
		*nl = '\0';
		session_prepend(s, h);
	}
	session_rcpt_checked(s, 1, code != 0 ? parsed.data : NULL);
done:
	buf_free(&reply);
	buf_free(&hdr);
	buf_free(&parsed);
}

/*
 * --rcpt-check for the pending RCPT: -1 refused (the reply, NUL-ended,
 * in reply), else the code of its 2xx reply in parsed (NUL-ended), or 0
 * for the plain 250.
 */
static int
rcpt_program(struct session *s, const struct peer *p, struct buf *reply,
    struct buf *parsed)
{
	struct handler_job	 job;
	struct handler_result	 res;
	int			 code;

	memset(&job, 0, sizeof(job));
	job.conf = s->conf;
	job.peer = p;
	job.sess = s;
	job.id = "";
	job.spool_fd = -1;
	job.rcpt = s->pending.path;
	job.rcpt_option = s->pending.options;
	handler_run(&job, &res);
	code = reply_parse_output(&res, parsed);
	if (res.end != HE_EXITED || res.status != 0 || code < 0 ||
	    code >= 300) {
		(void)reply_from_handler(&res, "", reply);
		buf_append(reply, "", 1);
		if (reply->data[0] != '2')
			code = -1;
	}
	handler_result_free(&res);
	if (code >= 200 && code < 300) {
		buf_append(parsed, "", 1);
		return code;
	}
	return code == -1 ? -1 : 0;
}

/*
 * SPEC 10.2: the message through the --policy servers at
 * END-OF-MESSAGE.  0 and a reply in text when refused.  Their PREPEND
 * headers go into the spooled message, with the handler's line ends.
 */
static int
check_message(struct session *s, struct policy_state *ps,
    struct spool *sp, const struct peer *p, struct buf *text)
{
	static const char	 failed[] =
	    "451 4.3.0 Error: cannot add the policy's header\r\n";
	struct policy_ctx	 x;
	struct buf		 hdr = { NULL, 0, 0 }, lines = { NULL, 0, 0 };
	const char		*h, *nl;
	int			 ok;

	memset(&x, 0, sizeof(x));
	x.conf = s->conf;
	x.peer = p;
	x.sess = s;
	x.state = "END-OF-MESSAGE";
	x.id = sp->id;
	/* As Postfix: the recipient only when there is exactly one. */
	x.recipient = s->txn.nrcpt == 1 ? s->txn.rcpt[0] : "";
	x.size = s->dec.wire_size;
	ok = policy_check(ps, &x, text, &hdr);
	for (h = hdr.data; ok && hdr.len > 0 && h < hdr.data + hdr.len;
	    h = nl + 1) {
		nl = memchr(h, '\n', (size_t)(hdr.data + hdr.len - h));
		buf_append(&lines, h, (size_t)(nl - h));
		buf_append(&lines, session_crlf(s) ? "\r\n" : "\n",
		    session_crlf(s) ? 2 : 1);
	}
	if (ok && lines.len > 0 && (spool_insert(sp, lines.data,
	    lines.len) == -1 || spool_rewind(sp) == -1)) {
		log_warn("%s: policy header: %s", sp->id, strerror(errno));
		buf_append(text, failed, sizeof(failed) - 1);
		ok = 0;
	}
	buf_free(&hdr);
	buf_free(&lines);
	return ok;
}

/*
 * Wait for the client's next bytes and tell the session what became of
 * the wait: data (in buf, *len), end of file, timeout, or a stop signal.
 */
static void
client_input(struct session *s, struct deadlines *dl, char *buf,
    size_t size, size_t *len)
{
	*len = 0;
	switch (conn_read(buf, size, len, next_deadline(s, dl))) {
	case INPUT_DATA:
		break;
	case INPUT_EOF:
		(void)session_eof(s);
		break;
	case INPUT_TIMEOUT:
		if (dl->data_start != 0)
			log_info("timeout: %s, %llu octets in %lld ms of the "
			    "message", dl->nearest,
			    (unsigned long long)dl->data_bytes,
			    conn_now_ms() - dl->data_start);
		else
			log_info("timeout: %s", dl->nearest);
		(void)session_timeout(s);
		break;
	case INPUT_STOP:
		stop(s);
		break;
	case INPUT_ERROR:	/* SPEC 8: a broken TLS record, logged */
		(void)session_tls_failed(s, EXIT_FAIL);
		break;
	}
}

/*
 * SPEC 8: the handshake, after STARTTLS or at once with --tls.  0: the
 * session goes on under TLS; -1: it ended (EOF: exit 0, else exit 1).
 */
static int
start_tls(struct session *s, struct tls *server, struct deadlines *dl,
    const struct peer *p)
{
	struct tls_info	 ti;
	long long	 end = conn_now_ms() + s->conf->timeout * 1000;
	int		 r;

	if (server == NULL) {
		hand_over(s, dl, p);	/* returns only if it failed */
		session_tls_unavailable(s);
		return -1;
	}
	/* SPEC 10.3: --session-timeout caps the handshake too. */
	r = conn_tls_start(server, end < dl->session_end ? end :
	    dl->session_end, &ti);
	if (r != 0) {
		(void)session_tls_failed(s, r == 1 ? EXIT_OK : EXIT_FAIL);
		return -1;
	}
	log_info("TLS: %s cipher %s%s%s%s%s", ti.protocol, ti.cipher,
	    ti.resumed ? " resumed" : "", ti.sni[0] != '\0' ? " sni=" : "",
	    ti.sni, ti.client_hash[0] != '\0' ? " client-cert" : "");
	session_tls_started(s, &ti);
	dl->line_end = conn_now_ms() + s->conf->timeout * 1000;
	return 0;
}

/*
 * SPEC 8: smtpd-stdio has no TLS library; smtpd-stdio-tls goes on with
 * the session from the STARTTLS on, answers it and does the handshake.
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

/*
 * SPEC 9: the credentials the session collected, through the backend.
 * A refusal waits 1 s; the password is cleared whatever the outcome.
 */
static void
authenticate(struct session *s, struct auth_backend *ab,
    const struct peer *p)
{
	const struct sasl	*sa = session_auth_request(s);
	struct auth_request	 req;
	enum auth_verdict	 v = AUTH_REFUSED;
	char			 user[AUTH_USER_MAX], esc[AUTH_USER_MAX * 4 + 3];
	static const char *const words[] = { "ok", "refused", "tempfail" };

	if (sa == NULL)
		return;
	(void)strlcpy(user, sa->user, sizeof(user));
	if (!sa->authz_bad) {
		memset(&req, 0, sizeof(req));
		req.mech = sa->mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN";
		req.user = sa->user;
		req.password = sa->password;
		req.peer = p;
		req.secured = s->tls;
		req.deadline = conn_now_ms() + s->conf->timeout * 1000;
		req.handler_timeout = s->conf->handler_timeout;
		v = auth_check(ab, &req, user, sizeof(user));
	}
	log_info("AUTH %s from %s: user=%s %s%s",
	    sa->mech == AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    log_quote(esc, sizeof(esc), sa->user, strlen(sa->user)), words[v],
	    sa->authz_bad ? " (authorization identity not the user)" : "");
	if (v == AUTH_REFUSED)
		(void)nanosleep(&(struct timespec){ 1, 0 }, NULL);
	session_auth_checked(s, v, user);
}

/*
 * SPEC 9: a SASL line was read (an AUTH refused before TLS included):
 * every byte of it in our input buffer goes, all but what is unread.
 */
static void
forget_input(struct session *s, char *in, size_t size, size_t off,
    size_t len)
{
	explicit_bzero(in, off);
	explicit_bzero(in + len, size - len);
	s->input_secret = 0;
}

/*
 * SPEC 9: what the backend offers, asked at the first EHLO that may
 * offer AUTH, never before the greeting or the handshake.  Dovecot gets
 * AUTH_MECH_WAIT seconds (or --timeout, if less).
 */
static void
ask_mechanisms(struct session *s, struct auth_backend *ab)
{
	long long	 wait = s->conf->timeout < AUTH_MECH_WAIT ?
			    s->conf->timeout : AUTH_MECH_WAIT;

	session_auth_mechanisms(s, auth_mechanisms(ab,
	    conn_now_ms() + wait * 1000));
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

/* SPEC 6: a stop signal ends the session with 421 4.3.2 and exit 1. */
static void
stop(struct session *s)
{
	log_info("stopping on signal %d", conn_stop_requested());
	(void)session_stop(s);
}

/*
 * What comes before the first command: the greeting (session_init), or
 * a refusal, or with --tls the handshake (the client speaks first: its
 * ClientHello), or after smtpd-stdio's hand-over the answer to its
 * STARTTLS.
 */
static void
session_open(struct session *s, struct tls *server, struct deadlines *dl,
    const struct peer *p, int bad_proxy, const struct handover *ho)
{
	if (bad_proxy == BAD_HANDOVER)
		(void)session_bad_handover(s);
	else if (bad_proxy)
		(void)session_bad_proxy(s);
	else if (s->conf->tls_implicit)
		(void)start_tls(s, server, dl, p);
	else if (ho != NULL) {
		dl->session_end = ho->session_end;
		session_resume(s, ho, server != NULL);
	} else if (conn_spoke_first() ||
	    talks_in_greet_pause(s->conf, dl->session_end))
		(void)session_pregreet(s);
}

static int
serve(const struct config *c, const struct peer *p, int bad_proxy,
    struct tls *server, const struct handover *ho)
{
	static char		 in[INPUT_CHUNK];
	struct session		 s;
	struct spool		 sp = { -1, 0, 0, 0, 0, "", 0 };
	size_t			 off = 0, len = 0, used;
	enum session_action	 act;
	struct deadlines	 dl;
	struct policy_state	*ps = NULL;
	struct auth_backend	*ab = NULL;
	struct milter_state	*ms = NULL;
	int			 status;

	memset(&dl, 0, sizeof(dl));
	dl.session_end = conn_now_ms() + c->session_timeout * 1000;
	dl.line_end = conn_now_ms() + c->timeout * 1000;
	session_init(&s, c);
	if (c->npolicy > 0)
		ps = policy_new(c);
	if (c->nmilter > 0)
		ms = milter_new(c);
	if (c->auth != NULL)
		ab = auth_new(c->auth);
	session_open(&s, server, &dl, p, bad_proxy, ho);
	for (;;) {
		act = session_feed(&s, in + off, len - off, &used);
		off += used;
		rate_count(&s, &dl, used);
		if (s.input_secret)
			forget_input(&s, in, sizeof(in), off, len);
		switch (act) {
		case SA_NEED_INPUT:
			if (flush_replies(&s, &dl) == -1)
				goto gone;
			off = 0;
			client_input(&s, &dl, in, sizeof(in), &len);
			break;
		case SA_FLUSH:
			if (flush_replies(&s, &dl) == -1)
				goto gone;
			break;
		case SA_SPOOL:
			message_spool(&s, &sp, p);
			break;
		case SA_DELIVER:
			if (flush_replies(&s, &dl) == -1)
				goto gone;
			/*
			 * Never start a handler after a stop request; after
			 * one that ran, its reply goes out, then the 421.
			 */
			if (!conn_stop_requested())
				deliver(&s, &sp, ps, ms, p);
			if (conn_stop_requested())
				stop(&s);
			break;
		case SA_CHECK_RCPT:
			check_rcpt(&s, ps, ms, p);
			break;
		case SA_CHECK_MAIL:
			milter_check_mail(&s, ms, p);
			break;
		case SA_CHECK_DATA:
			milter_check_data(&s, ms, p);
			break;
		case SA_STARTTLS:
			if (flush_replies(&s, &dl) == -1)
				goto gone;
			/* SPEC 8: what came behind STARTTLS is never read. */
			if (off < len)
				log_info("STARTTLS: %zu bytes behind the "
				    "command discarded", len - off);
			off = len = 0;
			/*
			 * SPEC 10.2: an exec: policy program ends with this
			 * process's part of the session, before the hand-over.
			 */
			if (c->tls_handover) {
				policy_free(ps);
				ps = c->npolicy > 0 ? policy_new(c) : NULL;
				/* SPEC 13: the filters hear QUIT from us. */
				milter_end(ms, &s, p);
				ms = c->nmilter > 0 ? milter_new(c) : NULL;
			}
			(void)start_tls(&s, server, &dl, p);
			break;
		case SA_AUTH:
			authenticate(&s, ab, p);
			break;
		case SA_AUTH_MECHS:
			ask_mechanisms(&s, ab);
			break;
		case SA_CLOSE:
			status = s.exit_status;
			if (flush_replies(&s, &dl) == -1)
				goto gone;
			conn_linger();
			goto out;
		}
	}
gone:
	status = EXIT_FAIL;	/* SPEC 7: a failed write to the client */
out:
	log_info("disconnect from %s: messages=%lld errors=%lld exit=%d",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    s.messages, s.errors, status);
	milter_end(ms, &s, p);
	session_free(&s);
	policy_free(ps);
	if (ab != NULL)
		auth_free(ab);
	conn_tls_free();
	return status;
}

/*
 * SPEC 10.1: with --proxy-protocol the header comes first, within 5 s,
 * and its addresses replace the socket's.  -1: the client left inside
 * it; 1: no usable header; 0: go on.
 */
static int
proxy_header(const struct config *c, struct peer *p)
{
	struct proxy_result	 r;

	if (!c->proxy_protocol)
		return 0;
	switch (proxy_read(conn_now_ms() + PROXY_TIMEOUT * 1000, &r)) {
	case PROXY_OK:
		peer_from_proxy(p, &r);
		return 0;
	case PROXY_EOF:
		log_info("connect from %s: closed inside the PROXY header",
		    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown");
		return -1;
	case PROXY_BAD:
		break;
	}
	log_warn("connect from %s: no valid PROXY header within %ds",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    PROXY_TIMEOUT);
	return 1;
}

/*
 * Everything before the session: fds, log, TLS (SPEC 8: set-up errors go
 * to the log, never to the client; after a hand-over they are a 454),
 * signals.  The TLS configuration, or NULL.
 */
static struct tls *
setup(struct config *c, int resumed)
{
	struct tls	*server;

	umask(077);
	setup_fds(c);
	log_init(c->log, c->verbose);
	server = resumed ? tlsconf_try(c) : tlsconf_server(c);
	c->tls_handover = server == NULL && c->ntls_cert > 0;
	conn_init();
	c->sync_check = conn_is_socket();
	if (c->hostname == NULL)
		c->hostname = options_default_hostname();
	if (c->authserv_id == NULL)
		c->authserv_id = c->hostname;
	exec_limits(c);
	return server;
}

int
main(int argc, char **argv)
{
	struct config	 conf;
	struct peer	 peer;
	struct handover	 ho;
	struct tls	*server;
	int		 bad_proxy = 0, resumed, status;

	/* Superservers may start us with SIGCHLD ignored: waitpid needs it. */
	(void)signal(SIGCHLD, SIG_DFL);
	options_parse(argc, argv, &conf);
	/* Before setup_fds closes it: a session smtpd-stdio handed over. */
	resumed = tlsconf_resumed(&ho);
	/* fd 2 is /dev/null now: where smtpd-stdio logged, we log. */
	if (resumed == 1)
		conf.log = ho.log == LOGTO_STDERR ? LOGTO_STDERR :
		    LOGTO_SYSLOG;
	tlsconf_handover(&conf, argv);
	server = setup(&conf, resumed);
	if (resumed == 1)
		peer = ho.peer;
	else if (resumed == -1) {
		peer_lookup(&peer);
		log_warn("TLS: the hand-over from smtpd-stdio does not read: "
		    "not the same version?");
		bad_proxy = BAD_HANDOVER;
	} else {
		peer_lookup(&peer);
		if ((bad_proxy = proxy_header(&conf, &peer)) == -1)
			return EXIT_OK;	/* SPEC 10.1: EOF in the header */
		log_info("connect from %s port %s", peer.remote_addr[0] !=
		    '\0' ? peer.remote_addr : "unknown",
		    peer.remote_port[0] != '\0' ? peer.remote_port : "-");
	}
	status = serve(&conf, &peer, bad_proxy, server, resumed == 1 ? &ho :
	    NULL);
	free(conf.policy);
	free(conf.milter);
	free(conf.tls_cert);
	free(conf.tls_key);
	tlsconf_free(server);
	return status;
}
