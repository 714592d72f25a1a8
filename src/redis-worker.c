/*
 * redis-worker: reads a Redis stream with a consumer group and runs an
 * smtpd-stdio handler per entry exactly as smtpd-stdio runs it (SPEC 12):
 * the same spawn, environment, timeout and reply rules, from the same
 * code (handler.c, env.c, reply.c).  An entry is acknowledged only where
 * smtpd-stdio would have answered 2xx; a 5xx, or too many deliveries,
 * moves it to STREAM:dead; a 4xx leaves it pending for a later claim.
 *
 * usage: redis-worker [URL] STREAM GROUP CONSUMER -- HANDLER [ARG ...]
 *
 * C against hiredis rather than sh around redis-cli: the "message" field
 * holds any bytes, which hiredis hands over with their length.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"
#include "redis.h"

#define DEFAULT_CLAIM_IDLE	300	/* seconds, SPEC 12 */
#define DEFAULT_HANDLER_TIMEOUT	300	/* seconds */
#define DEFAULT_MAX_DELIVERIES	20
#define BLOCK_MS_MAX		1000	/* XREADGROUP BLOCK: SIGTERM latency */
#define FIELD_MAX		64	/* an SMTP_* variable name */
#define ID_MAX			64	/* a stream entry id */

struct worker {
	struct redis	 r;
	const char	*stream;
	const char	*group;
	const char	*consumer;
	char		*dead;		/* STREAM:dead */
	char		**handler;
	struct env	 env;
	int		 own_relay;	/* SMTP_RELAY set for the worker */
	long long	 claim_idle;	/* seconds */
	long long	 handler_timeout;
	long long	 max_deliveries;
	long long	 timeout;	/* REDIS_TIMEOUT */
	long long	 delete_acked;
	char		 block[24];	/* XREADGROUP BLOCK, ms */
	char		 cursor[ID_MAX];	/* XAUTOCLAIM's next start */
};

/* One entry of the stream, pointing into a reply. */
struct entry {
	const char		*id;
	const redisReply	*fields;	/* NULL: deleted while pending */
	const redisReply	*message;
	const char		*mail_from;
	const char		*rcpt_to;
	int			 nul;	/* a NUL in mail_from or rcpt_to */
	char			 tag[ID_MAX + 8];	/* SMTP_ID for the log */
	long long		 deliveries;
};

extern char **environ;

static volatile sig_atomic_t stopping;

static void	on_signal(int);
static void	settings(struct worker *);
static void	refused(struct worker *, redisReply *, const char *);
static void	expect_ok(struct worker *, redisReply *, const char *,
		    const char *);
static redisReply *command(struct worker *, int, const char **,
		    const size_t *);
static void	group_create(struct worker *);
static int	entry_parse(const redisReply *, struct entry *);
static const redisReply *field(const redisReply *, const char *);
static int	env_name(const redisReply *, char *);
static void	entry_env(struct worker *, const struct entry *);
static int	message_file(const redisReply *);
static char	**split_rcpts(char *, size_t *);
static void	run_handler(struct worker *, const struct entry *,
		    struct handler_result *);
static long long groups(struct worker *);
static void	acknowledge(struct worker *, const struct entry *);
static size_t	dead_argv(const struct worker *, const struct entry *,
		    const char *, const char *, const char **, size_t *);
static void	dead_letter(struct worker *, const struct entry *,
		    const char *);
static long long deliveries(struct worker *, const char *);
static void	entry_reply(struct worker *, const struct entry *,
		    struct buf *);
static void	settle(struct worker *, const struct entry *, const char *);
static void	process(struct worker *, const redisReply *, int);
static int	run_list(struct worker *, const redisReply *, int, char *);
static void	log_lost(struct worker *, const redisReply *);
static int	autoclaim(struct worker *);
static int	read_group(struct worker *, const char *, char *);
static void	scrub_environ(void);
static char	*arguments(struct worker *, int, char *[]);
static void	signals(void);
static void	start(struct worker *, int, char *[]);

/* The noreturn attributes stand by their definitions, for pmccabe(1). */
static void	usage(void) __attribute__((noreturn));
static void	gone(struct worker *) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: redis-worker [URL] STREAM GROUP CONSUMER -- "
	    "HANDLER [ARG ...]\n");
	exit(REDIS_EX_USAGE);
}

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* The REDIS_* settings; 0 or out of range is a usage error, SPEC 12. */
static void
settings(struct worker *w)
{
	if (redis_env_number("REDIS_CLAIM_IDLE", DEFAULT_CLAIM_IDLE, 1,
	    365 * 86400LL, &w->claim_idle) == -1 ||
	    redis_env_number("REDIS_HANDLER_TIMEOUT", DEFAULT_HANDLER_TIMEOUT,
	    1, 86400, &w->handler_timeout) == -1 ||
	    redis_env_number("REDIS_MAX_DELIVERIES", DEFAULT_MAX_DELIVERIES, 1,
	    1000000, &w->max_deliveries) == -1 ||
	    redis_env_number("REDIS_TIMEOUT", REDIS_DEFAULT_TIMEOUT, 1, 3600,
	    &w->timeout) == -1 ||
	    redis_env_number("REDIS_DELETE_ACKED", 0, 0, 1,
	    &w->delete_acked) == -1)
		exit(REDIS_EX_USAGE);
	/* XAUTOCLAIM would hand a slow handler's entry to a second worker. */
	if (w->handler_timeout + HANDLER_KILL_GRACE >= w->claim_idle)
		log_warn("REDIS_HANDLER_TIMEOUT=%lld (+%d s to SIGKILL) is not "
		    "below REDIS_CLAIM_IDLE=%lld: an entry whose handler runs "
		    "that long may run twice", w->handler_timeout,
		    HANDLER_KILL_GRACE, w->claim_idle);
	/* A blocked read ends well before a reply is overdue. */
	(void)snprintf(w->block, sizeof(w->block), "%lld",
	    w->timeout * 1000 / 2 < BLOCK_MS_MAX ? w->timeout * 1000 / 2 :
	    BLOCK_MS_MAX);
}

/* Redis is gone or refused us: exit with the status that says which. */
static void
gone(struct worker *w)
{
	log_warn("redis %s: %s", w->r.where, w->r.err);
	if (strstr(w->r.err, "NOGROUP") != NULL)
		log_warn("group %s of %s is gone (the stream deleted or "
		    "evicted, or Redis restarted without its data): the "
		    "entries it had not acknowledged are lost", w->group,
		    w->stream);
	redis_close(&w->r);
	exit(w->r.status);
}

/* Redis refused what (an error reply, or an odd one): exit as gone(). */
static void
refused(struct worker *w, redisReply *rep, const char *what)
{
	w->r.status = rep->type == REDIS_REPLY_ERROR ?
	    redis_error_status(rep) : REDIS_EX_TEMPFAIL;
	(void)snprintf(w->r.err, sizeof(w->r.err), "%s: %.200s", what,
	    rep->type == REDIS_REPLY_ERROR ? rep->str : "odd reply");
	freeReplyObject(rep);
	gone(w);
}

/* The reply to verb on id: anything but an error is fine; it is freed. */
static void
expect_ok(struct worker *w, redisReply *rep, const char *verb,
    const char *id)
{
	char	 what[ID_MAX + 16];

	if (rep->type == REDIS_REPLY_ERROR) {
		(void)snprintf(what, sizeof(what), "%s %s", verb, id);
		refused(w, rep, what);
	}
	freeReplyObject(rep);
}

/*
 * One command.  A connection that Redis closed (its idle "timeout" past
 * while a handler ran, a restart) is opened again and the command sent
 * once more: every command of ours may run twice (a second dead letter
 * at worst), and exiting instead would redo a delivered entry.  A
 * timeout, or a second failure, ends the worker (75).
 */
static redisReply *
command(struct worker *w, int argc, const char **argv, const size_t *lens)
{
	redisReply	*rep;

	if ((rep = redis_command(&w->r, argc, argv, lens)) != NULL)
		return rep;
	if (!redis_closed(&w->r))
		gone(w);
	log_info("redis %s: %s: connecting again", w->r.where, w->r.err);
	if (redis_reconnect(&w->r) == -1 ||
	    (rep = redis_command(&w->r, argc, argv, lens)) == NULL)
		gone(w);
	return rep;
}

/* The group reads the stream from its start; an existing one is fine. */
static void
group_create(struct worker *w)
{
	const char	*argv[] = { "XGROUP", "CREATE", w->stream, w->group,
	    "0", "MKSTREAM" };
	redisReply	*rep;

	rep = command(w, 6, argv, NULL);
	if (rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "BUSYGROUP", 9) != 0)
		refused(w, rep, "XGROUP CREATE");
	freeReplyObject(rep);
}

/* The value of field name, or NULL. */
static const redisReply *
field(const redisReply *fields, const char *name)
{
	size_t	 i;

	for (i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1];
	return NULL;
}

/* [id, [field, value, ...]] (fields nil once deleted); 0, or -1. */
static int
entry_parse(const redisReply *e, struct entry *ent)
{
	const redisReply	*v;
	char			 esc[ID_MAX * 4];

	memset(ent, 0, sizeof(*ent));
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= ID_MAX)
		return -1;
	ent->id = e->element[0]->str;
	ent->deliveries = 1;
	if (e->element[1]->type != REDIS_REPLY_ARRAY)
		return 0;
	ent->fields = e->element[1];
	ent->message = field(ent->fields, "message");
	ent->mail_from = (v = field(ent->fields, "mail_from")) != NULL ?
	    v->str : "";
	ent->nul = v != NULL && memchr(v->str, '\0', v->len) != NULL;
	ent->rcpt_to = (v = field(ent->fields, "rcpt_to")) != NULL ?
	    v->str : "";
	ent->nul |= v != NULL && memchr(v->str, '\0', v->len) != NULL;
	/* Redis content is not ours: escaped before it is logged. */
	v = field(ent->fields, "id");
	(void)log_escape(esc, sizeof(esc), v != NULL ? v->str : ent->id,
	    v != NULL ? (v->len < ID_MAX ? v->len : ID_MAX) : strlen(ent->id));
	(void)strlcpy(ent->tag, esc, sizeof(ent->tag));
	return 0;
}

/*
 * The handler's environment: ours without stale SMTP_* (the worker's
 * own SMTP_RELAY stays: where to relay is this host's setting), plus
 * SMTP_NAME per field but "message".  A field that cannot be a variable
 * (odd name, a NUL in the value) is left out, with a log line.
 */
static void
entry_env(struct worker *w, const struct entry *ent)
{
	const redisReply	*k, *v;
	char			 name[5 + FIELD_MAX + 1];
	size_t			 i;

	env_clear(&w->env);
	for (i = 0; i + 1 < ent->fields->elements; i += 2) {
		k = ent->fields->element[i];
		v = ent->fields->element[i + 1];
		if (k->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING ||
		    strcmp(k->str, "message") == 0 ||
		    (w->own_relay && strcmp(k->str, "relay") == 0))
			continue;
		if (env_name(k, name) == -1)
			log_warn("%s: a field is left out of the environment",
			    ent->tag);
		else if (env_add(&w->env, name, v->str, v->len) == -1)
			log_warn("%s: field %s holds a NUL: left out of the "
			    "environment", ent->tag, k->str);
	}
}

/*
 * SMTP_NAME for field name k (lower case, digits, "_", at most
 * FIELD_MAX) into name; -1 for a name that cannot be one.
 */
static int
env_name(const redisReply *k, char *name)
{
	size_t	 j;

	if (k->len == 0 || k->len > FIELD_MAX || strspn(k->str,
	    "abcdefghijklmnopqrstuvwxyz0123456789_") != k->len)
		return -1;
	memcpy(name, "SMTP_", 5);
	for (j = 0; j <= k->len; j++)
		name[5 + j] = (char)toupper((unsigned char)k->str[j]);
	return 0;
}

/* The message in an unlinked file of its own, at offset 0; -1 on error. */
static int
message_file(const redisReply *msg)
{
	struct spool	 sp;

	memset(&sp, 0, sizeof(sp));
	sp.fd = -1;
	if (spool_begin(&sp, NULL) == -1 ||
	    spool_write(&sp, msg->str, msg->len) == -1 ||
	    spool_rewind(&sp) == -1) {
		spool_close(&sp);
		return -1;
	}
	return sp.fd;
}

/* SMTP_RCPT_TO is LF-joined: one {recipients} argument each, in rcpts. */
static char **
split_rcpts(char *rcpts, size_t *n)
{
	char	*p, **rcpt = NULL;

	*n = 0;
	for (p = rcpts; *rcpts != '\0' && p != NULL; (*n)++) {
		if ((rcpt = reallocarray(rcpt, *n + 1, sizeof(*rcpt))) == NULL)
			fatalx("out of memory");
		rcpt[*n] = strsep(&p, "\n");
	}
	return rcpt;
}

/* The handler on one entry, as smtpd-stdio runs it (SPEC 5.1). */
static void
run_handler(struct worker *w, const struct entry *ent,
    struct handler_result *res)
{
	struct handler_cmd	 cmd;
	char			*rcpts, **rcpt, **argv;
	size_t			 n;

	if ((rcpts = strdup(ent->rcpt_to)) == NULL)
		fatalx("out of memory");
	rcpt = split_rcpts(rcpts, &n);
	argv = argv_expand(w->handler, ent->mail_from, rcpt, n);
	memset(&cmd, 0, sizeof(cmd));
	entry_env(w, ent);
	cmd.argv = argv;
	cmd.envp = env_vector(&w->env);
	cmd.id = ent->tag;
	cmd.what = "handler";
	cmd.timeout = w->handler_timeout;
	if ((cmd.in = message_file(ent->message)) == -1) {
		memset(res, 0, sizeof(*res));
		res->end = HE_EXEC_FAILED;
		log_warn("%s: cannot spool the message: %s", ent->tag,
		    strerror(errno));
	} else {
		handler_exec(&cmd, res);
		(void)close(cmd.in);
	}
	argv_free(argv);
	free(rcpt);
	free(rcpts);
}

/* The number of consumer groups on the stream (XINFO GROUPS), or -1. */
static long long
groups(struct worker *w)
{
	const char	*argv[] = { "XINFO", "GROUPS", w->stream };
	redisReply	*rep;
	long long	 n;

	rep = command(w, 3, argv, NULL);
	n = rep->type == REDIS_REPLY_ARRAY ? (long long)rep->elements : -1;
	if (rep->type == REDIS_REPLY_ERROR)
		log_warn("XINFO GROUPS %s: %.200s", w->stream, rep->str);
	freeReplyObject(rep);
	return n;
}

/*
 * XACK, and XDEL with REDIS_DELETE_ACKED=1 (never trimming, SPEC 12),
 * but only while our group is the stream's only one: another group may
 * not have read the entry yet, and XDEL would take it from that group
 * without a trace.
 */
static void
acknowledge(struct worker *w, const struct entry *ent)
{
	const char	*ack[] = { "XACK", w->stream, w->group, ent->id };
	const char	*del[] = { "XDEL", w->stream, ent->id };
	long long	 n;

	expect_ok(w, command(w, 4, ack, NULL), "XACK", ent->id);
	if (!w->delete_acked)
		return;
	if ((n = groups(w)) != 1) {
		log_warn("%s: entry %s not deleted: %s has %lld consumer "
		    "groups, REDIS_DELETE_ACKED=1 is for one", ent->tag,
		    ent->id, w->stream, n);
		return;
	}
	expect_ok(w, command(w, 3, del, NULL), "XDEL", ent->id);
}

/*
 * Moves an entry to STREAM:dead, its fields plus reply and deliveries,
 * then acknowledges it.  The XADD comes first: a crash between the two
 * leaves a second dead letter on the next try, never none.
 */
static void
dead_letter(struct worker *w, const struct entry *ent, const char *reply)
{
	const char	**argv;
	size_t		 *lens, n;
	char		  count[24];
	redisReply	 *rep;

	n = ent->fields->elements + 7;
	if ((argv = calloc(n, sizeof(*argv))) == NULL ||
	    (lens = calloc(n, sizeof(*lens))) == NULL)
		fatalx("out of memory");
	(void)snprintf(count, sizeof(count), "%lld", ent->deliveries);
	n = dead_argv(w, ent, reply, count, argv, lens);
	rep = command(w, (int)n, argv, lens);
	free(argv);
	free(lens);
	if (rep->type != REDIS_REPLY_STRING) {
		log_warn("%s: entry %s: XADD %s: %.200s; left pending",
		    ent->tag, ent->id, w->dead, rep->type == REDIS_REPLY_ERROR ?
		    rep->str : "odd reply");
		freeReplyObject(rep);
		return;
	}
	freeReplyObject(rep);
	acknowledge(w, ent);
	log_warn("%s: entry %s: moved to %s after %lld deliveries: %s",
	    ent->tag, ent->id, w->dead, ent->deliveries, reply);
}

/*
 * XADD STREAM:dead * with the entry's fields, reply and deliveries
 * (count) into argv and lens, room for the fields and 7 more; the
 * number of arguments.
 */
static size_t
dead_argv(const struct worker *w, const struct entry *ent,
    const char *reply, const char *count, const char **argv, size_t *lens)
{
	size_t	 n = 0, i;

	argv[n++] = "XADD";
	argv[n++] = w->dead;
	argv[n++] = "*";
	for (i = 0; i < ent->fields->elements; i++) {
		lens[n] = ent->fields->element[i]->len;
		argv[n++] = ent->fields->element[i]->str;
	}
	argv[n++] = "reply";
	argv[n++] = reply;
	argv[n++] = "deliveries";
	argv[n++] = count;
	for (i = 0; i < n; i++)
		if (lens[i] == 0)
			lens[i] = strlen(argv[i]);
	return n;
}

/* How many times the entry was delivered, this time included (XPENDING). */
static long long
deliveries(struct worker *w, const char *id)
{
	const char	*argv[] = { "XPENDING", w->stream, w->group, id, id,
	    "1" };
	redisReply	*rep;
	long long	 n = 1;

	rep = command(w, 6, argv, NULL);
	/* [[id, consumer, idle, deliveries]] */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 4 &&
	    rep->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
		n = rep->element[0]->element[3]->integer;
	freeReplyObject(rep);
	return n;
}

/*
 * One entry, SPEC 12: deleted (logged as lost, acknowledged), delivered
 * too often or answered 5xx (dead letter), 2xx (acknowledged), or 4xx
 * (left pending).  fresh: read as new, so this is its first delivery.
 */
static void
process(struct worker *w, const redisReply *e, int fresh)
{
	struct entry	 ent;
	struct buf	 reply = { NULL, 0, 0 };

	if (entry_parse(e, &ent) == -1)
		return;
	if (ent.fields == NULL) {
		log_warn("entry %s of %s was deleted while pending: lost",
		    ent.id, w->stream);
		acknowledge(w, &ent);
		return;
	}
	if (!fresh)
		ent.deliveries = deliveries(w, ent.id);
	if (ent.deliveries > w->max_deliveries) {
		dead_letter(w, &ent, "554 5.4.0 Error: too many delivery "
		    "attempts");
		return;
	}
	entry_reply(w, &ent, &reply);
	buf_append(&reply, "", 1);
	reply.data[strcspn(reply.data, "\r\n")] = '\0';	/* first line */
	settle(w, &ent, reply.data);
	buf_free(&reply);
}

/* The reply smtpd-stdio would give the entry: its handler's, mostly. */
static void
entry_reply(struct worker *w, const struct entry *ent, struct buf *reply)
{
	struct handler_result	 res;

	if (ent->message == NULL)
		buf_appendf(reply, "554 5.6.0 Error: no message field\r\n");
	else if (ent->nul)	/* as C strings: recipients cut off */
		buf_appendf(reply, "554 5.6.0 Error: malformed entry: a NUL "
		    "in mail_from or rcpt_to\r\n");
	else {
		run_handler(w, ent, &res);
		(void)reply_from_handler(&res, ent->tag, reply);
		handler_result_free(&res);
	}
}

/* 2xx acknowledges the entry, 5xx makes it a dead letter, 4xx waits. */
static void
settle(struct worker *w, const struct entry *ent, const char *reply)
{
	int	 code = atoi(reply);

	if (code >= 200 && code < 300) {
		acknowledge(w, ent);
		log_info("%s: entry %s: %s", ent->tag, ent->id, reply);
	} else if (code >= 500)
		dead_letter(w, ent, reply);
	else
		log_warn("%s: entry %s: %s; left pending", ent->tag, ent->id,
		    reply);
}

/* Runs a list of entries; the last id goes to last (if not NULL). */
static int
run_list(struct worker *w, const redisReply *list, int fresh, char *last)
{
	size_t	 i;

	if (list == NULL || list->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < list->elements; i++) {
		process(w, list->element[i], fresh);
		if (last != NULL && list->element[i]->type ==
		    REDIS_REPLY_ARRAY && list->element[i]->elements > 0 &&
		    list->element[i]->element[0]->len < ID_MAX)
			(void)strlcpy(last, list->element[i]->element[0]->str,
			    ID_MAX);
	}
	return (int)list->elements;
}

/* XAUTOCLAIM's third element: ids deleted while pending (Redis >= 7). */
static void
log_lost(struct worker *w, const redisReply *ids)
{
	size_t	 i;

	if (ids == NULL || ids->type != REDIS_REPLY_ARRAY)
		return;
	for (i = 0; i < ids->elements; i++)
		if (ids->element[i]->type == REDIS_REPLY_STRING)
			log_warn("entry %s of %s was deleted while pending: "
			    "lost", ids->element[i]->str, w->stream);
}

/* Claims and runs one entry pending longer than REDIS_CLAIM_IDLE. */
static int
autoclaim(struct worker *w)
{
	char		 idle[32];
	const char	*argv[] = { "XAUTOCLAIM", w->stream, w->group,
	    w->consumer, idle, w->cursor, "COUNT", "1" };
	redisReply	*rep;
	int		 n;

	(void)snprintf(idle, sizeof(idle), "%lld", w->claim_idle * 1000);
	rep = command(w, 8, argv, NULL);
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[0]->len >= sizeof(w->cursor))
		refused(w, rep, "XAUTOCLAIM");
	(void)strlcpy(w->cursor, rep->element[0]->str, sizeof(w->cursor));
	log_lost(w, rep->elements > 2 ? rep->element[2] : NULL);
	n = run_list(w, rep->element[1], 0, NULL);
	freeReplyObject(rep);
	return n;
}

/*
 * XREADGROUP of one entry after id (">" for new ones, blocking for a
 * while); runs it.  Returns the number of entries read.
 */
static int
read_group(struct worker *w, const char *id, char *last)
{
	const char	*argv[] = { "XREADGROUP", "GROUP", w->group,
	    w->consumer, "COUNT", "1", "BLOCK", w->block, "STREAMS",
	    w->stream, id };
	redisReply	*rep, *s;
	int		 n = 0;

	rep = command(w, 11, argv, NULL);
	if (rep->type == REDIS_REPLY_ERROR)
		refused(w, rep, "XREADGROUP");
	/* [[stream, [entry, ...]]], or nil on timeout. */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    (s = rep->element[0])->type == REDIS_REPLY_ARRAY &&
	    s->elements == 2)
		n = run_list(w, s->element[1], strcmp(id, ">") == 0, last);
	freeReplyObject(rep);
	return n;
}

/*
 * Stars over the password of every redis:// URL in our environment (the
 * unit keeps its URL in REDIS_URL), in place: the handler inherits our
 * environment, and /proc/PID/environ shows these bytes.
 */
static void
scrub_environ(void)
{
	char	*eq;
	size_t	 i;

	for (i = 0; environ[i] != NULL; i++)
		if ((eq = strchr(environ[i], '=')) != NULL)
			redis_scrub_url(eq + 1);
}

/*
 * [URL] STREAM GROUP CONSUMER -- HANDLER [ARG ...] into w; returns our
 * copy of the URL (NULL: the default), its password gone from argv.
 */
static char *
arguments(struct worker *w, int argc, char *argv[])
{
	char	*url = NULL;
	int	 i, dash = -1;

	for (i = 1; i < argc && dash == -1; i++)
		if (strcmp(argv[i], "--") == 0)
			dash = i;
	if ((dash != 4 && dash != 5) || dash + 1 >= argc)
		usage();
	w->stream = argv[dash - 3];
	w->group = argv[dash - 2];
	w->consumer = argv[dash - 1];
	w->handler = argv + dash + 1;
	if (*w->stream == '\0' || *w->group == '\0' || *w->consumer == '\0')
		usage();
	if (dash == 5) {
		if ((url = strdup(argv[1])) == NULL)
			fatalx("out of memory");
		redis_scrub_url(argv[1]);
	}
	scrub_environ();
	if (asprintf(&w->dead, "%s:dead", w->stream) == -1)
		fatalx("out of memory");
	return url;
}

/* SIGTERM and SIGINT finish the current entry; SIGPIPE is not fatal. */
static void
signals(void)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
}

/*
 * Arguments, settings, signals, then Redis: connected, the group made,
 * and (with REDIS_DELETE_ACKED=1) ours the stream's only group.
 */
static void
start(struct worker *w, int argc, char *argv[])
{
	char	*url;

	url = arguments(w, argc, argv);
	settings(w);
	(void)strlcpy(w->cursor, "0-0", sizeof(w->cursor));
	signals();
	/* The worker's own SMTP_RELAY: where this host relays to. */
	w->own_relay = getenv("SMTP_RELAY") != NULL;
	env_init(&w->env, "SMTP_RELAY");
	if (redis_open(&w->r, url != NULL ? url : REDIS_DEFAULT_URL,
	    w->timeout) == -1)
		gone(w);
	if (url != NULL)
		explicit_bzero(url, strlen(url));
	free(url);
	group_create(w);
	if (w->delete_acked && groups(w) != 1) {
		w->r.status = REDIS_EX_CONFIG;
		(void)snprintf(w->r.err, sizeof(w->r.err), "REDIS_DELETE_ACKED=1 "
		    "is for a stream read by one consumer group, and %s has "
		    "others (or XINFO GROUPS failed): XDEL would take their "
		    "entries", w->stream);
		gone(w);
	}
}

int
main(int argc, char *argv[])
{
	struct worker		 w;
	char			 last[ID_MAX];

	memset(&w, 0, sizeof(w));
	log_ident("redis-worker");
	log_init(LOGTO_STDERR, 0);
	start(&w, argc, argv);
	log_info("consumer %s of group %s on %s: ready", w.consumer, w.group,
	    w.stream);

	/* First what this consumer had read and not acknowledged before. */
	(void)strlcpy(last, "0", sizeof(last));
	while (!stopping && read_group(&w, last, last) > 0)
		;
	while (!stopping)
		if (autoclaim(&w) == 0)
			(void)read_group(&w, ">", NULL);
	log_info("consumer %s: stopped", w.consumer);
	redis_close(&w.r);
	env_free(&w.env);
	free(w.dead);
	return 0;
}
