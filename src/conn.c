/*-------------------------------------------------------------------------
 *
 * conn.c
 *		Connections to Redis servers: cachebridge.redis_url parsing, the
 *		connection to the target's seed and to any node cluster.c asks for,
 *		and pipelines sent on several connections in one round trip.
 *
 * A connection is opened lazily on first use and kept for the life of
 * the process.  This file owns its sockets: a host name is resolved with
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
 * sending commands or reading replies, on each connection.
 *
 * Every connection authenticates, selects the database, names itself with
 * CLIENT SETNAME and loads the scripts; the seed's also asks INFO cluster,
 * and on a Redis Cluster hands over CLUSTER SLOTS (see CbConnOpenSeed).
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

#include "conn.h"
#include "reply.h"
#include "scripts.h"
#include "stats.h"
#include "tls.h"

/*
 * A connection to one Redis server: the single server of the target, or
 * one node of a Redis Cluster (cluster.c keeps those).  host and port are
 * the node's address; an empty host means the target's unix socket.
 */
struct CbRedisConn
{
	char		host[256];
	int			port;
	char		display[300];	/* "host:port" or the socket path, for messages */
	pgsocket	fd;				/* PGINVALID_SOCKET when not connected */
	SSL		   *ssl;			/* the TLS session over fd, for rediss:// */
	bool		tls_failed;		/* the session failed: no close_notify */
	redisReader *reader;		/* parses the replies that arrive */
	WaitEventSet *wes;			/* latch, postmaster death, socket */
	int			sockpos;		/* position of the socket event in wes */
	bool		busy;			/* true while a round trip is under way */
	uint64		generation;		/* target generation it was opened for */
	uint64		tls_generation; /* and generation of the TLS settings */
	redisReply *slots;			/* CLUSTER SLOTS answered at the handshake */
	bool		fresh;			/* opened since its last round trip */

	/* the round trip under way (see CbRoundTripMany) */
	const char *buf;
	size_t		len;
	size_t		sent;
	int			ncommands;
	int			nreplies;
	uint32		write_wants;
	uint32		read_wants;
	CbReplyCallback callback;
	void	   *arg;
	TimestampTz deadline;		/* of the current stretch without progress */
	bool		failed;
	CbRedisError *err;
};

/*
 * The connection to the target's (first reachable) seed: the one server
 * of a single Redis, or the node a Redis Cluster was discovered through.
 */
static CbRedisConn conn = {.fd = PGINVALID_SOCKET};

/* A socket wait reset the latch: CbExecuteBuffer sets it again. */
static bool latch_taken = false;


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
	int			info_at;		/* index of INFO cluster, or -1 */
	bool		cluster;		/* it said cluster_enabled:1 */
	redisReply **slots;			/* where to keep the reply to CLUSTER SLOTS */
} CbHandshakeState;

/* The parsed cachebridge.redis_url (GUC "extra"), and its generation. */
static CbRedisTarget *cur_target = NULL;
static uint64 target_generation = 0;

static bool CbConnect(CbRedisConn *c, CbRedisError *err);
static bool CbRoundTrip(CbRedisConn *c, const char *buf, size_t len,
						int ncommands, CbReplyCallback callback, void *arg,
						CbRedisError *err, int *nreplies);
static void CbSetError(CbRedisConn *c, CbRedisError *err,
					   CbRedisFailure failure,
					   const char *fmt,...) pg_attribute_printf(4, 5);

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
 * Parses one "host[:port]" or "[IPv6 address][:port]" of p[0..end) into
 * *seed (port 6379 when not given).
 */
static bool
CbParseHostPort(const char *p, const char *end, CbRedisSeed *seed,
				char *errbuf, size_t errlen)
{
	const char *hostend;
	const char *after;

	seed->port = 6379;
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
	if (hostend - p >= (long) sizeof(seed->host))
	{
		snprintf(errbuf, errlen, "The host name is too long.");
		return false;
	}
	memcpy(seed->host, p, hostend - p);
	seed->host[hostend - p] = '\0';

	if (after < end && *after == ':')
	{
		if (!CbParseUInt(after + 1, end - after - 1, 65535, &seed->port) ||
			seed->port == 0)
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
	return true;
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
		t->nseeds = 1;			/* seeds[0].host "" is the socket */
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

	/* hosts, each possibly a bracketed IPv6 address, separated by commas */
	while (p < end)
	{
		const char *itemend = p;
		CbRedisSeed *seed;

		/* a comma inside brackets is no separator */
		if (*p == '[')
			itemend = memchr(p, ']', end - p);
		if (itemend == NULL)
		{
			snprintf(errbuf, errlen, "An IPv6 address must be closed with \"]\".");
			return false;
		}
		itemend = memchr(itemend, ',', end - itemend);
		if (itemend == NULL)
			itemend = end;
		if (t->nseeds == CB_REDIS_MAX_SEEDS)
		{
			snprintf(errbuf, errlen, "The URL names more than %d hosts.",
					 CB_REDIS_MAX_SEEDS);
			return false;
		}
		seed = &t->seeds[t->nseeds++];
		if (!CbParseHostPort(p, itemend, seed, errbuf, errlen))
			return false;
		p = itemend;
		if (p < end)
			p++;				/* past the comma */
		if (p == end && itemend < end)
		{
			snprintf(errbuf, errlen, "The URL names no host after a comma.");
			return false;
		}
	}
	if (t->nseeds == 0)
	{
		snprintf(errbuf, errlen, "The URL names no host.");
		return false;
	}
	strlcpy(t->host, t->seeds[0].host, sizeof(t->host));
	t->port = t->seeds[0].port;

	/* optional "/db" */
	if (*end == '/' && end[1] != '\0' &&
		!CbParseUInt(end + 1, strlen(end + 1), PG_INT32_MAX, &t->db))
	{
		snprintf(errbuf, errlen,
				 "The database number after the host is not a non-negative integer.");
		return false;
	}

	for (int i = 0; i < t->nseeds; i++)
	{
		size_t		used = strlen(t->display);

		snprintf(t->display + used, sizeof(t->display) - used,
				 strchr(t->seeds[i].host, ':') ? "%s[%s]:%d" : "%s%s:%d",
				 i > 0 ? "," : "", t->seeds[i].host, t->seeds[i].port);
	}
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

/* Fills err with a failure of connection c (NULL: of the target as a whole). */
static void
CbSetError(CbRedisConn *c, CbRedisError *err, CbRedisFailure failure,
		   const char *fmt,...)
{
	va_list		ap;

	err->failure = failure;
	snprintf(err->server, sizeof(err->server), "%s",
			 c != NULL && c->display[0] != '\0' ? c->display : CbRedisServerName());
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

/* Closes connection c, if open; never fails. */
void
CbConnClose(CbRedisConn *c)
{
	if (c->wes != NULL)
		FreeWaitEventSet(c->wes);
	if (c->ssl != NULL)
		CbTlsClose(c->ssl, !c->tls_failed);
	if (c->fd != PGINVALID_SOCKET)
		close(c->fd);
	if (c->reader != NULL)
		redisReaderFree(c->reader);
	if (c->slots != NULL)
		freeReplyObject(c->slots);
	c->slots = NULL;
	c->wes = NULL;
	c->ssl = NULL;
	c->tls_failed = false;
	c->fd = PGINVALID_SOCKET;
	c->reader = NULL;
	c->busy = false;
}

/* Writes "host:port" (bracketed for IPv6), or the socket path for no host. */
static void
CbFormatAddress(char *buf, size_t buflen, const char *host, int port)
{
	if (host[0] == '\0')
		snprintf(buf, buflen, "%s", cur_target ? cur_target->socket_path : "");
	else
		snprintf(buf, buflen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* A new, closed connection to the node host:port, for cluster.c. */
CbRedisConn *
CbConnCreate(const char *host, int port)
{
	CbRedisConn *c = MemoryContextAllocZero(TopMemoryContext, sizeof(CbRedisConn));

	c->fd = PGINVALID_SOCKET;
	strlcpy(c->host, host, sizeof(c->host));
	c->port = port;
	CbFormatAddress(c->display, sizeof(c->display), host, port);
	return c;
}

/* Closes and frees a connection made by CbConnCreate. */
void
CbConnFree(CbRedisConn *c)
{
	CbConnClose(c);
	pfree(c);
}

/* True if connection c is open. */
bool
CbConnIsOpen(const CbRedisConn *c)
{
	return c->fd != PGINVALID_SOCKET;
}

/* The node's address, "host:port", for messages. */
const char *
CbConnName(const CbRedisConn *c)
{
	return c->display;
}

/* The generation of the target settings: it changes with any of them. */
uint64
CbRedisTargetGeneration(void)
{
	return target_generation;
}

/* The parsed cachebridge.redis_url, or NULL. */
const CbRedisTarget *
CbRedisCurrentTarget(void)
{
	return cur_target;
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
CbSetTimeoutError(CbRedisConn *c, CbRedisError *err, CbRedisFailure failure,
				  const char *what, int ms)
{
	if (CbRedisPastDeadline())
		CbSetError(c, err, failure,
				   "Not done within cachebridge.delivery_timeout (%d ms) in all.",
				   total_deadline_ms);
	else
		CbSetError(c, err, failure, "%s within cachebridge.%s (%d ms).",
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
CbWaitSocket(CbRedisConn *c, uint32 events, TimestampTz deadline)
{
	if (total_deadline != 0 && total_deadline < deadline)
		deadline = total_deadline;
	ModifyWaitEvent(c->wes, c->sockpos, events, NULL);
	for (;;)
	{
		WaitEvent	ev;
		long		timeout = CbMillisLeft(deadline);
		int			n;

		if (timeout <= 0)
			return 0;
		n = WaitEventSetWait(c->wes, timeout, &ev, 1, PG_WAIT_EXTENSION);
		if (n == 0)
			continue;			/* re-check the deadline */
		if (ev.events & WL_LATCH_SET)
		{
			/* not ours: CbExecuteBuffer sets it again for the caller */
			ResetLatch(MyLatch);
			latch_taken = true;
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
		CbSetError(NULL, err, CB_REDIS_CONNECT,
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
		CbSetError(NULL, err, CB_REDIS_CONNECT,
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
CbHandshake(CbRedisConn *c, CbRedisError *err)
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

	/*
	 * The seed also tells whether it is a node of a Redis Cluster (a server
	 * that refuses INFO is taken for a single Redis).
	 */
	state.info_at = -1;
	state.cluster = false;
	state.slots = NULL;
	if (c == &conn)
	{
		state.info_at = p.ncommands;
		CbPipelineBegin(&p, 2, NULL, 0);
		CbPipelineArgStr(&p, "INFO");
		CbPipelineArgStr(&p, "cluster");
	}

	ok = CbRoundTrip(c, p.buf.data, p.buf.len, p.ncommands, NULL, &state, err,
					 &nreplies);
	explicit_bzero(p.buf.data, p.buf.len);
	/* a rejected AUTH or SELECT is a failure to connect; a timeout stays one */
	if (ok && state.error[0] != '\0')
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "%s", state.error);
		ok = false;
	}

	/* a cluster's seed hands over the slot map */
	if (ok && state.cluster)
	{
		CbPipelineReset(&p);
		CbPipelineBegin(&p, 2, NULL, 0);
		CbPipelineArgStr(&p, "CLUSTER");
		CbPipelineArgStr(&p, "SLOTS");
		state.nfatal = 0;
		state.info_at = -1;
		state.slots = &c->slots;
		ok = CbRoundTrip(c, p.buf.data, p.buf.len, p.ncommands, NULL, &state,
						 err, &nreplies);
		if (ok && c->slots == NULL)
		{
			CbSetError(c, err, CB_REDIS_CONNECT,
					   "The node says it is in cluster mode but did not answer CLUSTER SLOTS.");
			ok = false;
		}
	}
	pfree(p.buf.data);
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
CbResolve(CbRedisConn *c, TimestampTz deadline, struct addrinfo **result, CbRedisError *err)
{
	struct addrinfo hints = {0};
	char		service[8];
	CbLookup   *lookup;
	struct gaicb *list[1];
	int			rc;

	/* a lookup an ERROR interrupted is still under way */
	CbAbandonLookup();

	snprintf(service, sizeof(service), "%d", c->port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(c->host, service, &hints, result) == 0)
		return true;

	lookup = calloc(1, sizeof(CbLookup));
	if (lookup == NULL)
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "Out of memory.");
		return false;
	}
	strlcpy(lookup->name, c->host, sizeof(lookup->name));
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
		CbSetError(c, err, CB_REDIS_CONNECT, "Could not resolve host name \"%s\": %s.",
				   c->host, gai_strerror(rc));
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
				CbSetTimeoutError(c, err, CB_REDIS_CONNECT, "connect_timeout",
								  cb_connect_timeout);
			else
				CbSetError(c, err, CB_REDIS_CONNECT,
						   "Host name \"%s\" not resolved within cachebridge.connect_timeout (%d ms).",
						   c->host, cb_connect_timeout);
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
		CbSetError(c, err, CB_REDIS_CONNECT, "Could not resolve host name \"%s\": %s.",
				   c->host, gai_strerror(rc));
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
CbOpenSocket(CbRedisConn *c, int family, const struct sockaddr *addr, socklen_t addrlen,
			 TimestampTz deadline, CbRedisError *err)
{
	int			one = 1;
	int			sockerr = 0;
	socklen_t	errlen = sizeof(sockerr);

	c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == PGINVALID_SOCKET)
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "%s.", strerror(errno));
		return false;
	}
	if (family != AF_UNIX)
		(void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (connect(c->fd, addr, addrlen) < 0 &&
		errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
		sockerr = errno;
	else
	{
		/* the set lives as long as the connection */
		c->wes = CreateWaitEventSet(TopMemoryContext, 3);
		AddWaitEventToSet(c->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(c->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		c->sockpos = AddWaitEventToSet(c->wes, WL_SOCKET_WRITEABLE,
										 c->fd, NULL, NULL);
		if (CbWaitSocket(c, WL_SOCKET_WRITEABLE, deadline) == 0)
		{
			CbSetTimeoutError(c, err, CB_REDIS_CONNECT, "connect_timeout",
							  cb_connect_timeout);
			goto fail;
		}
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &sockerr, &errlen) < 0)
			sockerr = errno;
	}
	if (sockerr == 0)
		return true;
	CbSetError(c, err, CB_REDIS_CONNECT, "%s.", strerror(sockerr));

fail:
	if (c->wes != NULL)
		FreeWaitEventSet(c->wes);
	c->wes = NULL;
	close(c->fd);
	c->fd = PGINVALID_SOCKET;
	return false;
}

/* Connects to the target's unix socket or, in turn, its addresses. */
static bool
CbConnectSocket(CbRedisConn *c, TimestampTz deadline, CbRedisError *err)
{
	struct addrinfo *addrs;

	if (c->host[0] == '\0')
	{
		struct sockaddr_un sun = {0};

		sun.sun_family = AF_UNIX;
		strlcpy(sun.sun_path, cur_target->socket_path, sizeof(sun.sun_path));
		return CbOpenSocket(c, AF_UNIX, (struct sockaddr *) &sun, sizeof(sun),
							deadline, err);
	}

	if (!CbResolve(c, deadline, &addrs, err))
		return false;
	for (struct addrinfo *a = addrs; a != NULL; a = a->ai_next)
	{
		if (CbOpenSocket(c, a->ai_family, a->ai_addr, a->ai_addrlen, deadline, err))
			break;
		/* a timeout ends the attempt; a refusal moves on to the next address */
		if (CbMillisLeft(deadline) <= 0 || CbRedisPastDeadline())
			break;
	}
	freeaddrinfo(addrs);
	if (c->fd == PGINVALID_SOCKET)
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
CbStartTls(CbRedisConn *c, TimestampTz deadline, CbRedisError *err)
{
	char		reason[512];
	uint32		wants;

	c->ssl = CbTlsOpen(c->fd, c->host, reason, sizeof(reason));
	if (c->ssl == NULL)
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "%s", reason);
		return false;
	}
	for (;;)
	{
		switch (CbTlsHandshake(c->ssl, &wants, reason, sizeof(reason)))
		{
			case CB_TLS_DONE:
				return true;
			case CB_TLS_FAILED:
				c->tls_failed = true;
				CbSetError(c, err, CB_REDIS_CONNECT, "%s", reason);
				return false;
			case CB_TLS_WAIT:
				if (CbWaitSocket(c, wants, deadline) == 0)
				{
					c->tls_failed = true;
					if (CbRedisPastDeadline())
						CbSetTimeoutError(c, err, CB_REDIS_CONNECT, "connect_timeout",
										  cb_connect_timeout);
					else
						CbSetError(c, err, CB_REDIS_CONNECT,
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
CbConnect(CbRedisConn *c, CbRedisError *err)
{
	TimestampTz deadline;

	Assert(c->fd == PGINVALID_SOCKET);
	if (cur_target == NULL)
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "cachebridge.redis_url is not set.");
		return false;
	}

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   cb_connect_timeout);
	c->reader = redisReaderCreate();
	if (c->reader == NULL)
	{
		CbSetError(c, err, CB_REDIS_CONNECT, "Out of memory.");
		return false;
	}
	if (!CbConnectSocket(c, deadline, err) ||
		(cur_target->tls && !CbStartTls(c, deadline, err)))
	{
		CbConnClose(c);
		return false;
	}

	c->generation = target_generation;
	c->tls_generation = CbTlsGeneration();
	if (!CbHandshake(c, err))
	{
		/* a server that refuses the client's certificate says so only now */
		if (c->ssl != NULL && err->failure == CB_REDIS_IO)
			err->failure = CB_REDIS_CONNECT;
		CbConnClose(c);
		return false;
	}
	c->fresh = true;
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
	if (index == state->info_at && CbReplyClusterEnabled(reply))
		state->cluster = true;
	if (state->slots != NULL && reply->type == REDIS_REPLY_ARRAY)
	{
		*state->slots = reply;
		return true;
	}
	return false;
}

/*
 * Sends what the socket takes of buf[0..len), adding it to *sent.  With
 * TLS, *wants says which socket event the next write waits for.
 */
static bool
CbSocketWrite(CbRedisConn *c, const char *buf, size_t len, size_t *sent, uint32 *wants,
			  CbRedisError *err)
{
	if (c->ssl != NULL)
	{
		char		reason[512];
		size_t		n;

		switch (CbTlsWrite(c->ssl, buf, len, &n, wants, reason, sizeof(reason)))
		{
			case CB_TLS_DONE:
				*sent += n;
				*wants = WL_SOCKET_WRITEABLE;
				break;
			case CB_TLS_WAIT:
				break;
			case CB_TLS_FAILED:
				c->tls_failed = true;
				CbSetError(c, err, CB_REDIS_IO, "%s", reason);
				return false;
		}
	}
	else
	{
		/* straight from the caller's buffer: no copy of a large pipeline */
		ssize_t		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			CbSetError(c, err, CB_REDIS_IO, "%s.", strerror(errno));
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
CbSocketRead(CbRedisConn *c, uint32 *wants, CbRedisError *err)
{
	static char chunk[CB_READ_CHUNK];

	if (c->ssl != NULL)
	{
		char		reason[512];
		size_t		n;

		for (;;)
		{
			switch (CbTlsRead(c->ssl, chunk, sizeof(chunk), &n, wants,
							  reason, sizeof(reason)))
			{
				case CB_TLS_DONE:
					if (redisReaderFeed(c->reader, chunk, n) != REDIS_OK)
					{
						CbSetError(c, err, CB_REDIS_PROTOCOL, "%s.", c->reader->errstr);
						return false;
					}
					*wants = WL_SOCKET_READABLE;
					continue;
				case CB_TLS_WAIT:
					return true;
				case CB_TLS_FAILED:
					c->tls_failed = true;
					CbSetError(c, err, CB_REDIS_IO, "%s", reason);
					return false;
			}
		}
	}
	else
	{
		ssize_t		n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (n == 0)
		{
			CbSetError(c, err, CB_REDIS_IO, "Server closed the connection.");
			return false;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			CbSetError(c, err, CB_REDIS_IO, "%s.", strerror(errno));
			return false;
		}
		if (n > 0 && redisReaderFeed(c->reader, chunk, n) != REDIS_OK)
		{
			CbSetError(c, err, CB_REDIS_PROTOCOL, "%s.", c->reader->errstr);
			return false;
		}
	}
	return true;
}

/*
 * Starts a round trip on connection c: the ncommands RESP commands of
 * buf[0..len) to send, their replies to hand to callback (the handshake's
 * when NULL), a failure to report in err.
 */
static void
CbConnBegin(CbRedisConn *c, const char *buf, size_t len, int ncommands,
			CbReplyCallback callback, void *arg, CbRedisError *err)
{
	c->buf = buf;
	c->len = len;
	c->sent = 0;
	c->ncommands = ncommands;
	c->nreplies = 0;
	c->write_wants = WL_SOCKET_WRITEABLE;
	c->read_wants = WL_SOCKET_READABLE;
	c->callback = callback != NULL ? callback : CbHandshakeReply;
	c->arg = arg;
	c->failed = false;
	c->err = err;
	c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  cb_command_timeout);
}

/*
 * Hands every reply already read on c to its callback.  True once the
 * round trip of c is over: every reply handed over, or a failure.
 */
static bool
CbConnDeliver(CbRedisConn *c)
{
	while (!c->failed && c->nreplies < c->ncommands)
	{
		void	   *reply = NULL;

		if (redisReaderGetReply(c->reader, &reply) != REDIS_OK)
		{
			CbSetError(c, c->err, CB_REDIS_PROTOCOL, "%s.", c->reader->errstr);
			c->failed = true;
			break;
		}
		if (reply == NULL)
			return false;
		if (!c->callback(c->nreplies, (redisReply *) reply, c->arg))
			freeReplyObject(reply);
		c->nreplies++;
	}
	return true;
}

/* The socket events the round trip of c waits for. */
static uint32
CbConnWants(CbRedisConn *c)
{
	return c->sent < c->len ? c->read_wants | c->write_wants : c->read_wants;
}

/*
 * Writes what is left while reading what arrives, as the ready socket
 * events of c allow; progress restarts its command_timeout.
 */
static void
CbConnServe(CbRedisConn *c, uint32 ready)
{
	if (c->sent < c->len && (ready & c->write_wants) &&
		!CbSocketWrite(c, c->buf + c->sent, c->len - c->sent, &c->sent,
					   &c->write_wants, c->err))
	{
		c->failed = true;
		return;
	}
	if ((ready & c->read_wants) && !CbSocketRead(c, &c->read_wants, c->err))
	{
		c->failed = true;
		return;
	}
	c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  cb_command_timeout);
}

/*
 * Waits until a socket of active[0..nactive) is ready as its round trip
 * wants, or deadline, and serves what is ready.  The wait event set of
 * them all is made for this one wait, and freed even if a query cancel
 * ends it with an ERROR.
 */
static void
CbWaitMany(CbRedisConn **active, int nactive, TimestampTz deadline,
		   WaitEvent *events)
{
	WaitEventSet *wes;
	long		timeout;

	if (total_deadline != 0 && total_deadline < deadline)
		deadline = total_deadline;
	timeout = CbMillisLeft(deadline);
	if (timeout <= 0)
		return;
	wes = CreateWaitEventSet(CurrentMemoryContext, nactive + 2);
	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (int i = 0; i < nactive; i++)
		AddWaitEventToSet(wes, CbConnWants(active[i]), active[i]->fd,
						  NULL, active[i]);
	PG_TRY();
	{
		int			nready = WaitEventSetWait(wes, timeout, events, nactive + 2,
											  PG_WAIT_EXTENSION);

		for (int i = 0; i < nready; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				/* not ours: CbExecuteBuffer sets it again for the caller */
				ResetLatch(MyLatch);
				latch_taken = true;
				CHECK_FOR_INTERRUPTS();
			}
			else if (events[i].user_data != NULL)
				CbConnServe((CbRedisConn *) events[i].user_data,
							events[i].events &
							(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE));
		}
	}
	PG_CATCH();
	{
		FreeWaitEventSet(wes);
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(wes);
}

/*
 * Runs the round trips begun on conns[0..n) (CbConnBegin) together: every
 * connection writes as soon as its socket takes data and reads as soon as
 * replies arrive, so n servers cost one round trip, not n.  Each ends on
 * its own, done or failed (c->failed, with c->err filled); the caller
 * closes the failed ones.  With one connection left, its own wait event
 * set serves; with more, a set of them all is made for each wait.  With
 * until_sent it returns as soon as every connection has written all its
 * commands (replies that came meanwhile handed over): CbRunJobFinish goes
 * on from there.
 */
static void
CbRoundTripMany(CbRedisConn **conns, int n, bool until_sent)
{
	CbRedisConn **active = palloc(sizeof(CbRedisConn *) * n);
	WaitEvent  *events = palloc(sizeof(WaitEvent) * (n + 2));

	/*
	 * A socket nearly always takes a pipeline at once: write before the
	 * first wait, which then waits for the replies alone -- the socket
	 * events waited for stay the same from one round trip to the next, and
	 * a commit costs no epoll_ctl and one epoll_wait less.
	 */
	for (int i = 0; i < n; i++)
		if (conns[i]->sent < conns[i]->len)
			CbConnServe(conns[i], conns[i]->write_wants);

	for (;;)
	{
		int			nactive = 0;
		TimestampTz deadline = 0;

		for (int i = 0; i < n; i++)
		{
			if (CbConnDeliver(conns[i]) ||
				(until_sent && conns[i]->sent >= conns[i]->len))
				continue;
			active[nactive++] = conns[i];
			if (deadline == 0 || conns[i]->deadline < deadline)
				deadline = conns[i]->deadline;
		}
		if (nactive == 0)
			break;
		if (nactive == 1)
		{
			uint32		ready = CbWaitSocket(active[0], CbConnWants(active[0]),
											 active[0]->deadline);

			if (ready == 0)
			{
				CbSetTimeoutError(active[0], active[0]->err, CB_REDIS_TIMEOUT,
								  "command_timeout", cb_command_timeout);
				active[0]->failed = true;
			}
			else
				CbConnServe(active[0], ready);
			continue;
		}

		CbWaitMany(active, nactive, deadline, events);

		/* a connection without progress by its deadline has timed out */
		for (int i = 0; i < nactive; i++)
		{
			if (!active[i]->failed &&
				(CbMillisLeft(active[i]->deadline) <= 0 || CbRedisPastDeadline()))
			{
				CbSetTimeoutError(active[i], active[i]->err, CB_REDIS_TIMEOUT,
								  "command_timeout", cb_command_timeout);
				active[i]->failed = true;
			}
		}
	}
	pfree(active);
	pfree(events);
}

/*
 * Sends buf (ncommands RESP commands) on c and reads ncommands replies,
 * passing each to callback.  On failure the connection must be closed by
 * the caller.
 */
static bool
CbRoundTrip(CbRedisConn *c, const char *buf, size_t len, int ncommands,
			CbReplyCallback callback, void *arg,
			CbRedisError *err, int *nreplies)
{
	CbConnBegin(c, buf, len, ncommands, callback, arg, err);
	CbRoundTripMany(&c, 1, false);
	*nreplies = c->nreplies;
	return !c->failed;
}

/* True if c is open for the current target and settings, and not broken. */
static bool
CbConnUsable(CbRedisConn *c)
{
	return c->fd != PGINVALID_SOCKET && !c->busy &&
		c->generation == target_generation &&
		(c->ssl == NULL || c->tls_generation == CbTlsGeneration());
}

/*
 * Runs jobs[0..njobs), each a pipeline for one connection, in one parallel
 * round trip (see CbRoundTripMany), connecting first where need be.  A job
 * that fails on a connection reused from an earlier call before any reply
 * arrived (the server restarted, an idle timeout closed it) is retried
 * once on a fresh connection.  Each job reports its own outcome.
 */
void
CbRunJobs(CbConnJob *jobs, int njobs)
{
	CbRedisConn **conns = palloc(sizeof(CbRedisConn *) * njobs);
	bool	   *reused = palloc(sizeof(bool) * njobs);
	bool	   *ran = palloc(sizeof(bool) * njobs);
	bool		any_ok = false;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		int			n = 0;

		for (int i = 0; i < njobs; i++)
		{
			CbConnJob  *job = &jobs[i];
			CbRedisConn *c = job->conn;

			if (attempt > 0 &&
				!(reused[i] && !job->ok && job->nreplies == 0 &&
				  job->err.failure == CB_REDIS_IO))
				continue;
			memset(&job->err, 0, sizeof(job->err));
			ran[i] = false;
			job->ok = false;
			job->nreplies = 0;
			if (!CbConnUsable(c))
				CbConnClose(c);
			/* only a connection from an earlier call can have gone stale */
			reused[i] = (c->fd != PGINVALID_SOCKET && !c->fresh);
			c->busy = true;		/* until the connection is known good */
			if (c->fd == PGINVALID_SOCKET && !CbConnect(c, &job->err))
				continue;
			c->fresh = false;
			CbConnBegin(c, job->buf, job->len, job->ncommands,
						job->callback, job->arg, &job->err);
			ran[i] = true;
			conns[n++] = c;
		}
		if (n == 0)
			break;
		CbRoundTripMany(conns, n, false);
		for (int i = 0; i < njobs; i++)
		{
			CbRedisConn *c = jobs[i].conn;

			if (!ran[i])
				continue;
			jobs[i].nreplies = c->nreplies;
			jobs[i].ok = !c->failed;
			c->err = NULL;
			if (jobs[i].ok)
				c->busy = false;
			else
				CbConnClose(c);
			any_ok |= jobs[i].ok;
		}
	}
	if (any_ok)
		CbStatsCountRoundTrip();
	for (int i = 0; i < njobs; i++)
		if (!jobs[i].ok)
			CbStatsRecordError(jobs[i].err.server, jobs[i].err.detail);
	pfree(conns);
	pfree(reused);
	pfree(ran);
}

/*
 * The first half of CbRunJobs for one job: connects if need be and sends
 * the job's pipeline, handing over the replies that arrive meanwhile, and
 * returns once it is all written (or failed), so that the caller can work
 * while the server runs it.  CbRunJobFinish reads the rest; job->buf must
 * stay valid until then.
 */
void
CbRunJobStart(CbConnJob *job)
{
	CbRedisConn *c = job->conn;

	memset(&job->err, 0, sizeof(job->err));
	job->ok = false;
	job->nreplies = 0;
	job->started = false;
	if (!CbConnUsable(c))
		CbConnClose(c);
	job->reused = (c->fd != PGINVALID_SOCKET && !c->fresh);
	c->busy = true;
	if (c->fd == PGINVALID_SOCKET && !CbConnect(c, &job->err))
		return;
	c->fresh = false;
	CbConnBegin(c, job->buf, job->len, job->ncommands, job->callback,
				job->arg, &job->err);
	job->started = true;
	CbRoundTripMany(&c, 1, true);
}

/*
 * The second half: reads the replies of a job CbRunJobStart sent, its
 * command_timeout counted from now.  As in CbRunJobs, a job that failed on
 * a connection reused from an earlier call before any reply arrived is
 * run again, whole, on a fresh connection; and a connection something else
 * closed or took over in between fails the job.
 */
void
CbRunJobFinish(CbConnJob *job)
{
	CbRedisConn *c = job->conn;

	if (job->started)
	{
		if (c->fd == PGINVALID_SOCKET || c->buf != job->buf || c->err != &job->err)
		{
			CbSetError(c, &job->err, CB_REDIS_IO,
					   "The connection was closed while its replies were awaited.");
			c->failed = true;
		}
		else
		{
			c->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  cb_command_timeout);
			CbRoundTripMany(&c, 1, false);
		}
		job->nreplies = c->nreplies;
		job->ok = !c->failed;
		c->err = NULL;
		if (job->ok)
			c->busy = false;
		else
			CbConnClose(c);
	}
	if (!job->ok && job->reused && job->nreplies == 0 &&
		job->err.failure == CB_REDIS_IO)
	{
		CbRunJobs(job, 1);
		return;
	}
	if (job->ok)
		CbStatsCountRoundTrip();
	else
		CbStatsRecordError(job->err.server, job->err.detail);
}

/*
 * Connects to the first seed of the target that answers, if the seed
 * connection is not open: the one server of a single Redis, or the node a
 * Redis Cluster is discovered through.  *slots is then the seed's reply to
 * CLUSTER SLOTS if it is a node of a Redis Cluster (the caller frees it),
 * and the seed's host is copied to via_host; *slots is NULL otherwise, and
 * when the seed connection was already open.
 */
bool
CbConnOpenSeed(CbRedisError *err, redisReply **slots, char *via_host,
			   size_t via_len)
{
	*slots = NULL;
	if (CbConnUsable(&conn))
		return true;
	CbConnClose(&conn);
	if (cur_target == NULL)
	{
		CbSetError(NULL, err, CB_REDIS_CONNECT, "cachebridge.redis_url is not set.");
		return false;
	}
	for (int i = 0; i < cur_target->nseeds; i++)
	{
		strlcpy(conn.host, cur_target->seeds[i].host, sizeof(conn.host));
		conn.port = cur_target->seeds[i].port;
		CbFormatAddress(conn.display, sizeof(conn.display), conn.host, conn.port);
		conn.busy = true;
		if (CbConnect(&conn, err))
		{
			conn.busy = false;
			break;
		}
		if (CbRedisPastDeadline())
			break;
	}
	if (conn.fd == PGINVALID_SOCKET)
		return false;
	if (conn.slots != NULL)
	{
		*slots = conn.slots;
		conn.slots = NULL;
		strlcpy(via_host, conn.host, via_len);
		/* the nodes get connections of their own */
		CbConnClose(&conn);
	}
	return true;
}

/* The seed's connection, the one server's of a single Redis. */
CbRedisConn *
CbConnSeed(void)
{
	return &conn;
}

/*
 * A wake-up that came while waiting on a socket (the worker told of new
 * outbox rows, say) is the caller's: sets the latch again, so that its
 * next wait returns at once rather than sleeping through it.
 */
void
CbConnRestoreLatch(void)
{
	if (latch_taken)
	{
		latch_taken = false;
		SetLatch(MyLatch);
	}
}
