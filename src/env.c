/*
 * The handler's environment and argv, SPEC 5.1, shared by smtpd-stdio
 * and redis-worker: our own environment without stale copies of the
 * SMTP_* variables we set (filtered once, not per message), plus the
 * message's variables, formatted into one buffer; and the argv with
 * {sender} and {recipients} expanded.
 */
#include <stdlib.h>
#include <string.h>

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
	"SMTP_TLS_CLIENT_SUBJECT", "SMTP_TLS_CLIENT_HASH", "SMTP_REQUIRETLS",
	"SMTP_QUARANTINE"
};
#define NSMTP_VARS	(sizeof(smtp_vars) / sizeof(smtp_vars[0]))

static int	is_smtp_var(const char *, const char *);
static char	*env_slot(struct env *, const char *, size_t, size_t);
static void	env_put(struct env *, const char *, size_t, const char *,
		    size_t);

/* One of ours (and not the name kept), as NAME=...; one prefix test first. */
static int
is_smtp_var(const char *entry, const char *keep)
{
	size_t	 i, n;

	if (strncmp(entry, "SMTP_", 5) != 0)
		return 0;
	if (keep != NULL && strncmp(entry, keep, n = strlen(keep)) == 0 &&
	    entry[n] == '=')
		return 0;
	for (i = 0; i < NSMTP_VARS; i++) {
		n = strlen(smtp_vars[i]);
		if (strncmp(entry, smtp_vars[i], n) == 0 && entry[n] == '=')
			return 1;
	}
	return 0;
}

/*
 * Takes our environment as it is now, without the SMTP_* variables we
 * set but keep (a name, or NULL).  The strings are shared with environ.
 */
void
env_init(struct env *e, const char *keep)
{
	size_t	 n = 0, i;

	memset(e, 0, sizeof(*e));
	while (environ[n] != NULL)
		n++;
	if ((e->inherited = calloc(n + 1, sizeof(*e->inherited))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < n; i++)
		if (!is_smtp_var(environ[i], keep))
			e->inherited[e->ninherited++] = environ[i];
}

/* Forgets the variables of the last message. */
void
env_clear(struct env *e)
{
	e->vars.len = 0;
	e->nvars = 0;
}

/*
 * A new variable at the end of vars, its offset noted: "NAME=", room for
 * vlen bytes of value, which the caller fills, and the NUL after them.
 */
static char *
env_slot(struct env *e, const char *name, size_t nlen, size_t vlen)
{
	char	*p;

	if (e->nvars == e->capvars) {
		e->capvars = e->capvars == 0 ? 32 : e->capvars * 2;
		if ((e->offs = reallocarray(e->offs, e->capvars,
		    sizeof(*e->offs))) == NULL)
			fatalx("out of memory");
	}
	/* Offsets, not pointers: the buffer may move as it grows. */
	e->offs[e->nvars++] = e->vars.len;
	if (nlen > SIZE_MAX - 2 || vlen > SIZE_MAX - 2 - nlen)
		fatalx("environment size overflow");
	if (e->vars.cap - e->vars.len >= nlen + vlen + 2) {
		p = e->vars.data + e->vars.len;	/* room already, as a rule */
		e->vars.len += nlen + vlen + 2;
	} else
		p = buf_extend(&e->vars, nlen + vlen + 2);
	memcpy(p, name, nlen);
	p[nlen] = '=';
	p[nlen + 1 + vlen] = '\0';
	return p + nlen + 1;
}

/* NAME=VALUE, in one copy of each. */
static void
env_put(struct env *e, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	memcpy(env_slot(e, name, nlen, vlen), value, vlen);
}

/*
 * Adds NAME=VALUE (len bytes).  Returns -1, adding nothing, when VALUE
 * holds a NUL, which no environment string can.
 */
int
env_add(struct env *e, const char *name, const char *value, size_t len)
{
	if (memchr(value, '\0', len) != NULL)
		return -1;
	env_put(e, name, strlen(name), value, len);
	return 0;
}

/* env_add() of a C string, which holds no NUL; see env_set(). */
void
env_setn(struct env *e, const char *name, size_t nlen, const char *value)
{
	env_put(e, name, nlen, value, strlen(value));
}

/*
 * NAME=the strings joined with LF (no trailing LF), written in place:
 * C strings hold no NUL.
 */
void
env_set_joined(struct env *e, const char *name, char *const *v, size_t n)
{
	size_t	 total = 0, len, i;
	char	*p;

	for (i = 0; i < n; i++) {
		len = strlen(v[i]) + (i > 0);
		if (len > SIZE_MAX - total)
			fatalx("environment size overflow");
		total += len;
	}
	p = env_slot(e, name, strlen(name), total);
	for (i = 0; i < n; i++) {
		if (i > 0)
			*p++ = '\n';
		len = strlen(v[i]);
		memcpy(p, v[i], len);
		p += len;
	}
}

/* The environment for execve: valid until the next env_* call. */
char **
env_vector(struct env *e)
{
	size_t	 need = e->ninherited + e->nvars + 1, i;

	if (need > e->capvec) {
		free(e->vec);
		if ((e->vec = calloc(need, sizeof(*e->vec))) == NULL)
			fatalx("out of memory");
		e->capvec = need;
	}
	memcpy(e->vec, e->inherited, e->ninherited * sizeof(*e->vec));
	for (i = 0; i < e->nvars; i++)
		e->vec[e->ninherited + i] = e->vars.data + e->offs[i];
	e->vec[need - 1] = NULL;
	return e->vec;
}

void
env_free(struct env *e)
{
	free(e->inherited);
	free(e->offs);
	free(e->vec);
	buf_free(&e->vars);
	memset(e, 0, sizeof(*e));
}

/*
 * The handler's argv, SPEC 5.1: an argument equal to {sender} becomes the
 * reverse-path, one equal to {recipients} one argument per recipient.
 * The strings are shared with in, sender and rcpt, not copied: the
 * vector is for one execve, while they all stand.  Free with argv_free().
 */
char **
argv_expand(char *const *in, const char *sender, char *const *rcpt,
    size_t nrcpt)
{
	char	**argv;
	size_t	  n = 0, i, j, k = 0;

	for (i = 0; in[i] != NULL; i++)
		n += strcmp(in[i], "{recipients}") == 0 ? nrcpt : 1;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		fatalx("out of memory");
	for (i = 0; in[i] != NULL; i++) {
		if (strcmp(in[i], "{recipients}") == 0)
			for (j = 0; j < nrcpt; j++)
				argv[k++] = rcpt[j];
		else if (strcmp(in[i], "{sender}") == 0)
			argv[k++] = (char *)sender;
		else
			argv[k++] = in[i];
	}
	return argv;
}

void
argv_free(char **argv)
{
	free(argv);
}
