/*-------------------------------------------------------------------------
 *
 * plan.c
 *		The plan codec: a committed transaction's effects encoded as the
 *		versioned Redis commands that apply them, and read back.
 *
 * At PRE_COMMIT the queue (queue.c) hands the effects, in the order they
 * were made, to a CbPlan: writes and deletions are batched into EVALSHA
 * calls of the write script, a few hundred keys each, and every call
 * carries the transaction's version marker (see scripts.c; what a version
 * is, and why it follows commit order, is version.c's).  The plan is one
 * blob of RESP-encoded pipelines ("steps"), with pattern invalidations as
 * steps of their own; PUBLISHes of changed keys (notify=) follow the
 * effects they announce, and stream entries (publish()) come last, in a
 * step of their own, as calls of the xadd script per stream.  The blob is
 * what the outbox stores and what the worker replays.
 *
 * Blob format: the magic CB_BLOB_MAGIC, then steps, each a kind byte and
 * uint32s in native byte order:
 *	'P' neffects ncommands len commands	a pipeline of cache effects
 *	'E' neffects ncommands len commands	a pipeline of stream entries
 *	'S' len patlen pattern marker		a pattern deletion
 *
 * Pure: nothing here talks to Redis (apply.c sends plans) or to the
 * outbox (outbox.c stores them).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "plan.h"
#include "scripts.h"
#include "version.h"

/*
 * Most keys, and about the most bytes of values, per call of the write
 * script: a call is one Lua run, during which Redis serves no one else.
 */
#define CB_KEYS_PER_WRITE 500
#define CB_BYTES_PER_WRITE (256 * 1024)

/*
 * About the most bytes of commands per pipeline step of writes.  A bulk
 * change is cut into steps of this size as its plan is built, so that the
 * step being built never holds a second copy of the whole plan beside the
 * blob (a 1,000,000-row change encodes to some 60 MB); each step costs a
 * round trip more, which this size makes negligible.
 */
#define CB_BYTES_PER_STEP (1024 * 1024)

/* Most entries, and about the most bytes, per call of the xadd script. */
#define CB_EVENTS_PER_XADD 256
#define CB_BYTES_PER_XADD (1024 * 1024)

/* cachebridge.tombstone_ttl, in seconds */
int			cb_tombstone_ttl = 300;

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

/* Arguments a write takes in a call of the write script, after its key and marker. */
static int
CbWriteArgs(const CbPlanWrite *w)
{
	if (w->op == CB_OP_SET)
		return 3;				/* op, ttl, value */
	if (w->op == CB_OP_HASH)
		return 3 + 2 * w->nfields;	/* op, ttl, field count, fields */
	return 2;					/* op, ttl */
}

/*
 * Appends to p one call of script -- CB_SCRIPT_WRITE, or CB_SCRIPT_COPY for
 * a refresh batch's copies (copies.c) -- applying the first of writes[0..n)
 * with version (the marker, or the copies' fence): up to CB_KEYS_PER_WRITE
 * keys of any kind, and about CB_BYTES_PER_WRITE bytes of values (a larger
 * value goes in a call of its own, so that Redis refusing it, over
 * proto-max-bulk-len, rejects it alone).  Returns how many it took.  The
 * call does not depend on where Redis keeps a key: on a Redis Cluster the
 * router (cluster.c, CbSplitBySlot) splits it into one call per slot as it
 * sends it, so that an outbox row written for one Redis is still delivered
 * after a move to a cluster.
 */
int
CbEncodeWriteCall(CbPipeline *p, StringInfo scratch, CbScript script,
				  const char *version, const CbPlanWrite *writes, int n)
{
	int			end = 0;
	size_t		bytes = 0;
	int			nargs = 5;		/* EVALSHA sha nkeys ... version tombstone-ttl */

	while (end < n && end < CB_KEYS_PER_WRITE &&
		   (end == 0 || bytes + writes[end].len <= CB_BYTES_PER_WRITE))
	{
		bytes += writes[end].len;
		nargs += 2 + CbWriteArgs(&writes[end]);
		end++;
	}

	CbPipelineBegin(p, nargs, writes[0].key.data, writes[0].key.len);
	CbPipelineArgStr(p, "EVALSHA");
	/* one key: the same apply in fewer Redis commands */
	if (script == CB_SCRIPT_WRITE && end == 1)
		script = CB_SCRIPT_WRITE_ONE;
	CbPipelineArgStr(p, CbScriptSha(script));
	CbPipelineArgInt(p, 2 * end);
	for (int i = 0; i < end; i++)
	{
		resetStringInfo(scratch);
		CbAppendVersionKey(scratch, writes[i].key.data, writes[i].key.len);
		CbPipelineArg(p, writes[i].key.data, writes[i].key.len);
		CbPipelineArg(p, scratch->data, scratch->len);
	}
	CbPipelineArgStr(p, version);
	CbPipelineArgInt(p, cb_tombstone_ttl);
	for (int i = 0; i < end; i++)
	{
		const CbPlanWrite *w = &writes[i];

		CbPipelineArgStr(p, w->op == CB_OP_SET ? "S" : w->op == CB_OP_HASH ? "H" : "D");
		CbPipelineArgInt(p, w->ttl);
		if (w->op == CB_OP_SET)
			CbPipelineArg(p, w->payload, w->len);
		else if (w->op == CB_OP_HASH)
		{
			CbPipelineArgInt(p, 2 * w->nfields);
			CbPipelineArgFields(p, w->payload, w->nfields);
		}
	}
	return end;
}

/* Sends the batched writes and deletions as calls of the write script. */
static void
CbPlanFlushWrites(CbPlan *plan)
{
	int			start = 0;

	while (start < plan->nwrites)
	{
		int			taken = CbEncodeWriteCall(&plan->pipeline, &plan->scratch,
											  CB_SCRIPT_WRITE, plan->marker,
											  &plan->writes[start],
											  plan->nwrites - start);

		plan->pipeline_effects += taken;
		start += taken;
		if (plan->pipeline.buf.len >= CB_BYTES_PER_STEP)
			CbPlanFlushPipeline(plan, 'P');
	}
	plan->nwrites = 0;
	plan->write_bytes = 0;
}

/*
 * Sends what is batched: writes and deletions, then the PUBLISHes of keys
 * changed so far, so that a subscriber told of a key finds it already
 * changed.
 */
static void
CbPlanFlushKeys(CbPlan *plan)
{
	CbPlanFlushWrites(plan);
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
		int			nargs = 8;
		StringInfo	marker = &plan->scratch;
		char		version[64];
		char		after[64];

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
		/* the chunk before, or a place for the sender to name one */
		memcpy(after, version, CB_XADD_ID_LEN + 1);
		if (chunk > 0)
			snprintf(after + CB_VERSION_LEN, sizeof(after) - CB_VERSION_LEN,
					 ":%08d", chunk - 1);
		else
			memset(after, CB_XADD_AFTER_NONE, CB_XADD_ID_LEN);

		CbPipelineBegin(&plan->pipeline, nargs, first->stream.data, first->stream.len);
		CbPipelineArgStr(&plan->pipeline, "EVALSHA");
		CbPipelineArgStr(&plan->pipeline, CbScriptSha(CB_SCRIPT_XADD));
		CbPipelineArgStr(&plan->pipeline, "2");
		CbPipelineArg(&plan->pipeline, first->stream.data, first->stream.len);
		CbPipelineArg(&plan->pipeline, marker->data, marker->len);
		CbPipelineArgStr(&plan->pipeline, source);
		CbPipelineArgStr(&plan->pipeline, version);
		CbPipelineArgStr(&plan->pipeline, after);
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
 * Makes room in the blob for about bytes of encoded effects at once (the
 * queue's estimate): growing it by doubling would copy it, and hold the
 * old and the new copy together, as it passes each power of two.  Room
 * never written costs no memory but address space.
 */
void
CbPlanReserve(CbPlan *plan, size_t bytes)
{
	bytes = Min(bytes, (size_t) MaxAllocSize / 2);
	if (bytes > (size_t) (plan->blob.maxlen - plan->blob.len))
		enlargeStringInfo(&plan->blob, (int) bytes);
}

/*
 * Adds one effect.  Effects must come in the order they were made; each
 * key comes at most once.
 */
void
CbPlanAdd(CbPlan *plan, CbEffectOp op, const char *key, size_t keylen,
		  const char *payload, size_t len, int nfields, int ttl)
{
	CbPlanWrite *w;

	plan->neffects++;

	/* keys and payloads stay valid until the plan ends: they are the queue's */
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

	/*
	 * A write or deletion of a key, batched.  A batch that cannot take it
	 * (full, or without room for its value) is encoded now, as one call,
	 * so that a bulk change never holds more than a call's worth of
	 * writes besides the blob -- the calls are the same as if they were
	 * cut at the end.
	 */
	if (plan->nwrites == CB_KEYS_PER_WRITE ||
		(plan->nwrites > 0 && plan->write_bytes + len > CB_BYTES_PER_WRITE))
		CbPlanFlushWrites(plan);
	plan->write_bytes += len;
	if (plan->nwrites == plan->maxwrites)
		plan->writes = CbPlanGrow(plan->writes, &plan->maxwrites, sizeof(CbPlanWrite));
	w = &plan->writes[plan->nwrites++];
	w->key.data = key;
	w->key.len = keylen;
	w->payload = payload;
	w->len = len;
	w->nfields = nfields;
	w->ttl = ttl;
	w->op = op;
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
	if (plan->writes != NULL)
		pfree(plan->writes);
	if (plan->pubs != NULL)
		pfree(plan->pubs);
	if (plan->events != NULL)
		pfree(plan->events);
	plan->writes = NULL;
	plan->pubs = NULL;
	plan->events = NULL;
	pfree(plan->pipeline.buf.data);
	pfree(plan->scratch.data);
	effects = (bytea *) plan->blob.data;
	SET_VARSIZE(effects, plan->blob.len);
	return effects;
}

/* ---------------------------------------------------------------------
 * Reading a plan back
 * ---------------------------------------------------------------------
 */

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

/*
 * Describes the key command index of encoded commands acts on, for a
 * message: for a script call, its key at place (from 1) among its keys
 * (the one Redis named, see CbReplyRejectedKey), or without a place its
 * first key (with how many more it holds); for another command its first
 * argument.
 */
void
CbPlanDescribeKey(const char *cmds, size_t len, int index, int place,
				  StringInfo out)
{
	size_t		pos = 0;
	const char *data;
	long		n;

	for (int c = 0; c <= index; c++)
	{
		long		argc;
		const char *args[4] = {0};
		long		arglens[4] = {0};
		const char *named = NULL;
		long		namedlen = 0;

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
			/* the write script names each key with its marker */
			if (c == index && place > 0 && a == 3 + 2 * (long) (place - 1))
			{
				named = data;
				namedlen = n;
			}
		}
		if (c < index || argc < 2)
			continue;
		if (argc >= 4 && arglens[0] == 7 && pg_strncasecmp(args[0], "EVALSHA", 7) == 0)
		{
			long		nkeys = strtol(args[2], NULL, 10);

			if (named != NULL && 2 * (long) place <= nkeys)
				appendBinaryStringInfo(out, named, Min(namedlen, 200));
			else
			{
				appendBinaryStringInfo(out, args[3], Min(arglens[3], 200));
				if (nkeys > 2)
					appendStringInfo(out, "\" and %ld more \"", nkeys / 2 - 1);
			}
		}
		else
			appendBinaryStringInfo(out, args[1], Min(arglens[1], 200));
	}
}

/* Checks the magic of an encoded plan; *pos is then at its first step. */
bool
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
bool
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
		 !CbRespWellFormed(blob + *pos, step->len, step->ncommands)))
		return false;
	step->data = blob + *pos;
	*pos += step->len;
	return true;
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
 * Reads a pattern step: the pattern, and the marker of the plan that made
 * it (copied to marker, of markerlen bytes); false if it is malformed.
 */
bool
CbBlobPattern(const CbBlobStep *step, const char **pattern, uint32 *patlen,
			  char *marker, size_t markerlen)
{
	size_t		pos = 0;

	if (step->kind != 'S' ||
		!CbBlobGetInt(step->data, step->len, &pos, patlen) ||
		*patlen > step->len - pos ||
		step->len - pos - *patlen >= markerlen)
		return false;
	*pattern = step->data + pos;
	snprintf(marker, markerlen, "%.*s", (int) (step->len - pos - *patlen),
			 step->data + pos + *patlen);
	return true;
}

/*
 * Chains the stream appends of commands about to be sent, in the order they
 * will be applied: each call of the xadd script whose "after" argument is
 * left open (the first chunk of a transaction's entries for a stream) gets
 * the version of the append of the same stream that comes before it in the
 * same delivery, which chain remembers across calls (zero it to begin).  A
 * chunk after one that failed is then refused by Redis instead of moving
 * the stream's marker past it (see CB_SCRIPT_XADD).  Rows sent one round
 * trip after another are chained too: a delivery goes on after a retryable
 * failure, and the rows after it are sent again with it later.
 *
 * Returns a copy of cmds with the chained arguments written in, or NULL if
 * none needed one (cmds is then sent as it is).  Commands that do not
 * parse are left alone (the apply layer checked the steps of stored plans).
 */
char *
CbChainStreamAppends(const char *cmds, size_t len, int ncommands,
					 CbStreamChain *chain)
{
	const char *xadd = CbScriptSha(CB_SCRIPT_XADD);
	char	   *out = NULL;
	size_t		pos = 0;

	for (int c = 0; c < ncommands; c++)
	{
		const char *arg[8];
		long		arglen[8];
		long		argc;
		const char *data;
		CbStreamLink *link = NULL;

		if (!CbRespNext(cmds, len, &pos, '*', &data, &argc))
			break;
		for (long a = 0; a < argc; a++)
		{
			long		alen;

			if (!CbRespNext(cmds, len, &pos, '$', &data, &alen))
				return out;
			if (a < lengthof(arg))
			{
				arg[a] = data;
				arglen[a] = alen;
			}
		}
		/* EVALSHA sha 2 stream marker source version after entries... */
		if (argc < lengthof(arg) ||
			arglen[0] != 7 || pg_strncasecmp(arg[0], "EVALSHA", 7) != 0 ||
			arglen[1] != 40 || memcmp(arg[1], xadd, 40) != 0 ||
			arglen[6] != CB_XADD_ID_LEN || arglen[7] != CB_XADD_ID_LEN)
			continue;

		/* the stream's position is kept per source (its marker's field) */
		for (int i = 0; i < chain->nlinks; i++)
			if (chain->links[i].len == arglen[3] &&
				memcmp(chain->links[i].stream, arg[3], arglen[3]) == 0 &&
				chain->links[i].sourcelen == arglen[5] &&
				memcmp(chain->links[i].source, arg[5], arglen[5]) == 0)
				link = &chain->links[i];
		if (link == NULL)
		{
			chain->links = chain->nlinks == 0
				? palloc(sizeof(CbStreamLink) * 8)
				: chain->nlinks % 8 == 0
				? repalloc(chain->links, sizeof(CbStreamLink) * (chain->nlinks + 8))
				: chain->links;
			link = &chain->links[chain->nlinks++];
			link->stream = arg[3];
			link->len = arglen[3];
			link->source = arg[5];
			link->sourcelen = arglen[5];
		}
		else if (arg[7][0] == CB_XADD_AFTER_NONE)
		{
			if (out == NULL)
			{
				out = palloc(len);
				memcpy(out, cmds, len);
			}
			memcpy(out + (arg[7] - cmds), link->last, CB_XADD_ID_LEN);
		}
		memcpy(link->last, arg[6], CB_XADD_ID_LEN);
	}
	return out;
}

/* ---------------------------------------------------------------------
 * Replaying a plan in a newer history
 * ---------------------------------------------------------------------
 */

/*
 * If the version at blob[at], of vlen bytes, is of to's generation and an
 * older timeline (to is a formatted epoch), counts it and, with out,
 * writes to's epoch over its own in out (a copy of blob).
 */
static int
CbRestampVersion(const char *blob, size_t at, size_t vlen, const char *to,
				 char *out)
{
	/* "V", 8 hex digits of generation, 8 of timeline (version.c) */
	if (vlen < CB_VERSION_LEN || blob[at] != 'V' ||
		memcmp(blob + at + 1, to + 1, 8) != 0 ||
		memcmp(blob + at + 9, to + 9, 8) >= 0)
		return 0;
	if (out != NULL)
		memcpy(out + at, to, CB_EPOCH_LEN);
	return 1;
}

/*
 * Restamps the cache effects of a plan read back from the outbox with the
 * epoch of the history replaying it, when they were made in an older one.
 *
 * An outbox row replicated to a standby before a failover (or kept through
 * a point-in-time recovery) belongs to the history that continues: its transaction committed in it.  But its versions carry the
 * old timeline, and Redis may hold markers of the abandoned history's last
 * transactions -- same old timeline, higher WAL positions -- which would
 * refuse its writes and deletions as older, leaving the abandoned values
 * cached.  Its WAL positions are below everything the new history writes
 * (a new timeline starts where the row's history left off), so giving its
 * versions the new epoch and keeping their WAL positions orders it before
 * the new history's writes and after every write of the abandoned one.
 *
 * Only a timeline change is restamped.  A new generation is a new cluster
 * (pg_upgrade, a restore): no history of the same data went on writing to
 * Redis beside it, and its rows are older than anything it writes, as
 * their versions say.
 *
 * Restamped, a row also wins over the markers of newer transactions of the
 * continuing history that reached Redis without an outbox row of their own
 * -- sync sessions, which deliver whatever the backlog -- so a key such a
 * session wrote between the row's commit and the failover can go back to
 * the row's value (README, Delivery: not covered).  Durable and async
 * transactions replay in order after it.
 *
 * Stream appends keep their versions: the abandoned history may have
 * appended this row's entries already, before it lost the row's deletion,
 * and appending them again would repeat them; their order is the stream's
 * marker's to keep (scripts.c).
 *
 * Returns the number of versions older than to (with out NULL, only
 * whether there is one: a plan has one epoch); with out, a copy of the
 * len bytes of blob, writes the restamped plan there.  A plan that does
 * not parse is left alone (the apply layer reports it).
 */
int
CbPlanRestamp(const char *blob, size_t len, const CbEpoch *to, char *out)
{
	char		epoch[CB_EPOCH_LEN + 1];
	size_t		pos;
	int			n = 0;

	CbFormatEpoch(epoch, to);
	if (!CbBlobStart(blob, len, &pos))
		return 0;
	while (pos < len)
	{
		CbBlobStep	s;

		if (!CbBlobNextStep(blob, len, &pos, true, &s))
			return n;
		if (s.kind == 'S')
		{
			const char *pattern;
			uint32		patlen;
			char		marker[64];

			if (CbBlobPattern(&s, &pattern, &patlen, marker, sizeof(marker)))
				n += CbRestampVersion(blob, (pattern + patlen) - blob,
									  strlen(marker), epoch, out);
		}
		else if (s.kind == 'P')
		{
			size_t		cpos = 0;

			for (uint32 c = 0; c < s.ncommands; c++)
			{
				const char *data;
				const char *sha = NULL;
				long		argc;
				long		alen;
				long		shalen = 0;
				long		nkeys = 0;
				long		target = -1;

				if (!CbRespNext(s.data, s.len, &cpos, '*', &data, &argc))
					return n;
				for (long a = 0; a < argc; a++)
				{
					if (!CbRespNext(s.data, s.len, &cpos, '$', &data, &alen))
						return n;
					if (a == 0 && !(alen == 7 && pg_strncasecmp(data, "EVALSHA", 7) == 0))
						target = -2;	/* not a script call */
					else if (a == 1 && target == -1)
					{
						sha = data;
						shalen = alen;
					}
					else if (a == 2 && target == -1)
					{
						nkeys = strtol(data, NULL, 10);
						target = CbScriptVersionArg(sha, shalen, nkeys);
					}
					else if (a == target)
						n += CbRestampVersion(blob, data - blob, alen, epoch, out);
				}
				if (n > 0 && out == NULL)
					return n;
			}
		}
		if (n > 0 && out == NULL)
			return n;
	}
	return n;
}
