/*
 * Growable byte buffers, used for the reply queue and reply building.
 * Allocation failure is fatal: there is nothing useful to say to a
 * client once the heap is gone.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd-stdio.h"

static void	buf_reserve(struct buf *, size_t);

static void
buf_reserve(struct buf *b, size_t more)
{
	size_t	 need, cap;
	char	*p;

	if (more > SIZE_MAX - b->len)
		fatalx("buffer size overflow");
	need = b->len + more;
	if (need <= b->cap)
		return;
	cap = b->cap != 0 ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = realloc(b->data, cap)) == NULL)
		fatalx("out of memory");
	b->data = p;
	b->cap = cap;
}

void
buf_append(struct buf *b, const void *p, size_t len)
{
	if (len == 0)
		return;
	if (b->cap - b->len < len)	/* b->len <= b->cap always */
		buf_reserve(b, len);
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

/* Room for n more bytes at the end, now counted in len: fill them. */
char *
buf_extend(struct buf *b, size_t n)
{
	char	*p;

	if (b->cap - b->len < n)
		buf_reserve(b, n);
	p = b->data + b->len;
	b->len += n;
	return p;
}

void
buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 room;
	int	 n;

	buf_reserve(b, 128);
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("vsnprintf failed");
	if ((size_t)n >= room) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		(void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* Drop the first n bytes, keeping the rest at the start. */
void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
