/*
 * src/log.c for the fuzz targets, with nothing written: every refused
 * message would otherwise cost a write(2) to stderr, and the fuzzer's own
 * report would drown.  The whole of log.c is compiled as it is (message
 * formatting, log_escape(), fatalx()), only its one write(2) is replaced
 * by one that reports success.  <unistd.h> comes first, so that its
 * declaration of write() is left alone.  fmt.c, which log.c formats
 * with, comes along.
 */
#include <unistd.h>

#define write(fd, buf, len)	((void)(fd), (void)(buf), (ssize_t)(len))

#include "../../src/log.c"
#include "../../src/fmt.c"	/* log.c's formatter */
