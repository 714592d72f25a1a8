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

/* The 6-bit value of an alphabet character, -1 for any other byte. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
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
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 i, n = 0, pad = 0, need;
	uint32_t		 group;
	int			 j, v;

	if (inlen % 4 != 0 || inlen / 4 > SSIZE_MAX / 3)
		return -1;
	if (inlen > 0) {
		pad = p[inlen - 1] == '=' ? (p[inlen - 2] == '=' ? 2 : 1) : 0;
		need = inlen / 4 * 3 - pad;
		if (need > outcap)
			return -1;
	}
	for (i = 0; i < inlen; i += 4) {
		group = 0;
		for (j = 0; j < 4; j++) {
			if (p[i + j] == '=' && i + 4 == inlen &&
			    (size_t)j >= 4 - pad) {
				v = 0;
			} else if ((v = b64_value(p[i + j])) == -1)
				return -1;
			group = group << 6 | (uint32_t)v;
		}
		/* RFC 4648 3.5: the bits the padding leaves over are zero. */
		if ((pad == 1 && i + 4 == inlen && (group & 0xff) != 0) ||
		    (pad == 2 && i + 4 == inlen && (group & 0xffff) != 0))
			return -1;
		out[n++] = group >> 16;
		if (i + 4 < inlen || pad < 2)
			out[n++] = group >> 8 & 0xff;
		if (i + 4 < inlen || pad < 1)
			out[n++] = group & 0xff;
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
