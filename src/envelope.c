/*
 * One message's handler run in smtpd-stdio, SPEC 5.1: the session's
 * envelope turned into the handler's argv and SMTP_* environment, then
 * handler_exec() (handler.c, which redis-worker shares).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

static void	set_number(struct env *, const char *, unsigned long long);
static void	set_envelope(struct env *, const struct handler_job *);

static void
set_number(struct env *e, const char *name, unsigned long long v)
{
	char		 num[FMT_NUM_MAX];
	struct fmt	 f;

	fmt_init(&f, num, sizeof(num));
	fmt_u(&f, v);
	env_setn(e, name, strlen(name), fmt_end(&f));
}

/* The SMTP_* variables of SPEC 5.1 (and SPEC 10.2 for --rcpt-check). */
static void
set_envelope(struct env *e, const struct handler_job *job)
{
	const struct session	*s = job->sess;
	const struct txn	*t = &s->txn;
	const struct peer	*p = job->peer;

	env_set(e, "SMTP_ID", job->id);
	env_set(e, "SMTP_REMOTE_ADDR", p->remote_addr);
	env_set(e, "SMTP_REMOTE_PORT", p->remote_port);
	env_set(e, "SMTP_LOCAL_ADDR", p->local_addr);
	env_set(e, "SMTP_LOCAL_PORT", p->local_port);
	env_set(e, "SMTP_HELO", s->helo);
	env_set(e, "SMTP_PROTOCOL", session_protocol(s));
	env_set(e, "SMTP_MAIL_FROM", t->mail_from);
	env_set_joined(e, "SMTP_RCPT_TO", t->rcpt, t->nrcpt);
	set_number(e, "SMTP_RCPT_COUNT", t->nrcpt);
	env_set(e, "SMTP_MAIL_OPTIONS", t->mail_options);
	env_set_joined(e, "SMTP_RCPT_OPTIONS", t->rcpt_options, t->nrcpt);
	if (job->rcpt == NULL)
		set_number(e, "SMTP_SIZE", job->spool_size);
	else {
		env_set(e, "SMTP_RCPT", job->rcpt);
		env_set(e, "SMTP_RCPT_OPTION", job->rcpt_option);
	}
	env_set(e, "SMTP_LINE_ENDS", session_crlf(s) ? "CRLF" : "LF");
	env_set(e, "SMTP_AUTH_USER", s->auth_user);
	env_set(e, "SMTP_TLS_PROTOCOL", s->tlsi.protocol);
	env_set(e, "SMTP_TLS_CIPHER", s->tlsi.cipher);
	env_set(e, "SMTP_TLS_SNI", s->tlsi.sni);
	env_set(e, "SMTP_TLS_RESUMED", !s->tls ? "" :
	    s->tlsi.resumed ? "1" : "0");
	env_set(e, "SMTP_TLS_CLIENT_SUBJECT", s->tlsi.client_subject);
	env_set(e, "SMTP_TLS_CLIENT_HASH", s->tlsi.client_hash);
	env_set(e, "SMTP_REQUIRETLS", t->requiretls ? "1" : "");
	if (job->conf->relay != NULL)
		env_set(e, "SMTP_RELAY", job->conf->relay);
	if (t->quarantine != NULL)	/* SPEC 13: SMFIR_QUARANTINE */
		env_set(e, "SMTP_QUARANTINE", t->quarantine);
}

void
handler_run(const struct handler_job *job, struct handler_result *res)
{
	/* Our environment does not change within a session: filter it once. */
	static struct env	 env;
	static int		 env_ready;
	static char		*rcpt_check[2];
	struct handler_cmd	 cmd;
	char			**argv;

	if (!env_ready) {
		env_init(&env, NULL);
		env_ready = 1;
	}
	env_clear(&env);
	set_envelope(&env, job);
	memset(&cmd, 0, sizeof(cmd));
	/* SPEC 10.2: --rcpt-check runs with no arguments. */
	if (job->rcpt != NULL) {
		rcpt_check[0] = (char *)job->conf->rcpt_check;
		cmd.argv = rcpt_check;
		cmd.what = "rcpt-check";
		argv = NULL;
	} else {
		argv = argv_expand(job->conf->handler_argv,
		    job->sess->txn.mail_from, job->sess->txn.rcpt,
		    job->sess->txn.nrcpt);
		cmd.argv = argv;
		cmd.what = "handler";
	}
	cmd.envp = env_vector(&env);
	cmd.in = job->spool_fd;
	cmd.id = job->id;
	cmd.timeout = job->conf->handler_timeout;
	cmd.out_limit = job->out_limit;
	handler_exec(&cmd, res);
	if (argv != NULL)
		argv_free(argv);
}
