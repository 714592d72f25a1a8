/*
 * Run the handler for one message, SPEC 5.1: posix_spawn without a shell,
 * in its own process group, the spool on stdin, stdout captured for the
 * reply, stderr logged, a wall-clock limit enforced with TERM then KILL.
 */
#include <sys/pidfd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

extern char **environ;

/* What we set for the handler; inherited copies are dropped. */
static const char *const smtp_vars[] = {
	"SMTP_ID", "SMTP_REMOTE_ADDR", "SMTP_REMOTE_PORT", "SMTP_LOCAL_ADDR",
	"SMTP_LOCAL_PORT", "SMTP_HELO", "SMTP_PROTOCOL", "SMTP_MAIL_FROM",
	"SMTP_RCPT_TO", "SMTP_RCPT_COUNT", "SMTP_MAIL_OPTIONS",
	"SMTP_RCPT_OPTIONS", "SMTP_SIZE", "SMTP_RELAY", "SMTP_LINE_ENDS",
	"SMTP_RCPT", "SMTP_RCPT_OPTION", "SMTP_AUTH_USER", "SMTP_TLS_PROTOCOL",
	"SMTP_TLS_CIPHER", "SMTP_TLS_SNI", "SMTP_TLS_RESUMED",
	"SMTP_TLS_CLIENT_SUBJECT", "SMTP_TLS_CLIENT_HASH"
};
#define NSMTP_VARS	(sizeof(smtp_vars) / sizeof(smtp_vars[0]))

/* Handler stderr, cut into log lines. */
struct errlog {
	const char	*id;
	char		 line[HANDLER_STDERR_CHUNK];
	size_t		 len;
	unsigned int	 lines;		/* log lines written */
	unsigned int	 part;		/* > 0: continuing a long line */
};

/* The running handler and the pipes we read. */
struct child {
	pid_t		 pid;
	int		 pidfd;
	int		 out;	/* -1 once at EOF */
	int		 err;
	struct errlog	 elog;
};

static char	**build_argv(const struct handler_job *);
static char	**build_env(const struct handler_job *, size_t *);
static char	 *join(char *const *, size_t, char);
static int	  is_smtp_var(const char *);
static int	  spawn(const struct handler_job *, struct child *);
static void	  errlog_feed(struct errlog *, const char *, size_t);
static void	  errlog_line(struct errlog *, int);
static void	  drain(int *, struct handler_result *, struct errlog *, size_t);
static void	  supervise(const struct handler_job *, struct child *,
		    struct handler_result *);
static long long  now_ms(void);
static void	  free_strings(char **);

static long long
now_ms(void)
{
	struct timespec	 ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Free the strings of a NULL-terminated vector, not the vector. */
static void
free_strings(char **v)
{
	size_t	 i;

	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
}

/* Join strings with sep between them (no trailing sep). */
static char *
join(char *const *v, size_t n, char sep)
{
	struct buf	 b = { NULL, 0, 0 };
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_append(&b, &sep, 1);
		buf_append(&b, v[i], strlen(v[i]));
	}
	buf_append(&b, "", 1);
	return b.data;
}

/* argv with {sender} and {recipients} expanded, SPEC 5.1. */
static char **
build_argv(const struct handler_job *job)
{
	const struct txn	 *t = &job->sess->txn;
	char			**in = job->conf->handler_argv, **argv;
	size_t			  n = 0, i, j, k = 0;

	/* SPEC 10.2: --rcpt-check runs with no arguments. */
	if (job->rcpt != NULL) {
		if ((argv = calloc(2, sizeof(*argv))) == NULL ||
		    (argv[0] = strdup(job->conf->rcpt_check)) == NULL)
			fatalx("out of memory");
		return argv;
	}
	for (i = 0; in[i] != NULL; i++)
		n += strcmp(in[i], "{recipients}") == 0 ? t->nrcpt : 1;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		fatalx("out of memory");
	for (i = 0; in[i] != NULL; i++) {
		if (strcmp(in[i], "{recipients}") == 0)
			for (j = 0; j < t->nrcpt; j++)
				argv[k++] = strdup(t->rcpt[j]);
		else if (strcmp(in[i], "{sender}") == 0)
			argv[k++] = strdup(t->mail_from);
		else
			argv[k++] = strdup(in[i]);
		if (k > 0 && argv[k - 1] == NULL)
			fatalx("out of memory");
	}
	return argv;
}

static int
is_smtp_var(const char *entry)
{
	size_t	 i, n;

	for (i = 0; i < NSMTP_VARS; i++) {
		n = strlen(smtp_vars[i]);
		if (strncmp(entry, smtp_vars[i], n) == 0 && entry[n] == '=')
			return 1;
	}
	return 0;
}

/* Our environment, without stale SMTP_* copies, plus the envelope. */
static char **
build_env(const struct handler_job *job, size_t *ours)
{
	const struct session	 *s = job->sess;
	const struct txn	 *t = &s->txn;
	const struct peer	 *p = job->peer;
	char			**env, *rcpts, *ropts;
	size_t			  n = 0, i, k = 0;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + NSMTP_VARS + 1, sizeof(*env))) == NULL)
		fatalx("out of memory");
	/* Inherited entries are shared, not copied: spawn frees only ours. */
	for (i = 0; i < n; i++)
		if (!is_smtp_var(environ[i]))
			env[k++] = environ[i];
	*ours = k;
	rcpts = join(t->rcpt, t->nrcpt, '\n');
	ropts = join(t->rcpt_options, t->nrcpt, '\n');
	if (asprintf(&env[k++], "SMTP_ID=%s", job->id) == -1 ||
	    asprintf(&env[k++], "SMTP_REMOTE_ADDR=%s", p->remote_addr) == -1 ||
	    asprintf(&env[k++], "SMTP_REMOTE_PORT=%s", p->remote_port) == -1 ||
	    asprintf(&env[k++], "SMTP_LOCAL_ADDR=%s", p->local_addr) == -1 ||
	    asprintf(&env[k++], "SMTP_LOCAL_PORT=%s", p->local_port) == -1 ||
	    asprintf(&env[k++], "SMTP_HELO=%s", s->helo) == -1 ||
	    asprintf(&env[k++], "SMTP_PROTOCOL=%s",
	    session_protocol(s)) == -1 ||
	    asprintf(&env[k++], "SMTP_MAIL_FROM=%s", t->mail_from) == -1 ||
	    asprintf(&env[k++], "SMTP_RCPT_TO=%s", rcpts) == -1 ||
	    asprintf(&env[k++], "SMTP_RCPT_COUNT=%zu", t->nrcpt) == -1 ||
	    asprintf(&env[k++], "SMTP_MAIL_OPTIONS=%s", t->mail_options) == -1 ||
	    asprintf(&env[k++], "SMTP_RCPT_OPTIONS=%s", ropts) == -1 ||
	    (job->rcpt == NULL ? asprintf(&env[k++], "SMTP_SIZE=%llu",
	    (unsigned long long)job->spool_size) : asprintf(&env[k++],
	    "SMTP_RCPT=%s", job->rcpt)) == -1 ||
	    (job->rcpt != NULL && asprintf(&env[k++], "SMTP_RCPT_OPTION=%s",
	    job->rcpt_option) == -1) ||
	    asprintf(&env[k++], "SMTP_LINE_ENDS=%s",
	    session_crlf(s) ? "CRLF" : "LF") == -1 ||
	    asprintf(&env[k++], "SMTP_AUTH_USER=%s", s->auth_user) == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_PROTOCOL=%s", s->tlsi.protocol) == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_CIPHER=%s", s->tlsi.cipher) == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_SNI=%s", s->tlsi.sni) == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_RESUMED=%s", !s->tls ? "" :
	    s->tlsi.resumed ? "1" : "0") == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_CLIENT_SUBJECT=%s",
	    s->tlsi.client_subject) == -1 ||
	    asprintf(&env[k++], "SMTP_TLS_CLIENT_HASH=%s",
	    s->tlsi.client_hash) == -1 ||
	    (job->conf->relay != NULL && asprintf(&env[k++], "SMTP_RELAY=%s",
	    job->conf->relay) == -1))
		fatalx("out of memory");
	free(rcpts);
	free(ropts);
	return env;
}

/*
 * Start the handler: spool on 0, pipes on 1 and 2, nothing else open,
 * default signal dispositions, a process group of its own.  On failure
 * errno is set and -1 returned.
 */
static int
spawn(const struct handler_job *job, struct child *c)
{
	char				**argv, **envp;
	size_t				  ours;
	int				 out[2], err[2], rc;
	int				 in = job->spool_fd;

	if (pipe2(out, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(err, O_CLOEXEC) == -1) {
		rc = errno;
		(void)close(out[0]);
		(void)close(out[1]);
		errno = rc;
		return -1;
	}
	argv = build_argv(job);
	envp = build_env(job, &ours);
	rc = handler_spawn(&c->pid, in, out[1], err[1], argv, envp);
	free_strings(argv);
	free(argv);
	free_strings(envp + ours);
	free(envp);
	(void)close(out[1]);
	(void)close(err[1]);
	if (rc != 0) {
		(void)close(out[0]);
		(void)close(err[0]);
		errno = rc;
		return -1;
	}
	c->out = out[0];
	c->err = err[0];
	(void)fcntl(c->out, F_SETFL, O_NONBLOCK);
	(void)fcntl(c->err, F_SETFL, O_NONBLOCK);
	c->pidfd = pidfd_open(c->pid, 0);
	return 0;
}

/*
 * Log one line of handler stderr.  A line longer than a log line is
 * split, its later pieces numbered: "handler (part 2): ...".
 */
static void
errlog_line(struct errlog *e, int complete)
{
	char	 esc[4 * HANDLER_STDERR_CHUNK + 1];

	if (e->lines < HANDLER_STDERR_LINES) {
		(void)log_escape(esc, sizeof(esc), e->line, e->len);
		if (e->part == 0)
			log_info("%s: handler: %s", e->id, esc);
		else
			log_info("%s: handler (part %u): %s", e->id,
			    e->part + 1, esc);
	} else if (e->lines == HANDLER_STDERR_LINES)
		log_info("%s: handler: more stderr output not logged", e->id);
	e->lines++;
	e->part = complete ? 0 : e->part + 1;
	e->len = 0;
}

/* Cut handler stderr into lines; over-long lines are split. */
static void
errlog_feed(struct errlog *e, const char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n') {
			errlog_line(e, 1);
			continue;
		}
		e->line[e->len++] = p[i];
		if (e->len == sizeof(e->line))
			errlog_line(e, 0);
	}
}

/*
 * Read what is there on one pipe, up to limit bytes.  stdout keeps its
 * first bytes in res, stderr goes to the log.  Closes the pipe and sets
 * *fd to -1 at EOF.
 */
static void
drain(int *fd, struct handler_result *res, struct errlog *elog, size_t limit)
{
	char	 buf[8192];
	ssize_t	 n;
	size_t	 keep, total = 0;

	while (total < limit) {
		n = read(*fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			(void)close(*fd);
			*fd = -1;
			return;
		}
		total += (size_t)n;
		if (elog != NULL) {
			errlog_feed(elog, buf, (size_t)n);
			continue;
		}
		keep = sizeof(res->out) - res->outlen;
		if (keep > (size_t)n)
			keep = (size_t)n;
		memcpy(res->out + res->outlen, buf, keep);
		res->outlen += keep;
	}
}

/*
 * Wait for the handler to exit, reading its output meanwhile.  The reply
 * is due when the handler exits, even if a child of it keeps a pipe open.
 */
static void
supervise(const struct handler_job *job, struct child *c,
    struct handler_result *res)
{
	long long	 deadline = now_ms() + job->conf->handler_timeout * 1000;
	struct pollfd	 pfd[3];
	int		 status, signalled = 0, timeout;
	pid_t		 w;

	for (;;) {
		w = waitpid(c->pid, &status, WNOHANG);
		if (w == c->pid)
			break;
		if (w == -1 && errno != EINTR)
			fatalx("waitpid: %s", strerror(errno));
		timeout = (int)(deadline - now_ms());
		if (timeout <= 0) {
			/* TERM first, then KILL after a grace period. */
			(void)kill(-c->pid, signalled ? SIGKILL : SIGTERM);
			if (!signalled)
				log_warn("%s: handler timed out after %llds, "
				    "sending SIGTERM", job->id,
				    job->conf->handler_timeout);
			signalled++;
			res->end = HE_TIMEOUT;
			deadline = now_ms() + HANDLER_KILL_GRACE * 1000;
			continue;
		}
		pfd[0].fd = c->pidfd;
		pfd[1].fd = c->out;
		pfd[2].fd = c->err;
		pfd[0].events = pfd[1].events = pfd[2].events = POLLIN;
		/* Without a pidfd, look at the child every 100 ms. */
		if (c->pidfd == -1 && timeout > 100)
			timeout = 100;
		if (poll(pfd, 3, timeout) == -1 && errno != EINTR)
			fatalx("poll: %s", strerror(errno));
		if (c->out != -1 && pfd[1].revents != 0)
			drain(&c->out, res, NULL, SIZE_MAX);
		if (c->err != -1 && pfd[2].revents != 0)
			drain(&c->err, res, &c->elog, SIZE_MAX);
	}
	/*
	 * Take what the handler wrote before it exited; a child it left
	 * behind may keep writing, so take a bounded amount only.
	 */
	if (c->out != -1)
		drain(&c->out, res, NULL, HANDLER_FINAL_DRAIN);
	if (c->err != -1)
		drain(&c->err, res, &c->elog, HANDLER_FINAL_DRAIN);
	if (c->elog.len > 0)
		errlog_line(&c->elog, 1);
	if (signalled)
		(void)kill(-c->pid, SIGKILL);	/* stragglers in the group */
	else if (WIFSIGNALED(status)) {
		res->end = HE_SIGNALED;
		res->status = WTERMSIG(status);
	} else {
		res->end = HE_EXITED;
		res->status = WEXITSTATUS(status);
	}
}

void
handler_run(const struct handler_job *job, struct handler_result *res)
{
	struct child	 c;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.elog.id = job->id;
	if (spawn(job, &c) == -1) {
		log_warn("%s: cannot run %s %s: %s", job->id,
		    job->rcpt != NULL ? "rcpt-check" : "handler",
		    job->rcpt != NULL ? job->conf->rcpt_check :
		    job->conf->handler_argv[0], strerror(errno));
		res->end = HE_EXEC_FAILED;
		res->status = errno;
		return;
	}
	supervise(job, &c, res);
	if (c.out != -1)
		(void)close(c.out);
	if (c.err != -1)
		(void)close(c.err);
	if (c.pidfd != -1)
		(void)close(c.pidfd);
}
