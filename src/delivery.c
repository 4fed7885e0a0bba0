/*-------------------------------------------------------------------------
 *
 * delivery.c
 *		A committed transaction's delivery: in which mode, by whom (the
 *		committing backend or the worker) and when; and the locks that keep
 *		stream appends in commit order.
 *
 * At PRE_COMMIT the queue (queue.c) hands over the transaction's plan
 * (plan.c), which this file sends through the apply layer (apply.c):
 *
 *	sync	the committing backend sends the plan after commit; a failure is
 *			a WARNING and a counter.
 *	durable	the plan is also written to cachebridge.outbox in the
 *			committing transaction (outbox.c); the backend sends it after
 *			commit and acknowledges it (mailbox.c), and the worker
 *			(worker.c) sends whatever was not acknowledged.  Nothing
 *			committed is lost.
 *	async	the plan goes to the outbox only; the worker sends it.
 *
 * Who sends a row is explicit: a backend that will send its own row claims
 * it (outbox.c) before commit, and the worker leaves a claimed row, and
 * those after it, until the backend lets go.  While older rows wait for the
 * worker (backlog.c), or the breaker (breaker.c) says Redis is down, the
 * backend leaves its row to the worker too, so that rows reach Redis in
 * commit order.
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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"

#include "apply.h"
#include "backlog.h"
#include "breaker.h"
#include "delivery.h"
#include "mailbox.h"
#include "outbox.h"
#include "redis.h"
#include "stats.h"

/*
 * field4 of the advisory lock tags that order appends to a stream, and of
 * the database-wide tag a transaction with many streams locks instead
 */
#define CB_STREAM_LOCK_FIELD4 0xCB01
#define CB_STREAMS_LOCK_FIELD4 0xCB02

/* Most streams a transaction locks one by one. */
#define CB_STREAM_LOCKS_MAX 32

int			cb_delivery = CB_DELIVERY_SYNC;

/* The library was preloaded: the worker, and so the outbox modes, exist. */
bool		cb_preloaded = false;
int			cb_delivery_timeout = 5000;

/* The committing transaction's plan and outbox row. */
static CbPlan *xact_plan = NULL;
static CbDeliveryMode xact_mode;
static int64 xact_outbox_id = 0;
static bool xact_direct = false;
static bool xact_early = false;	/* send all but stream entries, unacknowledged */
static bool xact_owns_row = false;	/* has claimed its outbox row */

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

/* SQL: cachebridge.delivery_status() -- breaker and worker state. */
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
		/* the outbox keeps the copy of the plan the heap needed */
		xact_outbox_id = CbOutboxInsert(&effects, plan->neffects,
										plan->version, xact_direct);
		plan->blob.data = (char *) effects;
		plan->blob.len = plan->blob.maxlen = VARSIZE(effects);

		/*
		 * The row is this backend's to send: the worker leaves it, and the
		 * rows after it, until the lock is released (after commit, once the
		 * row is acknowledged or given up), rather than guess with a timer.
		 */
		if (xact_direct)
		{
			CbOutboxClaim(xact_outbox_id);
			xact_owns_row = true;
		}
	}
}

/* Lets go of the transaction's outbox row, if it holds it. */
static void
CbDeliveryRelease(void)
{
	if (xact_owns_row)
	{
		CbOutboxUnclaim(xact_outbox_id);
		xact_owns_row = false;
	}
}

/*
 * Reports effects of the committed transaction that Redis did not apply:
 * pending ones stay in the outbox (retried), rejected ones are counted
 * failed unless the worker will count them.  Never raises an ERROR.
 */
static void
CbReportUndelivered(CbApplyResult result, int n, const char *detail,
					bool retried)
{
	if (!retried)
		CbStatsAdd(CB_STAT_FAILED, n);
	CbApplyCountError(result, detail);
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
	CbApplyResult result = CB_UNREACHABLE;
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
		CbApplyPending(CbApplyBlob(plan->blob.data + VARHDRSZ,
										plan->blob.len - VARHDRSZ, true, false,
										&failed, detail, sizeof(detail))) &&
		!CbRedisPastDeadline())
		CbBreakerTrip();

	if (xact_direct)
	{
		result = CbApplyBlob(plan->blob.data + VARHDRSZ,
							   plan->blob.len - VARHDRSZ, false, false, &failed,
							   detail, sizeof(detail));
		if (CbApplyPending(result))
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
		if (xact_direct && result == CB_APPLIED)
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
