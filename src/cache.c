/*-------------------------------------------------------------------------
 *
 * cache.c
 *		Cache-aside functions callable from SQL: get, set, del and
 *		invalidate_pattern.
 *
 * Each call is one pipeline against the backend's Redis connection (see
 * redis.c) and raises an ERROR when Redis cannot be reached or rejects the
 * command.  Keys are prefixed with cachebridge.key_prefix and passed
 * binary-safe, so any byte sequence PostgreSQL text can hold is a key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "replication/walreceiver.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "keys.h"
#include "plan.h"
#include "redis.h"
#include "reply.h"
#include "scripts.h"
#include "stats.h"
#include "version.h"

/* Keys per DEL or UNLINK command. */
#define CB_KEYS_PER_COMMAND 1000

PG_FUNCTION_INFO_V1(cachebridge_get);
PG_FUNCTION_INFO_V1(cachebridge_mget);
PG_FUNCTION_INFO_V1(cachebridge_get_hash);
PG_FUNCTION_INFO_V1(cachebridge_set);
PG_FUNCTION_INFO_V1(cachebridge_del);
PG_FUNCTION_INFO_V1(cachebridge_invalidate_pattern);

/* Appends the prefixed form of a text key as one argument of p. */
static void
CbPipelineKeyArg(CbPipeline *p, StringInfo scratch, text *key)
{
	CbCheckKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	resetStringInfo(scratch);
	CbAppendKey(scratch, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	CbPipelineArg(p, scratch->data, scratch->len);
}

/* Starts a command whose routing key is the prefixed text key. */
static void
CbPipelineBeginKeyed(CbPipeline *p, int argc, const char *command,
					 StringInfo scratch, text *key)
{
	CbCheckKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	resetStringInfo(scratch);
	CbAppendKey(scratch, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	CbPipelineBegin(p, argc, scratch->data, scratch->len);
	CbPipelineArgStr(p, command);
	CbPipelineArg(p, scratch->data, scratch->len);
}

/*
 * Raises the ERROR of an error reply to a read (GET, or HGETALL if hash),
 * as CbRedisCheckReply does.  WRONGTYPE means the key holds another kind
 * of value than the function reads: the hint says which function reads a
 * hash (what format=hash stores) and which a string (everything else
 * cachebridge writes).
 */
static void
CbCheckReadReply(redisReply *reply, bool hash)
{
	const char *command = hash ? "HGETALL" : "GET";
	char	   *detail;

	if (reply->type != REDIS_REPLY_ERROR)
		return;
	if (!CbReplyHasCode(reply, "WRONGTYPE"))
		CbRedisCheckReply(reply, command);
	detail = pnstrdup(reply->str, reply->len);
	freeReplyObject(reply);
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("Redis server \"%s\" rejected %s", CbRedisServerName(), command),
			 errdetail_internal("%s", detail),
			 hash
			 ? errhint("The key is not a hash: read a string with cachebridge.get() or cachebridge.mget().")
			 : errhint("The key is not a string: a write_through trigger with format=hash stores a hash, read with cachebridge.get_hash().")));
}

/*
 * The value of a GET reply as text, or NULL (counted as a miss); raises an
 * ERROR, freeing the reply, for an error reply.  Frees the reply.
 */
static text *
CbGetReplyValue(redisReply *reply)
{
	text	   *result;

	CbCheckReadReply(reply, false);
	if (reply->type == REDIS_REPLY_NIL)
	{
		freeReplyObject(reply);
		CbStatsAdd(CB_STAT_CACHE_MISSES, 1);
		return NULL;
	}
	if (reply->type != REDIS_REPLY_STRING)
	{
		int			type = reply->type;

		freeReplyObject(reply);
		elog(ERROR, "unexpected reply type %d from Redis GET", type);
	}
	result = cstring_to_text_with_len(reply->str, reply->len);
	freeReplyObject(reply);
	CbStatsAdd(CB_STAT_CACHE_HITS, 1);
	return result;
}

/* SQL: cachebridge.get(key) -- the cached value, or NULL on a miss. */
Datum
cachebridge_get(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	CbPipeline	p;
	StringInfoData scratch;
	text	   *result;

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	CbPipelineBeginKeyed(&p, 2, "GET", &scratch, key);
	result = CbGetReplyValue(CbRedisCommand(&p));
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}

/* Replies of a pipeline, kept in command order. */
typedef struct CbKeptReplies
{
	redisReply **replies;
	int			n;
} CbKeptReplies;

/* Keeps every reply, for CbKeptReplies. */
static bool
CbKeepEveryReply(int index, redisReply *reply, void *arg)
{
	CbKeptReplies *kept = (CbKeptReplies *) arg;

	kept->replies[index] = reply;
	kept->n = index + 1;
	return true;
}

/* Frees the replies from first on. */
static void
CbFreeKeptReplies(CbKeptReplies *kept, int first)
{
	for (int i = first; i < kept->n; i++)
		if (kept->replies[i] != NULL)
			freeReplyObject(kept->replies[i]);
	kept->n = first;
}

/*
 * SQL: cachebridge.mget(keys text[]) -- one row (key, value) per element
 * of keys, in order, value NULL on a miss.  One GET per key, all in one
 * pipeline: one round trip, and each command routed by its own key (MGET
 * would need every key in one slot of a Redis Cluster).
 */
Datum
cachebridge_mget(PG_FUNCTION_ARGS)
{
	ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *elems;
	bool	   *nulls;
	int			nkeys;
	CbPipeline	p;
	StringInfoData scratch;
	CbRedisError err;
	CbKeptReplies kept = {0};

	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nkeys);
	if (nkeys == 0)
		return (Datum) 0;

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	for (int i = 0; i < nkeys; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("Redis key must not be NULL"),
					 errdetail("Element %d of the key array is NULL.", i + 1)));
		CbPipelineBeginKeyed(&p, 2, "GET", &scratch, DatumGetTextPP(elems[i]));
	}

	kept.replies = palloc0(sizeof(redisReply *) * nkeys);
	if (!CbPipelineExecute(&p, CbKeepEveryReply, &kept, &err))
	{
		CbFreeKeptReplies(&kept, 0);
		CbRedisReportError(&err);
	}
	for (int i = 0; i < nkeys; i++)
	{
		Datum		values[2];
		bool		isnull[2] = {false, false};
		redisReply *reply = kept.replies[i];
		text	   *value;

		/* an ERROR below must not leak the replies not looked at yet */
		kept.replies[i] = NULL;
		if (reply->type == REDIS_REPLY_ERROR)
			CbFreeKeptReplies(&kept, i + 1);
		value = CbGetReplyValue(reply);
		values[0] = elems[i];
		values[1] = value != NULL ? PointerGetDatum(value) : (Datum) 0;
		isnull[1] = (value == NULL);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
	}
	return (Datum) 0;
}

/*
 * SQL: cachebridge.get_hash(key) -- a hash (what write_through stores with
 * format=hash) as a jsonb object of its fields, or NULL on a miss.  Every
 * value is a JSON string: the column's text output, as stored.
 */
Datum
cachebridge_get_hash(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	CbPipeline	p;
	StringInfoData scratch;
	StringInfoData json;
	redisReply *reply;

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	CbPipelineBeginKeyed(&p, 2, "HGETALL", &scratch, key);
	reply = CbRedisCommand(&p);
	CbCheckReadReply(reply, true);
	if (reply->type != REDIS_REPLY_ARRAY)
	{
		int			type = reply->type;

		freeReplyObject(reply);
		elog(ERROR, "unexpected reply type %d from Redis HGETALL", type);
	}
	if (reply->elements == 0)
	{
		/* Redis has no empty hash: a missing key */
		freeReplyObject(reply);
		CbStatsAdd(CB_STAT_CACHE_MISSES, 1);
		PG_RETURN_NULL();
	}

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	for (size_t i = 0; i + 1 < reply->elements; i += 2)
	{
		for (int f = 0; f < 2; f++)
		{
			redisReply *e = reply->element[i + f];
			char	   *s;

			if (e->type != REDIS_REPLY_STRING)
			{
				int			type = e->type;

				freeReplyObject(reply);
				elog(ERROR, "unexpected element type %d in Redis HGETALL reply", type);
			}
			/* bytes from Redis: only text of the database encoding is JSON */
			if (!pg_verifymbstr(e->str, e->len, true))
			{
				freeReplyObject(reply);
				ereport(ERROR,
						(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
						 errmsg("hash \"%s\" in Redis holds a field that is not valid text in the database encoding",
								text_to_cstring(key))));
			}
			s = pnstrdup(e->str, e->len);
			if (f == 1)
				appendStringInfoChar(&json, ':');
			else if (i > 0)
				appendStringInfoChar(&json, ',');
			escape_json(&json, s);
			pfree(s);
		}
	}
	appendStringInfoChar(&json, '}');
	freeReplyObject(reply);
	CbStatsAdd(CB_STAT_CACHE_HITS, 1);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}

/* A transaction id of the snapshot, widened to 64 bits. */
static uint64
CbWidenXid(TransactionId xid, FullTransactionId next)
{
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return ((uint64) epoch << 32) | xid;
}

/*
 * Most transaction ids a fill passes to the fill script.  A primary's
 * snapshot holds at most one per backend, but a standby's holds every
 * subtransaction too (up to 65 per backend); past this bound the fill is
 * refused rather than sending tens of thousands of arguments per call.
 */
#define CB_FILL_MAX_XIDS 8192

/*
 * Raises an ERROR if the current transaction has a transaction id: it may
 * have changed rows, and a value it read could be its own uncommitted
 * change, which the cache would keep after a rollback.
 */
static void
CbCheckFillTransaction(void)
{
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot fill the cache in a transaction that has changed data"),
				 errdetail("The value could be this transaction's uncommitted change, and it would stay in the cache after a rollback."),
				 errhint("Call cachebridge.set() after COMMIT, or from a transaction that only reads.")));
}

/*
 * Sets *xids and *nxids to the transaction ids the snapshot sees as in
 * progress.  Returns false when the fill must be refused instead: the
 * snapshot overflowed on a standby (visibility of a writer is not decided
 * by its lists alone), or it holds more than CB_FILL_MAX_XIDS.  On a
 * primary they are in xip.  On a hot standby xip is empty and every
 * transaction not yet replayed to its end, top-level or not, is in subxip.
 */
static bool
CbFillXids(Snapshot snap, TransactionId **xids, int *nxids)
{
	if (snap->takenDuringRecovery)
	{
		if (snap->suboverflowed)
			return false;
		*xids = snap->subxip;
		*nxids = snap->subxcnt;
	}
	else
	{
		*xids = snap->xip;
		*nxids = snap->xcnt;
	}
	return *nxids <= CB_FILL_MAX_XIDS;
}

/*
 * How old a fill's snapshot may be.  Version markers expire (tombstone_ttl
 * after their last write, see scripts.c), and an expired marker refuses
 * nothing: a snapshot older than that lifetime may have missed a writer
 * whose marker is gone, and the value read from it could be a deleted or
 * overwritten row.  So a fill is refused once its snapshot may be older
 * than the lifetime less a margin -- before it is sent, and, since Redis
 * may get to it late (busy, stalled, the client long gone), in the fill
 * script too, against a deadline in Redis' own clock.
 *
 * A snapshot is no older than its transaction (a statement's or a
 * cursor's is taken after the transaction began) unless it was imported
 * with SET TRANSACTION SNAPSHOT from an older one: then its age is not
 * known and the fill is refused, as it is in a REPEATABLE READ transaction
 * that loaded the library (not preloaded) after taking its snapshot, when
 * an import could have gone unseen.  On a standby the data are older than
 * the snapshot by the replay lag: while received WAL waits to be replayed
 * (replay paused or delayed, or behind), they are no newer than the last
 * transaction replayed, and the fill's time is counted from that -- as
 * the fill runs, and as each query of its transaction started (the
 * ExecutorStart hook, CbCacheNoteQueryStart), so that a snapshot taken
 * while replay lagged counts from then, also once the standby has caught
 * up or been promoted.  (A lag the standby cannot see -- WAL not yet
 * received -- is not counted.)
 */
static LocalTransactionId import_lxid = InvalidLocalTransactionId;
static LocalTransactionId load_lxid = InvalidLocalTransactionId;
static LocalTransactionId lag_lxid = InvalidLocalTransactionId;
static TimestampTz lag_data_time = 0;	/* oldest data a query of lag_lxid read */

/* Redis' clock less ours, in microseconds, measured at clock_measured_at. */
static int64 clock_offset = 0;
static int64 clock_error = 0;
static TimestampTz clock_measured_at = 0;

/* How often the offset is measured again (one TIME round trip). */
#define CB_CLOCK_REMEASURE_MS 10000

/* Microseconds from the Unix epoch to PostgreSQL's. */
#define CB_UNIX_TO_PG_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

void
CbCacheNoteLoad(void)
{
	if (MyProc != NULL && IsTransactionState())
		load_lxid = MyProc->lxid;
}

void
CbCacheNoteSnapshotImport(void)
{
	if (MyProc != NULL)
		import_lxid = MyProc->lxid;
}

/* The time the data of a standby that waits to replay received WAL are of. */
static bool
CbStandbyLagging(TimestampTz *data_time)
{
	if (!RecoveryInProgress() ||
		GetXLogReplayRecPtr(NULL) >= GetWalRcvFlushRecPtr(NULL, NULL))
		return false;
	*data_time = GetLatestXTime();
	return true;
}

void
CbCacheNoteQueryStart(void)
{
	TimestampTz t;

	if (MyProc == NULL || !CbStandbyLagging(&t))
		return;
	if (lag_lxid != MyProc->lxid || t < lag_data_time)
		lag_data_time = t;
	lag_lxid = MyProc->lxid;
}

/* Reads a TIME reply, seconds and microseconds, as microseconds. */
static bool
CbTimeReply(const redisReply *reply, int64 *us)
{
	int64		part[2];

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
		return false;
	for (int i = 0; i < 2; i++)
	{
		const redisReply *e = reply->element[i];
		char	   *end;

		if (e->type != REDIS_REPLY_STRING || e->len == 0)
			return false;
		errno = 0;
		part[i] = strtoll(e->str, &end, 10);
		if (errno != 0 || *end != '\0' || part[i] < 0)
			return false;
	}
	if (part[1] >= USECS_PER_SEC || part[0] > PG_INT64_MAX / USECS_PER_SEC - 1)
		return false;
	*us = part[0] * USECS_PER_SEC + part[1];
	return true;
}

/*
 * Measures how far Redis' clock (the node holding key) is from ours: TIME,
 * taken halfway through its round trip, less our clock then.
 */
static void
CbMeasureRedisClock(const char *key, size_t keylen)
{
	CbPipeline	p;
	redisReply *reply;
	TimestampTz before;
	TimestampTz after;
	int64		redis_us;

	CbPipelineInit(&p);
	CbPipelineBegin(&p, 1, key, keylen);
	CbPipelineArgStr(&p, "TIME");
	before = GetCurrentTimestamp();
	reply = CbRedisCommand(&p);
	after = GetCurrentTimestamp();
	CbRedisCheckReply(reply, "TIME");
	if (!CbTimeReply(reply, &redis_us))
	{
		freeReplyObject(reply);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("Redis answered TIME with something other than two numbers")));
	}
	freeReplyObject(reply);
	clock_offset = redis_us - (before + (after - before) / 2 + CB_UNIX_TO_PG_USECS);
	clock_error = (after - before) / 2 + 1;
	clock_measured_at = after;
}

/*
 * Sets *deadline to the last millisecond of Redis' TIME at which the fill
 * of key may still be applied.  Returns false if the fill must be refused
 * now instead (see above).
 */
static bool
CbFillDeadline(const char *key, size_t keylen, int64 *deadline)
{
	int64		life = (int64) cb_tombstone_ttl * 1000;
	int64		margin = Min(1000, life / 2);
	TimestampTz until;
	TimestampTz now;
	TimestampTz data_time;

	/* a reload may be lowering the lifetime: this backend applies it later */
	if (ConfigReloadPending)
		return false;
	if (MyProc != NULL && MyProc->lxid == import_lxid)
		return false;
	if (MyProc != NULL && MyProc->lxid == load_lxid && IsolationUsesXactSnapshot())
		return false;
	until = TimestampTzPlusMilliseconds(GetCurrentTransactionStartTimestamp(),
										life - margin);
	if (CbStandbyLagging(&data_time))
		until = Min(until, TimestampTzPlusMilliseconds(data_time, life - margin));
	if (MyProc != NULL && MyProc->lxid == lag_lxid)
		until = Min(until, TimestampTzPlusMilliseconds(lag_data_time, life - margin));
	now = GetCurrentTimestamp();
	if (now >= until)
		return false;
	if (clock_measured_at == 0 ||
		TimestampDifferenceExceeds(clock_measured_at, now, CB_CLOCK_REMEASURE_MS) ||
		now < clock_measured_at)
		CbMeasureRedisClock(key, keylen);
	*deadline = (until + CB_UNIX_TO_PG_USECS + clock_offset - clock_error) / 1000;
	return true;
}

/*
 * SQL: cachebridge.set(key, value, ttl) -- cache-aside fill, with expiry
 * if ttl is given.  Returns false, writing nothing, when a trigger wrote or
 * deleted the key in a transaction the caller's snapshot does not see: the
 * value being filled was read before that change (see scripts.c).  Also
 * false, without a round trip, when the snapshot cannot tell (see
 * CbFillXids) or may be older than the markers that expire
 * (CbFillDeadline).  Refused with an ERROR in a transaction that has changed
 * data.
 */
Datum
cachebridge_set(PG_FUNCTION_ARGS)
{
	text	   *key;
	text	   *value;
	CbPipeline	p;
	StringInfoData scratch;
	StringInfoData marker;
	redisReply *reply;
	Snapshot	snap;
	TransactionId *xids;
	int			nxids;
	FullTransactionId next;
	CbEpoch		epoch;
	char		epochstr[CB_EPOCH_LEN + 1];
	int64		deadline;
	bool		stored;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("Redis key must not be NULL")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("value to cache must not be NULL"),
				 errhint("Use cachebridge.del() to remove a key.")));
	if (!PG_ARGISNULL(2) && PG_GETARG_INT32(2) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("TTL must be a positive number of seconds, not %d",
						PG_GETARG_INT32(2)),
				 errhint("Pass NULL for a key that does not expire.")));

	CbCheckFillTransaction();

	key = PG_GETARG_TEXT_PP(0);
	value = PG_GETARG_TEXT_PP(1);
	/* (first: its lookup, once per backend, takes snapshots of its own) */
	(void) CbCurrentEpoch(&epoch, false);
	CbFormatEpoch(epochstr, &epoch);
	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	if (!CbFillXids(snap, &xids, &nxids))
		PG_RETURN_BOOL(false);
	next = ReadNextFullTransactionId();

	/* EVALSHA fill 2 key marker value ttl epoch floors-from deadline xmin xmax xip... */
	CbPipelineInit(&p);
	initStringInfo(&scratch);
	initStringInfo(&marker);
	CbCheckKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	CbAppendKey(&scratch, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (!CbFillDeadline(scratch.data, scratch.len, &deadline))
		PG_RETURN_BOOL(false);
	CbAppendVersionKey(&marker, scratch.data, scratch.len);
	CbPipelineBegin(&p, 12 + nxids, scratch.data, scratch.len);
	CbPipelineArgStr(&p, "EVALSHA");
	CbPipelineArgStr(&p, CbScriptSha(CB_SCRIPT_FILL));
	CbPipelineArgStr(&p, "2");
	CbPipelineArg(&p, scratch.data, scratch.len);
	CbPipelineArg(&p, marker.data, marker.len);
	CbPipelineArg(&p, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	CbPipelineArgInt(&p, PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2));
	CbPipelineArgStr(&p, epochstr);
	CbPipelineArgInt(&p, (int64) strlen(cb_key_prefix));
	CbPipelineArgInt(&p, deadline);
	CbPipelineArgInt(&p, (int64) CbWidenXid(snap->xmin, next));
	CbPipelineArgInt(&p, (int64) CbWidenXid(snap->xmax, next));
	for (int i = 0; i < nxids; i++)
		CbPipelineArgInt(&p, (int64) CbWidenXid(xids[i], next));

	reply = CbRedisCommand(&p);
	if (CbReplyHasCode(reply, "NOSCRIPT"))
	{
		/* the script cache was flushed: a new connection loads it again */
		freeReplyObject(reply);
		CbRedisDisconnect();
		reply = CbRedisCommand(&p);
	}
	CbRedisCheckReply(reply, "the cache fill script");
	stored = (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1);
	freeReplyObject(reply);
	PG_RETURN_BOOL(stored);
}

/* What the replies of a pipeline of DEL commands said. */
typedef struct CbDelReplies
{
	int64		deleted;		/* sum of the integer replies */
	redisReply *error;			/* first error reply (NOAUTH, NOPERM...), kept */
} CbDelReplies;

/* Adds up the integer replies of DEL commands and keeps the first error. */
static bool
CbDelReply(int index, redisReply *reply, void *arg)
{
	CbDelReplies *replies = (CbDelReplies *) arg;

	if (reply->type == REDIS_REPLY_INTEGER)
		replies->deleted += reply->integer;
	else if (reply->type == REDIS_REPLY_ERROR && replies->error == NULL)
	{
		replies->error = reply;
		return true;
	}
	return false;
}

/* SQL: cachebridge.del(VARIADIC keys) -- delete now, return how many existed. */
Datum
cachebridge_del(PG_FUNCTION_ARGS)
{
	ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			nkeys;
	CbPipeline	p;
	StringInfoData scratch;
	CbRedisError err;
	CbDelReplies replies = {0};

	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nkeys);

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	for (int i = 0; i < nkeys; i += CB_KEYS_PER_COMMAND)
	{
		int			n = Min(CB_KEYS_PER_COMMAND, nkeys - i);

		CbPipelineBegin(&p, n + 1, NULL, 0);
		CbPipelineArgStr(&p, "DEL");
		for (int j = i; j < i + n; j++)
		{
			if (nulls[j])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("Redis key must not be NULL"),
						 errdetail("Element %d of the key array is NULL.", j + 1)));
			CbPipelineKeyArg(&p, &scratch, DatumGetTextPP(elems[j]));
		}
	}

	if (!CbPipelineExecute(&p, CbDelReply, &replies, &err))
	{
		if (replies.error != NULL)
			freeReplyObject(replies.error);
		CbRedisReportError(&err);
	}
	if (replies.error != NULL)
		CbRedisCheckReply(replies.error, "DEL");
	PG_RETURN_INT64(replies.deleted);
}

/*
 * SQL: cachebridge.invalidate_pattern(pattern) -- unlink every key under
 * the prefix that matches a Redis glob pattern, by SCAN, never KEYS.
 */
Datum
cachebridge_invalidate_pattern(PG_FUNCTION_ARGS)
{
	text	   *pattern = PG_GETARG_TEXT_PP(0);
	StringInfoData match;
	CbRedisError err;
	int64		total = 0;
	char	   *error_reply = NULL;
	char		marker[64];
	FullTransactionId writer;
	CbEpoch		epoch;
	XLogRecPtr	lsn;

	if (VARSIZE_ANY_EXHDR(pattern) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pattern must not be empty")));

	/* the prefix is matched literally, the pattern as a glob */
	initStringInfo(&match);
	if (cb_key_prefix != NULL)
		CbAppendGlobEscaped(&match, cb_key_prefix, strlen(cb_key_prefix));
	appendBinaryStringInfo(&match, VARDATA_ANY(pattern), VARSIZE_ANY_EXHDR(pattern));

	/*
	 * Versioned like a trigger's delete, as of now (on a standby: as of
	 * what it has replayed), in this history's epoch: no older write comes
	 * back.  The marker this one replaces named the key's last trigger
	 * write, which a fill from an older snapshot may not see; so the new
	 * marker names a writer such a fill does not see either: this
	 * transaction (an xid is assigned for it), or on a standby, which
	 * cannot assign one, the next transaction id.
	 */
	writer = RecoveryInProgress() ? ReadNextFullTransactionId()
		: GetTopFullTransactionId();
	lsn = CbCurrentEpoch(&epoch, true);
	CbFormatVersion(marker, &epoch, lsn);
	snprintf(marker + CB_VERSION_LEN, sizeof(marker) - CB_VERSION_LEN,
			 ":" UINT64_FORMAT, U64FromFullTransactionId(writer));
	if (!CbRedisUnlinkMatching(match.data, match.len, marker, cb_tombstone_ttl,
							   &total, &error_reply, &err))
		CbRedisReportError(&err);
	if (error_reply != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("Redis server \"%s\" rejected SCAN or UNLINK",
						CbRedisServerName()),
				 errdetail_internal("%s", error_reply)));
	PG_RETURN_INT64(total);
}
