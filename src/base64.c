/*
 * Strict base64 (RFC 4648 section 4) for SASL, RFC 4954: the standard
 * alphabet, padding required, no line breaks or blanks, and the unused
 * bits of the last group must be zero, so that every accepted input has
 * exactly one encoding (section 3.5).  Pure functions, fuzzed by
 * tests/fuzz/fuzz_base64.c.
 */
#include <sys/types.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "smtpd-stdio.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * The 6-bit value of each alphabet character, plus one, so that 0 marks
 * every other byte.
 */
static const unsigned char b64_values[UCHAR_MAX + 1] = {
	['A'] = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
	    18, 19, 20, 21, 22, 23, 24, 25, 26,
	['a'] = 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
	    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,
	['0'] = 53, 54, 55, 56, 57, 58, 59, 60, 61, 62,
	['+'] = 63,
	['/'] = 64,
};

static size_t	b64_padding(const unsigned char *, size_t);
static int	b64_group(const unsigned char *, size_t, uint32_t *);

/* How many "=" end the input: 0, 1 or 2. */
static size_t
b64_padding(const unsigned char *p, size_t inlen)
{
	if (inlen == 0 || p[inlen - 1] != '=')
		return 0;
	return p[inlen - 2] == '=' ? 2 : 1;
}

/*
 * The 24 bits of a group of four characters, of which the first chars
 * are alphabet characters and the rest padding; -1 when one is not.
 */
static int
b64_group(const unsigned char *p, size_t chars, uint32_t *group)
{
	size_t	 j;

	*group = 0;
	for (j = 0; j < 4; j++) {
		if (j < chars && b64_values[p[j]] == 0)
			return -1;
		*group = *group << 6 | (j < chars ? b64_values[p[j]] - 1u : 0);
	}
	return 0;
}

/*
 * Decode inlen bytes of in into out.  Returns the decoded length, or -1
 * if the input is not canonical base64 (a byte outside the alphabet,
 * padding anywhere but at the end of the last group, nonzero unused
 * bits, inlen not a multiple of 4) or does not fit in outcap bytes.
 * Empty input decodes to 0 bytes.  out is not NUL-terminated; on -1 its
 * contents are unspecified.
 */
ssize_t
b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap)
{
	/* RFC 4648 3.5: the bits the padding leaves over are zero. */
	static const uint32_t	 unused[] = { 0, 0xff, 0xffff };
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 i, k, n = 0, pad, keep;
	uint32_t		 group;

	if (inlen % 4 != 0 || inlen / 4 > SSIZE_MAX / 3)
		return -1;
	pad = b64_padding(p, inlen);
	if (inlen / 4 * 3 - pad > outcap)
		return -1;
	for (i = 0; i < inlen; i += 4) {
		keep = i + 4 == inlen ? 3 - pad : 3;
		if (b64_group(p + i, keep + 1, &group) == -1 ||
		    (group & unused[3 - keep]) != 0)
			return -1;
		for (k = 0; k < keep; k++)
			out[n++] = group >> (16 - 8 * k) & 0xff;
	}
	return (ssize_t)n;
}

/*
 * Encode inlen bytes of in into out, NUL-terminated.  Returns the length
 * of the encoding (without the NUL), or 0 when out, outcap bytes, cannot
 * hold it and its NUL; out is then left holding "" if outcap > 0.  An
 * empty input gives "" and 0 as well, which is not an error.
 * B64_ENCODED_LEN(n) is the outcap that always suffices.
 */
size_t
b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outcap)
{
	size_t		 i, n = 0, rest;
	uint32_t	 group;

	if (inlen > (SIZE_MAX - 1) / 4 * 3 - 2 ||
	    outcap < (inlen + 2) / 3 * 4 + 1) {
		if (outcap > 0)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i < inlen; i += 3) {
		rest = inlen - i;
		group = (uint32_t)in[i] << 16;
		if (rest > 1)
			group |= (uint32_t)in[i + 1] << 8;
		if (rest > 2)
			group |= in[i + 2];
		out[n++] = b64_alphabet[group >> 18 & 0x3f];
		out[n++] = b64_alphabet[group >> 12 & 0x3f];
		out[n++] = rest > 1 ? b64_alphabet[group >> 6 & 0x3f] : '=';
		out[n++] = rest > 2 ? b64_alphabet[group & 0x3f] : '=';
	}
	out[n] = '\0';
	return n;
}
