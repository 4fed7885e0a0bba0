/*-------------------------------------------------------------------------
 *
 * redis.c
 *		The transport's face: pipelines executed on the target, whatever it
 *		is -- a single Redis (conn.c) or a Redis Cluster (cluster.c) -- and
 *		pattern deletion by SCAN on every server that holds keys.
 *
 * The target is known to be a cluster once its seed said so on connecting;
 * from then on every pipeline is routed by cluster.c, and pattern deletion
 * scans each master in turn.  Errors are returned in a CbRedisError, and
 * CbRedisReportError turns one into an ERROR for SQL functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "cluster.h"
#include "redis.h"
#include "scripts.h"
#include "stats.h"

/* The target was found to be a Redis Cluster (for that target generation). */
static bool cluster_mode = false;
static uint64 cluster_mode_generation = 0;

/*
 * Closes every connection of this process, the seed's and a cluster's
 * nodes'; never fails.  The next call connects again (and loads the
 * scripts again).
 */
void
CbRedisDisconnect(void)
{
	CbConnClose(CbConnSeed());
	CbClusterDisconnect();
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
 * True if the target is a Redis Cluster, connecting to a seed to find out
 * if that is not known yet; false with err filled if no seed answers.
 */
bool
CbRedisIsCluster(bool *is_cluster, CbRedisError *err)
{
	uint64		generation = CbRedisTargetGeneration();
	redisReply *slots;
	char		via_host[256];

	memset(err, 0, sizeof(*err));
	if (!(cluster_mode && cluster_mode_generation == generation))
	{
		if (!CbConnOpenSeed(err, &slots, via_host, sizeof(via_host)))
		{
			CbStatsRecordError(err->server, err->detail);
			return false;
		}
		/* a Redis Cluster: its slot map comes from the seed */
		if (slots != NULL)
		{
			CbClusterLoadSlots(slots, via_host);
			freeReplyObject(slots);
		}
		cluster_mode = (slots != NULL);
		cluster_mode_generation = generation;
	}
	*is_cluster = cluster_mode;
	return true;
}

/*
 * CbPipelineExecute on commands already RESP-encoded in buf (as stored in
 * the outbox).  On a Redis Cluster, cluster.c routes them by slot.
 */
bool
CbExecuteBuffer(const char *buf, size_t len, int ncommands,
				CbReplyCallback callback, void *arg, CbRedisError *err)
{
	bool		ok = false;
	bool		is_cluster;

	memset(err, 0, sizeof(*err));
	if (ncommands == 0)
		return true;

	if (!CbRedisIsCluster(&is_cluster, err))
		ok = false;
	else if (is_cluster)
		ok = CbClusterExecute(buf, len, ncommands, callback, arg, err);
	else
	{
		CbConnJob	job = {.conn = CbConnSeed(), .buf = buf, .len = len,
			.ncommands = ncommands, .callback = callback, .arg = arg};

		CbRunJobs(&job, 1);
		ok = job.ok;
		if (!ok)
			memcpy(err, &job.err, sizeof(*err));
	}

	CbConnRestoreLatch();
	return ok;
}

/*
 * CbExecuteBuffer in two halves, so that the caller can work while Redis
 * runs the commands: CbExecuteBufferSend returns once they are written (on
 * a Redis Cluster, whose router follows redirections, once they are done),
 * CbExecuteBufferWait once every reply has been handed to the callback.
 * buf must stay valid, and nothing else call Redis, in between.
 */
void
CbExecuteBufferSend(CbSentBuffer *sent, const char *buf, size_t len,
					int ncommands, CbReplyCallback callback, void *arg)
{
	bool		is_cluster;

	memset(sent, 0, sizeof(*sent));
	sent->done = true;
	sent->ok = true;
	if (ncommands == 0)
		return;
	if (!CbRedisIsCluster(&is_cluster, &sent->err))
		sent->ok = false;
	else if (is_cluster)
		sent->ok = CbClusterExecute(buf, len, ncommands, callback, arg, &sent->err);
	else
	{
		sent->job.conn = CbConnSeed();
		sent->job.buf = buf;
		sent->job.len = len;
		sent->job.ncommands = ncommands;
		sent->job.callback = callback;
		sent->job.arg = arg;
		CbRunJobStart(&sent->job);
		sent->done = false;
	}
	CbConnRestoreLatch();
}

/* The second half of CbExecuteBufferSend: true if every reply came. */
bool
CbExecuteBufferWait(CbSentBuffer *sent, CbRedisError *err)
{
	if (!sent->done)
	{
		CbRunJobFinish(&sent->job);
		sent->ok = sent->job.ok;
		if (!sent->ok)
			memcpy(&sent->err, &sent->job.err, sizeof(sent->err));
		sent->done = true;
		CbConnRestoreLatch();
	}
	memcpy(err, &sent->err, sizeof(*err));
	return sent->ok;
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
static bool
CbUnlinkMatchingOn(const char *match, size_t matchlen, const char *marker,
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

/*
 * CbUnlinkMatchingOn on the one server, or on each master of a Redis
 * Cluster in turn (SCAN sees the keys of one node only).
 */
bool
CbRedisUnlinkMatching(const char *match, size_t matchlen, const char *marker,
					  int tombstone_ttl, int64 *count, char **error_reply,
					  CbRedisError *err)
{
	bool		is_cluster;
	int			nmasters = 1;
	bool		ok = true;

	*error_reply = NULL;
	if (!CbRedisIsCluster(&is_cluster, err))
		return false;
	if (is_cluster && (nmasters = CbClusterMasters(err)) < 0)
		return false;
	for (int m = 0; m < nmasters && ok && *error_reply == NULL; m++)
	{
		if (is_cluster)
			CbClusterPinMaster(m);
		ok = CbUnlinkMatchingOn(match, matchlen, marker, tombstone_ttl, count,
								error_reply, err);
	}
	if (is_cluster)
		CbClusterPinMaster(-1);
	return ok;
}
