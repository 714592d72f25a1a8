/*
 * SPEC 10.3: by when the client must have sent what it owes us.  Every
 * wait gets one absolute deadline, the nearest of these, never a timeout
 * re-armed per read, so trickling bytes cannot stretch any of them.
 */
#include <string.h>

#include "smtpd-stdio.h"

#define DATA_RATE_GRACE_MS	10000	/* --min-data-rate applies after */

static long long rate_deadline(const struct config *,
		    const struct deadlines *);

/* The session starts: its own end, and the time for the first line. */
void
deadline_start(struct deadlines *dl, const struct config *c)
{
	memset(dl, 0, sizeof(*dl));
	dl->session_end = conn_now_ms() + c->session_timeout * 1000;
	dl->line_end = conn_now_ms() + c->timeout * 1000;
}

/* A reply went out: the client's next command line is due from now. */
void
deadline_replied(struct deadlines *dl, const struct config *c)
{
	dl->line_end = conn_now_ms() + c->timeout * 1000;
}

/*
 * --timeout from now, within --session-timeout: how long a client that
 * does not read may hold up our replies or the TLS handshake.
 */
long long
deadline_ours(const struct deadlines *dl, const struct config *c)
{
	long long	 end = conn_now_ms() + c->timeout * 1000;

	return end < dl->session_end ? end : dl->session_end;
}

/*
 * The deadline of the next wait for the client.  In a command line it is
 * --timeout after our last reply.  In a message the client may idle
 * --timeout between reads, and after a grace period it must have kept up
 * --min-data-rate on average since that transaction's 354 (or first
 * BDAT): a clock that restarts with each transaction, so that neither a
 * handler's run nor an earlier message counts.  With BDAT the message
 * runs from the first BDAT to the last; between chunks, where the client
 * sends command lines, the line deadline holds as well.
 */
long long
deadline_next(const struct session *s, struct deadlines *dl)
{
	const struct config	*c = s->conf;
	long long		 now = conn_now_ms(), end, rate_end;

	if (!session_in_message(s)) {
		dl->data_start = 0;
		end = dl->line_end;
		dl->nearest = "command line (--timeout)";
	} else {
		deadline_count(s, dl, 0);
		end = session_reading_message(s) ? now + c->timeout * 1000 :
		    dl->line_end;
		dl->nearest = "idle in a message (--timeout)";
		if (c->min_data_rate > 0 &&
		    (rate_end = rate_deadline(c, dl)) < end) {
			end = rate_end;
			dl->nearest = "data rate (--min-data-rate)";
		}
	}
	if (dl->session_end <= end) {
		end = dl->session_end;
		dl->nearest = "session (--session-timeout)";
	}
	return end;
}

/*
 * used octets of input were just taken by the session: in a message they
 * count for --min-data-rate, whether they came in a read of their own or
 * behind the command that began the message (a first BDAT chunk sent
 * with the envelope), and the clock starts with the transaction.
 */
void
deadline_count(const struct session *s, struct deadlines *dl, size_t used)
{
	if (!session_in_message(s))
		return;
	if (dl->data_start == 0 || dl->data_seq != s->txn_seq) {
		dl->data_start = conn_now_ms();
		dl->data_bytes = 0;
		dl->data_seq = s->txn_seq;
	}
	dl->data_bytes += used;
}

/* n octets since data_start are on time until n / rate s after it. */
static long long
rate_deadline(const struct config *c, const struct deadlines *dl)
{
	long long	 end;

	end = dl->data_start + (long long)(dl->data_bytes * 1000 /
	    (uint64_t)c->min_data_rate);
	if (end < dl->data_start + DATA_RATE_GRACE_MS)
		end = dl->data_start + DATA_RATE_GRACE_MS;
	return end;
}

/* The wait deadline_next() gave passed: which one, and how far data got. */
void
deadline_log_timeout(const struct deadlines *dl)
{
	if (dl->data_start != 0)
		log_info("timeout: %s, %llu octets in %lld ms of the message",
		    dl->nearest, (unsigned long long)dl->data_bytes,
		    conn_now_ms() - dl->data_start);
	else
		log_info("timeout: %s", dl->nearest);
}
