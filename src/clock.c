/*
 * The one clock every deadline is read against (SPEC 10.3): monotonic
 * milliseconds.  It sits at the bottom of the house, below the client
 * connection, the backends and the filters that all wait on it.  The
 * name stays conn_now_ms: it is the connection's clock, and its callers
 * in auth.c, policy.c and milter.c (and the fuzz targets' stand-ins)
 * need not change.
 */
#include <time.h>

#include "smtpd-stdio.h"

long long
conn_now_ms(void)
{
	struct timespec	 ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
