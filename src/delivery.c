/*-------------------------------------------------------------------------
 *
 * delivery.c
 *		Getting a committed transaction's effects into Redis: encoding them
 *		as versioned commands, the delivery modes, and the circuit breaker.
 *
 * At PRE_COMMIT the queue (queue.c) hands the effects, in the order they
 * were made, to a CbPlan: writes become EVALSHA calls of the apply script,
 * deletions are batched into calls of the delete script, and every call
 * carries the transaction's version marker (see scripts.c; what a version
 * is, and why it follows commit order, is version.c's).  The plan is
 * one blob of RESP-encoded pipelines ("steps"), with pattern invalidations
 * as steps of their own; PUBLISHes of changed keys (notify=) follow the
 * effects they announce, and stream entries (publish()) come last, in a
 * step of their own, as calls of the xadd script per stream.
 *
 *	sync	the committing backend sends the blob after commit; a failure is
 *			a WARNING and a counter.
 *	durable	the blob is also written to cachebridge.outbox in the
 *			committing transaction; the backend sends it after commit and
 *			acknowledges it, and the worker (worker.c) sends whatever was
 *			not acknowledged.  Nothing committed is lost.
 *	async	the blob goes to the outbox only; the worker sends it.
 *
 * Stream entries must reach each stream in commit order.  A transaction
 * with entries locks its streams before its plan is made (CbLockStreams),
 * and whenever there is an outbox its entries go through it and the
 * worker, which sends rows in order; the backend still applies the other
 * effects itself at commit (they are versioned, so the worker sending them
 * again changes nothing).  Before any effect reaches Redis its transaction's
 * commit record is flushed, so that a crash cannot undo a transaction
 * whose effects Redis shows (synchronous_commit = off).
 *
 * The circuit breaker lives in shared memory: the first failure to reach
 * Redis opens it, after which committing backends in durable and async
 * modes leave their effects to the worker without waiting on Redis, and in
 * sync mode count them failed at once, until the worker (or, in sync mode,
 * a backend probing after cachebridge.retry_interval) reaches Redis again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "backlog.h"
#include "cachebridge.h"
#include "delivery.h"
#include "outbox.h"
#include "reply.h"
#include "scripts.h"
#include "stats.h"
#include "version.h"

/*
 * How the detail of a rejected effect names what it concerned, after Redis'
 * reply (see CbDeliveryCountError, which cuts it off).
 */
#define CB_DETAIL_KEY_MARK "\" for key \""
#define CB_DETAIL_PATTERN_MARK "\" while deleting pattern \""

/* Keys per call of the delete script. */
#define CB_KEYS_PER_DELETE 500

/* Most entries, and about the most bytes, per call of the xadd script. */
#define CB_EVENTS_PER_XADD 256
#define CB_BYTES_PER_XADD (1024 * 1024)

/*
 * field4 of the advisory lock tags that order appends to a stream, and of
 * the database-wide tag a transaction with many streams locks instead
 */
#define CB_STREAM_LOCK_FIELD4 0xCB01
#define CB_STREAMS_LOCK_FIELD4 0xCB02

/* field4 of the advisory lock a backend holds on the outbox row it sends */
#define CB_ROW_LOCK_FIELD4 0xCB03

/* Most streams a transaction locks one by one. */
#define CB_STREAM_LOCKS_MAX 32

/* Magic at the start of an encoded plan. */
#define CB_BLOB_MAGIC "CBX2"

typedef struct CbDeliveryShared
{
	pg_atomic_uint32 breaker_open;
	slock_t		mutex;			/* protects the fields below */
	TimestampTz opened_at;
	TimestampTz last_success;	/* last delivery the worker completed */
} CbDeliveryShared;

int			cb_delivery = CB_DELIVERY_SYNC;
int			cb_tombstone_ttl = 300;
int			cb_retry_interval = 1000;
int			cb_delivery_timeout = 5000;

static CbDeliveryShared *shared = NULL;
static CbDeliveryShared local_shared;

/* The committing transaction's plan and outbox row. */
static CbPlan *xact_plan = NULL;
static CbDeliveryMode xact_mode;
static int64 xact_outbox_id = 0;
static bool xact_direct = false;
static bool xact_early = false;	/* send all but stream entries, unacknowledged */
static bool xact_owns_row = false;	/* holds the lock of its outbox row */
static LOCKTAG xact_row_lock;

/* ---------------------------------------------------------------------
 * Encoding
 * ---------------------------------------------------------------------
 */

/* Appends a uint32 to the blob. */
static void
CbBlobPutInt(StringInfo blob, uint32 v)
{
	appendBinaryStringInfo(blob, (char *) &v, sizeof(v));
}

/* Starts the plan of the current transaction, fixing its version marker. */
void
CbPlanBegin(CbPlan *plan)
{
	FullTransactionId fxid = GetTopFullTransactionIdIfAny();

	memset(plan, 0, sizeof(*plan));
	initStringInfo(&plan->blob);
	/* room for a varlena header, so the outbox stores the blob as it is */
	appendStringInfoSpaces(&plan->blob, VARHDRSZ);
	appendStringInfoString(&plan->blob, CB_BLOB_MAGIC);
	CbPipelineInit(&plan->pipeline);
	initStringInfo(&plan->scratch);

	/*
	 * The WAL insert position now, just before the commit record, in the
	 * epoch of this history (version.c): a later transaction that changed
	 * the same row waited for this one to commit, so its position is
	 * higher.
	 */
	plan->version = CbCurrentEpoch(&plan->epoch, true);
	plan->fxid = fxid;
	plan->committed_at = GetCurrentTimestamp();
	CbFormatVersion(plan->marker, &plan->epoch, plan->version);
	snprintf(plan->marker + CB_VERSION_LEN, sizeof(plan->marker) - CB_VERSION_LEN,
			 ":" UINT64_FORMAT, U64FromFullTransactionId(fxid));
}

/* Orders 64-bit hashes. */
static int
CbHashCompare(const void *a, const void *b)
{
	uint64		ha = *(const uint64 *) a;
	uint64		hb = *(const uint64 *) b;

	return (ha > hb) - (ha < hb);
}

/*
 * Takes, until the end of the transaction, an exclusive lock per stream
 * the transaction appends to, in a fixed order so that two transactions
 * cannot deadlock on them.  Called before the plan is begun: a later
 * transaction appending to the same stream waits until this one has
 * committed and, in sync mode, sent its entries (the COMMIT callback runs
 * before locks are released), so its version is higher, its outbox row
 * comes later, and streams are appended in commit order.
 *
 * Every such transaction first takes a database-wide lock in share mode;
 * one with more than CB_STREAM_LOCKS_MAX streams (a bulk change with a
 * stream per tenant, say) takes that lock in exclusive mode instead of
 * thousands of stream locks, which would exhaust the lock table.
 */
void
CbLockStreams(const CbKeyRef *streams, int n)
{
	uint64	   *hashes = palloc(sizeof(uint64) * Max(n, 1));
	int			nunique = 0;
	LOCKTAG		tag;

	for (int i = 0; i < n; i++)
		hashes[i] = hash_bytes_extended((const unsigned char *) streams[i].data,
										(int) streams[i].len, 0);
	qsort(hashes, n, sizeof(uint64), CbHashCompare);
	for (int i = 0; i < n; i++)
		if (i == 0 || hashes[i] != hashes[nunique - 1])
			hashes[nunique++] = hashes[i];

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, CB_STREAMS_LOCK_FIELD4);
	if (nunique > CB_STREAM_LOCKS_MAX)
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	else
	{
		(void) LockAcquire(&tag, ShareLock, false, false);
		for (int i = 0; i < nunique; i++)
		{
			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (hashes[i] >> 32),
								 (uint32) hashes[i], CB_STREAM_LOCK_FIELD4);
			(void) LockAcquire(&tag, ExclusiveLock, false, false);
		}
	}
	pfree(hashes);
}

/*
 * Closes the pipeline step being built, if it has commands: a step of kind
 * 'P', or 'E' for stream entries.
 */
static void
CbPlanFlushPipeline(CbPlan *plan, char kind)
{
	if (plan->pipeline.ncommands == 0)
		return;
	appendStringInfoChar(&plan->blob, kind);
	CbBlobPutInt(&plan->blob, plan->pipeline_effects);
	CbBlobPutInt(&plan->blob, plan->pipeline.ncommands);
	CbBlobPutInt(&plan->blob, plan->pipeline.buf.len);
	appendBinaryStringInfo(&plan->blob, plan->pipeline.buf.data, plan->pipeline.buf.len);
	CbPipelineReset(&plan->pipeline);
	plan->pipeline_effects = 0;
}

/*
 * Appends to the command being built the fields of a hash or stream entry:
 * nfields pairs of (uint32 length, bytes), as the triggers encode them.
 */
static void
CbPipelineArgFields(CbPipeline *p, const char *fields, int nfields)
{
	for (int i = 0; i < 2 * nfields; i++)
	{
		uint32		flen;

		memcpy(&flen, fields, sizeof(uint32));
		CbPipelineArg(p, fields + sizeof(uint32), flen);
		fields += sizeof(uint32) + flen;
	}
}

/* Grows an array of the plan to hold one more element. */
static void *
CbPlanGrow(void *array, int *max, size_t elemsize)
{
	*max = Max(1024, *max * 2);
	return array == NULL ? palloc(elemsize * *max) : repalloc(array, elemsize * *max);
}

/* Appends a key reference to an array of the plan. */
static void
CbKeyRefPush(CbKeyRef **refs, int *n, int *max, const char *data, size_t len)
{
	if (*n == *max)
		*refs = CbPlanGrow(*refs, max, sizeof(CbKeyRef));
	(*refs)[*n].data = data;
	(*refs)[*n].len = len;
	(*n)++;
}

/* Sends the batched deletions as calls of the delete script. */
static void
CbPlanFlushDeletes(CbPlan *plan)
{
	int			left = plan->ndels;
	int			inbatch = 0;

	for (int i = 0; i < plan->ndels; i++)
	{
		const char *key = plan->dels[i].data;
		size_t		keylen = plan->dels[i].len;

		if (inbatch == 0)
		{
			inbatch = Min(left, CB_KEYS_PER_DELETE);
			left -= inbatch;
			CbPipelineBegin(&plan->pipeline, 3 + 2 * inbatch + 2, key, keylen);
			CbPipelineArgStr(&plan->pipeline, "EVALSHA");
			CbPipelineArgStr(&plan->pipeline, CbScriptSha(CB_SCRIPT_DELETE));
			CbPipelineArgInt(&plan->pipeline, 2 * inbatch);
		}
		resetStringInfo(&plan->scratch);
		CbAppendVersionKey(&plan->scratch, key, keylen);
		CbPipelineArg(&plan->pipeline, key, keylen);
		CbPipelineArg(&plan->pipeline, plan->scratch.data, plan->scratch.len);
		plan->pipeline_effects++;
		if (--inbatch == 0)
		{
			CbPipelineArgStr(&plan->pipeline, plan->marker);
			CbPipelineArgInt(&plan->pipeline, cb_tombstone_ttl);
		}
	}
	plan->ndels = 0;
}

/*
 * Sends what is batched: deletions, then the PUBLISHes of keys changed so
 * far, so that a subscriber told of a key finds it already changed.
 */
static void
CbPlanFlushKeys(CbPlan *plan)
{
	CbPlanFlushDeletes(plan);
	for (int i = 0; i < plan->npubs; i++)
	{
		const char *channel = plan->pubs[i].data;
		size_t		chanlen = strlen(channel);

		CbPipelineBegin(&plan->pipeline, 3, channel, chanlen);
		CbPipelineArgStr(&plan->pipeline, "PUBLISH");
		CbPipelineArg(&plan->pipeline, channel, chanlen);
		CbPipelineArg(&plan->pipeline, channel + chanlen + 1,
					  plan->pubs[i].len - chanlen - 1);
		plan->pipeline_effects++;
	}
	plan->npubs = 0;
}

/* True if two stream entries go to the same stream. */
static bool
CbSameStream(const CbPlanEvent *a, const CbPlanEvent *b)
{
	return a->stream.len == b->stream.len &&
		memcmp(a->stream.data, b->stream.data, a->stream.len) == 0;
}

/* Orders stream entries by stream, then by when they were made. */
static int
CbPlanEventCompare(const void *a, const void *b)
{
	const CbPlanEvent *ea = (const CbPlanEvent *) a;
	const CbPlanEvent *eb = (const CbPlanEvent *) b;
	int			c;

	c = memcmp(ea->stream.data, eb->stream.data, Min(ea->stream.len, eb->stream.len));
	if (c == 0)
		c = (ea->stream.len > eb->stream.len) - (ea->stream.len < eb->stream.len);
	if (c == 0)
		c = (ea->order > eb->order) - (ea->order < eb->order);
	return c;
}

/*
 * Sends the stream entries: per stream, in the order they were made, in
 * calls of the xadd script of at most CB_EVENTS_PER_XADD entries.  Each
 * entry gets the fields lsn, xid and committed_at of the transaction.
 */
static void
CbPlanFlushEvents(CbPlan *plan)
{
	char		source[64];
	char		lsn[32];
	char		xid[32];
	char		committed_at[64];
	struct pg_tm tm;
	fsec_t		fsec;
	int			start = 0;
	int			chunk = 0;

	if (plan->nevents == 0)
		return;
	qsort(plan->events, plan->nevents, sizeof(CbPlanEvent), CbPlanEventCompare);

	snprintf(source, sizeof(source), UINT64_FORMAT ":%u",
			 GetSystemIdentifier(), MyDatabaseId);
	snprintf(lsn, sizeof(lsn), "%X/%X", LSN_FORMAT_ARGS(plan->version));
	snprintf(xid, sizeof(xid), UINT64_FORMAT, U64FromFullTransactionId(plan->fxid));
	if (timestamp2tm(plan->committed_at, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "commit timestamp out of range");
	snprintf(committed_at, sizeof(committed_at),
			 "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, (int) fsec);

	while (start < plan->nevents)
	{
		const CbPlanEvent *first = &plan->events[start];
		int			end = start;
		size_t		bytes = 0;
		int			nargs = 7;
		StringInfo	marker = &plan->scratch;
		char		version[64];

		/* the chunk: entries of first's stream, up to the limits */
		while (end < plan->nevents && end - start < CB_EVENTS_PER_XADD &&
			   bytes < CB_BYTES_PER_XADD &&
			   CbSameStream(&plan->events[end], first))
		{
			bytes += plan->events[end].len + 128;
			nargs += 2 + 2 * (plan->events[end].nfields + 3);
			end++;
		}

		resetStringInfo(marker);
		CbAppendVersionKey(marker, first->stream.data, first->stream.len);
		CbFormatVersion(version, &plan->epoch, plan->version);
		snprintf(version + CB_VERSION_LEN, sizeof(version) - CB_VERSION_LEN,
				 ":%08d", chunk);

		CbPipelineBegin(&plan->pipeline, nargs, first->stream.data, first->stream.len);
		CbPipelineArgStr(&plan->pipeline, "EVALSHA");
		CbPipelineArgStr(&plan->pipeline, CbScriptSha(CB_SCRIPT_XADD));
		CbPipelineArgStr(&plan->pipeline, "2");
		CbPipelineArg(&plan->pipeline, first->stream.data, first->stream.len);
		CbPipelineArg(&plan->pipeline, marker->data, marker->len);
		CbPipelineArgStr(&plan->pipeline, source);
		CbPipelineArgStr(&plan->pipeline, version);
		for (int i = start; i < end; i++)
		{
			const CbPlanEvent *e = &plan->events[i];

			CbPipelineArgInt(&plan->pipeline, e->maxlen);
			CbPipelineArgInt(&plan->pipeline, e->nfields + 3);
			CbPipelineArgFields(&plan->pipeline, e->fields, e->nfields);
			CbPipelineArgStr(&plan->pipeline, "lsn");
			CbPipelineArgStr(&plan->pipeline, lsn);
			CbPipelineArgStr(&plan->pipeline, "xid");
			CbPipelineArgStr(&plan->pipeline, xid);
			CbPipelineArgStr(&plan->pipeline, "committed_at");
			CbPipelineArgStr(&plan->pipeline, committed_at);
			plan->pipeline_effects++;
		}

		/* the next chunk of the same stream is numbered on */
		chunk = (end < plan->nevents && CbSameStream(&plan->events[end], first))
			? chunk + 1 : 0;
		start = end;
	}
	plan->nevents = 0;
}

/*
 * Adds one effect.  Effects must come in the order they were made; each
 * key comes at most once.
 */
void
CbPlanAdd(CbPlan *plan, CbEffectOp op, const char *key, size_t keylen,
		  const char *payload, size_t len, int nfields, int ttl)
{
	StringInfo	marker = &plan->scratch;

	plan->neffects++;

	/* keys and payloads stay valid until the plan ends: they are the queue's */
	if (op == CB_OP_DEL)
	{
		CbKeyRefPush(&plan->dels, &plan->ndels, &plan->maxdels, key, keylen);
		return;
	}
	if (op == CB_OP_PUBLISH)
	{
		CbKeyRefPush(&plan->pubs, &plan->npubs, &plan->maxpubs, key, keylen);
		return;
	}
	if (op == CB_OP_XADD)
	{
		CbPlanEvent *e;

		if (plan->nevents == plan->maxevents)
			plan->events = CbPlanGrow(plan->events, &plan->maxevents, sizeof(CbPlanEvent));
		e = &plan->events[plan->nevents];
		e->stream.data = key;
		e->stream.len = keylen;
		e->fields = payload;
		e->len = len;
		e->nfields = nfields;
		e->maxlen = ttl;
		e->order = plan->nevents++;
		plan->nentries++;
		return;
	}
	if (op == CB_OP_PATTERN)
	{
		/* everything made before the pattern goes first */
		CbPlanFlushKeys(plan);
		CbPlanFlushPipeline(plan, 'P');
		/* S, step length, pattern length, pattern, the plan's marker */
		appendStringInfoChar(&plan->blob, 'S');
		CbBlobPutInt(&plan->blob, sizeof(uint32) + keylen + strlen(plan->marker));
		CbBlobPutInt(&plan->blob, keylen);
		appendBinaryStringInfo(&plan->blob, key, keylen);
		appendStringInfoString(&plan->blob, plan->marker);
		return;
	}

	/* EVALSHA sha 2 key marker-key op marker ttl tombstone-ttl value... */
	resetStringInfo(marker);
	CbAppendVersionKey(marker, key, keylen);
	CbPipelineBegin(&plan->pipeline, 9 + (op == CB_OP_SET ? 1 : 2 * nfields),
					key, keylen);
	CbPipelineArgStr(&plan->pipeline, "EVALSHA");
	CbPipelineArgStr(&plan->pipeline, CbScriptSha(CB_SCRIPT_APPLY));
	CbPipelineArgStr(&plan->pipeline, "2");
	CbPipelineArg(&plan->pipeline, key, keylen);
	CbPipelineArg(&plan->pipeline, marker->data, marker->len);
	CbPipelineArgStr(&plan->pipeline, op == CB_OP_SET ? "S" : "H");
	CbPipelineArgStr(&plan->pipeline, plan->marker);
	CbPipelineArgInt(&plan->pipeline, ttl);
	CbPipelineArgInt(&plan->pipeline, cb_tombstone_ttl);
	if (op == CB_OP_SET)
		CbPipelineArg(&plan->pipeline, payload, len);
	else
		CbPipelineArgFields(&plan->pipeline, payload, nfields);
	plan->pipeline_effects++;
}

/*
 * Finishes the plan; after this it no longer refers to the queue.
 * Returns the encoded effects as a bytea.
 */
bytea *
CbPlanEnd(CbPlan *plan)
{
	bytea	   *effects;

	CbPlanFlushKeys(plan);
	CbPlanFlushPipeline(plan, 'P');
	CbPlanFlushEvents(plan);
	CbPlanFlushPipeline(plan, 'E');
	if (plan->dels != NULL)
		pfree(plan->dels);
	if (plan->pubs != NULL)
		pfree(plan->pubs);
	if (plan->events != NULL)
		pfree(plan->events);
	plan->dels = NULL;
	plan->pubs = NULL;
	plan->events = NULL;
	pfree(plan->pipeline.buf.data);
	pfree(plan->scratch.data);
	effects = (bytea *) plan->blob.data;
	SET_VARSIZE(effects, plan->blob.len);
	return effects;
}

/* ---------------------------------------------------------------------
 * Sending a plan
 * ---------------------------------------------------------------------
 */

typedef struct CbStepReplies
{
	int			rejected;		/* replies that rejected an effect for good */
	int			retryable;		/* replies that refused an effect for now */
	bool		noscript;		/* the script cache was flushed */
	bool	   *rejected_at;	/* if not NULL: per command, rejected for good */
	int			first_index;	/* command of first_error */
	char		first_error[256];	/* first error reply, retryable ones first */
} CbStepReplies;

/* Takes the verdict of reply.c on every reply; keeps the first error. */
static bool
CbStepReply(int index, redisReply *reply, void *arg)
{
	CbStepReplies *r = (CbStepReplies *) arg;
	CbVerdict	verdict = CbReplyVerdict(reply);
	bool		first;

	if (verdict == CB_VERDICT_APPLIED)
		return false;
	if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
		r->noscript = true;
	/* what is to be retried is what the message must tell first */
	first = (r->rejected + r->retryable == 0) ||
		(verdict == CB_VERDICT_RETRYABLE && r->retryable == 0);
	if (verdict == CB_VERDICT_RETRYABLE)
		r->retryable++;
	else
	{
		r->rejected++;
		if (r->rejected_at != NULL)
			r->rejected_at[index] = true;
	}
	if (first)
	{
		r->first_index = index;
		snprintf(r->first_error, sizeof(r->first_error), "%.*s",
				 (int) reply->len, reply->str);
	}
	return false;
}

/* Reads a uint32 of the blob at *pos, if there is one. */
static bool
CbBlobGetInt(const char *blob, size_t len, size_t *pos, uint32 *v)
{
	if (*pos + sizeof(uint32) > len)
		return false;
	memcpy(v, blob + *pos, sizeof(uint32));
	*pos += sizeof(uint32);
	return true;
}

/* Sends one pipeline step; a flushed script cache is reloaded once. */
static bool
CbSendPipelineStep(const char *cmds, size_t len, int ncommands,
				   CbStepReplies *replies, CbRedisError *err)
{
	bool	   *rejected_at = replies->rejected_at;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		memset(replies, 0, sizeof(*replies));
		replies->rejected_at = rejected_at;
		if (rejected_at != NULL)
			memset(rejected_at, 0, sizeof(bool) * ncommands);
		if (!CbExecuteBuffer(cmds, len, ncommands, CbStepReply, replies, err))
			return false;
		if (!replies->noscript)
			break;
		/* a new connection loads the scripts again */
		CbRedisDisconnect();
	}
	return true;
}

/*
 * Reads the RESP header of kind ('*' or '$') at *pos of encoded commands,
 * and for a bulk string its data; false if there is none.
 */
static bool
CbRespNext(const char *buf, size_t len, size_t *pos, char kind,
		   const char **data, long *n)
{
	size_t		p = *pos + 1;

	if (*pos >= len || buf[*pos] != kind)
		return false;
	*n = 0;
	while (p < len && buf[p] >= '0' && buf[p] <= '9' && *n < 1L << 40)
		*n = *n * 10 + (buf[p++] - '0');
	if (p == *pos + 1 || p + 2 > len || buf[p] != '\r' || buf[p + 1] != '\n')
		return false;
	p += 2;
	*data = buf + p;
	if (kind == '$')
	{
		if ((size_t) *n + 2 > len - p ||
			buf[p + *n] != '\r' || buf[p + *n + 1] != '\n')
			return false;
		p += *n + 2;
	}
	*pos = p;
	return true;
}

/*
 * True if cmds holds exactly ncommands RESP-encoded commands: a step that
 * claims more or fewer would have Redis and the reader disagree on which
 * reply answers which command, or wait for replies that never come.
 */
static bool
CbStepWellFormed(const char *cmds, size_t len, uint32 ncommands)
{
	size_t		pos = 0;
	const char *data;
	long		n;

	for (uint32 c = 0; c < ncommands; c++)
	{
		long		argc;

		if (!CbRespNext(cmds, len, &pos, '*', &data, &argc) || argc < 1)
			return false;
		for (long a = 0; a < argc; a++)
			if (!CbRespNext(cmds, len, &pos, '$', &data, &n))
				return false;
	}
	return pos == len;
}

/*
 * Describes the key command index of encoded commands acts on, for a
 * message: the first key of a script call (with how many more it holds),
 * or the first argument of another command.
 */
static void
CbDescribeCommandKey(const char *cmds, size_t len, int index, StringInfo out)
{
	size_t		pos = 0;
	const char *data;
	long		n;

	for (int c = 0; c <= index; c++)
	{
		long		argc;
		const char *args[4] = {0};
		long		arglens[4] = {0};

		if (!CbRespNext(cmds, len, &pos, '*', &data, &argc))
			return;
		for (long a = 0; a < argc; a++)
		{
			if (!CbRespNext(cmds, len, &pos, '$', &data, &n))
				return;
			if (a < 4)
			{
				args[a] = data;
				arglens[a] = n;
			}
		}
		if (c < index || argc < 2)
			continue;
		if (argc >= 4 && arglens[0] == 7 && pg_strncasecmp(args[0], "EVALSHA", 7) == 0)
		{
			long		nkeys = strtol(args[2], NULL, 10);

			appendBinaryStringInfo(out, args[3], Min(arglens[3], 200));
			/* the delete script names each key with its marker */
			if (nkeys > 2)
				appendStringInfo(out, "\" and %ld more \"", nkeys / 2 - 1);
		}
		else
			appendBinaryStringInfo(out, args[1], Min(arglens[1], 200));
	}
}

/*
 * Turns the replies of a step into the result, and the detail of its
 * first error: Redis' reply, and the key it concerned.
 */
static CbDeliveryResult
CbStepResult(const CbStepReplies *replies, const char *cmds, size_t len,
			 int *failed, int neffects, char *detail, size_t detaillen)
{
	StringInfoData key;

	if (replies->rejected + replies->retryable == 0)
		return CB_DELIVERED;
	initStringInfo(&key);
	CbDescribeCommandKey(cmds, len, replies->first_index, &key);
	snprintf(detail, detaillen, "Redis answered \"%s" CB_DETAIL_KEY_MARK "%s\".",
			 replies->first_error, key.data);
	pfree(key.data);
	*failed += Min(replies->rejected, neffects);
	return replies->retryable > 0 ? CB_RETRYABLE : CB_REJECTED;
}

/*
 * Records the error of a delivery that came to result in the statistics.
 * The statistics are cluster-wide and readable by every cachebridge_reader,
 * so the key a detail names -- row data of some tenant's table -- is left
 * out: only Redis' reply is kept.  (The WARNING and the outbox row, seen
 * by the session and the outbox's owner, keep the key.)
 */
void
CbDeliveryCountError(CbDeliveryResult result, const char *detail)
{
	char		reason[512];
	const char *cut = strstr(detail, CB_DETAIL_KEY_MARK);

	if (cut != NULL)
		snprintf(reason, sizeof(reason), "%.*s\".", (int) (cut - detail), detail);
	else
		snprintf(reason, sizeof(reason), "%s", detail);
	if (result == CB_RETRYABLE)
		CbStatsRecordError(CbRedisServerName(), reason);
	else if (result == CB_REJECTED)
		CbStatsSetLastError("Redis rejected an effect", reason);
}

/* The worse of two results: what is pending outweighs what is rejected. */
static CbDeliveryResult
CbWorseResult(CbDeliveryResult a, CbDeliveryResult b)
{
	return Max(a, b);
}

/* One step of an encoded plan, as CbBlobNextStep reads it. */
typedef struct CbBlobStep
{
	char		kind;			/* 'P', 'E' (pipelines) or 'S' (pattern) */
	uint32		neffects;		/* pipelines: effects and commands */
	uint32		ncommands;
	const char *data;
	uint32		len;
} CbBlobStep;

/* Checks the magic of an encoded plan; *pos is then at its first step. */
static bool
CbBlobStart(const char *blob, size_t len, size_t *pos)
{
	*pos = strlen(CB_BLOB_MAGIC);
	return len >= *pos && memcmp(blob, CB_BLOB_MAGIC, *pos) == 0;
}

/*
 * Reads the step of blob at *pos and moves *pos past it; false if it is
 * malformed.  With check, a pipeline step must also hold exactly the
 * commands it claims: a plan read back from the outbox is checked, the
 * committing backend's own (just built) is not.
 */
static bool
CbBlobNextStep(const char *blob, size_t len, size_t *pos, bool check,
			   CbBlobStep *step)
{
	bool		pipeline;

	step->kind = blob[(*pos)++];
	step->neffects = step->ncommands = 0;
	pipeline = (step->kind == 'P' || step->kind == 'E');
	if ((pipeline && (!CbBlobGetInt(blob, len, pos, &step->neffects) ||
					  !CbBlobGetInt(blob, len, pos, &step->ncommands))) ||
		(!pipeline && step->kind != 'S') ||
		!CbBlobGetInt(blob, len, pos, &step->len) ||
		step->len > len - *pos ||
		(check && pipeline &&
		 !CbStepWellFormed(blob + *pos, step->len, step->ncommands)))
		return false;
	step->data = blob + *pos;
	*pos += step->len;
	return true;
}

/*
 * Sends an encoded plan (without its stream entries if skip_events);
 * stored says it was read back from the outbox, so its steps are checked
 * before they are sent.  Never raises an ERROR (but out of memory).
 * Returns what it came to; *failed counts effects Redis rejected for good,
 * detail says why the first failure happened.  A retryable reply does not
 * stop the plan: the rest is applied now, and everything is sent again
 * later (versions make that harmless).
 */
CbDeliveryResult
CbDeliverBlob(const char *blob, size_t len, bool skip_events, bool stored,
			  int *failed, char *detail, size_t detaillen)
{
	size_t		pos;
	CbDeliveryResult result = CB_DELIVERED;

	*failed = 0;
	if (!CbBlobStart(blob, len, &pos))
	{
		snprintf(detail, detaillen, "The encoded effects do not start with %s.", CB_BLOB_MAGIC);
		return CB_CORRUPT;
	}
	while (pos < len)
	{
		size_t		at = pos;
		CbBlobStep	s;
		CbRedisError err;
		CbDeliveryResult step = CB_DELIVERED;
		char		stepdetail[512];

		if (!CbBlobNextStep(blob, len, &pos, stored, &s))
		{
			snprintf(detail, detaillen, "Malformed step at byte %zu of %zu.", at, len);
			return CB_CORRUPT;
		}

		if (s.kind == 'E' && skip_events)
			;
		else if (s.kind != 'S')
		{
			CbStepReplies replies = {0};

			if (!CbSendPipelineStep(s.data, s.len, s.ncommands, &replies, &err))
			{
				snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
				return CB_UNREACHABLE;
			}
			step = CbStepResult(&replies, s.data, s.len, failed, s.neffects,
								stepdetail, sizeof(stepdetail));
		}
		else
		{
			/* pattern length, pattern, the plan's marker */
			int64		unlinked = 0;
			char	   *error_reply = NULL;
			size_t		ppos = 0;
			uint32		patlen;
			char		marker[64];

			if (!CbBlobGetInt(s.data, s.len, &ppos, &patlen) ||
				patlen > s.len - ppos ||
				s.len - ppos - patlen >= sizeof(marker))
			{
				snprintf(detail, detaillen, "Malformed pattern step at byte %zu of %zu.", at, len);
				return CB_CORRUPT;
			}
			snprintf(marker, sizeof(marker), "%.*s",
					 (int) (s.len - ppos - patlen), s.data + ppos + patlen);
			if (!CbRedisUnlinkMatching(s.data + ppos, patlen, marker, cb_tombstone_ttl,
									   &unlinked, &error_reply, &err))
			{
				snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
				return CB_UNREACHABLE;
			}
			if (error_reply != NULL)
			{
				step = CbErrorVerdict(error_reply, strlen(error_reply)) == CB_VERDICT_RETRYABLE
					? CB_RETRYABLE : CB_REJECTED;
				if (step == CB_REJECTED)
					*failed += 1;
				snprintf(stepdetail, sizeof(stepdetail),
						 "Redis answered \"%s" CB_DETAIL_PATTERN_MARK "%.*s\".",
						 error_reply, (int) Min(patlen, 200), s.data + ppos);
			}
		}
		/* the detail is the first failure's, or the first retryable one's */
		if (step != CB_DELIVERED &&
			(result == CB_DELIVERED || (step == CB_RETRYABLE && result != CB_RETRYABLE)))
			snprintf(detail, detaillen, "%s", stepdetail);
		result = CbWorseResult(result, step);
	}
	return result;
}

/*
 * If blob holds only pipeline steps, each holding the commands it claims,
 * appends their commands to cmds, adds to *ncommands and *neffects, and
 * returns true; otherwise (a pattern step, or a blob that does not parse)
 * leaves cmds alone and returns false.  Lets the worker send many outbox
 * rows in one round trip.
 */
bool
CbBlobAppendPipelines(const char *blob, size_t len, StringInfo cmds,
					  int *ncommands, int *neffects)
{
	size_t		pos;
	int			oldlen = cmds->len;
	int			nc = 0;
	int			ne = 0;

	if (!CbBlobStart(blob, len, &pos))
		return false;
	while (pos < len)
	{
		CbBlobStep	s;

		if (!CbBlobNextStep(blob, len, &pos, true, &s) || s.kind == 'S')
		{
			cmds->len = oldlen;
			cmds->data[oldlen] = '\0';
			return false;
		}
		appendBinaryStringInfo(cmds, s.data, s.len);
		nc += s.ncommands;
		ne += s.neffects;
	}
	*ncommands += nc;
	*neffects += ne;
	return true;
}

/*
 * Sends commands gathered by CbBlobAppendPipelines from several plans in
 * one round trip.  As CbDeliverBlob, but never CB_CORRUPT; if rejected is
 * not NULL, it says per command whether Redis rejected it for good.
 */
CbDeliveryResult
CbDeliverCommands(const char *cmds, size_t len, int ncommands, int neffects,
				  bool *rejected, int *failed, char *detail, size_t detaillen)
{
	CbStepReplies replies = {0};
	CbRedisError err;

	*failed = 0;
	replies.rejected_at = rejected;
	if (!CbSendPipelineStep(cmds, len, ncommands, &replies, &err))
	{
		snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
		return CB_UNREACHABLE;
	}
	return CbStepResult(&replies, cmds, len, failed, neffects, detail, detaillen);
}

/* ---------------------------------------------------------------------
 * The circuit breaker
 * ---------------------------------------------------------------------
 */

/* The breaker state in use: shared, or this backend's own. */
static CbDeliveryShared *
CbShared(void)
{
	if (shared == NULL)
	{
		pg_atomic_init_u32(&local_shared.breaker_open, 0);
		SpinLockInit(&local_shared.mutex);
		shared = &local_shared;
	}
	return shared;
}

/* Asks for the shared breaker (from the shmem_request_hook). */
void
CbDeliveryShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CbDeliveryShared)));
}

/* Attaches to the shared breaker. */
void
CbDeliveryShmemStartup(void)
{
	bool		found;

	shared = ShmemInitStruct("cachebridge delivery", sizeof(CbDeliveryShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		pg_atomic_init_u32(&shared->breaker_open, 0);
		SpinLockInit(&shared->mutex);
	}
}

/* True while Redis is known to be unreachable. */
bool
CbBreakerIsOpen(void)
{
	return pg_atomic_read_u32(&CbShared()->breaker_open) != 0;
}

/* Opens the breaker: Redis could not be reached. */
void
CbBreakerTrip(void)
{
	CbDeliveryShared *s = CbShared();
	TimestampTz now = GetCurrentTimestamp();

	if (pg_atomic_exchange_u32(&s->breaker_open, 1) == 0)
	{
		SpinLockAcquire(&s->mutex);
		s->opened_at = now;
		SpinLockRelease(&s->mutex);
	}
}

/* Closes the breaker: Redis answered. */
void
CbBreakerReset(void)
{
	CbDeliveryShared *s = CbShared();
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_write_u32(&s->breaker_open, 0);
	SpinLockAcquire(&s->mutex);
	s->last_success = now;
	SpinLockRelease(&s->mutex);
}

/*
 * In sync mode nobody else probes Redis: a committing backend tries again
 * once cachebridge.retry_interval has passed since the breaker opened.
 */
static bool
CbBreakerAllowsProbe(void)
{
	CbDeliveryShared *s = CbShared();
	TimestampTz opened;

	SpinLockAcquire(&s->mutex);
	opened = s->opened_at;
	SpinLockRelease(&s->mutex);
	return TimestampDifferenceExceeds(opened, GetCurrentTimestamp(), cb_retry_interval);
}

/* SQL: cachebridge.delivery_status() -- breaker and worker state. */
PG_FUNCTION_INFO_V1(cachebridge_delivery_status);
Datum
cachebridge_delivery_status(PG_FUNCTION_ARGS)
{
	CbDeliveryShared *s = CbShared();
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {0};
	TimestampTz opened;
	TimestampTz success;
	bool		open = CbBreakerIsOpen();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SpinLockAcquire(&s->mutex);
	opened = s->opened_at;
	success = s->last_success;
	SpinLockRelease(&s->mutex);

	values[0] = CStringGetTextDatum(open ? "open" : "closed");
	values[1] = TimestampTzGetDatum(opened);
	nulls[1] = !open;
	values[2] = TimestampTzGetDatum(success);
	nulls[2] = (success == 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---------------------------------------------------------------------
 * The transaction's delivery
 * ---------------------------------------------------------------------
 */

/* The mode this transaction delivers in. */
static CbDeliveryMode
CbEffectiveMode(void)
{
	return cb_preloaded ? (CbDeliveryMode) cb_delivery : CB_DELIVERY_SYNC;
}

/*
 * Before commit (or PREPARE): remember the plan, and in durable and async
 * modes write it to the outbox in this transaction.
 */
void
CbDeliveryPreCommit(CbPlan *plan, bytea *effects, bool prepare)
{
	xact_mode = CbEffectiveMode();
	if (prepare && xact_mode == CB_DELIVERY_SYNC)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that has pending cachebridge effects in sync delivery mode"),
				 errdetail("The transaction changed rows of a table with a cachebridge trigger."),
				 errhint("Set cachebridge.delivery to durable or async (with cachebridge in shared_preload_libraries), or commit without PREPARE TRANSACTION.")));

	/*
	 * Stream entries go through the outbox whenever there is one: a sync
	 * session sending its own could overtake an earlier transaction's
	 * entries that the worker still holds, which would then be skipped as
	 * older.
	 */
	if (xact_mode == CB_DELIVERY_SYNC && cb_preloaded && plan->nentries > 0)
		xact_mode = CB_DELIVERY_DURABLE;

	xact_plan = plan;
	xact_outbox_id = 0;
	xact_direct = (xact_mode == CB_DELIVERY_SYNC);
	if (xact_mode != CB_DELIVERY_SYNC)
	{
		/*
		 * With the breaker open the worker delivers, at once.  Stream
		 * entries always go through the worker, which sends outbox rows in
		 * order: a backend sending them itself could overtake the worker
		 * still retrying an earlier transaction's entries.
		 */
		bool		backlog;

		/*
		 * While older rows wait for the worker, this one waits behind
		 * them (backlog.c): sent now, it could reach Redis first.
		 */
		backlog = CbBacklogPending() && !CbBacklogTryClear(false);
		xact_direct = (xact_mode == CB_DELIVERY_DURABLE && !prepare &&
					   plan->nentries == 0 && !CbBreakerIsOpen() && !backlog);
		xact_early = (xact_mode == CB_DELIVERY_DURABLE && !prepare &&
					  plan->nentries > 0 && plan->neffects > plan->nentries &&
					  !CbBreakerIsOpen() && !backlog);

		/*
		 * A row left to the worker is a backlog from now on.  A prepared
		 * one counts from COMMIT PREPARED (see the ProcessUtility hook):
		 * until then it is invisible, and the lock would stay with it.
		 */
		if (!xact_direct && !prepare)
			CbBacklogAdd();
		xact_outbox_id = CbOutboxInsert(effects, plan->neffects,
										plan->version, xact_direct);

		/*
		 * The row is this backend's to send: the worker leaves it, and the
		 * rows after it, until the lock is released (after commit, once the
		 * row is acknowledged or given up), rather than guess with a timer.
		 */
		if (xact_direct)
		{
			SET_LOCKTAG_ADVISORY(xact_row_lock, MyDatabaseId,
								 (uint32) (xact_outbox_id >> 32),
								 (uint32) xact_outbox_id, CB_ROW_LOCK_FIELD4);
			(void) LockAcquire(&xact_row_lock, ExclusiveLock, true, false);
			xact_owns_row = true;
		}
	}
}

/* True if no backend holds the lock of outbox row id (see above). */
bool
CbOutboxRowFree(int64 id)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
						 CB_ROW_LOCK_FIELD4);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(&tag, ShareLock, false);
	return true;
}

/*
 * Waits until no backend holds the lock of outbox row id; true (the wait
 * is interruptible, and the holder lets go after delivery_timeout at the
 * latest).
 */
bool
CbOutboxRowWait(int64 id)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
						 CB_ROW_LOCK_FIELD4);
	(void) LockAcquire(&tag, ShareLock, false, false);
	LockRelease(&tag, ShareLock, false);
	return true;
}

/* Lets go of the transaction's outbox row, if it holds it. */
static void
CbDeliveryRelease(void)
{
	if (xact_owns_row)
	{
		LockRelease(&xact_row_lock, ExclusiveLock, true);
		xact_owns_row = false;
	}
}

/*
 * Reports effects of the committed transaction that Redis did not apply:
 * pending ones stay in the outbox (retried), rejected ones are counted
 * failed unless the worker will count them.  Never raises an ERROR.
 */
static void
CbReportUndelivered(CbDeliveryResult result, int n, const char *detail,
					bool retried)
{
	if (!retried)
		CbStatsAdd(CB_STAT_FAILED, n);
	CbDeliveryCountError(result, detail);
	ereport(WARNING,
			(errcode(result == CB_REJECTED ? ERRCODE_EXTERNAL_ROUTINE_EXCEPTION
					 : ERRCODE_CONNECTION_FAILURE),
			 errmsg("cachebridge could not apply %d effect(s) of the committed transaction to Redis",
					n),
			 errdetail_internal("%s", detail),
			 !retried
			 ? errhint("The cached keys may be stale until they expire or are written again.")
			 : result == CB_REJECTED
			 ? errhint("The worker keeps the transaction's outbox row as dead, with the reason.")
			 : errhint("They stay in cachebridge.outbox; the worker delivers them when Redis takes them.")));
}

/*
 * After commit: send the plan if this backend is to, acknowledge the
 * outbox row if every effect was applied, wake the worker.  Interrupts
 * are held by the caller; every failure is a WARNING or a counter.
 */
void
CbDeliveryCommit(void)
{
	CbPlan	   *plan = xact_plan;
	CbDeliveryResult result = CB_UNREACHABLE;
	int			failed = 0;
	char		detail[512];
	bool		retried = (xact_mode != CB_DELIVERY_SYNC);

	if (plan == NULL)
		return;
	CbStatsAdd(CB_STAT_QUEUED, plan->neffects);

	/*
	 * A row left to the worker since PRE_COMMIT (a concurrent backend's
	 * delivery failed) is older than this one: wait behind it.
	 */
	if (xact_direct && xact_mode != CB_DELIVERY_SYNC && CbBacklogPending())
	{
		CbBacklogAddCommitted();
		xact_direct = false;
	}

	/*
	 * With synchronous_commit off the commit record may not be flushed yet,
	 * and a crash would undo the transaction: its effects must not reach
	 * Redis before it is durable.
	 */
	if ((xact_direct || xact_early) && XactLastCommitEnd > GetFlushRecPtr(NULL))
		XLogFlush(XactLastCommitEnd);

	if (xact_direct && xact_mode == CB_DELIVERY_SYNC &&
		CbBreakerIsOpen() && !CbBreakerAllowsProbe())
	{
		CbReportUndelivered(CB_UNREACHABLE, plan->neffects,
							"Redis was unreachable moments ago (the circuit breaker is open).",
							false);
		xact_direct = false;
	}

	/*
	 * A durable transaction with stream entries leaves its outbox row to the
	 * worker, but applies its cache effects itself first, so that they are
	 * in Redis when COMMIT returns; the worker sends them again, harmlessly
	 * (versions), with the entries, and counts them.
	 */
	if (xact_early &&
		CbDeliveryPending(CbDeliverBlob(plan->blob.data + VARHDRSZ,
										plan->blob.len - VARHDRSZ, true, false,
										&failed, detail, sizeof(detail))) &&
		!CbRedisPastDeadline())
		CbBreakerTrip();

	if (xact_direct)
	{
		result = CbDeliverBlob(plan->blob.data + VARHDRSZ,
							   plan->blob.len - VARHDRSZ, false, false, &failed,
							   detail, sizeof(detail));
		if (CbDeliveryPending(result))
		{
			/* a delivery too big for delivery_timeout is no outage */
			if (!CbRedisPastDeadline())
				CbBreakerTrip();
			/* still holding the row's lock: see backlog.c */
			if (retried)
				CbBacklogAddCommitted();
			CbReportUndelivered(result, plan->neffects, detail, retried);
		}
		else
		{
			/* the worker sends the row again, to learn what to keep dead */
			if (retried && result == CB_REJECTED)
				CbBacklogAddCommitted();
			if (xact_mode == CB_DELIVERY_SYNC)
				CbBreakerReset();
			/* in durable mode the worker counts what it keeps as dead */
			if (result == CB_REJECTED)
				CbReportUndelivered(result, failed, detail, retried);
			if (!(retried && result == CB_REJECTED))
				CbStatsAdd(CB_STAT_DELIVERED, plan->neffects - failed);
			CbStatsRecordLag(CB_LAG_DIRECT, plan->committed_at);
		}
	}
	if (xact_outbox_id != 0)
	{
		/*
		 * Delivered: the worker only has to delete the row.  Otherwise it
		 * has to send it: announce that (starting the worker) while the row
		 * is still ours, and again once it is free, so the worker does not
		 * nap past it.
		 */
		if (xact_direct && result == CB_DELIVERED)
		{
			CbOutboxAcknowledge(MyDatabaseId, xact_outbox_id);
			CbDeliveryRelease();
		}
		else
		{
			CbWorkerNotify(MyDatabaseId);
			CbDeliveryRelease();
			(void) CbWorkerWake(MyDatabaseId);
		}
	}
}

/* End of transaction: forget the plan. */
void
CbDeliveryReset(void)
{
	/* an abort after the outbox row was written leaves no lock behind */
	CbDeliveryRelease();
	xact_plan = NULL;
	xact_outbox_id = 0;
	xact_direct = false;
	xact_early = false;
}
