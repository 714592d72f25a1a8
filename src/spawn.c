/*
 * Starting the programs we run (the handler, --rcpt-check, exec:
 * policies, checkpassword): posix_spawn with a known set of fds, signal
 * state and process group.  A file of its own so that the policy client
 * and the auth backends link without the handler's machinery.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include "smtpd-stdio.h"

/*
 * The file actions of the last spawn, kept: glibc's adddup2, addopen
 * and addclosefrom_np each ask sysconf(_SC_OPEN_MAX) (getrlimit, which
 * we never change), and a session's handlers get the same fds message
 * after message.  Made as they always were, so the same fds give the
 * same actions.
 */
static struct {
	int				 made, in, out, err, fd3;
	posix_spawn_file_actions_t	 fa;
} last;

static const posix_spawn_file_actions_t *
file_actions(int in, int out, int err, int fd3)
{
	posix_spawn_file_actions_t	*fa = &last.fa;

	if (last.made && last.in == in && last.out == out &&
	    last.err == err && last.fd3 == fd3)
		return fa;
	if (last.made)
		posix_spawn_file_actions_destroy(fa);
	last.made = 0;
	if (posix_spawn_file_actions_init(fa) != 0)
		fatalx("posix_spawn setup failed");
	if (in != -1)
		(void)posix_spawn_file_actions_adddup2(fa, in, 0);
	else
		(void)posix_spawn_file_actions_addopen(fa, 0, "/dev/null",
		    O_RDONLY, 0);
	(void)posix_spawn_file_actions_adddup2(fa, out, 1);
	if (err != -1)
		(void)posix_spawn_file_actions_adddup2(fa, err, 2);
	/* Same fd: glibc clears its close-on-exec flag. */
	if (fd3 != -1)
		(void)posix_spawn_file_actions_adddup2(fa, fd3, 3);
	(void)posix_spawn_file_actions_addclosefrom_np(fa, fd3 != -1 ? 4 : 3);
	last.made = 1;
	last.in = in;
	last.out = out;
	last.err = err;
	last.fd3 = fd3;
	return fa;
}

/*
 * posix_spawnp argv with in, out and err (-1: /dev/null for in, ours
 * for err) on fds 0-2, fd3 (unless -1) on fd 3 and nothing else open,
 * default signal dispositions, no signal blocked, a process group of
 * its own.  Returns posix_spawnp's status.  A name without a slash is
 * looked up in PATH.  fd3 must not be 0, 1 or 2.
 */
int
handler_spawn_fd3(pid_t *pid, int in, int out, int err, int fd3,
    char *const *argv, char *const *envp)
{
	const posix_spawn_file_actions_t	*fa;
	posix_spawnattr_t			 attr;
	sigset_t				 none, all;
	int					 rc;

	sigemptyset(&none);
	sigfillset(&all);
	fa = file_actions(in, out, err, fd3);
	if (posix_spawnattr_init(&attr) != 0)
		fatalx("posix_spawn setup failed");
	(void)posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	(void)posix_spawnattr_setpgroup(&attr, 0);
	(void)posix_spawnattr_setsigmask(&attr, &none);
	(void)posix_spawnattr_setsigdefault(&attr, &all);
	rc = posix_spawnp(pid, argv[0], fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	return rc;
}

/* Two close-on-exec pipes, or neither: 0, or -1 with errno set. */
int
spawn_pipes(int a[2], int b[2])
{
	int	 rc;

	if (pipe2(a, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(b, O_CLOEXEC) == -1) {
		rc = errno;
		(void)close(a[0]);
		(void)close(a[1]);
		errno = rc;
		return -1;
	}
	return 0;
}

/* handler_spawn_fd3() with nothing on fd 3. */
int
handler_spawn(pid_t *pid, int in, int out, int err, char *const *argv,
    char *const *envp)
{
	return handler_spawn_fd3(pid, in, out, err, -1, argv, envp);
}
