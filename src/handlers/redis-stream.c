/*
 * redis-stream [URL] STREAM: the smtpd-stdio handler that appends the
 * message on stdin and its envelope to the Redis stream STREAM (XADD),
 * SPEC 12.  One field per SMTP_* variable that is set, named without the
 * prefix in lower case, plus "message", the bytes of stdin.
 *
 * C on hiredis (src/redis.c, shared with redis-worker) rather than sh
 * around redis-cli: one process instead of awk, sort and redis-cli per
 * message, and the timeouts, redirections and secrets handled in one
 * place.
 *
 * Exit status: 0 only when Redis answered with the entry id and, with
 * REDIS_WAIT=N, WAIT confirmed N replicas; 75 (451 4.3.0) when Redis is
 * down, slow, or did not confirm; 78 (451 4.3.5) on bad usage or
 * settings, or when Redis refuses them (AUTH, permissions, a key that is
 * not a stream).
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../smtpd-stdio.h"
#include "../redis.h"

#define WAIT_MAX	1000	/* REDIS_WAIT: replicas */

extern char **environ;

struct field {
	char		 name[64];
	const char	*value;
};

static void	 usage(void) __attribute__((noreturn));
static void	 failed(const char *, const char *, size_t, int)
		    __attribute__((noreturn));
static void	 reply_failed(const char *, redisReply *, const char *, int)
		    __attribute__((noreturn));
static char	*read_message(size_t *, int *);
static size_t	 collect_fields(struct field **);
static int	 by_name(const void *, const void *);
static void	 xadd(struct redis *, const char *, const struct field *,
		    size_t, const char *, size_t);
static void	 wait_replicas(struct redis *, long long, long long);
static const char *arguments(int, char *[], char **);

static void
usage(void)
{
	fprintf(stderr, "usage: redis-stream [URL] STREAM\n");
	exit(REDIS_EX_CONFIG);
}

/* One line on stderr (smtpd-stdio logs it with the id), then exit. */
static void
failed(const char *what, const char *text, size_t len, int status)
{
	char	 esc[4 * 256 + 1];

	(void)log_escape(esc, sizeof(esc), text, len < 256 ? len : 256);
	fprintf(stderr, "redis-stream: %s: %s\n", what, esc);
	exit(status);
}

/*
 * failed() for a reply of Redis's: the reply is freed first, so an exit
 * leaves nothing allocated behind (LeakSanitizer, in the sanitizer run).
 */
static void
reply_failed(const char *what, redisReply *rep, const char *text, int status)
{
	char	 copy[256 + 1];
	size_t	 len;

	if (rep->type == REDIS_REPLY_ERROR) {
		status = redis_error_status(rep);
		text = rep->str;
	}
	len = strlen(text) < sizeof(copy) - 1 ? strlen(text) : sizeof(copy) - 1;
	memcpy(copy, text, len);
	copy[len] = '\0';
	freeReplyObject(rep);
	failed(what, copy, len, status);
}

/*
 * The message: smtpd-stdio gives a regular file, mapped as it is
 * (*mapped set); a pipe (a handler run by hand) is read into memory.
 */
static char *
read_message(size_t *len, int *mapped)
{
	struct buf	 b = { NULL, 0, 0 };
	struct stat	 st;
	char		 chunk[65536];
	void		*p;
	ssize_t		 n;

	if (fstat(0, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, 0,
	    0)) != MAP_FAILED) {
		*len = (size_t)st.st_size;
		*mapped = 1;
		return p;
	}
	*mapped = 0;
	while ((n = read(0, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			failed("reading the message", strerror(errno),
			    strlen(strerror(errno)), REDIS_EX_TEMPFAIL);
		buf_append(&b, chunk, (size_t)n);
	}
	buf_append(&b, "", 1);	/* never NULL, even when empty */
	*len = b.len - 1;
	return b.data;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const struct field *)a)->name,
	    ((const struct field *)b)->name);
}

/*
 * SMTP_NAME=value for NAME of [A-Z0-9_], as field "name", sorted; not
 * SMTP_MESSAGE, which would clash with the message.
 */
static size_t
collect_fields(struct field **out)
{
	struct field	*f;
	const char	*e, *eq;
	size_t		 n = 0, i, k, len;

	for (i = 0; environ[i] != NULL; i++)
		;
	if ((f = calloc(i + 1, sizeof(*f))) == NULL)
		fatalx("out of memory");
	for (i = 0; (e = environ[i]) != NULL; i++) {
		if (strncmp(e, "SMTP_", 5) != 0 || (eq = strchr(e, '=')) ==
		    NULL || (len = (size_t)(eq - e - 5)) == 0 ||
		    len >= sizeof(f->name) || strspn(e + 5,
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != len ||
		    strncmp(e, "SMTP_MESSAGE=", 13) == 0)
			continue;
		for (k = 0; k < len; k++)
			f[n].name[k] = (char)(e[5 + k] >= 'A' && e[5 + k] <= 'Z' ?
			    e[5 + k] - 'A' + 'a' : e[5 + k]);
		f[n++].value = eq + 1;
	}
	qsort(f, n, sizeof(*f), by_name);
	*out = f;
	return n;
}

/* XADD STREAM * fields... message BYTES: exit unless it gave an id. */
static void
xadd(struct redis *r, const char *stream, const struct field *f, size_t n,
    const char *msg, size_t msglen)
{
	const char	**argv;
	size_t		 *lens, argc = 0, i;
	redisReply	 *rep;

	if (n > (SIZE_MAX - 5) / 2 ||
	    (argv = calloc(2 * n + 5, sizeof(*argv))) == NULL ||
	    (lens = calloc(2 * n + 5, sizeof(*lens))) == NULL)
		fatalx("out of memory");
	argv[argc++] = "XADD";
	argv[argc++] = stream;
	argv[argc++] = "*";
	for (i = 0; i < n; i++) {
		argv[argc++] = f[i].name;
		argv[argc++] = f[i].value;
	}
	argv[argc++] = "message";
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	argv[argc] = msg;
	lens[argc++] = msglen;
	rep = redis_command(r, (int)argc, argv, lens);
	free(argv);
	free(lens);
	if (rep == NULL)
		failed(r->where, r->err, strlen(r->err), r->status);
	if (rep->type != REDIS_REPLY_STRING)
		reply_failed("XADD", rep, "no entry id", REDIS_EX_TEMPFAIL);
	freeReplyObject(rep);
}

/* REDIS_WAIT=N: N replicas have the entry within REDIS_TIMEOUT, or 75. */
static void
wait_replicas(struct redis *r, long long want, long long timeout)
{
	char		 nrep[24], ms[24];
	const char	*argv[] = { "WAIT", nrep, ms };
	redisReply	*rep;

	(void)snprintf(nrep, sizeof(nrep), "%lld", want);
	/* Leave a second of REDIS_TIMEOUT for the reply itself. */
	(void)snprintf(ms, sizeof(ms), "%lld", timeout > 1 ?
	    (timeout - 1) * 1000 : 500);
	/* On the connection of the XADD: after an ASK, another node's. */
	if ((rep = redis_command_there(r, 3, argv, NULL)) == NULL)
		failed(r->where, r->err, strlen(r->err), r->status);
	if (rep->type == REDIS_REPLY_ERROR)
		reply_failed("WAIT", rep, "", REDIS_EX_TEMPFAIL);
	if (rep->type != REDIS_REPLY_INTEGER || rep->integer < want) {
		(void)snprintf(ms, sizeof(ms), "%lld", rep->type ==
		    REDIS_REPLY_INTEGER ? rep->integer : -1LL);
		reply_failed("WAIT: replicas that confirmed", rep, ms,
		    REDIS_EX_TEMPFAIL);
	}
	freeReplyObject(rep);
}

/*
 * [URL] STREAM: the stream, and into *url our copy of the URL; the
 * password leaves argv at once.
 */
static const char *
arguments(int argc, char *argv[], char **url)
{
	const char	*stream;

	if (argc != 2 && argc != 3)
		usage();
	if ((*url = strdup(argc == 3 ? argv[1] : REDIS_DEFAULT_URL)) == NULL)
		fatalx("out of memory");
	if (argc == 3)
		redis_scrub_url(argv[1]);
	stream = argv[argc - 1];
	if (*stream == '\0')
		usage();
	return stream;
}

int
main(int argc, char *argv[])
{
	struct redis	 r;
	struct field	*fields;
	const char	*stream;
	char		*url, *msg;
	int		 mapped;
	long long	 timeout, replicas;
	size_t		 nfields, msglen;

	stream = arguments(argc, argv, &url);
	if (redis_env_number("REDIS_TIMEOUT", REDIS_DEFAULT_TIMEOUT, 1, 3600,
	    &timeout) == -1 ||
	    redis_env_number("REDIS_WAIT", 0, 0, WAIT_MAX, &replicas) == -1)
		exit(REDIS_EX_CONFIG);
	log_ident("redis-stream");
	/*
	 * Redis may close on us mid-XADD (a value past proto-max-bulk-len):
	 * an EPIPE we report, not a death by signal that says nothing.
	 */
	(void)signal(SIGPIPE, SIG_IGN);
	msg = read_message(&msglen, &mapped);
	nfields = collect_fields(&fields);
	if (redis_open(&r, url, timeout) == -1)
		failed(r.where[0] != '\0' ? r.where : "redis", r.err,
		    strlen(r.err), r.status);
	explicit_bzero(url, strlen(url));
	free(url);
	xadd(&r, stream, fields, nfields, msg, msglen);
	if (replicas > 0)
		wait_replicas(&r, replicas, timeout);
	redis_close(&r);
	if (mapped)
		(void)munmap(msg, msglen);
	else
		free(msg);
	free(fields);
	return 0;
}
