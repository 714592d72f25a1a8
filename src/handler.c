/*
 * Run the handler for one message, SPEC 5.1: posix_spawn without a shell,
 * in its own process group, the spool on stdin, stdout captured for the
 * reply, stderr logged, a wall-clock limit enforced with TERM then KILL.
 * smtpd-stdio (envelope.c) and redis-worker both run handlers through it.
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

static int	  spawn(const struct handler_cmd *, struct child *);
static void	  errlog_feed(struct errlog *, const char *, size_t);
static void	  errlog_line(struct errlog *, int);
static void	  drain(int *, struct handler_result *, struct errlog *, size_t);
static void	  supervise(const struct handler_cmd *, struct child *,
		    struct handler_result *);
static long long  now_ms(void);

static long long
now_ms(void)
{
	struct timespec	 ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Start the handler: spool on 0, pipes on 1 and 2, nothing else open,
 * default signal dispositions, a process group of its own.  On failure
 * errno is set and -1 returned.
 */
static int
spawn(const struct handler_cmd *cmd, struct child *c)
{
	int				 out[2], err[2], rc;

	if (pipe2(out, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(err, O_CLOEXEC) == -1) {
		rc = errno;
		(void)close(out[0]);
		(void)close(out[1]);
		errno = rc;
		return -1;
	}
	rc = handler_spawn(&c->pid, cmd->in, out[1], err[1], cmd->argv,
	    cmd->envp);
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
supervise(const struct handler_cmd *cmd, struct child *c,
    struct handler_result *res)
{
	long long	 deadline = now_ms() + cmd->timeout * 1000;
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
				log_warn("%s: %s timed out after %llds, "
				    "sending SIGTERM", cmd->id, cmd->what,
				    cmd->timeout);
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

/*
 * Runs cmd to its end (or its timeout) and fills res.  Shared by
 * smtpd-stdio and redis-worker, so a handler runs the same under both.
 */
void
handler_exec(const struct handler_cmd *cmd, struct handler_result *res)
{
	struct child	 c;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.elog.id = cmd->id;
	if (spawn(cmd, &c) == -1) {
		log_warn("%s: cannot run %s %s: %s", cmd->id, cmd->what,
		    cmd->argv[0], strerror(errno));
		res->end = HE_EXEC_FAILED;
		res->status = errno;
		return;
	}
	supervise(cmd, &c, res);
	if (c.out != -1)
		(void)close(c.out);
	if (c.err != -1)
		(void)close(c.err);
	if (c.pidfd != -1)
		(void)close(c.pidfd);
}
