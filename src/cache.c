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

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "cachebridge.h"
#include "redis.h"
#include "stats.h"

/* Keys per DEL or UNLINK command. */
#define CB_KEYS_PER_COMMAND 1000

/* Keys SCAN is asked to look at per step. */
#define CB_SCAN_COUNT "1000"

PG_FUNCTION_INFO_V1(cachebridge_get);
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

/* SQL: cachebridge.get(key) -- the cached value, or NULL on a miss. */
Datum
cachebridge_get(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	CbPipeline	p;
	StringInfoData scratch;
	redisReply *reply;
	text	   *result;

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	CbPipelineBeginKeyed(&p, 2, "GET", &scratch, key);

	reply = CbRedisCommand(&p);
	CbRedisCheckReply(reply, "GET");
	if (reply->type == REDIS_REPLY_NIL)
	{
		freeReplyObject(reply);
		CbStatsAdd(CB_STAT_CACHE_MISSES, 1);
		PG_RETURN_NULL();
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
	PG_RETURN_TEXT_P(result);
}

/* SQL: cachebridge.set(key, value, ttl) -- store a value, with expiry if ttl. */
Datum
cachebridge_set(PG_FUNCTION_ARGS)
{
	text	   *key;
	text	   *value;
	CbPipeline	p;
	StringInfoData scratch;
	redisReply *reply;

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

	key = PG_GETARG_TEXT_PP(0);
	value = PG_GETARG_TEXT_PP(1);

	CbPipelineInit(&p);
	initStringInfo(&scratch);
	CbPipelineBeginKeyed(&p, PG_ARGISNULL(2) ? 3 : 5, "SET", &scratch, key);
	CbPipelineArg(&p, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
	if (!PG_ARGISNULL(2))
	{
		CbPipelineArgStr(&p, "EX");
		CbPipelineArgInt(&p, PG_GETARG_INT32(2));
	}

	reply = CbRedisCommand(&p);
	CbRedisCheckReply(reply, "SET");
	freeReplyObject(reply);
	PG_RETURN_VOID();
}

/* Adds the integer replies of a pipeline of DEL/UNLINK commands. */
static bool
CbSumIntegers(int index, redisReply *reply, void *arg)
{
	int64	   *sum = (int64 *) arg;

	if (reply->type == REDIS_REPLY_INTEGER)
		*sum += reply->integer;
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
	int64		deleted = 0;

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

	if (!CbPipelineExecute(&p, CbSumIntegers, &deleted, &err))
		CbRedisReportError(&err);
	PG_RETURN_INT64(deleted);
}

/* State of one SCAN step of invalidate_pattern. */
typedef struct CbScanStep
{
	char	   *cursor;			/* next cursor, palloc'd */
	char	   *error;			/* first error reply, palloc'd */
	List	   *keys;			/* keys found, palloc'd strings with length */
	List	   *lens;
	int64		unlinked;		/* sum of UNLINK replies */
} CbScanStep;

/* Collects the replies of one SCAN (and the UNLINK sent with it). */
static bool
CbScanReply(int index, redisReply *reply, void *arg)
{
	CbScanStep *step = (CbScanStep *) arg;

	if (reply->type == REDIS_REPLY_ERROR)
	{
		if (step->error == NULL)
			step->error = pnstrdup(reply->str, reply->len);
	}
	else if (reply->type == REDIS_REPLY_INTEGER)
		step->unlinked += reply->integer;
	else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
			 reply->element[0]->type == REDIS_REPLY_STRING &&
			 reply->element[1]->type == REDIS_REPLY_ARRAY)
	{
		redisReply *found = reply->element[1];

		step->cursor = pnstrdup(reply->element[0]->str, reply->element[0]->len);
		for (size_t i = 0; i < found->elements; i++)
		{
			step->keys = lappend(step->keys,
								 pnstrdup(found->element[i]->str, found->element[i]->len));
			step->lens = lappend_int(step->lens, (int) found->element[i]->len);
		}
	}
	else if (step->error == NULL)
		step->error = psprintf("unexpected reply type %d", reply->type);
	return false;
}

/*
 * SQL: cachebridge.invalidate_pattern(pattern) -- unlink every key under
 * the prefix that matches a Redis glob pattern, by SCAN, never KEYS.
 * Each round trip unlinks the keys found by the previous SCAN step and
 * asks for the next one.
 */
Datum
cachebridge_invalidate_pattern(PG_FUNCTION_ARGS)
{
	text	   *pattern = PG_GETARG_TEXT_PP(0);
	StringInfoData match;
	CbPipeline	p;
	CbScanStep	step = {0};
	CbRedisError err;
	MemoryContext stepcxt;
	MemoryContext oldcxt;
	int64		total = 0;
	char	   *cursor = pstrdup("0");

	if (VARSIZE_ANY_EXHDR(pattern) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pattern must not be empty")));

	/* the prefix is matched literally, the pattern as a glob */
	initStringInfo(&match);
	if (cb_key_prefix != NULL)
		CbAppendGlobEscaped(&match, cb_key_prefix, strlen(cb_key_prefix));
	appendBinaryStringInfo(&match, VARDATA_ANY(pattern), VARSIZE_ANY_EXHDR(pattern));

	stepcxt = AllocSetContextCreate(CurrentMemoryContext,
									"cachebridge invalidate_pattern",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		ListCell   *lk;
		ListCell   *ll;
		List	   *keys = step.keys;
		List	   *lens = step.lens;

		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(stepcxt);
		CbPipelineInit(&p);
		if (keys != NIL)
		{
			CbPipelineBegin(&p, list_length(keys) + 1, NULL, 0);
			CbPipelineArgStr(&p, "UNLINK");
			forboth(lk, keys, ll, lens)
				CbPipelineArg(&p, (char *) lfirst(lk), lfirst_int(ll));
		}
		if (cursor != NULL)
		{
			CbPipelineBegin(&p, 6, NULL, 0);
			CbPipelineArgStr(&p, "SCAN");
			CbPipelineArgStr(&p, cursor);
			CbPipelineArgStr(&p, "MATCH");
			CbPipelineArg(&p, match.data, match.len);
			CbPipelineArgStr(&p, "COUNT");
			CbPipelineArgStr(&p, CB_SCAN_COUNT);
		}
		MemoryContextSwitchTo(oldcxt);
		if (p.ncommands == 0)
			break;

		/* the replies go to a fresh step, then the old one is dropped */
		{
			MemoryContext nextcxt = AllocSetContextCreate(CurrentMemoryContext,
														  "cachebridge invalidate_pattern",
														  ALLOCSET_DEFAULT_SIZES);

			memset(&step, 0, sizeof(step));
			oldcxt = MemoryContextSwitchTo(nextcxt);
			if (!CbPipelineExecute(&p, CbScanReply, &step, &err))
				CbRedisReportError(&err);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextDelete(stepcxt);
			stepcxt = nextcxt;
		}
		if (step.error != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Redis server \"%s\" rejected SCAN or UNLINK",
							CbRedisServerName()),
					 errdetail_internal("%s", step.error)));
		total += step.unlinked;
		/* a cursor of "0" ends the iteration; one more trip unlinks the rest */
		if (cursor == NULL)
			break;
		cursor = (step.cursor != NULL && strcmp(step.cursor, "0") != 0)
			? step.cursor : NULL;
	}
	MemoryContextDelete(stepcxt);
	PG_RETURN_INT64(total);
}
