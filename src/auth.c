/*
 * The --auth backends, SPEC 9: Dovecot's auth-client protocol over its
 * UNIX socket (as Postfix's smtpd_sasl_type = dovecot), or a program
 * run per attempt with the qmail checkpassword interface.  The session
 * engine decodes the SASL dialogue and asks here for a verdict on one
 * user and password.  Whatever goes wrong on our side or the backend's
 * is AUTH_TEMPFAIL, never AUTH_OK; no password is ever logged, put in
 * argv or the environment, and our copies are cleared.
 */
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtpd-stdio.h"

extern char **environ;

#define DOVECOT_MAJOR		1	/* the auth-client protocol we speak */
#define DOVECOT_MINOR		2
#define AUTH_REQUEST_MAX	2048	/* our AUTH or CONT line, LF included */
#define CHECKPW_POLL_MS		100	/* without a pidfd, look this often */

enum auth_kind {
	AK_DOVECOT,
	AK_CHECKPASSWORD
};

struct auth_backend {
	enum auth_kind	 kind;
	char		*where;		/* socket path or program */
	int		 fd;		/* Dovecot: -1 when not connected */
	unsigned int	 mechs;		/* Dovecot: what it offered */
	unsigned long	 next_id;	/* Dovecot: the last request id */
	int		 silent;	/* Dovecot: never answered, SPEC 9 */
	char		 in[DOVECOT_LINE_MAX];	/* Dovecot: read, not parsed */
	size_t		 inlen;
};

/* The tab-separated fields of a line from the server. */
struct fields {
	const char	*f[DOVECOT_ARGS_MAX + 1];
	size_t		 len[DOVECOT_ARGS_MAX + 1];
	size_t		 n;
};

static int	 prefixed(const char *, const char *);
static int	 parse_ulong(const char *, size_t, unsigned long *);
static int	 parse_param(const char *, size_t, struct dovecot_line *);
static int	 user_unescape(const char *, size_t, char *, size_t);
static int	 split_fields(const char *, const char *, struct fields *);
static int	 args_mech(const struct fields *, struct dovecot_line *);
static int	 args_cont(const struct fields *, struct dovecot_line *);
static int	 args_result(const struct fields *, struct dovecot_line *);
static int	 parse_args(const char *, const char *,
		    struct dovecot_line *);
static void	 dovecot_close(struct auth_backend *);
static int	 dovecot_read(struct auth_backend *, struct dovecot_line *,
		    long long);
static int	 dovecot_connect(struct auth_backend *, long long);
static int	 dovecot_handshake(struct auth_backend *, long long);
static unsigned int mech_bit(const char *);
static int	 dovecot_alive(struct auth_backend *);
static int	 field_ok(const char *, const char *);
static void	 peer_fields(char *, size_t, const struct peer *);
static int	 plain_response(const struct auth_request *, char *, size_t);
static size_t	 auth_line(char *, size_t, unsigned long, const char *,
		    const struct auth_request *);
static enum auth_verdict dovecot_verdict(struct auth_backend *,
		    const struct auth_request *, unsigned long,
		    const struct dovecot_line *, char *, size_t);
static int	 dovecot_cont(struct auth_backend *, const char *,
		    unsigned long, const char *, long long);
static const char *dovecot_mech(const struct auth_backend *);
static enum auth_verdict dovecot_exchange(struct auth_backend *,
		    const struct auth_request *, unsigned long, const char *,
		    char *, size_t);
static enum auth_verdict dovecot_check(struct auth_backend *,
		    const struct auth_request *, char *, size_t);
static int	 checkpw_spawn(const struct auth_backend *,
		    const struct auth_request *, pid_t *);
static int	 checkpw_wait(pid_t, long long, int *);
static void	 checkpw_kill(pid_t, int, int *);
static void	 checkpw_pause(int, long long);
static enum auth_verdict checkpw_check(struct auth_backend *,
		    const struct auth_request *, char *, size_t);
static enum auth_verdict checkpw_verdict(const struct auth_backend *,
		    const struct auth_request *, int, char *, size_t);

static int
prefixed(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

struct auth_backend *
auth_new(const char *spec)
{
	struct auth_backend	*b;
	const char		*where;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatalx("out of memory");
	if (prefixed(spec, DOVECOT_PREFIX)) {
		b->kind = AK_DOVECOT;
		where = spec + strlen(DOVECOT_PREFIX);
	} else if (prefixed(spec, CHECKPW_PREFIX)) {
		b->kind = AK_CHECKPASSWORD;
		where = spec + strlen(CHECKPW_PREFIX);
	} else
		fatalx("auth_new: bad spec");
	if ((b->where = strdup(where)) == NULL)
		fatalx("out of memory");
	b->fd = -1;
	return b;
}

void
auth_free(struct auth_backend *b)
{
	if (b == NULL)
		return;
	dovecot_close(b);
	free(b->where);
	free(b);
}

/*
 * What to advertise.  Dovecot is asked once per session; if it cannot
 * be reached both are offered, and an attempt then gets AUTH_TEMPFAIL
 * (454) unless it is back by then.  One that has not answered by the
 * deadline is not waited for again: every attempt gets 454 at once
 * (SPEC 9).  0 if Dovecot offers neither.
 */
unsigned int
auth_mechanisms(struct auth_backend *b, long long deadline)
{
	if (b->kind == AK_CHECKPASSWORD)
		return AUTH_MECH_PLAIN | AUTH_MECH_LOGIN;
	if (b->fd == -1 && dovecot_connect(b, deadline) == -1) {
		b->silent = conn_now_ms() >= deadline;
		return AUTH_MECH_PLAIN | AUTH_MECH_LOGIN;
	}
	if (b->mechs == 0)
		log_warn("auth: dovecot %s offers neither PLAIN nor LOGIN",
		    b->where);
	return b->mechs;
}

enum auth_verdict
auth_check(struct auth_backend *b, const struct auth_request *req,
    char *user, size_t userlen)
{
	const unsigned char	*p;

	if (strlen(req->user) >= AUTH_USER_MAX ||
	    strlen(req->password) >= AUTH_PASSWORD_MAX)
		return AUTH_REFUSED;	/* RFC 4616 2: 255 octets at most */
	/* The name goes to the handler's environment and to the log. */
	for (p = (const unsigned char *)req->user; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return AUTH_REFUSED;
	if (b->kind == AK_CHECKPASSWORD)
		return checkpw_check(b, req, user, userlen);
	if (b->silent)
		return AUTH_TEMPFAIL;
	return dovecot_check(b, req, user, userlen);
}

/* ---- The Dovecot server lines: pure, fuzzed ---- */

/* A decimal number without sign or leading blanks that fits. */
static int
parse_ulong(const char *s, size_t len, unsigned long *v)
{
	size_t	 i;

	if (len == 0 || len > 9)
		return -1;	/* ids and versions are far below 10^9 */
	*v = 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (unsigned long)(s[i] - '0');
	}
	return 0;
}

/*
 * One parameter of OK or FAIL: a temporary failure, or "user=" with Dovecot's tab
 * escapes undone (str_tabescape(): 001 then '1', 't', 'r' or 'n' for
 * 001, TAB, CR, LF; 001 before any other byte stands for that byte).
 * A user name with a control byte would reach the handler's
 * environment: the line is refused.
 */
static int
parse_param(const char *p, size_t len, struct dovecot_line *dl)
{
	/* Dovecot 2.3 says code=temp_fail; "temp" is the older flag. */
	if ((len == 4 && memcmp(p, "temp", 4) == 0) ||
	    (len == 14 && memcmp(p, "code=temp_fail", 14) == 0)) {
		dl->temp = dl->kind == DL_FAIL;
		return 0;
	}
	if (len < 5 || memcmp(p, "user=", 5) != 0)
		return 0;
	return user_unescape(p + 5, len - 5, dl->user, sizeof(dl->user));
}

/* Undo str_tabescape() into user, size bytes; -1 at a control byte. */
static int
user_unescape(const char *p, size_t len, char *user, size_t size)
{
	size_t		 i, n = 0;
	unsigned char	 c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c == 1 && i + 1 < len) {
			c = (unsigned char)p[++i];
			c = c == '1' ? 1 : c == 't' ? '\t' : c == 'r' ? '\r' :
			    c == 'n' ? '\n' : c;
		}
		if (c < 0x20 || c == 0x7f || n + 1 >= size)
			return -1;
		user[n++] = (char)c;
	}
	user[n] = '\0';
	return 0;
}

/* Split p to end at its tabs; -1 for more than DOVECOT_ARGS_MAX fields. */
static int
split_fields(const char *p, const char *end, struct fields *fl)
{
	const char	*t;

	fl->n = 0;
	while (p <= end && fl->n <= DOVECOT_ARGS_MAX) {
		t = memchr(p, '\t', (size_t)(end - p));
		fl->f[fl->n] = p;
		fl->len[fl->n++] = (size_t)((t != NULL ? t : end) - p);
		if (t == NULL)
			break;
		p = t + 1;
	}
	return fl->n > DOVECOT_ARGS_MAX ? -1 : 0;
}

/* MECH name: upper-cased; a name too long for us is not one of ours. */
static int
args_mech(const struct fields *fl, struct dovecot_line *dl)
{
	const char	*m = fl->f[0];
	size_t		 i;

	if (fl->len[0] == 0)
		return -1;
	if (fl->len[0] >= sizeof(dl->mech)) {
		dl->kind = DL_OTHER;
		return 0;
	}
	for (i = 0; i < fl->len[0]; i++) {
		if ((unsigned char)m[i] <= 0x20 || (unsigned char)m[i] >= 0x7f)
			return -1;
		dl->mech[i] = m[i] >= 'a' && m[i] <= 'z' ? m[i] - 'a' + 'A' :
		    m[i];
	}
	dl->mech[i] = '\0';
	return 0;
}

/* CONT id data: the data is base64 (RFC 4648 4) and fits. */
static int
args_cont(const struct fields *fl, struct dovecot_line *dl)
{
	size_t	 j;

	if (fl->n != 2 || fl->len[1] >= sizeof(dl->cont))
		return -1;
	for (j = 0; j < fl->len[1]; j++)
		if (fl->f[1][j] != '=' && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789+/",
		    fl->f[1][j]) == NULL)
			return -1;
	memcpy(dl->cont, fl->f[1], fl->len[1]);
	dl->cont[fl->len[1]] = '\0';
	return 0;
}

/* OK or FAIL id [param...]. */
static int
args_result(const struct fields *fl, struct dovecot_line *dl)
{
	size_t	 i;

	for (i = 1; i < fl->n; i++)
		if (parse_param(fl->f[i], fl->len[i], dl) == -1)
			return -1;
	return 0;
}

/* The fields after the command, p to end, for the kind in dl. */
static int
parse_args(const char *p, const char *end, struct dovecot_line *dl)
{
	struct fields	 fl;

	if (split_fields(p, end, &fl) == -1)
		return -1;
	switch (dl->kind) {
	case DL_VERSION:
		return fl.n >= 2 &&
		    parse_ulong(fl.f[0], fl.len[0], &dl->major) == 0 &&
		    parse_ulong(fl.f[1], fl.len[1], &dl->minor) == 0 ? 0 : -1;
	case DL_MECH:
		return args_mech(&fl, dl);
	case DL_CONT:
		if (parse_ulong(fl.f[0], fl.len[0], &dl->id) == -1)
			return -1;
		return args_cont(&fl, dl);
	case DL_OK:
	case DL_FAIL:
		if (parse_ulong(fl.f[0], fl.len[0], &dl->id) == -1)
			return -1;
		return args_result(&fl, dl);
	default:
		return 0;
	}
}

/*
 * One line from the auth server, without its LF: the command and the
 * fields we use.  Returns -1 for a line that breaks the protocol (a
 * NUL, an empty line, a known command with bad fields); unknown
 * commands are DL_OTHER.
 */
int
dovecot_parse_line(const char *line, size_t len, struct dovecot_line *dl)
{
	static const struct {
		const char		*cmd;
		enum dovecot_kind	 kind;
		int			 args;	/* takes fields */
	} cmds[] = {
		{ "VERSION", DL_VERSION, 1 }, { "MECH", DL_MECH, 1 },
		{ "SPID", DL_SPID, 1 }, { "CUID", DL_CUID, 1 },
		{ "COOKIE", DL_COOKIE, 1 }, { "DONE", DL_DONE, 0 },
		{ "OK", DL_OK, 1 }, { "CONT", DL_CONT, 1 },
		{ "FAIL", DL_FAIL, 1 }
	};
	const char	*end = line + len, *tab;
	size_t		 clen, i;

	memset(dl, 0, sizeof(*dl));
	dl->kind = DL_OTHER;
	if (len == 0 || memchr(line, '\0', len) != NULL ||
	    memchr(line, '\n', len) != NULL)
		return -1;
	tab = memchr(line, '\t', len);
	clen = (size_t)((tab != NULL ? tab : end) - line);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strlen(cmds[i].cmd) != clen ||
		    memcmp(cmds[i].cmd, line, clen) != 0)
			continue;
		dl->kind = cmds[i].kind;
		if (!cmds[i].args)
			return tab == NULL ? 0 : -1;
		if (tab == NULL)
			return -1;
		return parse_args(tab + 1, end, dl);
	}
	return 0;
}

/* ---- Dovecot: the connection ---- */

static void
dovecot_close(struct auth_backend *b)
{
	if (b->fd != -1)
		(void)close(b->fd);
	b->fd = -1;
	b->inlen = 0;
	b->mechs = 0;
}

/*
 * The next line from the server, parsed: 0, or -1 (closed, slow past
 * deadline, an over-long or garbled line; logged).
 */
static int
dovecot_read(struct auth_backend *b, struct dovecot_line *dl,
    long long deadline)
{
	char	*lf;
	size_t	 len;
	ssize_t	 n;
	int	 rc;

	while ((lf = memchr(b->in, '\n', b->inlen)) == NULL) {
		if (b->inlen == sizeof(b->in)) {
			log_warn("auth: dovecot %s: line too long", b->where);
			return -1;
		}
		if (!net_wait_fd(b->fd, POLLIN, deadline)) {
			log_warn("auth: dovecot %s: no answer in time",
			    b->where);
			return -1;
		}
		n = read(b->fd, b->in + b->inlen, sizeof(b->in) - b->inlen);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			log_warn("auth: dovecot %s: %s", b->where, n == 0 ?
			    "connection closed" : strerror(errno));
			return -1;
		}
		b->inlen += (size_t)n;
	}
	len = (size_t)(lf - b->in);
	rc = dovecot_parse_line(b->in, len, dl);
	memmove(b->in, lf + 1, b->inlen - len - 1);
	b->inlen -= len + 1;
	if (rc == -1)
		log_warn("auth: dovecot %s: garbled line", b->where);
	return rc;
}

/*
 * Connect and shake hands: our VERSION and CPID, then the server's
 * VERSION, MECH lines, SPID, CUID, COOKIE up to DONE.  0, or -1 with
 * the connection closed and the reason logged.
 */
static int
dovecot_connect(struct auth_backend *b, long long deadline)
{
	char	 hello[64];
	int	 n;

	n = snprintf(hello, sizeof(hello), "VERSION\t%d\t%d\nCPID\t%ld\n",
	    DOVECOT_MAJOR, DOVECOT_MINOR, (long)getpid());
	if ((b->fd = net_connect_unix(b->where, deadline)) == -1 ||
	    net_write_all(b->fd, hello, (size_t)n, deadline) == -1) {
		log_warn("auth: cannot reach dovecot %s: %s", b->where,
		    strerror(errno));
		dovecot_close(b);
		return -1;
	}
	if (dovecot_handshake(b, deadline) == -1) {
		dovecot_close(b);
		return -1;
	}
	return 0;
}

/*
 * The server's side of the handshake: VERSION first, then MECH lines
 * among others, up to DONE.  0, or -1 with the reason logged.
 */
static int
dovecot_handshake(struct auth_backend *b, long long deadline)
{
	struct dovecot_line	 dl;
	int			 seen_version = 0;

	for (;;) {
		if (dovecot_read(b, &dl, deadline) == -1)
			return -1;
		if (dl.kind == DL_VERSION) {
			if (dl.major != DOVECOT_MAJOR) {
				log_warn("auth: dovecot %s: protocol version "
				    "%lu, not %d", b->where, dl.major,
				    DOVECOT_MAJOR);
				return -1;
			}
			seen_version = 1;
		} else if (!seen_version) {
			log_warn("auth: dovecot %s: no VERSION first",
			    b->where);
			return -1;
		} else if (dl.kind == DL_MECH)
			b->mechs |= mech_bit(dl.mech);
		else if (dl.kind == DL_DONE)
			return 0;
	}
}

/* The AUTH_MECH_ bit of a mechanism we use, 0 for any other. */
static unsigned int
mech_bit(const char *mech)
{
	if (strcmp(mech, "PLAIN") == 0)
		return AUTH_MECH_PLAIN;
	if (strcmp(mech, "LOGIN") == 0)
		return AUTH_MECH_LOGIN;
	return 0;
}

/*
 * Is the kept connection still there?  Between requests the server has
 * nothing to say: readable means closed (a restart) or out of step.
 */
static int
dovecot_alive(struct auth_backend *b)
{
	struct pollfd	 pfd;

	if (b->fd == -1)
		return 0;
	pfd.fd = b->fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) == 0 && b->inlen == 0)
		return 1;
	dovecot_close(b);
	return 0;
}

/* Printable ASCII from set only, and not empty: safe between tabs. */
static int
field_ok(const char *s, const char *set)
{
	return s[0] != '\0' && strspn(s, set) == strlen(s);
}

/*
 * The peer's addresses and ports as AUTH fields ("\tlip=..."): each only
 * when it is what it should be, as a precaution.
 */
static void
peer_fields(char *out, size_t size, const struct peer *p)
{
	static const char	 ip[] = "0123456789abcdefABCDEF.:";
	static const char	 port[] = "0123456789";
	const struct {
		const char	*name, *value, *set;
	} f[] = {
		{ "lip", p->local_addr, ip }, { "rip", p->remote_addr, ip },
		{ "lport", p->local_port, port },
		{ "rport", p->remote_port, port },
	};
	size_t			 i, n;

	out[0] = '\0';
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		n = strlen(out);
		if (field_ok(f[i].value, f[i].set))
			(void)snprintf(out + n, size - n, "\t%s=%s",
			    f[i].name, f[i].value);
	}
}

/*
 * PLAIN's initial response, RFC 4616: an empty authzid, NUL, user, NUL,
 * password, in base64 into resp.  0, or -1 if it did not fit.
 */
static int
plain_response(const struct auth_request *req, char *resp, size_t size)
{
	unsigned char	 plain[1 + AUTH_USER_MAX + AUTH_PASSWORD_MAX];
	size_t		 ul = strlen(req->user), pl = strlen(req->password);
	size_t		 n;

	plain[0] = '\0';
	memcpy(plain + 1, req->user, ul + 1);
	memcpy(plain + 2 + ul, req->password, pl);
	n = b64_encode(plain, 2 + ul + pl, resp, size);
	explicit_bzero(plain, sizeof(plain));
	return n == 0 ? -1 : 0;
}

/*
 * The AUTH line for request id with mechanism mech; for PLAIN its
 * initial response.  Client bytes go only into the base64 of resp=.
 * Returns the length, 0 if it did not fit.  The caller clears line.
 */
static size_t
auth_line(char *line, size_t size, unsigned long id, const char *mech,
    const struct auth_request *req)
{
	char	 resp[B64_ENCODED_LEN(1 + AUTH_USER_MAX + AUTH_PASSWORD_MAX)];
	char	 peer[sizeof(struct peer)];
	int	 len;

	resp[0] = '\0';
	if (strcmp(mech, "PLAIN") == 0 &&
	    plain_response(req, resp, sizeof(resp)) == -1)
		return 0;
	peer[0] = '\0';
	if (req->peer != NULL)
		peer_fields(peer, sizeof(peer), req->peer);
	len = snprintf(line, size, "AUTH\t%lu\t%s\tservice=smtp%s\tnologin"
	    "%s%s%s\n", id, mech, req->secured ? "\tsecured" : "", peer,
	    resp[0] != '\0' ? "\tresp=" : "", resp);
	explicit_bzero(resp, sizeof(resp));
	if (len < 0 || (size_t)len >= size)
		return 0;
	return (size_t)len;
}

/* The reply to request id as a verdict; OK gives the user's name. */
static enum auth_verdict
dovecot_verdict(struct auth_backend *b, const struct auth_request *req,
    unsigned long id, const struct dovecot_line *dl, char *user,
    size_t userlen)
{
	char	 esc[4 * AUTH_USER_MAX + 1];

	if (dl->id != id) {
		log_warn("auth: dovecot %s: reply to request %lu, not %lu",
		    b->where, dl->id, id);
		dovecot_close(b);
		return AUTH_TEMPFAIL;
	}
	if (dl->kind == DL_FAIL) {
		if (!dl->temp)
			return AUTH_REFUSED;
		log_warn("auth: dovecot %s: temporary failure for %s",
		    b->where, log_escape(esc, sizeof(esc), req->user,
		    strlen(req->user)));
		return AUTH_TEMPFAIL;
	}
	if (strlcpy(user, dl->user[0] != '\0' ? dl->user : req->user,
	    userlen) >= userlen) {
		log_warn("auth: dovecot %s: user name too long", b->where);
		return AUTH_TEMPFAIL;
	}
	return AUTH_OK;
}

/* Answer a CONT of request id with the base64 of s. */
static int
dovecot_cont(struct auth_backend *b, const char *where, unsigned long id,
    const char *s, long long deadline)
{
	char	 line[AUTH_REQUEST_MAX];
	char	 b64[B64_ENCODED_LEN(AUTH_PASSWORD_MAX)];
	int	 len, rc;

	if (b64_encode((const unsigned char *)s, strlen(s), b64,
	    sizeof(b64)) == 0 && s[0] != '\0')
		return -1;
	len = snprintf(line, sizeof(line), "CONT\t%lu\t%s\n", id, b64);
	rc = len > 0 && (size_t)len < sizeof(line) ?
	    net_write_all(b->fd, line, (size_t)len, deadline) : -1;
	explicit_bzero(b64, sizeof(b64));
	explicit_bzero(line, sizeof(line));
	if (rc == -1)
		log_warn("auth: dovecot %s: cannot send a continuation",
		    where);
	return rc;
}

/* PLAIN if the service offers it, else LOGIN; NULL for neither. */
static const char *
dovecot_mech(const struct auth_backend *b)
{
	if (b->mechs & AUTH_MECH_PLAIN)
		return "PLAIN";
	if (b->mechs & AUTH_MECH_LOGIN)
		return "LOGIN";
	return NULL;
}

/*
 * One attempt: PLAIN with an initial response if the service offers it,
 * else LOGIN answering the two CONT prompts (user, then password).
 */
static enum auth_verdict
dovecot_check(struct auth_backend *b, const struct auth_request *req,
    char *user, size_t userlen)
{
	char		 line[AUTH_REQUEST_MAX];
	const char	*mech;
	size_t		 len;
	unsigned long	 id;
	int		 rc;

	if (!dovecot_alive(b) && dovecot_connect(b, req->deadline) == -1)
		return AUTH_TEMPFAIL;
	if ((mech = dovecot_mech(b)) == NULL) {
		log_warn("auth: dovecot %s offers neither PLAIN nor LOGIN",
		    b->where);
		return AUTH_TEMPFAIL;
	}
	id = ++b->next_id;
	len = auth_line(line, sizeof(line), id, mech, req);
	rc = len == 0 ? -1 :
	    net_write_all(b->fd, line, len, req->deadline);
	explicit_bzero(line, sizeof(line));
	if (rc == -1) {
		/* The exchange is out of step: start afresh next time. */
		dovecot_close(b);
		return AUTH_TEMPFAIL;
	}
	return dovecot_exchange(b, req, id, mech, user, userlen);
}

/*
 * Read the server's lines for request id up to its OK or FAIL, answering
 * LOGIN's CONT prompts.  Out of step, the connection is closed: the next
 * attempt starts afresh.
 */
static enum auth_verdict
dovecot_exchange(struct auth_backend *b, const struct auth_request *req,
    unsigned long id, const char *mech, char *user, size_t userlen)
{
	struct dovecot_line	 dl;
	int			 conts = 0;

	for (;;) {
		if (dovecot_read(b, &dl, req->deadline) == -1)
			break;
		if (dl.kind == DL_OK || dl.kind == DL_FAIL)
			return dovecot_verdict(b, req, id, &dl, user, userlen);
		if (dl.kind != DL_CONT || dl.id != id || strcmp(mech,
		    "LOGIN") != 0 || conts == 2) {
			log_warn("auth: dovecot %s: unexpected line in the "
			    "%s exchange", b->where, mech);
			break;
		}
		if (dovecot_cont(b, b->where, id, conts++ == 0 ? req->user :
		    req->password, req->deadline) == -1)
			break;
	}
	dovecot_close(b);
	return AUTH_TEMPFAIL;
}

/* ---- checkpassword ---- */

/*
 * Start PROGRAM /bin/true with login, password and a timestamp, each
 * NUL-ended, on a pipe at its fd 3.  They are written before the
 * program starts (they fit in an empty pipe's buffer), so nothing here
 * waits on it.  Its stdin and stdout are /dev/null, and so is its
 * stderr: under inetd ours is the client's socket, and a checkpassword
 * program's diagnostics may repeat what it was given.
 */
static int
checkpw_spawn(const struct auth_backend *b, const struct auth_request *req,
    pid_t *pid)
{
	char		 data[AUTH_USER_MAX + AUTH_PASSWORD_MAX + 32];
	char		*argv[3];
	size_t		 ul = strlen(req->user), pl = strlen(req->password);
	ssize_t		 w;
	int		 fds[2], null, rc, len;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return errno;
	memcpy(data, req->user, ul + 1);
	memcpy(data + ul + 1, req->password, pl + 1);
	len = snprintf(data + ul + pl + 2, sizeof(data) - ul - pl - 2,
	    "%lld", (long long)time(NULL));
	do
		w = write(fds[1], data, ul + pl + 3 + (size_t)len);
	while (w == -1 && errno == EINTR);
	rc = errno;
	explicit_bzero(data, sizeof(data));
	(void)close(fds[1]);
	if (w != (ssize_t)(ul + pl + 3 + (size_t)len)) {
		(void)close(fds[0]);
		return w == -1 ? rc : EIO;
	}
	if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1) {
		rc = errno;
		(void)close(fds[0]);
		return rc;
	}
	argv[0] = b->where;
	argv[1] = (char *)"/bin/true";
	argv[2] = NULL;
	rc = handler_spawn_fd3(pid, -1, null, null, fds[0], argv, environ);
	(void)close(fds[0]);
	(void)close(null);
	return rc;
}

/*
 * Wait for pid until deadline, then kill its process group.  0 with
 * its wait status, or -1 when it had to be killed.
 */
static int
checkpw_wait(pid_t pid, long long deadline, int *status)
{
	long long	 left;
	int		 pidfd;
	pid_t		 w;

	pidfd = pidfd_open(pid, 0);
	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			break;
		if (w == -1 && errno != EINTR)
			fatalx("waitpid: %s", strerror(errno));
		if ((left = deadline - conn_now_ms()) <= 0) {
			checkpw_kill(pid, pidfd, status);
			return -1;
		}
		checkpw_pause(pidfd, left);
	}
	if (pidfd != -1)
		(void)close(pidfd);
	return 0;
}

/* No grace: a verdict after the deadline is no use. */
static void
checkpw_kill(pid_t pid, int pidfd, int *status)
{
	(void)kill(-pid, SIGKILL);
	while (waitpid(pid, status, 0) == -1 && errno == EINTR)
		;
	if (pidfd != -1)
		(void)close(pidfd);
}

/*
 * Wait until the program ends (its pidfd is readable), at most left ms
 * and a minute; without a pidfd, CHECKPW_POLL_MS.
 */
static void
checkpw_pause(int pidfd, long long left)
{
	struct pollfd	 pfd;

	if (pidfd == -1 || left > CHECKPW_POLL_MS * 600)
		left = pidfd == -1 ? CHECKPW_POLL_MS : CHECKPW_POLL_MS * 600;
	pfd.fd = pidfd;
	pfd.events = POLLIN;
	if (poll(&pfd, pidfd == -1 ? 0 : 1, (int)left) == -1 &&
	    errno != EINTR)
		fatalx("poll: %s", strerror(errno));
}

/*
 * One attempt: exit 0 accepted, 1 refused; 2 (misuse), 111 (temporary)
 * and anything else, a signal, a failed exec or the time limit, which
 * is --handler-timeout or the request's deadline if that comes first,
 * are temporary failures.
 */
static enum auth_verdict
checkpw_check(struct auth_backend *b, const struct auth_request *req,
    char *user, size_t userlen)
{
	long long	 deadline;
	pid_t		 pid;
	int		 rc, status;

	deadline = conn_now_ms() + req->handler_timeout * 1000;
	if (req->deadline < deadline)
		deadline = req->deadline;
	if ((rc = checkpw_spawn(b, req, &pid)) != 0) {
		log_warn("auth: cannot run checkpassword %s: %s", b->where,
		    strerror(rc));
		return AUTH_TEMPFAIL;
	}
	if (checkpw_wait(pid, deadline, &status) == -1) {
		log_warn("auth: checkpassword %s timed out, killed", b->where);
		return AUTH_TEMPFAIL;
	}
	if (WIFSIGNALED(status)) {
		log_warn("auth: checkpassword %s killed by signal %d",
		    b->where, WTERMSIG(status));
		return AUTH_TEMPFAIL;
	}
	return checkpw_verdict(b, req, WEXITSTATUS(status), user, userlen);
}

/* The verdict of checkpassword's exit status, as checkpw_check says. */
static enum auth_verdict
checkpw_verdict(const struct auth_backend *b, const struct auth_request *req,
    int status, char *user, size_t userlen)
{
	switch (status) {
	case 0:
		if (strlcpy(user, req->user, userlen) >= userlen)
			return AUTH_TEMPFAIL;
		return AUTH_OK;
	case 1:
		return AUTH_REFUSED;
	case 127:
		log_warn("auth: checkpassword %s: exit 127 (not found, or it "
		    "could not run /bin/true)", b->where);
		return AUTH_TEMPFAIL;
	default:
		log_warn("auth: checkpassword %s: exit %d%s", b->where,
		    status, status == 111 ? " (temporary failure)" :
		    status == 2 ? " (misuse)" : "");
		return AUTH_TEMPFAIL;
	}
}
