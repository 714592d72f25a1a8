/*
 * libFuzzer target for the base64 codec (src/base64.c): whatever the
 * bytes, b64_decode() writes only within the room it was given (the
 * buffers are exactly as large as asked, so ASan sees one byte too
 * many), accepts only canonical input, which encodes back to itself,
 * and b64_decode(b64_encode(x)) is x for any x.  Too little room is
 * refused, never written past.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* y decodes; then encode(decode(y)) == y, and less room is refused. */
static void
check_decoded(const char *y, size_t ylen, const unsigned char *x, size_t xlen)
{
	char	*enc;
	size_t	 n;

	if ((enc = malloc(ylen + 1)) == NULL)
		abort();
	n = b64_encode(x, xlen, enc, ylen + 1);
	if (n != ylen || memcmp(enc, y, ylen) != 0 || enc[n] != '\0')
		abort();
	/* One byte short of room for the NUL: refused, "" left. */
	if (ylen > 0 && (b64_encode(x, xlen, enc, ylen) != 0 || enc[0] != '\0'))
		abort();
	free(enc);
	if (xlen > 0) {
		unsigned char	*small = malloc(xlen);

		if (small == NULL || b64_decode(y, ylen, small, xlen - 1) != -1)
			abort();
		free(small);
	}
}

/* x encodes; then decode(encode(x)) == x. */
static void
check_roundtrip(const unsigned char *x, size_t xlen)
{
	size_t		 cap = B64_ENCODED_LEN(xlen), n;
	char		*enc;
	unsigned char	*dec;
	ssize_t		 d;

	if ((enc = malloc(cap)) == NULL ||
	    (dec = malloc(xlen + (xlen == 0))) == NULL)
		abort();
	n = b64_encode(x, xlen, enc, cap);
	if (n + 1 != cap || strlen(enc) != n)
		abort();
	d = b64_decode(enc, n, dec, xlen);
	if (d != (ssize_t)xlen || memcmp(dec, x, xlen) != 0)
		abort();
	free(enc);
	free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char		*y;
	unsigned char	*x;
	size_t		 cap = B64_DECODED_MAX(size);
	ssize_t		 n;

	/* The input as text to decode, in a buffer of its exact size. */
	if ((y = malloc(size + (size == 0))) == NULL ||
	    (x = malloc(cap + (cap == 0))) == NULL)
		abort();
	memcpy(y, data, size);
	n = b64_decode(y, size, x, cap);
	if (n < -1 || n > (ssize_t)cap)
		abort();
	if (n >= 0)
		check_decoded(y, size, x, (size_t)n);
	else if (size % 4 == 0 && size > 0) {
		/* Refused with room to spare: refused for its content. */
		unsigned char	*big = malloc(cap + 8);

		if (big == NULL || b64_decode(y, size, big, cap + 8) != -1)
			abort();
		free(big);
	}
	free(x);
	free(y);
	/* The input as bytes to encode. */
	check_roundtrip(data, size);
	return 0;
}
