/*
 * Run a command and append its peak RSS (KiB, from wait4) to a file, so
 * the bench can see how much memory one smtpd-stdio session used.  Only
 * in the RSS runs, never in the timed ones.
 *
 * usage: rss-exec file command [arg ...]
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include <err.h>
#include <stdio.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct rusage	 ru;
	FILE		*f;
	pid_t		 pid;
	int		 status;

	if (argc < 3)
		errx(64, "usage: rss-exec file command [arg ...]");
	if ((pid = fork()) == -1)
		err(71, "fork");
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		err(127, "%s", argv[2]);
	}
	if (wait4(pid, &status, 0, &ru) == -1)
		err(71, "wait4");
	if ((f = fopen(argv[1], "a")) != NULL) {
		fprintf(f, "%ld\n", ru.ru_maxrss);
		fclose(f);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
