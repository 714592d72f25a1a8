/*
 * The W2 floor: posix_spawn the sink N times, one after the other, each
 * with a message file on stdin, and wait for each.  This is the least any
 * server that runs one handler process per message must do.
 *
 * usage: floor-spawn N message-file sink
 * prints: the elapsed seconds
 */
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t	 fa;
	struct timespec			 t0, t1;
	char				*args[2];
	long				 i, n;
	pid_t				 pid;
	int				 fd, status;

	if (argc != 4)
		errx(64, "usage: floor-spawn N message-file sink");
	n = atol(argv[1]);
	if ((fd = open(argv[2], O_RDONLY | O_CLOEXEC)) == -1)
		err(66, "%s", argv[2]);
	args[0] = argv[3];
	args[1] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		if (lseek(fd, 0, SEEK_SET) == -1)
			err(74, "lseek");
		if ((errno = posix_spawn(&pid, argv[3], &fa, NULL, args,
		    environ)) != 0)
			err(71, "posix_spawn %s", argv[3]);
		if (waitpid(pid, &status, 0) == -1)
			err(71, "waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			errx(70, "sink failed: status %d", status);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f\n", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
