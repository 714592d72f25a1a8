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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/* Where a read of the client ended. */
enum input {
	INPUT_DATA,
	INPUT_EOF,
	INPUT_TIMEOUT
};

static void	 setup_fds(struct config *);
static void	 exec_limits(struct config *);
static enum input read_input(char *, size_t, size_t *, long long);
static ssize_t	 write_client(const void *, size_t);
static int	 flush_replies(struct session *, long long);
static void	 message_id(const struct session *, struct spool *);
static void	 log_message(const struct session *, const struct spool *,
		    const struct peer *, uint64_t, const char *, const char *,
		    const struct timespec *);
static void	 spool_start(struct session *, struct spool *,
		    const struct peer *);
static const char *handler_status(const struct handler_result *, char *,
		    size_t);
static void	 spool_data(struct session *, struct spool *,
		    const struct peer *);
static void	 deliver(struct session *, struct spool *,
		    const struct peer *);
static void	 linger_close(const struct config *);
static int	 client_spoke_first(const struct config *);
static int	 serve(const struct config *, const struct peer *);

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

/* One read of the client, waiting at most timeout seconds. */
static enum input
read_input(char *buf, size_t size, size_t *got, long long timeout)
{
	struct pollfd	 pfd = { 0, POLLIN, 0 };
	ssize_t		 n;
	int		 r;

	for (;;) {
		r = poll(&pfd, 1, (int)(timeout * 1000));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0)
			return INPUT_TIMEOUT;
		n = read(0, buf, size);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (n == -1)
				log_info("read from client: %s",
				    strerror(errno));
			return INPUT_EOF;
		}
		*got = (size_t)n;
		return INPUT_DATA;
	}
}

/*
 * Write some replies.  On a socket, never block: a client that stops
 * reading must not hold us past the timeout (send(2) with MSG_DONTWAIT
 * leaves the socket's own flags alone).
 */
static ssize_t
write_client(const void *p, size_t len)
{
	static int	 is_socket = -1;
	struct stat	 st;

	if (is_socket == -1)
		is_socket = fstat(1, &st) == 0 && S_ISSOCK(st.st_mode);
	if (is_socket)
		return send(1, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(1, p, len);
}

/* Write all queued replies in one go.  -1 if the client is gone. */
static int
flush_replies(struct session *s, long long timeout)
{
	struct pollfd	 pfd = { 1, POLLOUT, 0 };
	ssize_t		 n;
	int		 r;

	while (s->out.len > 0) {
		n = write_client(s->out.data, s->out.len);
		if (n >= 0) {
			buf_consume(&s->out, (size_t)n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_info("write to client: %s", strerror(errno));
			return -1;
		}
		if ((r = poll(&pfd, 1, (int)(timeout * 1000))) == 0) {
			log_info("write to client: timeout");
			return -1;
		}
		if (r == -1 && errno != EINTR)
			return -1;
	}
	return 0;
}

/* The id of the current transaction's message, made at its first use. */
static void
message_id(const struct session *s, struct spool *sp)
{
	if (sp->seq == s->txn_seq)
		return;
	sp->seq = s->txn_seq;
	spool_new_id(sp->id, sizeof(sp->id));
	spool_close(sp);
	sp->started = 0;
	sp->size = 0;
}

/* Start the spool for the current transaction if not done yet. */
static void
spool_start(struct session *s, struct spool *sp, const struct peer *p)
{
	struct received_info	 ri;
	char			 from[SMTP_PATH_MAX * 4 + 3];

	message_id(s, sp);
	if (sp->started)
		return;
	sp->started = 1;
	ri.helo = s->helo;
	ri.peer = p;
	ri.hostname = s->conf->hostname;
	ri.protocol = s->esmtp ? "ESMTP" : "SMTP";
	ri.id = sp->id;
	ri.single_rcpt = s->txn.nrcpt == 1 ? s->txn.rcpt[0] : NULL;
	ri.crlf = s->conf->crlf;
	if (spool_begin(sp, s->conf->received ? &ri : NULL) == -1)
		log_warn("%s: spool: %s (from=%s)", sp->id, strerror(errno),
		    log_quote(from, sizeof(from), s->txn.mail_from,
		    strlen(s->txn.mail_from)));
}

static void
spool_data(struct session *s, struct spool *sp, const struct peer *p)
{
	int	 ok;

	spool_start(s, sp, p);
	ok = spool_write(sp, s->data, s->datalen) == 0;
	if (!ok && sp->failed == 1) {
		log_warn("%s: spool write: %s", sp->id, strerror(errno));
		sp->failed = 2;		/* said once */
	}
	session_spooled(s, ok);
}

/* The handler= field of the message's log line: one word. */
static const char *
handler_status(const struct handler_result *r, char *buf, size_t len)
{
	switch (r->end) {
	case HE_EXITED:
		(void)snprintf(buf, len, "exit:%d", r->status);
		break;
	case HE_SIGNALED:
		(void)snprintf(buf, len, "signal:%d", r->status);
		break;
	case HE_TIMEOUT:
		(void)snprintf(buf, len, "timeout");
		break;
	case HE_EXEC_FAILED:
		(void)snprintf(buf, len, "exec-failed");
		break;
	}
	return buf;
}

/*
 * One line per message, SPEC 6, whether the handler ran or not.  What
 * the client chose is quoted (log_quote), so it cannot add fields.
 */
static void
log_message(const struct session *s, const struct spool *sp,
    const struct peer *p, uint64_t size, const char *handler,
    const char *reply, const struct timespec *t0)
{
	struct timespec	 t1;
	char		 from[SMTP_PATH_MAX * 4 + 3];
	char		 helo[SMTP_CMDLINE_MAX * 4 + 3];

	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("%s: client=%s helo=%s from=%s rcpts=%zu size=%llu "
	    "handler=%s reply=%.3s duration=%.3fs", sp->id,
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    log_quote(helo, sizeof(helo), s->helo, strlen(s->helo)),
	    log_quote(from, sizeof(from), s->txn.mail_from,
	    strlen(s->txn.mail_from)), s->txn.nrcpt,
	    (unsigned long long)size, handler, reply,
	    (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9);
}

/* Run the handler on the spooled message and hand its reply back. */
static void
deliver(struct session *s, struct spool *sp, const struct peer *p)
{
	static const char	 no_storage[] =
	    "452 4.3.1 Error: insufficient system storage\r\n";
	struct handler_job	 job;
	struct handler_result	 res;
	struct buf		 text = { NULL, 0, 0 };
	struct timespec		 t0;
	const char		*refusal;
	char			 st[32];

	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((refusal = session_refusal(s)) == NULL) {
		spool_start(s, sp, p);
		if (sp->failed || spool_rewind(sp) == -1)
			refusal = no_storage;
	}
	if (refusal != NULL) {
		message_id(s, sp);
		spool_close(sp);
		log_message(s, sp, p, s->dec.wire_size, "none", refusal, &t0);
		session_delivered(s, refusal);
		return;
	}
	job.conf = s->conf;
	job.peer = p;
	job.sess = s;
	job.id = sp->id;
	job.spool_fd = sp->fd;
	job.spool_size = sp->size;
	handler_run(&job, &res);
	spool_close(sp);
	(void)reply_from_handler(&res, sp->id, &text);
	buf_append(&text, "", 1);
	log_message(s, sp, p, sp->size, handler_status(&res, st, sizeof(st)),
	    text.data, &t0);
	session_delivered(s, text.data);
	buf_free(&text);
}

/*
 * Closing a socket with unread input makes the kernel send a reset, and a
 * reset can destroy our last reply before the client reads it (a 554 to
 * an early talker, a 421).  So half-close, then read what the client
 * still sends until it closes too, for a bounded time and amount.
 */
static void
linger_close(const struct config *c)
{
	struct pollfd	 pfd = { 0, POLLIN, 0 };
	char		 buf[4096];
	size_t		 total = 0;
	ssize_t		 n;

	if (!c->sync_check || shutdown(1, SHUT_WR) == -1)
		return;
	while (total < LINGER_BYTES && poll(&pfd, 1, LINGER_MS) == 1) {
		if ((n = read(0, buf, sizeof(buf))) <= 0)
			break;
		total += (size_t)n;
	}
}

/* Bytes (not EOF) waiting before the greeting went out. */
static int
client_spoke_first(const struct config *c)
{
	char	 byte;

	return c->sync_check &&
	    recv(0, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

static int
serve(const struct config *c, const struct peer *p)
{
	static char		 in[INPUT_CHUNK];
	struct session		 s;
	struct spool		 sp = { -1, 0, 0, 0, 0, "" };
	size_t			 off = 0, len = 0, used;
	enum session_action	 act;
	int			 status;

	session_init(&s, c);
	if (client_spoke_first(c))
		(void)session_pregreet(&s);
	for (;;) {
		act = session_feed(&s, in + off, len - off, &used);
		off += used;
		switch (act) {
		case SA_NEED_INPUT:
			if (flush_replies(&s, c->timeout) == -1)
				goto gone;
			off = len = 0;
			switch (read_input(in, sizeof(in), &len, c->timeout)) {
			case INPUT_DATA:
				break;
			case INPUT_EOF:
				(void)session_eof(&s);
				break;
			case INPUT_TIMEOUT:
				(void)session_timeout(&s);
				break;
			}
			break;
		case SA_FLUSH:
			if (flush_replies(&s, c->timeout) == -1)
				goto gone;
			break;
		case SA_SPOOL:
			spool_data(&s, &sp, p);
			break;
		case SA_DELIVER:
			if (flush_replies(&s, c->timeout) == -1)
				goto gone;
			deliver(&s, &sp, p);
			break;
		case SA_CLOSE:
			status = s.exit_status;
			if (flush_replies(&s, c->timeout) == -1)
				goto gone;
			linger_close(c);
			goto out;
		}
	}
gone:
	status = EXIT_FAIL;	/* SPEC 7: a failed write to the client */
out:
	log_info("disconnect from %s: messages=%lld errors=%lld exit=%d",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    s.messages, s.errors, status);
	session_free(&s);
	return status;
}

int
main(int argc, char **argv)
{
	struct config	 conf;
	struct peer	 peer;
	struct stat	 st;

	options_parse(argc, argv, &conf);

	/* A client that hangs up must not kill us mid-write (SPEC 6). */
	(void)signal(SIGPIPE, SIG_IGN);
	umask(077);
	setup_fds(&conf);
	conf.sync_check = fstat(0, &st) == 0 && S_ISSOCK(st.st_mode);
	log_init(conf.log, conf.verbose);
	if (conf.hostname == NULL)
		conf.hostname = options_default_hostname();
	peer_lookup(&peer);
	exec_limits(&conf);
	log_info("connect from %s port %s", peer.remote_addr[0] != '\0' ?
	    peer.remote_addr : "unknown", peer.remote_port[0] != '\0' ?
	    peer.remote_port : "-");
	return serve(&conf, &peer);
}
