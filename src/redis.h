/*
 * redis.c: the Redis client that redis-stream and redis-worker share
 * (hiredis): the URL, AUTH and SELECT, REDIS_TIMEOUT on every call,
 * MOVED/ASK redirections, and the password kept out of logs.
 */
#ifndef REDIS_H
#define REDIS_H

#include <sys/time.h>

#include <hiredis.h>

#define REDIS_DEFAULT_URL	"redis://127.0.0.1:6379"
#define REDIS_DEFAULT_TIMEOUT	10	/* seconds, SPEC 12 */
#define REDIS_PASSWORD_MAX	1024
#define REDIS_HOST_MAX		256
#define REDIS_HOPS_MAX		5	/* MOVED/ASK followed per command */

/* Exit statuses (sysexits), SPEC 12. */
#define REDIS_EX_USAGE		64
#define REDIS_EX_TEMPFAIL	75	/* Redis down, slow or busy: retry */
#define REDIS_EX_CONFIG		78	/* refused our settings: fix them */

struct redis {
	char		 host[REDIS_HOST_MAX];	/* "" for a UNIX socket */
	int		 port;
	char		 path[REDIS_HOST_MAX];	/* the UNIX socket, or "" */
	char		 user[REDIS_HOST_MAX];
	char		 pass[REDIS_PASSWORD_MAX];
	char		 db[16];		/* "" or digits */
	struct timeval	 timeout;
	redisContext	*rc;			/* the node we talk to */
	redisContext	*ask;			/* the node an ASK sent the
						   last command to, or NULL */
	char		 where[REDIS_HOST_MAX + 8];	/* host:port for logs */
	int		 status;		/* after a failure: 75 or 78 */
	char		 err[512];		/* after a failure: why */
};

/* A MOVED or ASK error reply, parsed. */
struct redis_redirect {
	int	 ask;
	char	 host[REDIS_HOST_MAX];
	int	 port;
};

int		 redis_parse_url(struct redis *, const char *);
int		 redis_parse_redirect(const char *, struct redis_redirect *);
void		 redis_scrub_url(char *);
int		 redis_env_number(const char *, long long, long long, long long,
		    long long *);
int		 redis_open(struct redis *, const char *, long long);
redisReply	*redis_command(struct redis *, int, const char **,
		    const size_t *);
redisReply	*redis_command_there(struct redis *, int, const char **,
		    const size_t *);
int		 redis_closed(const struct redis *);
int		 redis_reconnect(struct redis *);
int		 redis_error_status(const redisReply *);
void		 redis_close(struct redis *);

#endif /* REDIS_H */
