/*
 * Append-only formatting into a fixed buffer, for the lines written once
 * per message (queue id, Received header, log line, handler variables)
 * without the cost of printf's format interpreter.  Truncation is
 * snprintf's: len counts what was asked for, the buffer keeps what fits
 * and fmt_end() ends it with a NUL.
 */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtpd-stdio.h"

_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53 &&
    DBL_MAX_EXP == 1024, "fmt_fixed3 reads an IEEE 754 binary64 double");

static void	fixed3_printf(struct fmt *, double);

void
fmt_init(struct fmt *f, char *dst, size_t cap)
{
	f->p = dst;
	f->len = 0;
	f->cap = cap;
}

/* fmt_mem() when it does not fit: what does, and the length asked for. */
void
fmt_cut(struct fmt *f, const char *s, size_t n)
{
	if (f->len < f->cap)
		memcpy(f->p + f->len, s, f->cap - f->len);
	f->len = n > SIZE_MAX - f->len ? SIZE_MAX : f->len + n;
}

/* At most n bytes of s, as "%.*s" (stops at a NUL). */
void
fmt_strn(struct fmt *f, const char *s, size_t n)
{
	fmt_mem(f, s, strnlen(s, n));
}

/*
 * v in base 10 or 16 with at least width digits, zero-padded.  Each base
 * has its own loop: a division by a constant is a multiplication.
 */
void
fmt_num(struct fmt *f, unsigned long long v, unsigned int base, int width,
    int upper)
{
	const char	*digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char		 tmp[FMT_NUM_MAX];
	size_t		 i = sizeof(tmp);

	if (base == 16)
		do {
			tmp[--i] = digits[v & 0xf];
			v >>= 4;
		} while (v != 0);
	else
		do {
			tmp[--i] = digits[v % 10];
			v /= 10;
		} while (v != 0);
	while (i > 0 && sizeof(tmp) - i < (size_t)width)
		tmp[--i] = '0';
	fmt_mem(f, tmp + i, sizeof(tmp) - i);
}

/* "%llu": the most common number, without fmt_num()'s choices. */
void
fmt_u(struct fmt *f, unsigned long long v)
{
	char	 tmp[FMT_NUM_MAX];
	size_t	 i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	fmt_mem(f, tmp + i, sizeof(tmp) - i);
}

void
fmt_i(struct fmt *f, long long v)
{
	if (v < 0) {
		fmt_mem(f, "-", 1);
		fmt_u(f, 0 - (unsigned long long)v);
	} else
		fmt_u(f, (unsigned long long)v);
}

/*
 * A non-negative d as "%.3f" writes it: the exact binary value rounded to
 * the nearest thousandth, a tie to the even one.  d is m * 2^e exactly
 * (IEEE 754 binary64), so d * 1000 is m * 1000 (under 2^63) shifted,
 * and its integer part and the fraction's comparison with one half are
 * exact in integers.  Negative, huge or not a number: snprintf.
 */
void
fmt_fixed3(struct fmt *f, double d)
{
	uint64_t	 bits, m, p, rem, half;
	unsigned int	 shift, exp;

	memcpy(&bits, &d, sizeof(bits));
	exp = (unsigned int)(bits >> 52) & 0x7ff;
	if ((bits >> 63) != 0 || !(d < 1e15)) {
		fixed3_printf(f, d);
		return;
	}
	m = bits & ((UINT64_C(1) << 52) - 1);
	if (exp != 0)
		m |= UINT64_C(1) << 52;
	p = m * 1000;
	/* d = m * 2^-shift: d < 1e15 < 2^52 makes shift at least 1. */
	shift = 1075 - (exp != 0 ? exp : 1);
	if (shift >= 64)
		p = 0;		/* under 2^63 / 2^64: below one half */
	else {
		rem = p & ((UINT64_C(1) << shift) - 1);
		half = UINT64_C(1) << (shift - 1);
		p >>= shift;
		if (rem > half || (rem == half && (p & 1) != 0))
			p++;
	}
	fmt_u(f, p / 1000);
	fmt_lit(f, ".");
	fmt_num(f, p % 1000, 10, 3, 0);
}

/* The general case of fmt_fixed3(): negative, huge, NaN. */
static void
fixed3_printf(struct fmt *f, double d)
{
	char	 tmp[DBL_MAX_10_EXP + 8];	/* "-", 309 digits, ".000" */
	int	 n = snprintf(tmp, sizeof(tmp), "%.3f", d);

	if (n > 0)
		fmt_mem(f, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
		    sizeof(tmp) - 1);
}

/*
 * Ends the text with a NUL, truncated as snprintf would; returns it.
 * fmt_full() says whether it was.
 */
const char *
fmt_end(struct fmt *f)
{
	if (f->cap > 0)
		f->p[f->len < f->cap ? f->len : f->cap - 1] = '\0';
	return f->p;
}

int
fmt_full(const struct fmt *f)
{
	return f->len >= f->cap;
}
