/*-------------------------------------------------------------------------
 *
 * apply.c
 *		The apply layer: sending a plan (plan.c) to Redis and deciding what
 *		came of it.  Every deliverer uses it: the committing backend
 *		(delivery.c) and the worker (worker.c).
 *
 * Each reply gets the verdict of reply.c -- applied (or refused as older,
 * which is as good), retryable, or permanently rejected -- and a delivery
 * adds them up into one CbApplyResult: only CB_APPLIED and CB_REJECTED are
 * done with; CB_RETRYABLE and CB_UNREACHABLE leave every effect to be sent
 * again (versions make a second delivery harmless), and CB_CORRUPT means
 * the encoded plan cannot be read at all.  A retryable reply does not stop
 * a plan: the rest is applied now -- but not a stream append after one
 * that failed, which Redis refuses (CBGAP) because the calls of a
 * delivery's appends to a stream are chained (CbChainStreamAppends): for
 * stream entries a second delivery is harmless only in order.  CBGAP is
 * not retryable by itself: with the failure before it retryable, the
 * delivery is pending anyway and goes again in order; with that failure
 * permanent, the append is rejected too, so that the worker sends its row
 * again alone (the chain then starts afresh), or, in the same row, the
 * row is dead with the rest of it -- rather than retried for ever behind
 * an append that can never be made.
 *
 * Nothing here decides what to do about a result: the callers keep the
 * outbox row, trip the breaker (breaker.c) or warn.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "apply.h"
#include "copies.h"
#include "plan.h"
#include "redis.h"
#include "reply.h"
#include "stats.h"

/*
 * How the detail of a rejected effect names what it concerned, after Redis'
 * reply (see CbApplyCountError, which cuts it off).
 */
#define CB_DETAIL_KEY_MARK "\" for key \""
#define CB_DETAIL_PATTERN_MARK "\" while deleting pattern \""

typedef struct CbStepReplies
{
	int			rejected;		/* replies that rejected an effect for good */
	int			retryable;		/* replies that refused an effect for now */
	bool		noscript;		/* the script cache was flushed */
	bool	   *rejected_at;	/* if not NULL: per command, rejected for good */
	int			first_index;	/* command of first_error */
	int			first_key;		/* the key it rejected, by place in its call, or 0 */
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
	if (CbReplyHasCode(reply, "NOSCRIPT"))
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
		r->first_key = CbReplyRejectedKey(reply);
		snprintf(r->first_error, sizeof(r->first_error), "%.*s",
				 (int) reply->len, reply->str);
	}
	return false;
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
 * Turns the replies of a step into the result, and the detail of its
 * first error: Redis' reply, and the key it concerned.
 */
static CbApplyResult
CbStepResult(const CbStepReplies *replies, const char *cmds, size_t len,
			 int *failed, int neffects, char *detail, size_t detaillen)
{
	StringInfoData key;

	if (replies->rejected + replies->retryable == 0)
		return CB_APPLIED;
	initStringInfo(&key);
	CbPlanDescribeKey(cmds, len, replies->first_index, replies->first_key, &key);
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
CbApplyCountError(CbApplyResult result, const char *detail)
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
static CbApplyResult
CbWorseResult(CbApplyResult a, CbApplyResult b)
{
	return Max(a, b);
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
CbApplyResult
CbApplyBlob(const char *blob, size_t len, bool skip_events, bool stored,
			  int *failed, char *detail, size_t detaillen)
{
	size_t		pos;
	CbApplyResult result = CB_APPLIED;
	CbStreamChain chain = {0};

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
		CbApplyResult step = CB_APPLIED;
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
			char	   *chained = s.kind == 'E'
				? CbChainStreamAppends(s.data, s.len, s.ncommands, &chain) : NULL;
			const char *cmds = chained != NULL ? chained : s.data;
			bool		sent;

			sent = CbSendPipelineStep(cmds, s.len, s.ncommands, &replies, &err);
			if (sent)
				step = CbStepResult(&replies, cmds, s.len, failed, s.neffects,
									stepdetail, sizeof(stepdetail));
			if (chained != NULL)
				pfree(chained);
			if (!sent)
			{
				snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
				return CB_UNREACHABLE;
			}
		}
		else
		{
			int64		unlinked = 0;
			char	   *error_reply = NULL;
			const char *pattern;
			uint32		patlen;
			char		marker[64];

			if (!CbBlobPattern(&s, &pattern, &patlen, marker, sizeof(marker)))
			{
				snprintf(detail, detaillen, "Malformed pattern step at byte %zu of %zu.", at, len);
				return CB_CORRUPT;
			}
			if (!CbRedisUnlinkMatching(pattern, patlen, marker, cb_tombstone_ttl,
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
						 error_reply, (int) Min(patlen, 200), pattern);
			}
		}
		/* the detail is the first failure's, or the first retryable one's */
		if (step != CB_APPLIED &&
			(result == CB_APPLIED || (step == CB_RETRYABLE && result != CB_RETRYABLE)))
			snprintf(detail, detaillen, "%s", stepdetail);
		result = CbWorseResult(result, step);
	}
	return result;
}

/*
 * Sends commands gathered by CbBlobAppendPipelines from several plans in
 * one round trip.  As CbApplyBlob, but never CB_CORRUPT; if rejected is
 * not NULL, it says per command whether Redis rejected it for good.
 */
CbApplyResult
CbApplyCommands(const char *cmds, size_t len, int ncommands, int neffects,
				  bool *rejected, int *failed, char *detail, size_t detaillen)
{
	CbStepReplies replies = {0};
	CbRedisError err;
	CbStreamChain chain = {0};
	char	   *chained = CbChainStreamAppends(cmds, len, ncommands, &chain);
	CbApplyResult result;

	*failed = 0;
	replies.rejected_at = rejected;
	if (chained != NULL)
		cmds = chained;
	if (!CbSendPipelineStep(cmds, len, ncommands, &replies, &err))
	{
		snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
		result = CB_UNREACHABLE;
	}
	else
		result = CbStepResult(&replies, cmds, len, failed, neffects, detail, detaillen);
	if (chained != NULL)
		pfree(chained);
	return result;
}

/* A refresh batch's copies on their way (CbApplyCopiesSend). */
struct CbCopyDelivery
{
	CbCopies   *copies;
	CbSentBuffer sent;
	CbStepReplies replies;
};

/*
 * Sends the calls of the copy script of a refresh batch (copies.c), closing
 * the one being gathered, and returns without waiting for Redis to run
 * them: the batch fires its next rows meanwhile.  copies must be left alone
 * until CbApplyCopiesWait.
 */
CbCopyDelivery *
CbApplyCopiesSend(CbCopies *copies)
{
	CbCopyDelivery *d = palloc0(sizeof(CbCopyDelivery));

	CbCopiesClose(copies);
	d->copies = copies;
	CbExecuteBufferSend(&d->sent, copies->pipeline.buf.data, copies->pipeline.buf.len,
						copies->pipeline.ncommands, CbStepReply, &d->replies);
	return d;
}

/*
 * Reads the replies of copies CbApplyCopiesSend sent, and frees d.  As
 * CbApplyCommands, but only CB_APPLIED means every call was run (a copy a
 * newer marker refused counts as applied), and only then are its effects
 * counted (as queued and delivered); otherwise the caller delivers the
 * batch with versions.
 */
CbApplyResult
CbApplyCopiesWait(CbCopyDelivery *d, char *detail, size_t detaillen)
{
	CbCopies   *copies = d->copies;
	CbRedisError err;
	CbApplyResult result;
	int			failed = 0;

	if (!CbExecuteBufferWait(&d->sent, &err))
	{
		snprintf(detail, detaillen, "%s: %s", err.server, err.detail);
		result = CB_UNREACHABLE;
	}
	else
		result = CbStepResult(&d->replies, copies->pipeline.buf.data,
							  copies->pipeline.buf.len, &failed, copies->neffects,
							  detail, detaillen);
	if (result == CB_APPLIED)
	{
		CbStatsAdd(CB_STAT_QUEUED, copies->neffects);
		CbStatsAdd(CB_STAT_DELIVERED, copies->neffects);
	}
	pfree(d);
	return result;
}
