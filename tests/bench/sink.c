/*
 * The benchmark handler: read stdin to EOF, exit 0.  Every server under
 * test (and every floor) runs this same program once per message.
 */
#include <unistd.h>

int
main(void)
{
	static char	 buf[65536];
	ssize_t		 n;

	while ((n = read(0, buf, sizeof(buf))) != 0)
		if (n == -1)
			return 74;
	return 0;
}
