/*
 * smtpd-stdio: start-up.  The fds, the options, the TLS configuration,
 * the PROXY header and the exec limits; then serve.c runs the session.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpd-stdio.h"

static void	 setup_fds(struct config *);
static void	 exec_limits(struct config *);
static int	 proxy_header(const struct config *, struct peer *);
static int	 find_peer(const struct config *, int, struct peer *);
static struct tls *setup(struct config *, int);

/*
 * fds 0-2 exist, nothing else is inherited, and log lines never reach
 * the client: under inetd fd 2 is the client socket too.
 */
static void
setup_fds(struct config *c)
{
	struct stat	 st0, st2;
	int		 fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		(void)close(fd);
	closefrom(3);
	if (fstat(0, &st0) == 0 && fstat(2, &st2) == 0 &&
	    S_ISSOCK(st2.st_mode) && st0.st_dev == st2.st_dev &&
	    st0.st_ino == st2.st_ino) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1) {
			(void)dup2(fd, 2);
			(void)close(fd);
		}
		c->log = LOGTO_SYSLOG;
	}
}

/*
 * What the recipients may add to the handler's argv and environment
 * before exec would fail with E2BIG (SPEC 2): the kernel's total less
 * what is already there, our other variables, and the pointers.
 */
static void
exec_limits(struct config *c)
{
	extern char	**environ;
	long		  argmax = sysconf(_SC_ARG_MAX);
	size_t		  used = EXEC_FIXED_VARS, i;

	if (argmax < EXEC_STRING_MAX)
		argmax = EXEC_STRING_MAX;
	for (i = 0; environ[i] != NULL; i++)
		used += strlen(environ[i]) + 1 + sizeof(char *);
	for (i = 0; c->handler_argv[i] != NULL; i++) {
		used += strlen(c->handler_argv[i]) + 1 + sizeof(char *);
		if (strcmp(c->handler_argv[i], "{recipients}") == 0)
			c->argv_rcpt_copies++;
	}
	c->exec_room = (size_t)argmax > used ? (size_t)argmax - used : 0;
}

/*
 * SPEC 10.1: with --proxy-protocol the header comes first, within 5 s,
 * and its addresses replace the socket's.  -1: the client left inside
 * it; 1: no usable header; 0: go on.
 */
static int
proxy_header(const struct config *c, struct peer *p)
{
	struct proxy_result	 r;

	if (!c->proxy_protocol)
		return 0;
	switch (proxy_read(conn_now_ms() + PROXY_TIMEOUT * 1000, &r)) {
	case PROXY_OK:
		peer_from_proxy(p, &r);
		return 0;
	case PROXY_EOF:
		log_info("connect from %s: closed inside the PROXY header",
		    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown");
		return -1;
	case PROXY_BAD:
		break;
	}
	log_warn("connect from %s: no valid PROXY header within %ds",
	    p->remote_addr[0] != '\0' ? p->remote_addr : "unknown",
	    PROXY_TIMEOUT);
	return 1;
}

/*
 * Who the client is when no hand-over said so: the socket's peer, or
 * (SPEC 10.1) what its PROXY header says.  What serve() takes as
 * bad_proxy: 0, 1 (no usable PROXY header) or BAD_HANDOVER; -1: the
 * client left inside the header.
 */
static int
find_peer(const struct config *c, int resumed, struct peer *peer)
{
	int	 bad;

	peer_lookup(peer);
	if (resumed == -1) {
		log_warn("TLS: the hand-over from smtpd-stdio does not read: "
		    "not the same version?");
		return BAD_HANDOVER;
	}
	if ((bad = proxy_header(c, peer)) == -1)
		return -1;
	log_info("connect from %s port %s", peer->remote_addr[0] != '\0' ?
	    peer->remote_addr : "unknown",
	    peer->remote_port[0] != '\0' ? peer->remote_port : "-");
	return bad;
}

/*
 * Everything before the session: fds, log, TLS (SPEC 8: set-up errors go
 * to the log, never to the client; after a hand-over they are a 454),
 * signals.  The TLS configuration, or NULL.
 */
static struct tls *
setup(struct config *c, int resumed)
{
	struct tls	*server;

	umask(077);
	setup_fds(c);
	log_init(c->log, c->verbose);
	server = resumed ? tlsconf_try(c) : tlsconf_server(c);
	c->tls_handover = server == NULL && c->ntls_cert > 0;
	conn_init();
	c->sync_check = conn_is_socket();
	if (c->hostname == NULL)
		c->hostname = options_default_hostname();
	if (c->authserv_id == NULL)
		c->authserv_id = c->hostname;
	exec_limits(c);
	return server;
}

int
main(int argc, char **argv)
{
	struct config	 conf;
	struct peer	 peer;
	struct handover	 ho;
	struct tls	*server;
	int		 bad_proxy = 0, resumed, status;

	/* Superservers may start us with SIGCHLD ignored: waitpid needs it. */
	(void)signal(SIGCHLD, SIG_DFL);
	options_parse(argc, argv, &conf);
	/* Before setup_fds closes it: a session smtpd-stdio handed over. */
	resumed = tlsconf_resumed(&ho);
	/* fd 2 is /dev/null now: where smtpd-stdio logged, we log. */
	if (resumed == 1)
		conf.log = ho.log == LOGTO_STDERR ? LOGTO_STDERR :
		    LOGTO_SYSLOG;
	tlsconf_handover(&conf, argv);
	server = setup(&conf, resumed);
	if (resumed == 1)
		peer = ho.peer;
	else if ((bad_proxy = find_peer(&conf, resumed, &peer)) == -1)
		return EXIT_OK;	/* SPEC 10.1: EOF in the header */
	status = serve(&conf, &peer, bad_proxy, server, resumed == 1 ? &ho :
	    NULL);
	free(conf.policy);
	free(conf.milter);
	free(conf.tls_cert);
	free(conf.tls_key);
	tlsconf_free(server);
	return status;
}
