/*
 * smtpd-stdio: one SMTP session over stdin/stdout, one handler run per
 * message.  Shared types, limits and the prototypes of every module.
 */
#ifndef SMTPD_STDIO_H
#define SMTPD_STDIO_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SMTPD_VERSION		"0.1.0"

/* Limits, with the rule they come from. */
#define SMTP_CMDLINE_MAX	512	/* RFC 5321 4.5.3.1.4, incl. CRLF */
#define SMTP_MAILLINE_MAX	2048	/* MAIL/RCPT with parameters (RFC 1870, 6152, 6531, 3461), incl. CRLF */
#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3, incl. brackets */
#define SMTP_LOCALPART_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_REPLYLINE_MAX	512	/* RFC 5321 4.5.3.1.5, incl. CRLF */
#define HANDLER_OUTPUT_MAX	4096	/* handler stdout that counts, SPEC 5.1 */
#define LMTP_OUTPUT_PER_RCPT	512	/* under --lmtp, per recipient, SPEC 5.1 */
#define HANDLER_KILL_GRACE	2	/* seconds between SIGTERM and SIGKILL */
#define HANDLER_FINAL_DRAIN	(1024 * 1024)	/* bytes read after the handler exits */
#define HANDLER_STDERR_LINES	200	/* stderr lines logged per message */
#define HANDLER_STDERR_CHUNK	1024	/* stderr bytes per log line, split beyond */
#define LOG_LINE_MAX		(4 * HANDLER_STDERR_CHUNK + 256)	/* one log line, after escaping */
#define DATA_CHUNK		65536	/* decoded message bytes per spool write */
#define INPUT_CHUNK		65536	/* bytes per read(2) of the client */
#define LINGER_MS		1000	/* reading a closing client's last bytes */
#define LINGER_BYTES		65536
#define OUTPUT_FLUSH		16384	/* replies queued before a forced write */
#define EXEC_STRING_MAX		131072	/* Linux MAX_ARG_STRLEN: one argv or env string, incl. NUL */
#define EXEC_FIXED_VARS		16384	/* our SMTP_* variables but the recipient lists, generously */

/* Exit statuses, SPEC 7 (sysexits values). */
#define EXIT_OK			0
#define EXIT_FAIL		1
#define EXIT_USAGE		64
#define EXIT_SOFTWARE		70

enum log_target {
	LOGTO_SYSLOG,
	LOGTO_STDERR
};

/* Everything the command line decides; read-only once parsed. */
struct config {
	const char	 *hostname;
	long long	  size_limit;		/* 0 = no limit */
	int		  smtputf8;
	int		  sevenbit;
	const char	 *relay;		/* NULL unless --relay */
	long long	  max_recipients;
	long long	  max_messages;		/* 0 = unlimited */
	long long	  timeout;		/* seconds */
	long long	  session_timeout;	/* seconds */
	long long	  min_data_rate;	/* octets/s in a message, 0 = off */
	long long	  greet_pause;		/* ms before the greeting, 0 = none */
	long long	  handler_timeout;	/* seconds */
	long long	  max_errors;
	int		  dsn;
	int		  crlf;
	int		  received;
	int		  log;			/* LOGTO_* */
	int		  verbose;
	int		  sync_check;		/* refuse unallowed pipelining */
	int		  proxy_protocol;	/* a PROXY header comes first */
	const char	 *rcpt_check;		/* --rcpt-check PROGRAM, or NULL */
	const char	**policy;		/* --policy ADDRs, in order */
	size_t		  npolicy;
	char		**handler_argv;
	size_t		  exec_room;		/* argv+env bytes left for recipients */
	size_t		  argv_rcpt_copies;	/* {recipients} in handler_argv */
	/* SPEC 8: TLS */
	const char	**tls_cert;		/* --tls-cert, paired with tls_key */
	const char	**tls_key;
	size_t		  ntls_cert;
	size_t		  ntls_key;
	int		  tls_implicit;		/* --tls: handshake first */
	int		  require_tls;
	const char	 *tls_protocols;
	const char	 *tls_ciphers;
	int		  tls_ask_client_cert;
	const char	 *tls_ticket_keys;
	/* SPEC 9: AUTH */
	const char	 *auth;			/* --auth BACKEND:ARG, or NULL */
	int		  require_auth;
	int		  auth_plaintext;
	int		  lmtp;			/* --lmtp: LHLO, per-recipient replies */
	int		  tls_handover;		/* smtpd-stdio-tls sends STARTTLS's 220 */
	/* SPEC 13: milters */
	const char	**milter;		/* --milter ADDRs, in order */
	size_t		  nmilter;
	int		  milter_default;	/* MILTER_DEFAULT_* */
	const char	 *authserv_id;		/* RFC 8601, [hostname] */
};

/* SPEC 8: what the TLS handshake gave, printable ASCII only. */
struct tls_info {
	char	 protocol[16];		/* TLSv1.3 */
	char	 cipher[64];
	char	 sni[256];		/* "" unless a host name was asked for */
	char	 client_subject[512];
	char	 client_hash[128];	/* SHA256:... */
	char	 client_cn[256];	/* the CommonNames, for --policy */
	char	 client_issuer_cn[256];
	int	 keybits;		/* the cipher's key, in bits */
	int	 resumed;
};

/* Where the client is, SPEC 3.  Empty strings when unknown. */
struct peer {
	char	remote_addr[64];
	char	remote_port[8];
	char	local_addr[64];
	char	local_port[8];
	char	remote_host[256];	/* sanitised TCPREMOTEHOST, or "" */
};

/* A growable byte buffer. */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

void	 buf_append(struct buf *, const void *, size_t);
void	 buf_appendf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_consume(struct buf *, size_t);
char	*buf_extend(struct buf *, size_t);
void	 buf_free(struct buf *);

/* fmt.c: per-message text without printf; truncates as snprintf does. */
#define FMT_NUM_MAX	24	/* digits of any unsigned long long, padded */
struct fmt {
	char	*p;
	size_t	 len;		/* asked for, as snprintf's result */
	size_t	 cap;
};

/* A string literal, its length known at compile time. */
#define fmt_lit(f, lit)	fmt_mem((f), "" lit, sizeof(lit) - 1)

void	 fmt_init(struct fmt *, char *, size_t);
void	 fmt_cut(struct fmt *, const char *, size_t);
/* Inline: a literal's few bytes are then copied without a call. */
static inline void
fmt_mem(struct fmt *f, const char *s, size_t n)
{
	if (f->len < f->cap && n < f->cap - f->len) {
		__builtin_memcpy(f->p + f->len, s, n);
		f->len += n;
	} else
		fmt_cut(f, s, n);
}
static inline void
fmt_str(struct fmt *f, const char *s)
{
	fmt_mem(f, s, __builtin_strlen(s));
}
void	 fmt_strn(struct fmt *, const char *, size_t);
void	 fmt_num(struct fmt *, unsigned long long, unsigned int, int, int);
void	 fmt_u(struct fmt *, unsigned long long);
void	 fmt_i(struct fmt *, long long);
void	 fmt_fixed3(struct fmt *, double);
const char *fmt_end(struct fmt *);
int	 fmt_full(const struct fmt *);

/* addr.c: MAIL/RCPT arguments, RFC 5321 4.1.2 and the ESMTP parameters. */
enum addr_verb {
	ADDR_MAIL,
	ADDR_RCPT
};

struct addr_limits {
	long long	size_limit;	/* 0 = no limit */
	int		smtputf8;	/* --smtputf8 given */
	int		sevenbit;	/* --7bit given */
	int		utf8_txn;	/* MAIL carried SMTPUTF8 (for RCPT) */
	int		tls;		/* under TLS: REQUIRETLS is allowed */
};

struct addr_result {
	char	 path[SMTP_PATH_MAX + 1];	/* without brackets; "" for <> */
	char	 options[SMTP_MAILLINE_MAX];	/* "SIZE=10 BODY=8BITMIME" */
	int	 utf8;				/* SMTPUTF8 parameter present */
	int	 code;				/* reply code when parsing failed */
	const char *reply;			/* full reply text when failed */
	int	 binarymime;			/* BODY=BINARYMIME */
	int	 requiretls;			/* REQUIRETLS, RFC 8689 */
};

int	 addr_parse(enum addr_verb, const char *, size_t,
	    const struct addr_limits *, struct addr_result *);
size_t	 utf8_len(const unsigned char *, const unsigned char *);

/* session.c: the SMTP dialogue, fed bytes, emits replies and actions. */
enum session_action {
	SA_NEED_INPUT,	/* all input consumed: flush replies, read more */
	SA_FLUSH,	/* reply queue is large: write it before going on */
	SA_SPOOL,	/* append session.data to the spool, then clear it */
	SA_DELIVER,	/* spool done: flush, run the handler, call back */
	SA_CHECK_RCPT,	/* check session.pending, call session_rcpt_checked */
	SA_CLOSE,	/* flush and exit with session.exit_status */
	SA_STARTTLS,	/* flush, drop the rest of the input, handshake */
	SA_AUTH,	/* check session_auth_request(), session_auth_checked */
	SA_AUTH_MECHS,	/* ask the backend, call session_auth_mechanisms */
	SA_CHECK_MAIL,	/* milters: check the MAIL, call session_mail_checked */
	SA_CHECK_DATA	/* milters: check the DATA, call session_data_checked */
};

enum session_state {
	SS_INIT,	/* before HELO/EHLO */
	SS_HELO,	/* greeted, no transaction */
	SS_MAIL,	/* MAIL accepted */
	SS_RCPT,	/* at least one RCPT accepted */
	SS_RCPT_CHECK,	/* a RCPT waits for its checks (SA_CHECK_RCPT) */
	SS_DATA,	/* reading the message */
	SS_DELIVER,	/* waiting for the handler's reply */
	SS_CLOSED,
	SS_STARTTLS,	/* 220 sent, waiting for the handshake */
	SS_AUTH_CONT,	/* 334 sent, waiting for a SASL response line */
	SS_AUTH_CHECK,	/* credentials complete, waiting for the backend */
	SS_BDAT,	/* reading the octets of a BDAT chunk */
	SS_AUTH_MECHS,	/* an EHLO waits for the backend's mechanisms */
	SS_MAIL_CHECK,	/* a MAIL waits for its checks (SA_CHECK_MAIL) */
	SS_DATA_CHECK	/* a DATA waits for its checks (SA_CHECK_DATA) */
};

/* SPEC 9: a SASL exchange in progress, PLAIN or LOGIN. */
#define AUTH_MECH_PLAIN		0x1
#define AUTH_MECH_LOGIN		0x2
#define AUTH_USER_MAX		256	/* a user name we take or pass on, incl. NUL */
#define AUTH_PASSWORD_MAX	256	/* a password we pass on, incl. NUL */

enum auth_verdict {
	AUTH_OK,
	AUTH_REFUSED,
	AUTH_TEMPFAIL
};

struct sasl {
	unsigned int	 mech;		/* AUTH_MECH_* */
	int		 step;		/* LOGIN: 0 username, 1 password */
	int		 authz_bad;	/* PLAIN authzid neither "" nor user */
	char		 user[AUTH_USER_MAX];
	char		 password[AUTH_PASSWORD_MAX];
};

/* DATA decoder states, see data.c. */
enum data_state {
	DS_BOL,		/* at the start of a line */
	DS_DOT,		/* a dot at the start of a line */
	DS_DOT_CR,	/* ".\r" at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR		/* a CR inside a line */
};

struct data_decoder {
	enum data_state	 state;
	int		 bol_crlf;	/* this line began after a CRLF */
	int		 crlf_out;	/* emit CRLF line ends, else LF */
	int		 done;		/* saw <CRLF>.<CRLF> */
	int		 check_8bit;	/* look for bytes >= 0x80 (--7bit) */
	int		 eightbit;	/* saw one */
	uint64_t	 wire_size;	/* RFC 1870 size so far */
	int		 nodots;	/* BDAT: no dot-stuffing, no end of data */
};

void	 data_init(struct data_decoder *, int, int);
size_t	 data_decode(struct data_decoder *, const char *, size_t,
	    char *, size_t, size_t *);

/* The envelope of the transaction in progress. */
struct txn {
	char		 *mail_from;
	char		 *mail_options;
	int		  utf8;
	char		**rcpt;
	char		**rcpt_options;
	size_t		  nrcpt;
	size_t		  rcpt_bytes;	/* sum of strlen+1 over rcpt */
	size_t		  ropt_bytes;	/* sum of strlen+1 over rcpt_options */
	size_t		  exec_bytes;	/* what the recipients add to argv+env */
	const char	 *refusal;	/* reply at the final dot, no handler */
	struct buf	  prepend;	/* policy PREPEND headers, LF-ended */
	int		  too_big;
	int		  spool_failed;
	int		  binarymime;	/* MAIL had BODY=BINARYMIME */
	int		  requiretls;	/* MAIL had REQUIRETLS (RFC 8689) */
	int		  bdat;		/* a BDAT chunk came in this transaction */
	uint64_t	  bdat_size;	/* octets announced by its BDATs */
	char		 *quarantine;	/* a milter's reason, or NULL */
};

struct session {
	const struct config	*conf;
	enum session_state	 state;
	int			 esmtp;
	int			 more_input;	/* bytes follow this line now */
	char			 helo[SMTP_CMDLINE_MAX];
	struct txn		 txn;
	struct addr_result	 pending;	/* the RCPT being checked */
	enum session_state	 pending_from;	/* state before it */
	unsigned int		 txn_seq;	/* increments at each DATA */
	unsigned int		 mail_seq;	/* increments at each MAIL */
	struct data_decoder	 dec;
	long long		 errors;
	long long		 messages;	/* transactions answered 2xx */
	char			 last_code;	/* first digit of the last reply */
	int			 exit_status;

	/* Command line being assembled. */
	char			 line[SMTP_MAILLINE_MAX];	/* incl. CRLF */
	size_t			 linelen;
	int			 line_overflow;

	/* Output towards the I/O layer. */
	struct buf		 out;		/* replies to send */
	char			*data;		/* decoded message bytes */
	size_t			 datalen;

	/* SPEC 8 and 9. */
	int			 tls;		/* the handshake is done */
	struct tls_info		 tlsi;
	unsigned int		 auth_mechs;	/* what the backend offers */
	int			 auth_mechs_known;	/* asked (SA_AUTH_MECHS) */
	int			 auth_refused;	/* SASL lines that may follow a refused AUTH */
	int			 input_secret;	/* a SASL line was read: clear input */
	struct sasl		 sasl;
	char			 auth_user[AUTH_USER_MAX];	/* "" until AUTH */
	char			 auth_method[8];		/* PLAIN, LOGIN */
	/* The BDAT chunk being read (SS_BDAT). */
	uint64_t		 bdat_chunk;	/* its n */
	uint64_t		 bdat_left;	/* octets still to read */
	int			 bdat_last;	/* BDAT n LAST */
	const char		*bdat_reply;	/* refused at once: its reply */
	enum session_state	 bdat_from;	/* state before the BDAT */
};

void	 session_init(struct session *, const struct config *);
void	 session_free(struct session *);
enum session_action session_feed(struct session *, const char *, size_t,
	    size_t *);
enum session_action session_eof(struct session *);
enum session_action session_pregreet(struct session *);
enum session_action session_bad_proxy(struct session *);
enum session_action session_bad_handover(struct session *);
enum session_action session_timeout(struct session *);
enum session_action session_stop(struct session *);
void	 session_spooled(struct session *, int);
void	 session_delivered(struct session *, const char *);
void	 session_rcpt_checked(struct session *, int, const char *);
void	 session_prepend(struct session *, const char *);
void	 session_mail_checked(struct session *, int, const char *);
void	 session_data_checked(struct session *, int, const char *);
int	 session_set_sender(struct session *, const char *);
int	 session_add_rcpt(struct session *, const char *);
void	 session_del_rcpt(struct session *, const char *);
void	 session_quarantine(struct session *, const char *);
const char *session_refusal(const struct session *);
const char *session_protocol(const struct session *);
void	 session_tls_started(struct session *, const struct tls_info *);
struct handover;
void	 session_resume(struct session *, const struct handover *, int);
void	 session_tls_unavailable(struct session *);
enum session_action session_tls_failed(struct session *, int);
const struct sasl *session_auth_request(const struct session *);
void	 session_auth_mechanisms(struct session *, unsigned int);
void	 session_auth_checked(struct session *, enum auth_verdict,
	    const char *);
int	 session_in_message(const struct session *);
int	 session_reading_message(const struct session *);
int	 session_crlf(const struct session *);

/* spool.c: the unlinked spool file and its Received header. */
struct spool {
	int		 fd;		/* -1 until first used */
	unsigned int	 seq;		/* transaction the content belongs to */
	int		 started;	/* spool_begin done for seq */
	int		 failed;
	uint64_t	 size;		/* bytes in the file */
	char		 id[64];
	uint64_t	 header_end;	/* after Received and RCPT's PREPENDs */
	int		 hscan;		/* SPOOL_HS_*: the client's headers */
};

/*
 * How far message_spool's scan of the client's header section got.
 * SPOOL_HS_MAYBE (0, also a spool never scanned): a line there may
 * start an Authentication-Results header; any other: none can.
 */
enum {
	SPOOL_HS_MAYBE = 0,
	SPOOL_HS_LINE,		/* at a line's start */
	SPOOL_HS_MID,		/* inside a line */
	SPOOL_HS_BODY		/* past the header section: done */
};

struct received_info {
	const char		*helo;
	const struct peer	*peer;
	const char		*hostname;
	const char		*protocol;
	const char		*id;
	const char		*single_rcpt;	/* NULL unless one recipient */
	const struct tls_info	*tls;		/* NULL without TLS */
	int			 crlf;
};

int	 spool_begin(struct spool *, const struct received_info *);
int	 spool_write(struct spool *, const char *, size_t);
int	 spool_rewind(struct spool *);
int	 spool_insert(struct spool *, const char *, size_t);
void	 spool_close(struct spool *);
int	 spool_open(void);
int	 spool_copy(int, off_t *, int, uint64_t);
void	 spool_new_id(char *, size_t);
struct timeval;
void	 spool_format_id(char *, size_t, const struct timeval *,
	    unsigned long, unsigned int, const unsigned char [5]);
size_t	 received_header(char *, size_t, const struct received_info *,
	    time_t);

/* handler.c: run the handler once for a message. */
enum handler_end {
	HE_EXITED,
	HE_SIGNALED,
	HE_TIMEOUT,
	HE_EXEC_FAILED
};

struct handler_result {
	enum handler_end end;
	int		 status;	/* exit status or signal number */
	char		*out;		/* stdout that counts; handler_result_free */
	size_t		 outlen;
	int		 cut;		/* stdout went past the limit */
};

struct handler_job {
	const struct config	*conf;
	const struct peer	*peer;
	const struct session	*sess;
	const char		*id;
	int			 spool_fd;	/* -1: /dev/null */
	uint64_t		 spool_size;
	const char		*rcpt;		/* --rcpt-check: this RCPT */
	const char		*rcpt_option;
	size_t			 out_limit;	/* 0: HANDLER_OUTPUT_MAX */
};

/* What handler_exec() runs: argv and envp ready, stdin open. */
struct handler_cmd {
	char *const	*argv;
	char *const	*envp;
	int		 in;		/* stdin, -1: /dev/null */
	const char	*id;		/* the message id, for the log */
	const char	*what;		/* "handler", "rcpt-check" */
	long long	 timeout;	/* seconds, then TERM, then KILL */
	size_t		 out_limit;	/* stdout that counts, 0: HANDLER_OUTPUT_MAX */
};

void	 handler_exec(const struct handler_cmd *, struct handler_result *);

/* envelope.c: smtpd-stdio's message (or RCPT) to a handler_exec(). */
void	 handler_run(const struct handler_job *, struct handler_result *);
void	 handler_result_free(struct handler_result *);
size_t	 handler_lmtp_limit(size_t);

/* env.c: the handler's environment and argv, SPEC 5.1. */
struct env {
	char		**inherited;	/* ours, without stale SMTP_* */
	size_t		  ninherited;
	struct buf	  vars;		/* "NAME=value\0" of this message */
	size_t		 *offs;		/* where each starts in vars */
	size_t		  nvars;
	size_t		  capvars;
	char		**vec;		/* env_vector()'s result */
	size_t		  capvec;
};

void	 env_init(struct env *, const char *);
void	 env_clear(struct env *);
int	 env_add(struct env *, const char *, const char *, size_t);
void	 env_setn(struct env *, const char *, size_t, const char *);
void	 env_set_joined(struct env *, const char *, char *const *, size_t);
/* Inline, so that the length of a literal name is known when compiling. */
static inline void
env_set(struct env *e, const char *name, const char *value)
{
	env_setn(e, name, __builtin_strlen(name), value);
}
char	**env_vector(struct env *);
void	 env_free(struct env *);
char	**argv_expand(char *const *, const char *, char *const *, size_t);
void	 argv_free(char **);

/* spawn.c: how every program we run is started. */
int	 handler_spawn(pid_t *, int, int, int, char *const *, char *const *);
int	 spawn_pipes(int[2], int[2]);
int	 handler_spawn_fd3(pid_t *, int, int, int, int, char *const *,
	    char *const *);

/* reply.c: handler result to SMTP reply, SPEC 5.2. */
int	 reply_from_handler(const struct handler_result *, const char *,
	    struct buf *);
int	 reply_parse_text(const char *, size_t, struct buf *);
int	 reply_parse_output(const struct handler_result *, struct buf *);
int	 reply_lmtp(const struct handler_result *, const char *, size_t,
	    struct buf *);
void	 reply_repeat(const char *, size_t, struct buf *);

/* message.c: the current transaction's message, its spool and log line. */
struct timespec;
void	 message_id(const struct session *, struct spool *);
void	 message_start(struct session *, struct spool *, const struct peer *);
void	 message_spool(struct session *, struct spool *, const struct peer *);
const char *message_handler_status(const struct handler_result *, char *,
	    size_t);
void	 message_log(const struct session *, const struct spool *,
	    const struct peer *, uint64_t, const char *, const char *,
	    const struct timespec *);

/* clock.c: the monotonic clock of every deadline, in ms. */
long long conn_now_ms(void);

/* log.c */
void	 log_init(enum log_target, int);
void	 log_ident(const char *);
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info_text(const char *);
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
const char *log_escape(char *, size_t, const char *, size_t);
const char *log_quote(char *, size_t, const char *, size_t);
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 log_syslog_only(const char *);

/* conn.c: the client connection, deadlines, stop signals. */
enum conn_input {
	INPUT_DATA,
	INPUT_EOF,
	INPUT_TIMEOUT,
	INPUT_STOP,	/* SIGTERM, SIGHUP or SIGINT */
	INPUT_ERROR	/* under TLS: a record that does not decrypt (exit 1) */
};

void	 conn_init(void);
int	 conn_is_socket(void);
int	 conn_stop_requested(void);
enum conn_input conn_read(char *, size_t, size_t *, long long);
int	 conn_write(const char *, size_t, long long);
void	 conn_linger(void);
int	 conn_spoke_first(void);
int	 conn_wait_input(long long);
struct tls;
int	 conn_tls_start(struct tls *, long long, struct tls_info *);
void	 conn_tls_free(void);

/*
 * tls.c: TLS through GnuTLS, SPEC 8, in smtpd-stdio-tls; tls-exec.c in
 * smtpd-stdio, which runs smtpd-stdio-tls when TLS is configured.  The
 * tlsio_* calls never wait: a negative TLS_WANT_* says what for.
 */
#define TLS_WANT_POLLIN		(-2)	/* call again once fd 0 is readable */
#define TLS_WANT_POLLOUT	(-3)	/* call again once fd 1 is writable */
#define TLS_WANT_AGAIN		(-4)	/* call again at once */

#define TICKET_KEY_LEN		48	/* one key in --tls-ticket-keys, SPEC 8 */
#define TICKET_KEYS_MAX		4
#define TLSFILES_TLS12		0x1
#define TLSFILES_TLS13		0x2

/* tlsfiles.c: SPEC 8's files and lists, checked without a TLS library. */
const char *tlsfiles_path(const char *, char *, size_t);
unsigned int tlsfiles_protocols(const char *);
size_t	 tlsfiles_ticket_keys(const char *, unsigned char *, size_t);
void	 tlsfiles_pair(const struct config *, size_t, char *, char *,
	    const char **, const char **);
void	 tlsfiles_check(const struct config *);

/*
 * SPEC 8: what crosses from smtpd-stdio to smtpd-stdio-tls at STARTTLS,
 * in a memfd on HANDOVER_FD, never in the environment.
 */
#define HANDOVER_FD		7
#define HANDOVER_MAGIC		"smtpd-stdio/2"	/* new with each layout */
#define HANDOVER_NAME		"smtpd-stdio-handover"

struct handover {
	char		 magic[16];
	struct peer	 peer;		/* after PROXY, as the session saw it */
	long long	 session_end;	/* conn_now_ms() time: one clock */
	long long	 errors;
	long long	 messages;
	unsigned int	 txn_seq;	/* --policy's instance: never reused */
	int		 esmtp;		/* for a 454: the session goes on */
	enum log_target	 log;		/* syslog once fd 2 was the socket */
	char		 helo[SMTP_CMDLINE_MAX];
};

struct tls_conn;
void	 tlsconf_handover(const struct config *, char **);
int	 tlsconf_resumed(struct handover *);
void	 tlsconf_exec(const struct handover *);
struct tls *tlsconf_try(const struct config *);
struct tls *tlsconf_server(const struct config *);
void	 tlsconf_free(struct tls *);
struct tls_conn *tlsio_accept(struct tls *, int, int);
void	 tlsio_free(struct tls_conn *);
ssize_t	 tlsio_handshake(struct tls_conn *);
ssize_t	 tlsio_read(struct tls_conn *, void *, size_t);
ssize_t	 tlsio_write(struct tls_conn *, const void *, size_t);
ssize_t	 tlsio_close(struct tls_conn *);
int	 tlsio_eof(const struct tls_conn *);
void	 tlsio_info(struct tls_conn *, struct tls_info *);
const char *tlsio_error(const struct tls_conn *);

/* proxy.c: the PROXY protocol header, SPEC 10.1. */
#define PROXY_V1_MAX		107	/* the longest v1 line, CRLF included */
#define PROXY_KEEP		232	/* v2: 16 octets + the largest addresses */
#define PROXY_TIMEOUT		5	/* seconds, as Postfix's smtpd_upstream_proxy_timeout */

struct proxy_result {
	int	 addresses;		/* 0: keep the socket's (LOCAL, UNKNOWN) */
	char	 remote_addr[64];
	char	 remote_port[8];
	char	 local_addr[64];
	char	 local_port[8];
};

enum proxy_status {
	PROXY_OK,
	PROXY_EOF,
	PROXY_BAD
};

ssize_t	 proxy_need(const unsigned char *, size_t);
int	 proxy_parse(const unsigned char *, size_t, struct proxy_result *);
enum proxy_status proxy_read(long long, struct proxy_result *);

/* policy.c: --policy and --rcpt-check, SPEC 10.2. */
#define POLICY_REPLY_MAX	4096	/* one policy reply, attributes and all */

enum policy_verdict {
	PV_DUNNO,	/* DUNNO: on to the next check */
	PV_OK,		/* OK: accepted, no more checks */
	PV_PREPEND,	/* PREPEND header: text, on to the next */
	PV_WARN,	/* WARN text: logged, on to the next */
	PV_REFUSE,	/* reply in text */
	PV_DEFER_IF_PERMIT, /* 450 reply in text, if nothing later refuses */
	PV_DEFER_IF_REJECT, /* 450 reply in text, for a later 5xx */
	PV_UNSUPPORTED,	/* an action we cannot do: 451 4.3.5 */
	PV_GARBLED	/* no action= line, or not a policy reply */
};

struct policy_reply {
	enum policy_verdict	 verdict;
	char			 text[SMTP_REPLYLINE_MAX];	/* see above */
};

size_t	 policy_reply_end(const char *, size_t);
enum policy_verdict policy_parse_reply(const char *, size_t,
	    struct policy_reply *);

struct policy_state;
struct policy_ctx {
	const struct config	*conf;
	const struct peer	*peer;
	const struct session	*sess;
	const char		*state;		/* "RCPT" or "END-OF-MESSAGE" */
	const char		*id;		/* queue_id, "" if none */
	const char		*recipient;	/* "" at END-OF-MESSAGE */
	uint64_t		 size;
};

struct policy_state *policy_new(const struct config *);
void	 policy_free(struct policy_state *);
const char *policy_deferred(const struct policy_state *, int);
int	 policy_check(struct policy_state *, const struct policy_ctx *,
	    struct buf *, struct buf *);
/* net.c: connections with deadlines, for policy.c, milter.c and auth.c. */
int	 net_wait_fd(int, short, long long);
int	 net_connect_unix(const char *, long long);
int	 net_connect_inet(const char *, long long);
int	 net_write_all(int, const char *, size_t, long long);

/*
 * milter-proto.c: the Sendmail milter protocol, version 6 (SPEC 13), as
 * libmilter's mfdef.h names it; pure.
 */
#define MILTER_VERSION		6
#define MILTER_CHUNK		65535	/* body octets per SMFIC_BODY, libmilter's MILTER_CHUNK_SIZE */
#define MILTER_FRAME_MAX	(MILTER_CHUNK + 1)	/* the largest frame we take, command included */

/* Commands, ours to the filter. */
#define SMFIC_ABORT		'A'
#define SMFIC_BODY		'B'
#define SMFIC_CONNECT		'C'
#define SMFIC_MACRO		'D'
#define SMFIC_BODYEOB		'E'
#define SMFIC_HELO		'H'
#define SMFIC_HEADER		'L'
#define SMFIC_MAIL		'M'
#define SMFIC_EOH		'N'
#define SMFIC_OPTNEG		'O'
#define SMFIC_QUIT		'Q'
#define SMFIC_RCPT		'R'
#define SMFIC_DATA		'T'

/* Replies, the filter's to us. */
#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'

/* Actions: the modifications a filter may make. */
#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080

/* Protocol flags: stages the filter does not want, replies it won't send. */
#define SMFIP_NOCONNECT		0x00000001
#define SMFIP_NOHELO		0x00000002
#define SMFIP_NOMAIL		0x00000004
#define SMFIP_NORCPT		0x00000008
#define SMFIP_NOBODY		0x00000010
#define SMFIP_NOHDRS		0x00000020
#define SMFIP_NOEOH		0x00000040
#define SMFIP_NR_HDR		0x00000080
#define SMFIP_NOUNKNOWN		0x00000100
#define SMFIP_NODATA		0x00000200
#define SMFIP_SKIP		0x00000400
#define SMFIP_NR_CONN		0x00001000
#define SMFIP_NR_HELO		0x00002000
#define SMFIP_NR_MAIL		0x00004000
#define SMFIP_NR_RCPT		0x00008000
#define SMFIP_NR_DATA		0x00010000
#define SMFIP_NR_UNKN		0x00020000
#define SMFIP_NR_EOH		0x00040000
#define SMFIP_NR_BODY		0x00080000
#define SMFIP_HDR_LEADSPC	0x00100000
/* All of them: we skip any stage and wait for no reply where asked. */
#define MILTER_PROTOCOL_OFFER	0x001ff7ff

struct milter_optneg {
	uint32_t	 version;
	uint32_t	 actions;
	uint32_t	 protocol;
	uint32_t	 offered_actions;	/* in: what we offered */
};

struct milter_reply {
	char		 cmd;		/* SMFIR_* */
	const char	*data;		/* the data after cmd, in the frame */
	size_t		 len;
	uint32_t	 index;		/* INSHEADER, CHGHEADER */
	const char	*name;		/* header name */
	const char	*value;		/* header value, quarantine reason */
	char		 addr[SMTP_PATH_MAX];	/* CHGFROM, ADDRCPT, DELRCPT */
	char		 text[HANDLER_OUTPUT_MAX];	/* REPLYCODE, checked, CRLF */
};

size_t	 milter_frame_begin(struct buf *, char);
void	 milter_frame_end(struct buf *, size_t);
void	 milter_put_str(struct buf *, const char *);
void	 milter_put_u32(struct buf *, uint32_t);
ssize_t	 milter_frame_size(const unsigned char *, size_t);
int	 milter_parse_optneg(const char *, size_t, struct milter_optneg *);
int	 milter_parse_reply(const char *, size_t, struct milter_reply *);
uint32_t milter_reply_action(char);

/* milter.c: the client of the --milter filters, SPEC 13. */
enum milter_default {
	MILTER_DEFAULT_TEMPFAIL,	/* as Postfix's milter_default_action */
	MILTER_DEFAULT_ACCEPT,
	MILTER_DEFAULT_REJECT
};

enum milter_verdict {
	MV_ACCEPT,	/* go on */
	MV_REFUSE,	/* the reply is in the caller's buffer */
	MV_DISCARD	/* end of message: answer 250, run no handler */
};

struct milter_ctx {
	const struct session	*sess;
	const struct peer	*peer;
	const char		*id;		/* "" before the message has one */
	const char		*rcpt;		/* RCPT: the recipient */
	int			 spool_fd;	/* end of message: the spool */
	int			 spool_crlf;	/* its lines end in CRLF */
};

/* The modifications the filters asked for at end of message. */
#define MILTER_EDITS_MAX	(256 * 1024)	/* header edits held, in octets */

struct milter_edits {
	struct buf	 headers;	/* cmd, leadspc, u32 index, name NUL value NUL */
	int		 body_fd;	/* -1, or the replacement body, CRLF */
	int		 body_owner;	/* the filter it came from, -1 */
	uint64_t	 body_len;	/* octets of it so far */
	uint64_t	 body_max;	/* more is out of protocol; 0 = no bound */
	int		 filter;	/* the filter being heard (its index) */
	int		 failed;	/* could not keep one: 451 */
	int		 chgfrom;
	char		 from[SMTP_PATH_MAX];
	struct buf	 addrcpt;	/* addresses, each NUL-ended */
	struct buf	 delrcpt;
	size_t		 naddrcpt;
	char		*quarantine;	/* the reason, or NULL */
};

/* milter-edit.c: the spooled message read back, header by header. */
#define MILTER_HEADER_MAX	(MILTER_CHUNK - 1024)	/* one header we pass on */

struct msgread {
	int		 fd;
	off_t		 base;		/* file offset of buf[0] */
	size_t		 len, pos;
	char		 buf[8192];
};

void	 msgread_init(struct msgread *, int, off_t);
off_t	 msgread_tell(const struct msgread *);
int	 msgread_peek(struct msgread *);
size_t	 msgread_line(struct msgread *, struct buf *, size_t);
size_t	 msg_header_name(const char *, size_t, size_t *);
size_t	 msg_header_name_len(const char *, size_t);
int	 msg_next_header(struct msgread *, struct buf *, off_t *, off_t *);

struct milter_state;
void	 milter_edits_init(struct milter_edits *);
void	 milter_edits_free(struct milter_edits *);
int	 milter_edits_merge(struct milter_edits *, struct milter_edits *);
int	 milter_edit(struct milter_edits *, const struct milter_reply *,
	    int);
int	 milter_rewrite(const struct milter_edits *, struct spool *, int);
int	 milter_strip_results(struct spool *, const char *, int);
struct milter_state *milter_new(const struct config *);
void	 milter_free(struct milter_state *, const struct milter_ctx *);
enum milter_verdict milter_mail(struct milter_state *,
	    const struct milter_ctx *, struct buf *);
enum milter_verdict milter_data(struct milter_state *,
	    const struct milter_ctx *, struct buf *);
enum milter_verdict milter_rcpt(struct milter_state *,
	    const struct milter_ctx *, const char *, const char *,
	    struct buf *);
enum milter_verdict milter_message(struct milter_state *,
	    const struct milter_ctx *, struct milter_edits *, struct buf *);

/* milter-check.c: the engine's milter actions answered, SPEC 13. */
void	 milter_check_mail(struct session *, struct milter_state *,
	    const struct peer *);
void	 milter_check_data(struct session *, struct milter_state *,
	    const struct peer *);
int	 milter_check_rcpt(struct session *, struct milter_state *,
	    const struct peer *, struct buf *);
enum milter_verdict milter_check_message(struct session *,
	    struct milter_state *, struct spool *, const struct peer *,
	    struct buf *);
int	 milter_strip_forged(const struct session *, struct spool *);
void	 milter_end(struct milter_state *, const struct session *,
	    const struct peer *);

/* usage.c: usage and set-up errors, below every other module. */
void	 usage_error(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 setup_error(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 setup_errors_to(jmp_buf *);

/* options.c */
void	 options_parse(int, char **, struct config *);
const char *options_default_hostname(void);

/* optsyntax.c: option values' syntax, pure (no I/O). */
#define STAGE_RCPT	0x1	/* a --policy ADDR asked at RCPT ("rcpt:") */
#define STAGE_DATA	0x2	/* ... at END-OF-MESSAGE ("data:") */
#define DOVECOT_PREFIX		"dovecot:"	/* --auth backends */
#define CHECKPW_PREFIX		"checkpassword:"

int	 dns_name_ok(const char *, size_t);
int	 hostname_ok(const char *);
int	 relay_ok(const char *);
int	 policy_addr_ok(const char *);
const char *policy_stage(const char *, unsigned int *);
int	 milter_addr_ok(const char *);
int	 auth_spec_ok(const char *);

/* peer.c */
void	 peer_lookup(struct peer *);
void	 peer_from_proxy(struct peer *, const struct proxy_result *);


/* base64.c: strict RFC 4648 base64, for SASL (RFC 4954). */
#define B64_ENCODED_LEN(n)	(((n) + 2) / 3 * 4 + 1)	/* incl. the NUL */
#define B64_DECODED_MAX(n)	((n) / 4 * 3)

ssize_t	 b64_decode(const char *, size_t, unsigned char *, size_t);
size_t	 b64_encode(const unsigned char *, size_t, char *, size_t);

/* auth.c: the --auth backends, SPEC 9 (AUTH_MECH_* and the verdicts above). */

struct auth_request {
	const char		*mech;		/* "PLAIN" or "LOGIN", what the client chose */
	const char		*user;		/* authentication identity */
	const char		*password;	/* the caller clears it afterwards */
	const struct peer	*peer;		/* lip/rip/lport/rport for Dovecot */
	int			 secured;	/* under TLS */
	long long		 deadline;	/* conn_now_ms() time by which to give up: AUTH_TEMPFAIL */
	long long		 handler_timeout; /* seconds, for checkpassword */
};

#define AUTH_MECH_WAIT		5	/* seconds Dovecot has to say its mechanisms */

struct auth_backend;
struct auth_backend *auth_new(const char *);
unsigned int auth_mechanisms(struct auth_backend *, long long);
enum auth_verdict auth_check(struct auth_backend *,
	    const struct auth_request *, char *, size_t);
void	 auth_free(struct auth_backend *);

/* auth.c, the Dovecot auth-client protocol's server lines (pure). */
#define DOVECOT_LINE_MAX	8192	/* one server line, LF included */
#define DOVECOT_ARGS_MAX	64	/* tab-separated fields after the id */

enum dovecot_kind {
	DL_VERSION,	/* VERSION major minor */
	DL_MECH,	/* MECH name flags... */
	DL_SPID,
	DL_CUID,
	DL_COOKIE,
	DL_DONE,
	DL_OK,		/* OK id params... */
	DL_CONT,	/* CONT id base64 */
	DL_FAIL,	/* FAIL id params... */
	DL_OTHER	/* a well-formed line we ignore */
};

struct dovecot_line {
	enum dovecot_kind	 kind;
	unsigned long		 id;		/* OK, CONT, FAIL: the request id */
	unsigned long		 major, minor;	/* VERSION */
	char			 mech[32];	/* MECH: the name, upper case */
	int			 temp;		/* FAIL: code=temp_fail or temp */
	char			 user[AUTH_USER_MAX];	/* OK, FAIL: user=, "" if none */
	char			 cont[DOVECOT_LINE_MAX];	/* CONT: the base64 data */
};

int	 dovecot_parse_line(const char *, size_t, struct dovecot_line *);

/* deadline.c: by when the client owes us what, SPEC 10.3. */
struct deadlines {
	long long	 session_end;	/* --session-timeout */
	long long	 line_end;	/* --timeout, from our last reply */
	long long	 data_start;	/* the 354 or first BDAT; 0 outside */
	uint64_t	 data_bytes;	/* read since data_start */
	unsigned int	 data_seq;	/* the transaction data_start is for */
	const char	*nearest;	/* which one deadline_next chose */
};

void	 deadline_start(struct deadlines *, const struct config *);
void	 deadline_replied(struct deadlines *, const struct config *);
long long deadline_ours(const struct deadlines *, const struct config *);
long long deadline_next(const struct session *, struct deadlines *);
void	 deadline_count(const struct session *, struct deadlines *, size_t);
void	 deadline_log_timeout(const struct deadlines *);

/*
 * The engine's actions answered, each with its concern (serve.c holds
 * the table): deliver.c, policy-check.c, auth-check.c, starttls.c.
 */
void	 deliver_message(struct session *, struct spool *,
	    struct policy_state *, struct milter_state *, const struct peer *);
void	 policy_check_rcpt(struct session *, struct policy_state *,
	    struct milter_state *, const struct peer *);
int	 policy_check_message(struct session *, struct policy_state *,
	    struct spool *, const struct peer *, struct buf *);
void	 auth_answer(struct session *, struct auth_backend *,
	    const struct peer *);
void	 auth_offer(struct session *, struct auth_backend *);
int	 starttls_run(struct session *, struct tls *, struct deadlines *,
	    const struct peer *);

/* serve.c: the action loop around the session engine. */
#define BAD_HANDOVER	2	/* serve()'s bad_proxy: proxy_header()'s is 1 */
int	 serve(const struct config *, const struct peer *, int, struct tls *,
	    const struct handover *);

#endif /* SMTPD_STDIO_H */
