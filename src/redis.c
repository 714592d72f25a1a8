/*
 * The Redis client of redis-stream and redis-worker (SPEC 12), on
 * hiredis: redis://[user:password@]host[:port][/db] or a UNIX socket
 * path, the password from REDIS_AUTH_FILE or the URL and never in a log
 * line, REDIS_TIMEOUT on the connect and on every reply, and Redis
 * Cluster's MOVED and ASK redirections followed a bounded number of times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"
#include "redis.h"

static int	parse_userinfo(struct redis *, const char *, const char *);
static int	parse_hostport(struct redis *, const char *, const char *);
static int	read_auth_file(struct redis *);
static redisContext *connect_to(struct redis *, const char *, int);
static int	handshake(struct redis *, redisContext *);
static int	handshake_status(const redisReply *);
static redisReply *on_node(struct redis *, redisContext *, int,
		    const char **, const size_t *, int);

static int	fail(struct redis *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Records why we failed, for the caller's log line; returns -1. */
static int
fail(struct redis *r, int status, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->status = status;
	return -1;
}

/* user[:password] between "redis://" and "@". */
static int
parse_userinfo(struct redis *r, const char *p, const char *at)
{
	const char	*colon = memchr(p, ':', (size_t)(at - p));
	const char	*uend = colon != NULL ? colon : at;

	if ((size_t)(uend - p) >= sizeof(r->user))
		return fail(r, REDIS_EX_CONFIG, "user name too long");
	memcpy(r->user, p, (size_t)(uend - p));
	r->user[uend - p] = '\0';
	if (colon == NULL)
		return 0;
	if ((size_t)(at - colon - 1) >= sizeof(r->pass))
		return fail(r, REDIS_EX_CONFIG, "password too long");
	memcpy(r->pass, colon + 1, (size_t)(at - colon - 1));
	r->pass[at - colon - 1] = '\0';
	return 0;
}

/* host[:port] or [v6]:port, up to end. */
static int
parse_hostport(struct redis *r, const char *p, const char *end)
{
	const char	*hend, *e;
	char		 port[8];
	size_t		 n;

	if (*p == '[') {
		if ((hend = memchr(p, ']', (size_t)(end - p))) == NULL)
			return fail(r, REDIS_EX_CONFIG, "bad IPv6 address");
		p++;
		e = hend + 1;
	} else {
		hend = memchr(p, ':', (size_t)(end - p));
		e = hend = hend != NULL ? hend : end;
	}
	if (hend == p || (size_t)(hend - p) >= sizeof(r->host))
		return fail(r, REDIS_EX_CONFIG, "bad host");
	memcpy(r->host, p, (size_t)(hend - p));
	r->host[hend - p] = '\0';
	r->port = 6379;
	if (e == end)
		return 0;
	n = (size_t)(end - e - 1);
	if (*e != ':' || n == 0 || n >= sizeof(port))
		return fail(r, REDIS_EX_CONFIG, "bad port");
	memcpy(port, e + 1, n);
	port[n] = '\0';
	r->port = (int)strtonum(port, 1, 65535, &e);
	return e == NULL ? 0 : fail(r, REDIS_EX_CONFIG, "port %s", e);
}

/*
 * Fills r from url (no connection yet).  Returns 0, or -1 with r->err
 * (which never holds the password).
 */
int
redis_parse_url(struct redis *r, const char *url)
{
	const char	*p, *end, *at;

	if (url[0] == '/') {
		if (strlcpy(r->path, url, sizeof(r->path)) >= sizeof(r->path))
			return fail(r, REDIS_EX_CONFIG, "socket path too long");
		(void)strlcpy(r->where, url, sizeof(r->where));
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return fail(r, REDIS_EX_CONFIG,
		    "the URL is neither redis://... nor /path/to/socket");
	p = url + 8;
	/*
	 * The last '@' ends the user information, which may hold '/' and
	 * '@' (no percent-decoding): the database number holds neither.
	 */
	if ((at = strrchr(p, '@')) != NULL) {
		if (parse_userinfo(r, p, at) == -1)
			return -1;
		p = at + 1;
	}
	end = p + strcspn(p, "/");
	if (parse_hostport(r, p, end) == -1)
		return -1;
	if (*end == '/' && end[1] != '\0') {
		if (strlen(end + 1) >= sizeof(r->db) ||
		    strspn(end + 1, "0123456789") != strlen(end + 1))
			return fail(r, REDIS_EX_CONFIG, "bad database number");
		(void)strlcpy(r->db, end + 1, sizeof(r->db));
	}
	(void)snprintf(r->where, sizeof(r->where), "%s:%d", r->host, r->port);
	return 0;
}

/*
 * Overwrites the password of a redis:// URL in place (our argv), so a
 * process listing shows stars from now on.  REDIS_AUTH_FILE keeps it
 * out of argv from the start.
 */
void
redis_scrub_url(char *url)
{
	char	*p, *at, *colon;

	if (strncmp(url, "redis://", 8) != 0)
		return;
	p = url + 8;
	/* As redis_parse_url: the last '@' ends the password. */
	if ((at = strrchr(p, '@')) == NULL ||
	    (colon = memchr(p, ':', (size_t)(at - p))) == NULL)
		return;
	memset(colon + 1, '*', (size_t)(at - colon - 1));
}

/* "MOVED slot host:port" or "ASK slot host:port": 0, else -1. */
int
redis_parse_redirect(const char *s, struct redis_redirect *rd)
{
	const char	*p, *colon, *e;
	size_t		 n;

	if (strncmp(s, "MOVED ", 6) == 0)
		rd->ask = 0;
	else if (strncmp(s, "ASK ", 4) == 0)
		rd->ask = 1;
	else
		return -1;
	p = s + (rd->ask ? 4 : 6);
	if ((n = strspn(p, "0123456789")) == 0 || p[n] != ' ')
		return -1;
	p += n + 1;
	/* The port follows the last colon: the host may be IPv6. */
	if ((colon = strrchr(p, ':')) == NULL || colon == p ||
	    (n = (size_t)(colon - p)) >= sizeof(rd->host))
		return -1;
	memcpy(rd->host, p, n);
	rd->host[n] = '\0';
	rd->port = (int)strtonum(colon + 1, 1, 65535, &e);
	return e == NULL ? 0 : -1;
}

/*
 * NAME from the environment, or def when unset or empty.  A value that
 * is not a number from min to max is an error: -1, message on stderr.
 */
int
redis_env_number(const char *name, long long def, long long min,
    long long max, long long *out)
{
	const char	*s, *e;

	*out = def;
	if ((s = getenv(name)) == NULL || *s == '\0')
		return 0;
	*out = strtonum(s, min, max, &e);
	if (e == NULL)
		return 0;
	fprintf(stderr, "%s=%s: %s (from %lld to %lld)\n", name, s, e, min,
	    max);
	return -1;
}

/* REDIS_AUTH_FILE's first line, when set, is the password. */
static int
read_auth_file(struct redis *r)
{
	const char	*path = getenv("REDIS_AUTH_FILE");
	FILE		*fp;

	if (path == NULL || *path == '\0')
		return 0;
	if ((fp = fopen(path, "r")) == NULL)
		return fail(r, REDIS_EX_CONFIG, "REDIS_AUTH_FILE %s: %s", path,
		    strerror(errno));
	if (fgets(r->pass, sizeof(r->pass), fp) == NULL)
		r->pass[0] = '\0';
	r->pass[strcspn(r->pass, "\r\n")] = '\0';
	(void)fclose(fp);
	return 0;
}

/* A connection to host:port (host "" : our socket) with our timeouts. */
static redisContext *
connect_to(struct redis *r, const char *host, int port)
{
	redisContext	*c;

	if (*host == '\0')
		c = redisConnectUnixWithTimeout(r->path, r->timeout);
	else
		c = redisConnectWithTimeout(host, port, r->timeout);
	if (c == NULL || c->err) {
		(void)fail(r, REDIS_EX_TEMPFAIL, "cannot connect to %s: %s",
		    *host == '\0' ? r->path : host,
		    c != NULL ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, r->timeout) != REDIS_OK) {
		(void)fail(r, REDIS_EX_TEMPFAIL, "cannot set the timeout");
		redisFree(c);
		return NULL;
	}
	if (handshake(r, c) == -1) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/*
 * The exit status for an error reply to AUTH or SELECT: a refusal is a
 * setting to fix (78), but a Redis that is full of clients, loading or
 * busy answers the first command of a connection with an error that
 * passes (75): 78 there would stop a systemd-run worker for good.
 */
static int
handshake_status(const redisReply *rep)
{
	static const char *const passing[] = { "LOADING", "BUSY",
	    "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "OOM",
	    "ERR max number of clients" };
	size_t	 i;

	for (i = 0; i < sizeof(passing) / sizeof(passing[0]); i++)
		if (strncmp(rep->str, passing[i], strlen(passing[i])) == 0)
			return REDIS_EX_TEMPFAIL;
	return REDIS_EX_CONFIG;
}

/* AUTH and SELECT on a new connection; a refusal is a setting to fix. */
static int
handshake(struct redis *r, redisContext *c)
{
	const char	*argv[3];
	redisReply	*rep;
	int		 argc = 0, i;

	for (i = 0; i < 2; i++) {
		if (i == 0 && r->pass[0] != '\0') {
			argv[argc++] = "AUTH";
			if (r->user[0] != '\0')
				argv[argc++] = r->user;
			argv[argc++] = r->pass;
		} else if (i == 1 && r->db[0] != '\0' &&
		    strcmp(r->db, "0") != 0) {
			argv[argc++] = "SELECT";
			argv[argc++] = r->db;
		} else
			continue;
		rep = redisCommandArgv(c, argc, argv, NULL);
		if (rep == NULL)
			return fail(r, REDIS_EX_TEMPFAIL, "%s: %s", argv[0],
			    c->errstr);
		if (rep->type == REDIS_REPLY_ERROR) {
			(void)fail(r, handshake_status(rep), "%s %s: %.200s",
			    argv[0], i == 0 ? "refused" : r->db, rep->str);
			freeReplyObject(rep);
			return -1;
		}
		freeReplyObject(rep);
		argc = 0;
	}
	return 0;
}

/*
 * Reads the password and connects to url.  timeout_s bounds the connect
 * and every reply.  Returns 0, or -1 with r->status and r->err.
 */
int
redis_open(struct redis *r, const char *url, long long timeout_s)
{
	memset(r, 0, sizeof(*r));
	r->timeout.tv_sec = (time_t)timeout_s;
	if (redis_parse_url(r, url) == -1 || read_auth_file(r) == -1)
		return -1;
	if ((r->rc = connect_to(r, r->host, r->port)) == NULL)
		return -1;
	return 0;
}

/* One command on c; ASKING first after an ASK redirection. */
static redisReply *
on_node(struct redis *r, redisContext *c, int argc, const char **argv,
    const size_t *lens, int asking)
{
	redisReply	*rep;

	if (asking) {
		if ((rep = redisCommand(c, "ASKING")) == NULL)
			goto lost;
		freeReplyObject(rep);
	}
	if ((rep = redisCommandArgv(c, argc, argv, lens)) != NULL)
		return rep;
lost:
	(void)fail(r, REDIS_EX_TEMPFAIL, "%s: %s", argv[0], c->errstr);
	return NULL;
}

/*
 * One command, following MOVED (the slot lives elsewhere now: talk to
 * that node from here on) and ASK (this once, on that node) at most
 * REDIS_HOPS_MAX times.  Returns the reply, an error reply included, or
 * NULL with r->status and r->err when the connection failed or timed out
 * (the command may have run: at least once).  The connection an ASK led
 * to is kept until the next command, for redis_command_there().
 */
redisReply *
redis_command(struct redis *r, int argc, const char **argv,
    const size_t *lens)
{
	struct redis_redirect	 rd;
	redisContext		*c = r->rc;
	redisReply		*rep;
	int			 hops;

	if (r->ask != NULL)
		redisFree(r->ask);
	r->ask = NULL;
	for (hops = 0;; hops++) {
		rep = on_node(r, c, argc, argv, lens, c == r->ask);
		if (rep == NULL || rep->type != REDIS_REPLY_ERROR ||
		    redis_parse_redirect(rep->str, &rd) == -1)
			return rep;
		freeReplyObject(rep);
		if (r->ask != NULL)
			redisFree(r->ask);
		r->ask = NULL;
		if (hops == REDIS_HOPS_MAX) {
			(void)fail(r, REDIS_EX_TEMPFAIL, "%s: more than %d "
			    "redirections", argv[0], REDIS_HOPS_MAX);
			return NULL;
		}
		if ((c = connect_to(r, rd.host, rd.port)) == NULL)
			return NULL;
		if (rd.ask)
			r->ask = c;
		else {
			redisFree(r->rc);
			r->rc = c;
			(void)snprintf(r->where, sizeof(r->where), "%s:%d",
			    rd.host, rd.port);
		}
	}
}

/*
 * Did the server close our connection (EOF, a reset, a broken pipe), as
 * Redis does to a client idle past its "timeout" setting or when it
 * restarts?  A reply that is overdue is no such thing: Redis may be
 * stalled, and the caller gives up.
 */
int
redis_closed(const struct redis *r)
{
	if (r->rc == NULL)
		return 0;
	return r->rc->err == REDIS_ERR_EOF || (r->rc->err == REDIS_ERR_IO &&
	    (strcmp(r->rc->errstr, strerror(EPIPE)) == 0 ||
	    strcmp(r->rc->errstr, strerror(ECONNRESET)) == 0));
}

/* A new connection to the URL's node, AUTH and SELECT done: 0, or -1. */
int
redis_reconnect(struct redis *r)
{
	if (r->rc != NULL)
		redisFree(r->rc);
	if (r->ask != NULL)
		redisFree(r->ask);
	r->ask = NULL;
	if (r->path[0] != '\0')
		(void)strlcpy(r->where, r->path, sizeof(r->where));
	else
		(void)snprintf(r->where, sizeof(r->where), "%s:%d", r->host,
		    r->port);
	return (r->rc = connect_to(r, r->host, r->port)) == NULL ? -1 : 0;
}

/*
 * A command on the connection that ran the last one, without following
 * redirections: WAIT counts the replicas of that node that have that
 * connection's writes, so after an ASK it must go where the ASK went.
 */
redisReply *
redis_command_there(struct redis *r, int argc, const char **argv,
    const size_t *lens)
{
	return on_node(r, r->ask != NULL ? r->ask : r->rc, argc, argv, lens,
	    0);
}

/*
 * The exit status an error reply calls for: a refusal of our settings
 * (authentication, permissions, a key of another type) is 78, and so is
 * a consumer group that vanished under a worker (the stream deleted or
 * evicted, Redis without its data): the entries it held are gone, which
 * a restart that creates the group afresh would hide.  Anything else
 * (out of memory, loading, cluster down) is 75.
 */
int
redis_error_status(const redisReply *rep)
{
	static const char *const config[] = { "NOAUTH", "WRONGPASS",
	    "NOPERM", "WRONGTYPE", "NOGROUP" };
	size_t	 i;

	for (i = 0; i < sizeof(config) / sizeof(config[0]); i++)
		if (strncmp(rep->str, config[i], strlen(config[i])) == 0)
			return REDIS_EX_CONFIG;
	return REDIS_EX_TEMPFAIL;
}

void
redis_close(struct redis *r)
{
	if (r->rc != NULL)
		redisFree(r->rc);
	if (r->ask != NULL)
		redisFree(r->ask);
	explicit_bzero(r->pass, sizeof(r->pass));
	r->rc = r->ask = NULL;
}
