/*
 * redis-worker: reads a Redis stream with a consumer group and runs an
 * smtpd-stdio handler per entry, acknowledging an entry only once its
 * handler exited 0 (SPEC 12).  The counterpart of the redis-stream handler.
 *
 * usage: redis-worker [URL] STREAM GROUP CONSUMER -- HANDLER [ARG ...]
 *
 * Written in C against hiredis rather than in sh around redis-cli: the
 * "message" field holds any bytes (NUL, bare CR, LF), and redis-cli prints
 * the fields of an entry one per line, which no script can split back into
 * the exact bytes.  hiredis hands over each bulk string with its length.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis.h>

#define DEFAULT_URL		"redis://127.0.0.1:6379"
#define DEFAULT_CLAIM_IDLE	300		/* seconds */
#define BLOCK_MS		1000		/* XREADGROUP BLOCK, SIGTERM latency */
#define IO_TIMEOUT_S		30		/* beyond BLOCK_MS: Redis is gone */
#define PASSWORD_MAX		1024
#define FIELD_MAX		64		/* an SMTP_* variable name */

#define EX_USAGE	64
#define EX_TEMPFAIL	75
#define EX_CONFIG	78

extern char **environ;

struct worker {
	redisContext	 *rc;
	const char	 *stream;
	const char	 *group;
	const char	 *consumer;
	char		**handler;
	long long	  claim_idle_ms;
	char		  cursor[64];	/* XAUTOCLAIM's next start id */
};

static volatile sig_atomic_t stopping;

static void	usage(void) __attribute__((noreturn));
static void	on_signal(int);
static void	logx(const char *, ...) __attribute__((format(printf, 1, 2)));
static void	w_connect(struct worker *, const char *);
static redisReply *w_command(struct worker *, int, const char **);
static void	w_group_create(struct worker *);
static int	w_run_entries(struct worker *, redisReply *, char *, size_t);
static int	w_run_entry(struct worker *, redisReply *);
static int	w_spawn(struct worker *, const redisReply *, const redisReply *);
static char   **w_environ(const redisReply *, size_t *);
static void	env_free(char **, size_t);
static int	w_autoclaim(struct worker *);
static int	w_read(struct worker *, const char *, char *, size_t);

static void
usage(void)
{
	fprintf(stderr, "usage: redis-worker [URL] STREAM GROUP CONSUMER -- "
	    "HANDLER [ARG ...]\n");
	exit(EX_USAGE);
}

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
logx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("redis-worker: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/*
 * Connects to URL: an absolute UNIX socket path, or
 * redis://[user[:password]@]host[:port][/db].  REDIS_AUTH_FILE (its first
 * line) gives the password instead of the URL, so it sits in no argv.
 */
static void
w_connect(struct worker *w, const char *url)
{
	char host[256], user[256], pass[PASSWORD_MAX], db[16];
	const char *p, *at, *end, *auth, *argv[3];
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	redisReply *r;
	long port = 6379;
	size_t n;
	FILE *fp;
	int argc;

	user[0] = pass[0] = db[0] = '\0';
	if ((auth = getenv("REDIS_AUTH_FILE")) != NULL && *auth != '\0') {
		if ((fp = fopen(auth, "r")) == NULL)
			err(EX_CONFIG, "REDIS_AUTH_FILE %s", auth);
		if (fgets(pass, sizeof(pass), fp) == NULL)
			pass[0] = '\0';
		pass[strcspn(pass, "\r\n")] = '\0';
		fclose(fp);
	}
	if (url[0] == '/')
		w->rc = redisConnectUnixWithTimeout(url, tv);
	else if (strncmp(url, "redis://", 8) == 0) {
		p = url + 8;
		end = p + strcspn(p, "/");
		if ((at = memrchr(p, '@', end - p)) != NULL) {
			n = strcspn(p, ":");
			if (p + n > at)
				n = at - p;
			if (n >= sizeof(user))
				errx(EX_CONFIG, "%s: user name too long", url);
			memcpy(user, p, n);
			user[n] = '\0';
			if (p + n < at && pass[0] == '\0') {
				if ((size_t)(at - p - n - 1) >= sizeof(pass))
					errx(EX_CONFIG, "%s: password too long",
					    url);
				memcpy(pass, p + n + 1, at - p - n - 1);
				pass[at - p - n - 1] = '\0';
			}
			p = at + 1;
		}
		if (*p == '[') {
			if ((at = memchr(p, ']', end - p)) == NULL)
				errx(EX_CONFIG, "%s: bad IPv6 address", url);
			n = at - p - 1;
			p++;
			at++;
		} else {
			at = p + strcspn(p, ":/");
			n = at - p;
		}
		if (n == 0 || n >= sizeof(host))
			errx(EX_CONFIG, "%s: bad host", url);
		memcpy(host, p, n);
		host[n] = '\0';
		if (*at == ':') {
			char portstr[8];
			const char *e;

			n = end - at - 1;
			if (n == 0 || n >= sizeof(portstr))
				errx(EX_CONFIG, "%s: bad port", url);
			memcpy(portstr, at + 1, n);
			portstr[n] = '\0';
			port = strtonum(portstr, 1, 65535, &e);
			if (e != NULL)
				errx(EX_CONFIG, "%s: port %s", url, e);
		}
		if (*end == '/' && end[1] != '\0') {
			if (strlen(end + 1) >= sizeof(db) ||
			    strspn(end + 1, "0123456789") != strlen(end + 1))
				errx(EX_CONFIG, "%s: bad database number", url);
			strlcpy(db, end + 1, sizeof(db));
		}
		w->rc = redisConnectWithTimeout(host, (int)port, tv);
	} else
		errx(EX_CONFIG, "%s: not redis://... or /path/to/socket", url);
	if (w->rc == NULL || w->rc->err) {
		logx("cannot connect to %s: %s", url,
		    w->rc != NULL ? w->rc->errstr : "out of memory");
		exit(EX_TEMPFAIL);
	}
	/* Replies come within BLOCK_MS unless Redis is gone. */
	tv.tv_sec = IO_TIMEOUT_S + BLOCK_MS / 1000;
	redisSetTimeout(w->rc, tv);
	if (pass[0] != '\0') {
		argc = 0;
		argv[argc++] = "AUTH";
		if (user[0] != '\0')
			argv[argc++] = user;
		argv[argc++] = pass;
		r = w_command(w, argc, argv);
		explicit_bzero(pass, sizeof(pass));
		if (r->type == REDIS_REPLY_ERROR) {
			logx("AUTH: %s", r->str);
			exit(EX_TEMPFAIL);
		}
		freeReplyObject(r);
	}
	if (db[0] != '\0') {
		argv[0] = "SELECT";
		argv[1] = db;
		r = w_command(w, 2, argv);
		if (r->type == REDIS_REPLY_ERROR) {
			logx("SELECT %s: %s", db, r->str);
			exit(EX_CONFIG);
		}
		freeReplyObject(r);
	}
}

/* One command; a lost connection ends the worker (75: restart me). */
static redisReply *
w_command(struct worker *w, int argc, const char **argv)
{
	redisReply *r;

	r = redisCommandArgv(w->rc, argc, argv, NULL);
	if (r == NULL) {
		logx("%s: %s", argv[0], w->rc->errstr);
		exit(EX_TEMPFAIL);
	}
	return r;
}

/* The group reads the stream from its start; an existing one is fine. */
static void
w_group_create(struct worker *w)
{
	const char *argv[] = { "XGROUP", "CREATE", w->stream, w->group, "0",
	    "MKSTREAM" };
	redisReply *r;

	r = w_command(w, 6, argv);
	if (r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "BUSYGROUP", 9) != 0) {
		logx("XGROUP CREATE %s %s: %s", w->stream, w->group, r->str);
		exit(EX_TEMPFAIL);
	}
	freeReplyObject(r);
}

/* Frees what w_environ() allocated: the vector and the strings from ours. */
static void
env_free(char **env, size_t ours)
{
	size_t	 i;

	for (i = ours; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/*
 * The handler's environment: ours without any SMTP_* variable, plus one
 * SMTP_NAME per field but "message".  A field that cannot be a variable
 * (odd name, a NUL in the value) is left out, with a log line.
 */
static char **
w_environ(const redisReply *fields, size_t *ours)
{
	const redisReply *k, *v;
	char **env, *s;
	size_t n = 0, i, j, m = 0;

	while (environ[n] != NULL)
		n++;
	if ((env = calloc(n + fields->elements / 2 + 1, sizeof(*env))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "SMTP_", 5) != 0)
			env[m++] = environ[i];
	*ours = m;	/* from here on the strings are ours to free */
	for (i = 0; i + 1 < fields->elements; i += 2) {
		k = fields->element[i];
		v = fields->element[i + 1];
		if (k->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "message") == 0)
			continue;
		if (k->len == 0 || k->len > FIELD_MAX ||
		    strspn(k->str, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
		    k->len || memchr(v->str, '\0', v->len) != NULL) {
			logx("field %.*s left out of the environment",
			    (int)(k->len < FIELD_MAX ? k->len : FIELD_MAX),
			    k->str);
			continue;
		}
		if (asprintf(&s, "SMTP_%s=%s", k->str, v->str) == -1) {
			env[m] = NULL;
			env_free(env, *ours);
			return NULL;
		}
		for (j = 5; s[j] != '='; j++)
			if (s[j] >= 'a' && s[j] <= 'z')
				s[j] -= 'a' - 'A';
		env[m++] = s;
	}
	env[m] = NULL;
	return env;
}

/*
 * Runs the handler on one entry [id, [field, value, ...]] with the message
 * in an unlinked temporary file on its stdin, its stdout and stderr on
 * ours; returns its exit status, or -1.
 */
static int
w_spawn(struct worker *w, const redisReply *fields, const redisReply *msg)
{
	char path[4096], **env;
	const char *tmpdir;
	size_t ours;
	sigset_t none;
	size_t off;
	ssize_t nw;
	pid_t pid;
	int fd, status;

	if ((tmpdir = getenv("TMPDIR")) == NULL || *tmpdir == '\0')
		tmpdir = "/tmp";
	if ((size_t)snprintf(path, sizeof(path), "%s/redis-worker.XXXXXX",
	    tmpdir) >= sizeof(path))
		return -1;
	if ((fd = mkstemp(path)) == -1) {
		logx("mkstemp %s: %s", path, strerror(errno));
		return -1;
	}
	unlink(path);
	for (off = 0; off < msg->len; off += nw)
		if ((nw = write(fd, msg->str + off, msg->len - off)) == -1) {
			if (errno == EINTR) {
				nw = 0;
				continue;
			}
			logx("writing the message: %s", strerror(errno));
			close(fd);
			return -1;
		}
	if (lseek(fd, 0, SEEK_SET) == -1 ||
	    (env = w_environ(fields, &ours)) == NULL) {
		close(fd);
		return -1;
	}
	if ((pid = fork()) == -1) {
		logx("fork: %s", strerror(errno));
		close(fd);
		env_free(env, ours);
		return -1;
	}
	if (pid == 0) {
		/* Its own process group: a terminal's ^C is not for it. */
		setpgid(0, 0);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(fd, 0) == -1 || dup2(2, 1) == -1)
			_exit(EX_TEMPFAIL);
		close(fd);
		environ = env;
		execvp(w->handler[0], w->handler);
		logx("%s: %s", w->handler[0], strerror(errno));
		_exit(EX_TEMPFAIL);
	}
	close(fd);
	env_free(env, ours);	/* the child has its own copy */
	/* SIGTERM finishes the current entry: wait whatever comes. */
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	logx("handler killed by signal %d", WTERMSIG(status));
	return -1;
}

/* One entry: run it, XACK it on exit 0.  Returns 1 when acknowledged. */
static int
w_run_entry(struct worker *w, redisReply *e)
{
	const redisReply *id, *fields, *msg = NULL;
	const char *argv[4];
	redisReply *r;
	size_t i;
	int status;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING)
		return 0;
	id = e->element[0];
	fields = e->element[1];
	if (fields->type != REDIS_REPLY_ARRAY) {
		/* Trimmed away while pending: nothing left to deliver. */
		logx("entry %s is gone from %s", id->str, w->stream);
		return 0;
	}
	for (i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, "message") == 0)
			msg = fields->element[i + 1];
	if (msg == NULL || msg->type != REDIS_REPLY_STRING) {
		logx("entry %s has no message field; left pending", id->str);
		return 0;
	}
	status = w_spawn(w, fields, msg);
	if (status != 0) {
		logx("entry %s: handler exit %d; left pending", id->str,
		    status);
		return 0;
	}
	argv[0] = "XACK";
	argv[1] = w->stream;
	argv[2] = w->group;
	argv[3] = id->str;
	r = w_command(w, 4, argv);
	if (r->type != REDIS_REPLY_INTEGER)
		logx("XACK %s: %s", id->str,
		    r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
	freeReplyObject(r);
	return 1;
}

/*
 * Runs the entries of a reply's entry list; the last id seen goes to
 * last.  Returns how many entries there were.
 */
static int
w_run_entries(struct worker *w, redisReply *list, char *last, size_t lastsz)
{
	size_t i;

	if (list == NULL || list->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < list->elements; i++) {
		w_run_entry(w, list->element[i]);
		if (last != NULL && list->element[i]->type ==
		    REDIS_REPLY_ARRAY && list->element[i]->elements > 0)
			strlcpy(last, list->element[i]->element[0]->str,
			    lastsz);
	}
	return (int)list->elements;
}

/* Claims and runs one entry pending longer than the claim idle time. */
static int
w_autoclaim(struct worker *w)
{
	char idle[32];
	const char *argv[] = { "XAUTOCLAIM", w->stream, w->group, w->consumer,
	    idle, w->cursor, "COUNT", "1" };
	redisReply *r;
	int n;

	snprintf(idle, sizeof(idle), "%lld", w->claim_idle_ms);
	r = w_command(w, 8, argv);
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		logx("XAUTOCLAIM: %s",
		    r->type == REDIS_REPLY_ERROR ? r->str : "odd reply");
		exit(EX_TEMPFAIL);
	}
	strlcpy(w->cursor, r->element[0]->str, sizeof(w->cursor));
	n = w_run_entries(w, r->element[1], NULL, 0);
	freeReplyObject(r);
	return n;
}

/*
 * XREADGROUP of one entry after id (">" for new ones, blocking up to
 * BLOCK_MS); runs it.  Returns the number of entries read.
 */
static int
w_read(struct worker *w, const char *id, char *last, size_t lastsz)
{
	const char *argv[] = { "XREADGROUP", "GROUP", w->group, w->consumer,
	    "COUNT", "1", "BLOCK", "1000", "STREAMS", w->stream, id };
	redisReply *r, *s;
	int n = 0;

	r = w_command(w, 11, argv);
	if (r->type == REDIS_REPLY_ERROR) {
		logx("XREADGROUP: %s", r->str);
		exit(EX_TEMPFAIL);
	}
	/* [[stream, [entry, ...]]], or nil on timeout. */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    (s = r->element[0])->type == REDIS_REPLY_ARRAY && s->elements == 2)
		n = w_run_entries(w, s->element[1], last, lastsz);
	freeReplyObject(r);
	return n;
}

int
main(int argc, char *argv[])
{
	struct worker w;
	struct sigaction sa;
	const char *url = DEFAULT_URL, *s, *e;
	char last[64];
	int i, dash = -1;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			dash = i;
			break;
		}
	if (dash == 5)
		url = argv[1];
	else if (dash != 4)
		usage();
	if (dash + 1 >= argc)
		usage();
	memset(&w, 0, sizeof(w));
	w.stream = argv[dash - 3];
	w.group = argv[dash - 2];
	w.consumer = argv[dash - 1];
	w.handler = argv + dash + 1;
	if (*w.stream == '\0' || *w.group == '\0' || *w.consumer == '\0')
		usage();
	w.claim_idle_ms = DEFAULT_CLAIM_IDLE * 1000LL;
	if ((s = getenv("REDIS_CLAIM_IDLE")) != NULL && *s != '\0') {
		w.claim_idle_ms = strtonum(s, 0, 86400 * 365, &e) * 1000LL;
		if (e != NULL)
			errx(EX_CONFIG, "REDIS_CLAIM_IDLE=%s: %s", s, e);
	}
	strlcpy(w.cursor, "0-0", sizeof(w.cursor));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stderr, NULL, _IOLBF, 0);

	w_connect(&w, url);
	w_group_create(&w);
	logx("consumer %s of group %s on %s: ready", w.consumer, w.group,
	    w.stream);

	/* First what this consumer had read and not acknowledged before. */
	strlcpy(last, "0", sizeof(last));
	while (!stopping && w_read(&w, last, last, sizeof(last)) > 0)
		;
	while (!stopping) {
		if (w_autoclaim(&w) > 0)
			continue;
		w_read(&w, ">", NULL, 0);
	}
	logx("consumer %s: stopped", w.consumer);
	redisFree(w.rc);
	return 0;
}
