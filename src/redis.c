/*-------------------------------------------------------------------------
 *
 * redis.c
 *		The Redis connection layer: cachebridge.redis_url parsing, one
 *		persistent connection per backend, and pipelined execution.
 *
 * The connection is opened lazily on first use and kept for the life of
 * the backend.  This file owns its socket: a host name is resolved with
 * getaddrinfo_a, so that even a resolver that does not answer is bounded
 * by connect_timeout, each address is connected to in turn without
 * blocking, and for rediss:// a TLS session runs over the socket (tls.c
 * does the OpenSSL part).  hiredis serves only as the parser of replies
 * (redisReader).  All socket I/O is non-blocking and waits on a WaitEventSet
 * together with the process latch, so that a query cancel interrupts a
 * slow Redis (where interrupts are allowed), postmaster death ends the
 * wait, and every wait is bounded: cachebridge.connect_timeout for the
 * connection (name lookup, TCP and TLS handshake together),
 * cachebridge.command_timeout for each stretch without progress while
 * sending commands or reading replies.
 *
 * A pipeline that fails on a connection reused from an earlier call before
 * any reply arrived (the server restarted, an idle timeout closed it) is
 * retried once on a fresh connection.
 *
 * Nothing here raises an ERROR while talking to Redis: failures are
 * returned in a CbRedisError, and the caller decides whether they are an
 * ERROR (SQL functions) or a WARNING (work done after commit).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "redis.h"
#include "scripts.h"
#include "stats.h"
#include "tls.h"

/* The connection of this backend. */
typedef struct CbRedisConn
{
	pgsocket	fd;				/* PGINVALID_SOCKET when not connected */
	SSL		   *ssl;			/* the TLS session over fd, for rediss:// */
	bool		tls_failed;		/* the session failed: no close_notify */
	redisReader *reader;		/* parses the replies that arrive */
	WaitEventSet *wes;			/* latch, postmaster death, socket */
	int			sockpos;		/* position of the socket event in wes */
	bool		busy;			/* true while a round trip is under way */
	bool		latch_taken;	/* a socket wait reset the latch */
	uint64		generation;		/* target generation it was opened for */
	uint64		tls_generation; /* and generation of the TLS settings */
} CbRedisConn;

static CbRedisConn conn = {.fd = PGINVALID_SOCKET};

/* Bytes read from the socket at a time. */
#define CB_READ_CHUNK 65536

/*
 * What CLIENT SETNAME names the connection, "cachebridge:<role>:<dbname>"
 * (see CbRedisSetClientName); empty until known.
 */
static char client_name[128];

/*
 * A host name lookup runs in glibc's helper thread (getaddrinfo_a), so
 * that it is bounded by connect_timeout.  One given up at its deadline may
 * still be running and writing into its request: such requests are kept
 * here until they end, then freed.
 */
typedef struct CbLookup
{
	struct gaicb cb;
	struct addrinfo hints;
	char		service[8];
	char		name[256];
} CbLookup;

#define CB_MAX_ABANDONED_LOOKUPS 16
static CbLookup *abandoned_lookups[CB_MAX_ABANDONED_LOOKUPS];
static CbLookup *current_lookup = NULL;

/*
 * A deadline every wait on Redis ends by, whatever progress is made, or 0
 * for none (see CbRedisSetDeadline).
 */
static TimestampTz total_deadline = 0;
static int	total_deadline_ms = 0;

/* Replies of the connection handshake that matter. */
typedef struct CbHandshakeState
{
	int			nfatal;			/* replies to AUTH and SELECT come first */
	char		error[256];		/* the first error among them */
} CbHandshakeState;

/* The parsed cachebridge.redis_url (GUC "extra"), and its generation. */
static CbRedisTarget *cur_target = NULL;
static uint64 target_generation = 0;

static bool CbConnect(CbRedisError *err);
static bool CbRoundTrip(const char *buf, size_t len, int ncommands,
						CbReplyCallback callback, void *arg,
						CbRedisError *err, int *nreplies);
static void CbSetError(CbRedisError *err, CbRedisFailure failure,
					   const char *fmt,...) pg_attribute_printf(3, 4);

/* ---------------------------------------------------------------------
 * cachebridge.redis_url
 * ---------------------------------------------------------------------
 */

/* The reason given for a URL whose credentials hold an unencoded '/'. */
#define CB_URL_AT_AFTER_SLASH \
	"The URL has an \"@\" after a \"/\": encode \"/\" in a user name or password as %%2F."

/* Copies src[0..len) into dst (of size dstlen), decoding %XX escapes. */
static bool
CbCopyDecoded(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t		o = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		c = src[i];

		if (c == '%')
		{
			char		hex[3];

			if (i + 2 >= len ||
				!isxdigit((unsigned char) src[i + 1]) ||
				!isxdigit((unsigned char) src[i + 2]))
				return false;
			hex[0] = src[i + 1];
			hex[1] = src[i + 2];
			hex[2] = '\0';
			c = (char) strtol(hex, NULL, 16);
			i += 2;
		}
		if (o + 1 >= dstlen)
			return false;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return true;
}

/* Parses a non-negative decimal integer no larger than max. */
static bool
CbParseUInt(const char *s, size_t len, long max, int *result)
{
	long		v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return false;
	}
	*result = (int) v;
	return true;
}

/*
 * Parses the "[[user]:password@]" part that may open an authority.
 * Returns the position just after it.
 */
static const char *
CbParseUserInfo(const char *p, const char *end, CbRedisTarget *t,
				char *errbuf, size_t errlen)
{
	const char *at = NULL;
	const char *colon;

	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return p;

	colon = memchr(p, ':', at - p);
	if (colon == NULL)
	{
		snprintf(errbuf, errlen,
				 "Credentials must be written as \"[user]:password@\" before the host.");
		return NULL;
	}
	if (!CbCopyDecoded(t->user, sizeof(t->user), p, colon - p) ||
		!CbCopyDecoded(t->password, sizeof(t->password), colon + 1, at - colon - 1))
	{
		snprintf(errbuf, errlen,
				 "The user name or password is too long or has a malformed %%-escape.");
		return NULL;
	}
	return at + 1;
}

/*
 * Parses url into *t.  On failure returns false with a reason, written as
 * a full sentence, in errbuf.  The reason describes the problem without
 * quoting any part of url: a malformed URL does not say which of its parts
 * is the password (in "redis://u:pa/ss@h" the port would be "pa"), so a
 * quoted part could be one.
 */
bool
CbParseRedisUrl(const char *url, CbRedisTarget *t, char *errbuf, size_t errlen)
{
	const char *p;
	const char *end;

	memset(t, 0, sizeof(*t));
	t->port = 6379;

	if (strncmp(url, "unix://", 7) == 0)
	{
		const char *query;

		p = url + 7;
		end = p + strlen(p);
		query = strchr(p, '?');
		if (query == NULL)
			query = end;
		/* credentials may stand before the path: unix://:secret@/path */
		if (*p != '/')
		{
			const char *slash = memchr(p, '/', query - p);

			if (slash == NULL)
				slash = query;
			p = CbParseUserInfo(p, slash, t, errbuf, errlen);
			if (p == NULL)
				return false;
		}
		if (*p != '/')
		{
			snprintf(errbuf, errlen,
					 memchr(p, '@', query - p) != NULL
					 ? CB_URL_AT_AFTER_SLASH
					 : "A unix socket URL needs an absolute path, as in \"unix:///run/redis/redis.sock\".");
			return false;
		}
		if (query - p >= (long) sizeof(t->socket_path))
		{
			snprintf(errbuf, errlen,
					 "The socket path is longer than 107 bytes.");
			return false;
		}
		memcpy(t->socket_path, p, query - p);
		t->socket_path[query - p] = '\0';
		if (*query == '?')
		{
			if (strncmp(query, "?db=", 4) != 0 ||
				!CbParseUInt(query + 4, strlen(query + 4), PG_INT32_MAX, &t->db))
			{
				snprintf(errbuf, errlen,
						 "The only query parameter accepted is \"db=N\", with N a non-negative integer.");
				return false;
			}
		}
		snprintf(t->display, sizeof(t->display), "%s", t->socket_path);
		return true;
	}

	if (strncmp(url, "rediss://", 9) == 0)
	{
		t->tls = true;
		p = url + 9;
	}
	else if (strncmp(url, "redis://", 8) == 0)
		p = url + 8;
	else
	{
		snprintf(errbuf, errlen,
				 "The URL must start with \"redis://\", \"rediss://\" or \"unix://\".");
		return false;
	}

	end = strchr(p, '/');
	if (end == NULL)
		end = p + strlen(p);
	else if (strchr(end, '@') != NULL)
	{
		/* "redis://user:pa/ss@host": the credentials end after the first '/' */
		snprintf(errbuf, errlen, CB_URL_AT_AFTER_SLASH);
		return false;
	}
	p = CbParseUserInfo(p, end, t, errbuf, errlen);
	if (p == NULL)
		return false;

	/* host, possibly a bracketed IPv6 address */
	{
		const char *hostend;
		const char *after;

		if (*p == '[')
		{
			hostend = memchr(p, ']', end - p);
			if (hostend == NULL)
			{
				snprintf(errbuf, errlen, "An IPv6 address must be closed with \"]\".");
				return false;
			}
			p++;
			after = hostend + 1;
		}
		else
		{
			hostend = memchr(p, ':', end - p);
			if (hostend == NULL)
				hostend = end;
			after = hostend;
		}
		if (hostend == p)
		{
			snprintf(errbuf, errlen, "The URL names no host.");
			return false;
		}
		if (hostend - p >= (long) sizeof(t->host))
		{
			snprintf(errbuf, errlen, "The host name is too long.");
			return false;
		}
		memcpy(t->host, p, hostend - p);
		t->host[hostend - p] = '\0';

		if (after < end && *after == ':')
		{
			if (!CbParseUInt(after + 1, end - after - 1, 65535, &t->port) ||
				t->port == 0)
			{
				snprintf(errbuf, errlen,
						 "The port is not an integer between 1 and 65535.");
				return false;
			}
		}
		else if (after != end)
		{
			snprintf(errbuf, errlen, "Unexpected text after the host.");
			return false;
		}
	}

	/* optional "/db" */
	if (*end == '/' && end[1] != '\0' &&
		!CbParseUInt(end + 1, strlen(end + 1), PG_INT32_MAX, &t->db))
	{
		snprintf(errbuf, errlen,
				 "The database number after the host is not a non-negative integer.");
		return false;
	}

	snprintf(t->display, sizeof(t->display),
			 strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host, t->port);
	return true;
}

/* GUC check hook: parse once, keep the result as "extra". */
bool
CbRedisUrlCheckHook(char **newval, void **extra, GucSource source)
{
	CbRedisTarget parsed;
	char		reason[256];
	CbRedisTarget *copy;

	if (*newval == NULL || !CbParseRedisUrl(*newval, &parsed, reason, sizeof(reason)))
	{
		/* replaces the default message, which would print the password */
		GUC_check_errmsg("invalid value for parameter \"cachebridge.redis_url\"");
		GUC_check_errdetail("%s", *newval ? reason : "The URL must not be empty.");
		GUC_check_errhint("Use redis://[[user]:password@]host[:port][/db], rediss:// for TLS, or unix:///path/to/redis.sock[?db=N].");
		return false;
	}
	copy = malloc(sizeof(CbRedisTarget));	/* freed by guc.c */
	if (copy == NULL)
		return false;
	memcpy(copy, &parsed, sizeof(CbRedisTarget));
	*extra = copy;
	return true;
}

/* GUC assign hook: the next call reconnects to the new target. */
void
CbRedisUrlAssignHook(const char *newval, void *extra)
{
	cur_target = (CbRedisTarget *) extra;
	target_generation++;
}

/*
 * GUC assign hook of cachebridge.redis_password_file: the next call
 * reconnects, authenticating with the new file.
 */
void
CbRedisPasswordFileAssignHook(const char *newval, void *extra)
{
	target_generation++;
}

/* The server as shown in messages: "host:port" or a socket path. */
const char *
CbRedisServerName(void)
{
	return cur_target ? cur_target->display : "(none)";
}

/* ---------------------------------------------------------------------
 * The connection
 * ---------------------------------------------------------------------
 */

static void
CbSetError(CbRedisError *err, CbRedisFailure failure, const char *fmt,...)
{
	va_list		ap;

	err->failure = failure;
	snprintf(err->server, sizeof(err->server), "%s", CbRedisServerName());
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

/* Closes the connection, if any; never fails. */
void
CbRedisDisconnect(void)
{
	if (conn.wes != NULL)
		FreeWaitEventSet(conn.wes);
	if (conn.ssl != NULL)
		CbTlsClose(conn.ssl, !conn.tls_failed);
	if (conn.fd != PGINVALID_SOCKET)
		close(conn.fd);
	if (conn.reader != NULL)
		redisReaderFree(conn.reader);
	conn.wes = NULL;
	conn.ssl = NULL;
	conn.tls_failed = false;
	conn.fd = PGINVALID_SOCKET;
	conn.reader = NULL;
	conn.busy = false;
}

/*
 * Names a backend's connections "cachebridge:backend:<dbname>" if that is
 * not done yet (the worker names its own) and the database name can be
 * read: in a transaction.
 */
static void
CbNameBackend(void)
{
	char	   *dbname;

	if (client_name[0] != '\0' || IsParallelWorker() ||
		!IsTransactionState() || !OidIsValid(MyDatabaseId))
		return;
	dbname = get_database_name(MyDatabaseId);
	if (dbname != NULL)
		CbRedisSetClientName("backend", dbname);
}

/*
 * Transaction callback: learns the database name before a commit, whose
 * delivery may open the first connection when no catalog can be read.
 */
static void
CbRedisXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
		CbNameBackend();
}

/* Module load: registers the transaction callback above. */
void
CbRedisInit(void)
{
	RegisterXactCallback(CbRedisXactCallback, NULL);
}

/*
 * Names the connections of this process in CLIENT LIST, as
 * "cachebridge:<role>:<dbname>" with role "backend" or "worker".  Redis
 * client names cannot hold spaces or newlines: those (and quotes) become
 * "_".  Takes effect from the next connection.
 */
void
CbRedisSetClientName(const char *role, const char *dbname)
{
	snprintf(client_name, sizeof(client_name), "cachebridge:%s:%s", role, dbname);
	for (char *c = client_name; *c != '\0'; c++)
		if ((unsigned char) *c <= ' ' || *c == '"' || *c == '\'' || *c == 0x7f)
			*c = '_';
}

/* Milliseconds left until deadline, at least 0. */
static long
CbMillisLeft(TimestampTz deadline)
{
	return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
}

/*
 * Bounds every wait on Redis until CbRedisClearDeadline to ms from now in
 * all, on top of the per-wait timeouts, which restart whenever Redis makes
 * progress: a Redis that trickles its replies cannot hold the caller
 * longer.  For work after commit, where interrupts are held.
 */
void
CbRedisSetDeadline(int ms)
{
	total_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	total_deadline_ms = ms;
}

/* Lifts the bound of CbRedisSetDeadline. */
void
CbRedisClearDeadline(void)
{
	total_deadline = 0;
}

/*
 * True if the total deadline, if any, has passed: a failure then says the
 * work was too much for the time, not that Redis is unreachable.
 */
bool
CbRedisPastDeadline(void)
{
	return total_deadline != 0 && GetCurrentTimestamp() >= total_deadline;
}

/*
 * Fills err for a wait that ended without the socket becoming ready:
 * past the total deadline, or the wait's own timeout (named by what).
 */
static void
CbSetTimeoutError(CbRedisError *err, CbRedisFailure failure, const char *what,
				  int ms)
{
	if (CbRedisPastDeadline())
		CbSetError(err, failure,
				   "Not done within cachebridge.delivery_timeout (%d ms) in all.",
				   total_deadline_ms);
	else
		CbSetError(err, failure, "%s within cachebridge.%s (%d ms).",
				   failure == CB_REDIS_CONNECT ? "No connection" : "No answer",
				   what, ms);
}

/*
 * Waits until the socket is ready for any of events, or deadline (or the
 * total deadline) passes.  Returns the ready socket events, or 0 on
 * timeout.  Query cancel and termination are served here when interrupts
 * are not held.
 */
static uint32
CbWaitSocket(uint32 events, TimestampTz deadline)
{
	if (total_deadline != 0 && total_deadline < deadline)
		deadline = total_deadline;
	ModifyWaitEvent(conn.wes, conn.sockpos, events, NULL);
	for (;;)
	{
		WaitEvent	ev;
		long		timeout = CbMillisLeft(deadline);
		int			n;

		if (timeout <= 0)
			return 0;
		n = WaitEventSetWait(conn.wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
		if (n == 0)
			continue;			/* re-check the deadline */
		if (ev.events & WL_LATCH_SET)
		{
			/* not ours: CbExecuteBuffer sets it again for the caller */
			ResetLatch(MyLatch);
			conn.latch_taken = true;
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			return ev.events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE);
	}
}

/*
 * Reads the AUTH password from cachebridge.redis_password_file into buf
 * (of size buflen, NUL-terminated, length in *len): the first line of the
 * file, without its line end.  As libpq asks of a password file, the file
 * must be a regular file that neither group nor others may access.
 * Returns false with err filled otherwise; err names the file, never its
 * content.  Raises no ERROR (it runs after commit too): the file is opened
 * with BasicOpenFile and closed before returning.
 */
static bool
CbReadPasswordFile(char *buf, size_t buflen, size_t *len, CbRedisError *err)
{
	const char *path = cb_redis_password_file;
	struct stat st;
	int			fd;
	size_t		n = 0;
	const char *problem = NULL;

	fd = BasicOpenFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		CbSetError(err, CB_REDIS_CONNECT,
				   "Could not open cachebridge.redis_password_file \"%s\": %s.",
				   path, strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0)
		problem = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		problem = "it is not a regular file";
	else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		problem = "it has group or world access; permissions should be u=rw (0600) or less";
	while (problem == NULL && n < buflen - 1)
	{
		ssize_t		r = read(fd, buf + n, buflen - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			problem = strerror(errno);
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = '\0';
	*len = strcspn(buf, "\r\n");
	if (problem == NULL && *len == n && n == buflen - 1)
		problem = "its first line is too long";
	else if (problem == NULL && *len == 0)
		problem = "its first line is empty";
	explicit_bzero(buf + *len, buflen - *len);
	if (problem != NULL)
	{
		explicit_bzero(buf, buflen);
		CbSetError(err, CB_REDIS_CONNECT,
				   "Cannot use cachebridge.redis_password_file \"%s\": %s.",
				   path, problem);
		return false;
	}
	return true;
}

/*
 * Sends AUTH and SELECT as the target asks, names the connection with
 * CLIENT SETNAME, and loads cachebridge's scripts; false with err filled on failure.  The password comes from
 * cachebridge.redis_password_file, read anew for every connection so that
 * a rotated password is picked up, or else from the URL.
 */
static bool
CbHandshake(CbRedisError *err)
{
	CbPipeline	p;
	bool		ok;
	int			nreplies;
	CbHandshakeState state;
	char		password[CB_REDIS_PASSWORD_MAX];
	size_t		password_len;

	if (cb_redis_password_file != NULL && cb_redis_password_file[0] != '\0')
	{
		if (!CbReadPasswordFile(password, sizeof(password), &password_len, err))
			return false;
	}
	else
	{
		password_len = strlen(cur_target->password);
		memcpy(password, cur_target->password, password_len + 1);
	}

	CbPipelineInit(&p);
	if (password_len > 0 || cur_target->user[0] != '\0')
	{
		bool		with_user = cur_target->user[0] != '\0';

		CbPipelineBegin(&p, with_user ? 3 : 2, NULL, 0);
		CbPipelineArgStr(&p, "AUTH");
		if (with_user)
			CbPipelineArgStr(&p, cur_target->user);
		CbPipelineArg(&p, password, password_len);
	}
	explicit_bzero(password, sizeof(password));
	if (cur_target->db != 0)
	{
		CbPipelineBegin(&p, 2, NULL, 0);
		CbPipelineArgStr(&p, "SELECT");
		CbPipelineArgInt(&p, cur_target->db);
	}
	/* a failed SCRIPT LOAD (an ACL without it) shows later, as NOSCRIPT */
	state.nfatal = p.ncommands;
	state.error[0] = '\0';
	/* and a refused CLIENT SETNAME only leaves the connection unnamed */
	CbNameBackend();
	if (client_name[0] != '\0')
	{
		CbPipelineBegin(&p, 3, NULL, 0);
		CbPipelineArgStr(&p, "CLIENT");
		CbPipelineArgStr(&p, "SETNAME");
		CbPipelineArgStr(&p, client_name);
	}
	CbAppendScriptLoads(&p);

	ok = CbRoundTrip(p.buf.data, p.buf.len, p.ncommands, NULL, &state, err,
					 &nreplies);
	explicit_bzero(p.buf.data, p.buf.len);
	pfree(p.buf.data);
	/* a rejected AUTH or SELECT is a failure to connect; a timeout stays one */
	if (ok && state.error[0] != '\0')
	{
		CbSetError(err, CB_REDIS_CONNECT, "%s", state.error);
		return false;
	}
	return ok;
}

/* Frees a lookup that has ended, with its result. */
static void
CbFreeLookup(CbLookup *lookup)
{
	if (lookup->cb.ar_result != NULL)
		freeaddrinfo(lookup->cb.ar_result);
	free(lookup);
}

/*
 * Gives up the current lookup: cancelled, or, if glibc's thread is still
 * working on it, kept until it ends (and leaked if too many are kept: it
 * must not be freed under that thread).  Frees the kept ones that ended.
 */
static void
CbAbandonLookup(void)
{
	CbLookup   *lookup = current_lookup;

	current_lookup = NULL;
	for (int i = 0; i < CB_MAX_ABANDONED_LOOKUPS; i++)
	{
		if (abandoned_lookups[i] != NULL &&
			gai_error(&abandoned_lookups[i]->cb) != EAI_INPROGRESS)
		{
			CbFreeLookup(abandoned_lookups[i]);
			abandoned_lookups[i] = NULL;
		}
	}
	if (lookup == NULL)
		return;
	if (gai_cancel(&lookup->cb) != EAI_NOTCANCELED ||
		gai_error(&lookup->cb) != EAI_INPROGRESS)
	{
		CbFreeLookup(lookup);
		return;
	}
	for (int i = 0; i < CB_MAX_ABANDONED_LOOKUPS; i++)
	{
		if (abandoned_lookups[i] == NULL)
		{
			abandoned_lookups[i] = lookup;
			return;
		}
	}
}

/*
 * Resolves the target's host to the addresses to try, by deadline:
 * an IP address at once, a host name with getaddrinfo_a, whose wait
 * serves query cancel (where interrupts are allowed) and postmaster
 * death.  On success the caller frees *result with freeaddrinfo.
 */
static bool
CbResolve(TimestampTz deadline, struct addrinfo **result, CbRedisError *err)
{
	struct addrinfo hints = {0};
	char		service[8];
	CbLookup   *lookup;
	struct gaicb *list[1];
	int			rc;

	/* a lookup an ERROR interrupted is still under way */
	CbAbandonLookup();

	snprintf(service, sizeof(service), "%d", cur_target->port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(cur_target->host, service, &hints, result) == 0)
		return true;

	lookup = calloc(1, sizeof(CbLookup));
	if (lookup == NULL)
	{
		CbSetError(err, CB_REDIS_CONNECT, "Out of memory.");
		return false;
	}
	strlcpy(lookup->name, cur_target->host, sizeof(lookup->name));
	memcpy(lookup->service, service, sizeof(service));
	lookup->hints = hints;
	lookup->hints.ai_flags = AI_NUMERICSERV;
	lookup->cb.ar_name = lookup->name;
	lookup->cb.ar_service = lookup->service;
	lookup->cb.ar_request = &lookup->hints;
	list[0] = &lookup->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0)
	{
		free(lookup);
		CbSetError(err, CB_REDIS_CONNECT, "Could not resolve host name \"%s\": %s.",
				   cur_target->host, gai_strerror(rc));
		return false;
	}
	current_lookup = lookup;

	if (total_deadline != 0 && total_deadline < deadline)
		deadline = total_deadline;
	while ((rc = gai_error(&lookup->cb)) == EAI_INPROGRESS)
	{
		long		left = CbMillisLeft(deadline);
		struct timespec ts;

		if (left <= 0)
		{
			CbAbandonLookup();
			if (CbRedisPastDeadline())
				CbSetTimeoutError(err, CB_REDIS_CONNECT, "connect_timeout",
								  cb_connect_timeout);
			else
				CbSetError(err, CB_REDIS_CONNECT,
						   "Host name \"%s\" not resolved within cachebridge.connect_timeout (%d ms).",
						   cur_target->host, cb_connect_timeout);
			return false;
		}
		/* short slices, to see a cancel or the postmaster's death */
		left = Min(left, 50);
		ts.tv_sec = 0;
		ts.tv_nsec = left * 1000000L;
		(void) gai_suspend((const struct gaicb *const *) list, 1, &ts);
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	}
	current_lookup = NULL;
	if (rc != 0)
	{
		CbFreeLookup(lookup);
		CbSetError(err, CB_REDIS_CONNECT, "Could not resolve host name \"%s\": %s.",
				   cur_target->host, gai_strerror(rc));
		return false;
	}
	*result = lookup->cb.ar_result;
	lookup->cb.ar_result = NULL;
	free(lookup);
	return true;
}

/*
 * Connects a new non-blocking socket to addr by deadline, and makes the
 * wait event set that serves it.  Returns false with err filled (and no
 * socket left open) on failure.
 */
static bool
CbOpenSocket(int family, const struct sockaddr *addr, socklen_t addrlen,
			 TimestampTz deadline, CbRedisError *err)
{
	int			one = 1;
	int			sockerr = 0;
	socklen_t	errlen = sizeof(sockerr);

	conn.fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (conn.fd == PGINVALID_SOCKET)
	{
		CbSetError(err, CB_REDIS_CONNECT, "%s.", strerror(errno));
		return false;
	}
	if (family != AF_UNIX)
		(void) setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (connect(conn.fd, addr, addrlen) < 0 &&
		errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
		sockerr = errno;
	else
	{
		/* the set lives as long as the connection */
		conn.wes = CreateWaitEventSet(TopMemoryContext, 3);
		AddWaitEventToSet(conn.wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(conn.wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		conn.sockpos = AddWaitEventToSet(conn.wes, WL_SOCKET_WRITEABLE,
										 conn.fd, NULL, NULL);
		if (CbWaitSocket(WL_SOCKET_WRITEABLE, deadline) == 0)
		{
			CbSetTimeoutError(err, CB_REDIS_CONNECT, "connect_timeout",
							  cb_connect_timeout);
			goto fail;
		}
		if (getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &sockerr, &errlen) < 0)
			sockerr = errno;
	}
	if (sockerr == 0)
		return true;
	CbSetError(err, CB_REDIS_CONNECT, "%s.", strerror(sockerr));

fail:
	if (conn.wes != NULL)
		FreeWaitEventSet(conn.wes);
	conn.wes = NULL;
	close(conn.fd);
	conn.fd = PGINVALID_SOCKET;
	return false;
}

/* Connects to the target's unix socket or, in turn, its addresses. */
static bool
CbConnectSocket(TimestampTz deadline, CbRedisError *err)
{
	struct addrinfo *addrs;

	if (cur_target->socket_path[0] != '\0')
	{
		struct sockaddr_un sun = {0};

		sun.sun_family = AF_UNIX;
		strlcpy(sun.sun_path, cur_target->socket_path, sizeof(sun.sun_path));
		return CbOpenSocket(AF_UNIX, (struct sockaddr *) &sun, sizeof(sun),
							deadline, err);
	}

	if (!CbResolve(deadline, &addrs, err))
		return false;
	for (struct addrinfo *a = addrs; a != NULL; a = a->ai_next)
	{
		if (CbOpenSocket(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, err))
			break;
		/* a timeout ends the attempt; a refusal moves on to the next address */
		if (CbMillisLeft(deadline) <= 0 || CbRedisPastDeadline())
			break;
	}
	freeaddrinfo(addrs);
	if (conn.fd == PGINVALID_SOCKET)
		return false;
	/* an address refused before the one that answered is no failure */
	memset(err, 0, sizeof(*err));
	return true;
}

/*
 * Runs the TLS handshake on the connected socket by deadline, verifying
 * the server's certificate and name.
 */
static bool
CbStartTls(TimestampTz deadline, CbRedisError *err)
{
	char		reason[512];
	uint32		wants;

	conn.ssl = CbTlsOpen(conn.fd, cur_target->host, reason, sizeof(reason));
	if (conn.ssl == NULL)
	{
		CbSetError(err, CB_REDIS_CONNECT, "%s", reason);
		return false;
	}
	for (;;)
	{
		switch (CbTlsHandshake(conn.ssl, &wants, reason, sizeof(reason)))
		{
			case CB_TLS_DONE:
				return true;
			case CB_TLS_FAILED:
				conn.tls_failed = true;
				CbSetError(err, CB_REDIS_CONNECT, "%s", reason);
				return false;
			case CB_TLS_WAIT:
				if (CbWaitSocket(wants, deadline) == 0)
				{
					conn.tls_failed = true;
					if (CbRedisPastDeadline())
						CbSetTimeoutError(err, CB_REDIS_CONNECT, "connect_timeout",
										  cb_connect_timeout);
					else
						CbSetError(err, CB_REDIS_CONNECT,
								   "TLS handshake not done within cachebridge.connect_timeout (%d ms).",
								   cb_connect_timeout);
					return false;
				}
				break;
		}
	}
}

/*
 * Opens the connection to the current target within connect_timeout:
 * socket, TLS for rediss://, then AUTH, SELECT, CLIENT SETNAME and the
 * scripts.  Returns false with err filled on failure.
 */
static bool
CbConnect(CbRedisError *err)
{
	TimestampTz deadline;

	Assert(conn.fd == PGINVALID_SOCKET);
	if (cur_target == NULL)
	{
		CbSetError(err, CB_REDIS_CONNECT, "cachebridge.redis_url is not set.");
		return false;
	}

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   cb_connect_timeout);
	conn.reader = redisReaderCreate();
	if (conn.reader == NULL)
	{
		CbSetError(err, CB_REDIS_CONNECT, "Out of memory.");
		return false;
	}
	if (!CbConnectSocket(deadline, err) ||
		(cur_target->tls && !CbStartTls(deadline, err)))
	{
		CbRedisDisconnect();
		return false;
	}

	conn.generation = target_generation;
	conn.tls_generation = CbTlsGeneration();
	if (!CbHandshake(err))
	{
		/* a server that refuses the client's certificate says so only now */
		if (conn.ssl != NULL && err->failure == CB_REDIS_IO)
			err->failure = CB_REDIS_CONNECT;
		CbRedisDisconnect();
		return false;
	}
	return true;
}

/* Callback of the handshake: remembers the first error reply. */
static bool
CbHandshakeReply(int index, redisReply *reply, void *arg)
{
	CbHandshakeState *state = (CbHandshakeState *) arg;

	if (reply->type == REDIS_REPLY_ERROR && index < state->nfatal &&
		state->error[0] == '\0')
		snprintf(state->error, sizeof(state->error), "%s", reply->str);
	return false;
}

/*
 * Sends what the socket takes of buf[0..len), adding it to *sent.  With
 * TLS, *wants says which socket event the next write waits for.
 */
static bool
CbSocketWrite(const char *buf, size_t len, size_t *sent, uint32 *wants,
			  CbRedisError *err)
{
	if (conn.ssl != NULL)
	{
		char		reason[512];
		size_t		n;

		switch (CbTlsWrite(conn.ssl, buf, len, &n, wants, reason, sizeof(reason)))
		{
			case CB_TLS_DONE:
				*sent += n;
				*wants = WL_SOCKET_WRITEABLE;
				break;
			case CB_TLS_WAIT:
				break;
			case CB_TLS_FAILED:
				conn.tls_failed = true;
				CbSetError(err, CB_REDIS_IO, "%s", reason);
				return false;
		}
	}
	else
	{
		/* straight from the caller's buffer: no copy of a large pipeline */
		ssize_t		n = send(conn.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			CbSetError(err, CB_REDIS_IO, "%s.", strerror(errno));
			return false;
		}
		if (n > 0)
			*sent += n;
	}
	return true;
}

/*
 * Feeds what has arrived on the socket to the reply reader.  With TLS,
 * reads until OpenSSL holds nothing more (the socket would not signal
 * what it already decrypted), and *wants says which socket event the
 * next read waits for.
 */
static bool
CbSocketRead(uint32 *wants, CbRedisError *err)
{
	static char chunk[CB_READ_CHUNK];

	if (conn.ssl != NULL)
	{
		char		reason[512];
		size_t		n;

		for (;;)
		{
			switch (CbTlsRead(conn.ssl, chunk, sizeof(chunk), &n, wants,
							  reason, sizeof(reason)))
			{
				case CB_TLS_DONE:
					if (redisReaderFeed(conn.reader, chunk, n) != REDIS_OK)
					{
						CbSetError(err, CB_REDIS_PROTOCOL, "%s.", conn.reader->errstr);
						return false;
					}
					*wants = WL_SOCKET_READABLE;
					continue;
				case CB_TLS_WAIT:
					return true;
				case CB_TLS_FAILED:
					conn.tls_failed = true;
					CbSetError(err, CB_REDIS_IO, "%s", reason);
					return false;
			}
		}
	}
	else
	{
		ssize_t		n = recv(conn.fd, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (n == 0)
		{
			CbSetError(err, CB_REDIS_IO, "Server closed the connection.");
			return false;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			CbSetError(err, CB_REDIS_IO, "%s.", strerror(errno));
			return false;
		}
		if (n > 0 && redisReaderFeed(conn.reader, chunk, n) != REDIS_OK)
		{
			CbSetError(err, CB_REDIS_PROTOCOL, "%s.", conn.reader->errstr);
			return false;
		}
	}
	return true;
}

/*
 * Sends buf (ncommands RESP commands) and reads ncommands replies, passing
 * each to callback.  On failure the connection must be closed by the caller.
 */
static bool
CbRoundTrip(const char *buf, size_t len, int ncommands,
			CbReplyCallback callback, void *arg,
			CbRedisError *err, int *nreplies)
{
	TimestampTz deadline;
	size_t		sent = 0;
	uint32		write_wants = WL_SOCKET_WRITEABLE;
	uint32		read_wants = WL_SOCKET_READABLE;

	*nreplies = 0;
	if (callback == NULL)
		callback = CbHandshakeReply;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   cb_command_timeout);
	while (*nreplies < ncommands)
	{
		void	   *reply = NULL;
		uint32		want;
		uint32		ready;

		/* hand over every reply already read */
		if (redisReaderGetReply(conn.reader, &reply) != REDIS_OK)
		{
			CbSetError(err, CB_REDIS_PROTOCOL, "%s.", conn.reader->errstr);
			return false;
		}
		if (reply != NULL)
		{
			if (!callback(*nreplies, (redisReply *) reply, arg))
				freeReplyObject(reply);
			(*nreplies)++;
			continue;
		}

		/* write what is left while reading what arrives */
		want = read_wants;
		if (sent < len)
			want |= write_wants;
		ready = CbWaitSocket(want, deadline);
		if (ready == 0)
		{
			CbSetTimeoutError(err, CB_REDIS_TIMEOUT, "command_timeout", cb_command_timeout);
			return false;
		}
		if (sent < len && (ready & write_wants) &&
			!CbSocketWrite(buf + sent, len - sent, &sent, &write_wants, err))
			return false;
		if ((ready & read_wants) && !CbSocketRead(&read_wants, err))
			return false;
		/* progress was made: the timeout restarts */
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   cb_command_timeout);
	}
	return true;
}

/*
 * Sends every command of p and hands each reply to callback, connecting
 * first if need be.  Returns false, with err filled, if Redis could not be
 * reached or stopped answering; error replies are replies, not failures.
 */
bool
CbPipelineExecute(CbPipeline *p, CbReplyCallback callback, void *arg,
				  CbRedisError *err)
{
	Assert(p->args_left == 0);
	return CbExecuteBuffer(p->buf.data, p->buf.len, p->ncommands,
						   callback, arg, err);
}

/*
 * CbPipelineExecute on commands already RESP-encoded in buf (as stored in
 * the outbox).
 */
bool
CbExecuteBuffer(const char *buf, size_t len, int ncommands,
				CbReplyCallback callback, void *arg, CbRedisError *err)
{
	bool		ok = false;

	memset(err, 0, sizeof(*err));
	if (ncommands == 0)
		return true;

	for (int attempt = 0;; attempt++)
	{
		bool		reused;
		int			nreplies;

		/* an error thrown mid-call, or a new target: start afresh */
		if (conn.busy ||
			(conn.fd != PGINVALID_SOCKET &&
			 (conn.generation != target_generation ||
			  (conn.ssl != NULL && conn.tls_generation != CbTlsGeneration()))))
			CbRedisDisconnect();

		reused = (conn.fd != PGINVALID_SOCKET);
		conn.busy = true;		/* until the connection is known good */
		if (!reused && !CbConnect(err))
			break;
		if (CbRoundTrip(buf, len, ncommands, callback, arg, err, &nreplies))
		{
			conn.busy = false;
			CbStatsCountRoundTrip();
			ok = true;
			break;
		}
		CbRedisDisconnect();

		/* a stale connection dropped before any reply: retry once */
		if (!(reused && attempt == 0 && nreplies == 0 &&
			  err->failure == CB_REDIS_IO))
			break;
	}
	if (!ok)
		CbStatsRecordError(err->server, err->detail);

	/*
	 * A wake-up that came while waiting on the socket (the worker told of
	 * new outbox rows, say) is the caller's: set the latch again, so that
	 * its next wait returns at once rather than sleeping through it.
	 */
	if (conn.latch_taken)
	{
		conn.latch_taken = false;
		SetLatch(MyLatch);
	}
	return ok;
}

/* Keeps the single reply of CbRedisCommand. */
static bool
CbKeepReply(int index, redisReply *reply, void *arg)
{
	*(redisReply **) arg = reply;
	return true;
}

/*
 * Runs a one-command pipeline and returns its reply, which the caller frees
 * with freeReplyObject(); raises an ERROR if Redis cannot be reached.
 */
redisReply *
CbRedisCommand(CbPipeline *p)
{
	redisReply *reply = NULL;
	CbRedisError err;

	Assert(p->ncommands == 1);
	if (!CbPipelineExecute(p, CbKeepReply, &reply, &err))
		CbRedisReportError(&err);
	return reply;
}

/* Raises the ERROR that describes a failed pipeline. */
void
CbRedisReportError(const CbRedisError *err)
{
	switch (err->failure)
	{
		case CB_REDIS_CONNECT:
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to Redis server \"%s\"", err->server),
					 errdetail_internal("%s", err->detail)));
			break;
		case CB_REDIS_TIMEOUT:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("timed out waiting for Redis server \"%s\"", err->server),
					 errdetail_internal("%s", err->detail)));
			break;
		case CB_REDIS_PROTOCOL:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("could not parse the reply of Redis server \"%s\"", err->server),
					 errdetail_internal("%s", err->detail)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("lost connection to Redis server \"%s\"", err->server),
					 errdetail_internal("%s", err->detail)));
			break;
	}
	pg_unreachable();
}

/*
 * Raises an ERROR if reply is a Redis error reply, with Redis' own text in
 * the detail.  The reply is freed first in that case.
 */
void
CbRedisCheckReply(const redisReply *reply, const char *command)
{
	char	   *text;

	if (reply->type != REDIS_REPLY_ERROR)
		return;
	text = pnstrdup(reply->str, reply->len);
	freeReplyObject((void *) reply);
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("Redis server \"%s\" rejected %s", CbRedisServerName(), command),
			 errdetail_internal("%s", text)));
}

/* State of one SCAN step of CbRedisUnlinkMatching. */
typedef struct CbScanStep
{
	char	   *cursor;			/* next cursor, or NULL */
	char	   *error;			/* first error reply, or NULL */
	List	   *keys;			/* keys found (palloc'd), markers left out */
	List	   *lens;			/* and their lengths */
	int64		unlinked;		/* sum of the delete script's replies */
} CbScanStep;

/* Collects the replies of one SCAN (and of the deletion sent with it). */
static bool
CbScanReply(int index, redisReply *reply, void *arg)
{
	CbScanStep *step = (CbScanStep *) arg;

	if (reply->type == REDIS_REPLY_INTEGER)
		step->unlinked += reply->integer;
	else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
			 reply->element[0]->type == REDIS_REPLY_STRING &&
			 reply->element[1]->type == REDIS_REPLY_ARRAY)
	{
		redisReply *found = reply->element[1];

		step->cursor = pnstrdup(reply->element[0]->str, reply->element[0]->len);
		for (size_t i = 0; i < found->elements; i++)
		{
			if (CbIsMarkerName(found->element[i]->str, found->element[i]->len))
				continue;
			step->keys = lappend(step->keys,
								 pnstrdup(found->element[i]->str, found->element[i]->len));
			step->lens = lappend_int(step->lens, (int) found->element[i]->len);
		}
	}
	else if (step->error == NULL)
		step->error = reply->type == REDIS_REPLY_ERROR
			? pnstrdup(reply->str, reply->len)
			: psprintf("unexpected reply type %d", reply->type);
	return false;
}

/*
 * Deletes every key matching the glob pattern match, found by SCAN (never
 * KEYS): each round trip deletes the keys the previous SCAN step found and
 * asks for the next step.  Deletion goes through the versioned delete
 * script with marker (see scripts.c), so a key deleted here keeps a version
 * marker for tombstone_ttl seconds and a late, older write cannot bring it
 * back; markers themselves are never matched.  It first raises the
 * pattern's floor (see scripts.c), which defeats fills from snapshots that
 * do not see the deleting transaction, of keys it did not find.  Adds the
 * number deleted to
 * *count.  Returns false with err filled if Redis could not be reached; an
 * error reply stops the scan and is returned in *error_reply.  Raises no
 * ERROR but out of memory.
 */
bool
CbRedisUnlinkMatching(const char *match, size_t matchlen, const char *marker,
					  int tombstone_ttl, int64 *count, char **error_reply,
					  CbRedisError *err)
{
	MemoryContext stepcxt;
	MemoryContext oldcxt;
	CbScanStep	step = {0};
	bool		ok = true;
	const char *cursor = "0";
	StringInfoData vkey;

	stepcxt = AllocSetContextCreate(CurrentMemoryContext,
									"cachebridge SCAN step",
									ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&vkey);
	*error_reply = NULL;
	while (cursor != NULL || step.keys != NIL)
	{
		MemoryContext nextcxt;
		CbPipeline	p;
		ListCell   *lk;
		ListCell   *ll;

		/* the commands go in the old step's context, the replies in a new one */
		oldcxt = MemoryContextSwitchTo(stepcxt);
		CbPipelineInit(&p);
		if (step.keys != NIL)
		{
			CbPipelineBegin(&p, 3 + 2 * list_length(step.keys) + 2, NULL, 0);
			CbPipelineArgStr(&p, "EVALSHA");
			CbPipelineArgStr(&p, CbScriptSha(CB_SCRIPT_DELETE_FOUND));
			CbPipelineArgInt(&p, 2 * list_length(step.keys));
			forboth(lk, step.keys, ll, step.lens)
			{
				resetStringInfo(&vkey);
				CbAppendVersionKey(&vkey, (char *) lfirst(lk), lfirst_int(ll));
				CbPipelineArg(&p, (char *) lfirst(lk), lfirst_int(ll));
				CbPipelineArg(&p, vkey.data, vkey.len);
			}
			CbPipelineArgStr(&p, marker);
			CbPipelineArgInt(&p, tombstone_ttl);
		}
		/* first the floor, so that a fill after this sees it (scripts.c) */
		if (cursor != NULL && strcmp(cursor, "0") == 0)
		{
			resetStringInfo(&vkey);
			CbAppendFloorKey(&vkey, match, matchlen);
			CbPipelineBegin(&p, 6, vkey.data, vkey.len);
			CbPipelineArgStr(&p, "EVALSHA");
			CbPipelineArgStr(&p, CbScriptSha(CB_SCRIPT_FLOOR));
			CbPipelineArgStr(&p, "1");
			CbPipelineArg(&p, vkey.data, vkey.len);
			CbPipelineArgStr(&p, marker);
			CbPipelineArgInt(&p, tombstone_ttl);
		}
		if (cursor != NULL)
		{
			CbPipelineBegin(&p, 6, NULL, 0);
			CbPipelineArgStr(&p, "SCAN");
			CbPipelineArgStr(&p, cursor);
			CbPipelineArgStr(&p, "MATCH");
			CbPipelineArg(&p, match, matchlen);
			CbPipelineArgStr(&p, "COUNT");
			CbPipelineArgStr(&p, "1000");
		}
		nextcxt = AllocSetContextCreate(oldcxt, "cachebridge SCAN step",
										ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(nextcxt);
		memset(&step, 0, sizeof(step));
		ok = CbPipelineExecute(&p, CbScanReply, &step, err);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextDelete(stepcxt);
		stepcxt = nextcxt;
		if (!ok)
			break;
		*count += step.unlinked;
		if (step.error != NULL)
		{
			*error_reply = MemoryContextStrdup(oldcxt, step.error);
			break;
		}
		/* the last SCAN step returns cursor "0"; one more trip deletes its keys */
		cursor = (cursor != NULL && step.cursor != NULL &&
				  strcmp(step.cursor, "0") != 0) ? step.cursor : NULL;
	}
	MemoryContextDelete(stepcxt);
	pfree(vkey.data);
	return ok;
}
