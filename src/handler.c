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
	struct buf	 kept;	/* the stdout that counts */
	size_t		 limit;	/* of kept */
	int		 cut;	/* stdout went past the limit */
};

static int	  spawn(const struct handler_cmd *, struct child *);
static void	  errlog_feed(struct errlog *, const char *, size_t);
static void	  errlog_line(struct errlog *, int);
static void	  keep_stdout(struct child *, const char *, size_t);
static void	  drain(int *, struct child *, struct errlog *, size_t);
static void	  take_stdout(struct child *, struct handler_result *);
static void	  supervise(const struct handler_cmd *, struct child *,
		    struct handler_result *);
static int	  child_exited(const struct child *, int *);
static void	  watch_child(struct child *, int);
static void	  exit_result(int, struct handler_result *);

/*
 * Start the handler: spool on 0, pipes on 1 and 2, nothing else open,
 * default signal dispositions, a process group of its own.  On failure
 * errno is set and -1 returned.
 */
static int
spawn(const struct handler_cmd *cmd, struct child *c)
{
	int				 out[2], err[2], rc;

	if (spawn_pipes(out, err) == -1)
		return -1;
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

/* Keep stdout up to the limit, SPEC 5.1; the rest is discarded. */
static void
keep_stdout(struct child *c, const char *p, size_t n)
{
	size_t	 room = c->limit - c->kept.len;

	if (n > room) {
		n = room;
		c->cut = 1;
	}
	buf_append(&c->kept, p, n);
}

/*
 * Read what is there on one pipe, up to limit bytes.  stdout keeps its
 * first bytes in res, stderr goes to the log.  Closes the pipe and sets
 * *fd to -1 at EOF.
 */
static void
drain(int *fd, struct child *c, struct errlog *elog, size_t limit)
{
	char	 buf[8192];
	ssize_t	 n;
	size_t	 total = 0;

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
		keep_stdout(c, buf, (size_t)n);
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
	long long	 deadline = conn_now_ms() + cmd->timeout * 1000;
	int		 status, signalled = 0, timeout;

	while (!child_exited(c, &status)) {
		timeout = (int)(deadline - conn_now_ms());
		if (timeout <= 0) {
			/* TERM first, then KILL after a grace period. */
			(void)kill(-c->pid, signalled ? SIGKILL : SIGTERM);
			if (!signalled)
				log_warn("%s: %s timed out after %llds, "
				    "sending SIGTERM", cmd->id, cmd->what,
				    cmd->timeout);
			signalled++;
			res->end = HE_TIMEOUT;
			deadline = conn_now_ms() + HANDLER_KILL_GRACE * 1000;
			continue;
		}
		watch_child(c, timeout);
	}
	/*
	 * Take what the handler wrote before it exited; a child it left
	 * behind may keep writing, so take a bounded amount only.
	 */
	if (c->out != -1)
		drain(&c->out, c, NULL, HANDLER_FINAL_DRAIN);
	if (c->err != -1)
		drain(&c->err, c, &c->elog, HANDLER_FINAL_DRAIN);
	if (c->elog.len > 0)
		errlog_line(&c->elog, 1);
	if (signalled)
		(void)kill(-c->pid, SIGKILL);	/* stragglers in the group */
	else
		exit_result(status, res);
}

/* Has the handler exited?  Its wait status into *status. */
static int
child_exited(const struct child *c, int *status)
{
	pid_t	 w = waitpid(c->pid, status, WNOHANG);

	if (w == -1 && errno != EINTR)
		fatalx("waitpid: %s", strerror(errno));
	return w == c->pid;
}

/*
 * Wait up to timeout ms for the handler's exit (its pidfd) or output,
 * and read what came.
 */
static void
watch_child(struct child *c, int timeout)
{
	struct pollfd	 pfd[3];

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
		drain(&c->out, c, NULL, SIZE_MAX);
	if (c->err != -1 && pfd[2].revents != 0)
		drain(&c->err, c, &c->elog, SIZE_MAX);
}

/* How a handler that was not timed out ended. */
static void
exit_result(int status, struct handler_result *res)
{
	if (WIFSIGNALED(status)) {
		res->end = HE_SIGNALED;
		res->status = WTERMSIG(status);
	} else {
		res->end = HE_EXITED;
		res->status = WEXITSTATUS(status);
	}
}

/*
 * The stdout that counts.  A line cut by the limit is never a reply
 * line (SPEC 5.1), so after a cut only complete lines are kept.
 */
static void
take_stdout(struct child *c, struct handler_result *res)
{
	char	*nl;

	res->cut = c->cut;
	if (c->cut) {
		nl = c->kept.len == 0 ? NULL :
		    memrchr(c->kept.data, '\n', c->kept.len);
		c->kept.len = nl == NULL ? 0 : (size_t)(nl - c->kept.data) + 1;
	}
	/* Never NULL, and NUL-terminated for whoever prints it. */
	buf_append(&c->kept, "", 1);
	res->out = c->kept.data;
	res->outlen = c->kept.len - 1;
	c->kept.data = NULL;
}

/* Under --lmtp: 512 octets per recipient, at least 4096 (SPEC 5.1). */
size_t
handler_lmtp_limit(size_t nrcpt)
{
	if (nrcpt > SIZE_MAX / LMTP_OUTPUT_PER_RCPT)
		return SIZE_MAX;
	if (nrcpt * LMTP_OUTPUT_PER_RCPT < HANDLER_OUTPUT_MAX)
		return HANDLER_OUTPUT_MAX;
	return nrcpt * LMTP_OUTPUT_PER_RCPT;
}

void
handler_result_free(struct handler_result *res)
{
	free(res->out);
	res->out = NULL;
	res->outlen = 0;
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
	c.limit = cmd->out_limit != 0 ? cmd->out_limit : HANDLER_OUTPUT_MAX;
	if (spawn(cmd, &c) == -1) {
		log_warn("%s: cannot run %s %s: %s", cmd->id, cmd->what,
		    cmd->argv[0], strerror(errno));
		res->end = HE_EXEC_FAILED;
		res->status = errno;
		take_stdout(&c, res);
		return;
	}
	supervise(cmd, &c, res);
	take_stdout(&c, res);
	if (c.out != -1)
		(void)close(c.out);
	if (c.err != -1)
		(void)close(c.err);
	if (c.pidfd != -1)
		(void)close(c.pidfd);
}
