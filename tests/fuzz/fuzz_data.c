/*
 * libFuzzer target for the DATA decoder: arbitrary message bytes, decoded
 * whole and in reads of arbitrary sizes, into output buffers of arbitrary
 * sizes.  Properties: the same output, end and size however it is split;
 * the end is only ever at <CRLF>.<CRLF>; the RFC 1870 size is the output
 * with every line end counted as two octets.  In BDAT mode (nodots, data[0]
 * bit 7) there is no end at all and every byte is taken.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct decoded {
	struct buf		 out;
	size_t			 used;	/* input bytes up to the end */
	struct data_decoder	 d;
};

static void
decode(const char *in, size_t len, int crlf, int nodots,
    const uint8_t *splits, size_t nsplits, struct decoded *r)
{
	char	 chunk[300];
	size_t	 off = 0, n, cap, produced, k = 0, step;

	data_init(&r->d, crlf, 1);
	r->d.nodots = nodots;
	while (off < len && !r->d.done) {
		step = nsplits == 0 ? len - off : 1 + (size_t)splits[k % nsplits];
		cap = nsplits == 0 ? sizeof(chunk) : 3 + splits[(k + 1) % nsplits];
		k++;
		if (step > len - off)
			step = len - off;
		if (cap > sizeof(chunk))
			cap = sizeof(chunk);
		n = data_decode(&r->d, in + off, step, chunk, cap, &produced);
		buf_append(&r->out, chunk, produced);
		off += n;
	}
	r->used = off;
}

/* The end of data is exactly "\r\n.\r\n" (the first CRLF may be DATA's). */
static void
check_end(const char *in, const struct decoded *r)
{
	size_t	 u = r->used;

	if (!r->d.done)
		return;
	if (u < 3 || memcmp(in + u - 3, ".\r\n", 3) != 0)
		abort();
	if (u > 3 && (u < 5 || memcmp(in + u - 5, "\r\n", 2) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decoded	 whole, split;
	size_t		 nsplits, i, eols = 0;
	int		 crlf, nodots;

	if (size < 1)
		return 0;
	crlf = data[0] & 1;
	nodots = (data[0] & 0x80) != 0;
	nsplits = (size_t)((data[0] & 0x7f) >> 1) + 1;
	data++;
	size--;
	if (nsplits > size)
		nsplits = size;
	memset(&whole, 0, sizeof(whole));
	memset(&split, 0, sizeof(split));
	decode((const char *)data, size, crlf, nodots, NULL, 0, &whole);
	decode((const char *)data, size, crlf, nodots, data, nsplits, &split);

	if (whole.out.len != split.out.len || whole.used != split.used ||
	    whole.d.done != split.d.done ||
	    whole.d.wire_size != split.d.wire_size ||
	    whole.d.eightbit != split.d.eightbit ||
	    (whole.out.len > 0 &&
	    memcmp(whole.out.data, split.out.data, whole.out.len) != 0))
		abort();
	check_end((const char *)data, &whole);
	if (nodots && (whole.d.done || whole.used != size))
		abort();	/* BDAT content has no end of data */
	for (i = 0; i < whole.out.len; i++)
		if (whole.out.data[i] == '\n')
			eols++;
	/* LF output: size = bytes + one per line end; CRLF output: bytes. */
	if (whole.d.wire_size != whole.out.len + (crlf ? 0 : eols))
		abort();
	buf_free(&whole.out);
	buf_free(&split.out);
	return 0;
}
