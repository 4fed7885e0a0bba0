/*-------------------------------------------------------------------------
 *
 * pending.c
 *		Whether committed effects are applied yet: the outbox rows left to
 *		deliver, cachebridge.wait_delivered(), and the check that lets
 *		backends send their own rows again (backlog.c).
 *
 * A row is pending until it is deleted, unless it is dead (its rejected
 * effects are counted and kept for inspection) or its committing backend
 * acknowledged it (mailbox.c), in which case it only waits for the worker
 * to delete it.  Everything here reads the outbox directly through its
 * primary key (outbox.c), never through SQL and never as another role, so
 * nothing the caller defines can run here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "mailbox.h"
#include "outbox.h"
#include "pending.h"

/*
 * How many rows with id <= upto (every row if upto < 0) wait for delivery
 * now, counting up to limit.  A dead row is done with: its rejected
 * effects are counted and kept for inspection; so is one its committing
 * backend delivered, which only waits for the worker to delete it.
 */
static int64
CbPendingCount(CbOutboxRel *o, int64 upto, int64 limit)
{
	CbOutboxScan s;
	int64		n = 0;
	int64		id;
	bool		dead;

	CbOutboxScanBegin(&s, o->rel, o->pkey, upto);
	while (n < limit && CbOutboxScanNext(&s, o, &id, &dead))
		if (!dead && !CbOutboxAcknowledged(MyDatabaseId, id))
			n++;
	CbOutboxScanEnd(&s);
	return n;
}

/* How many outbox rows of this database wait for delivery now. */
int64
CbPendingRows(void)
{
	CbOutboxRel o;
	int64		n;

	CbOutboxOpen(&o);
	n = CbPendingCount(&o, -1, PG_INT64_MAX);
	CbOutboxClose(&o);
	return n;
}

/*
 * True if no outbox row of this database is left to deliver now, under a
 * fresh snapshot (see backlog.c).  In the worker, a row whose backend is
 * still sending it is waited for (its lock is held at most about
 * delivery_timeout), then counts as delivered if that backend acknowledged
 * it; elsewhere every live row counts as undelivered.
 */
bool
CbPendingNone(bool worker)
{
	CbOutboxRel o;
	CbOutboxScan s;
	bool		all = true;
	int64		id;
	bool		dead;

	CbOutboxOpen(&o);
	CbOutboxScanBegin(&s, o.rel, o.pkey, -1);
	while (all && CbOutboxScanNext(&s, &o, &id, &dead))
	{
		if (dead)
			continue;
		all = worker && CbOutboxRowWait(id) && CbWorkerAcknowledged(id);
	}
	CbOutboxScanEnd(&s);
	CbOutboxClose(&o);
	return all;
}

/*
 * SQL: cachebridge.wait_delivered(timeout_ms) -- true once every effect
 * committed before the call is applied in Redis, false if that did not
 * happen within timeout_ms.
 *
 * Any role may wait.  The outbox is read directly, not through SQL and not
 * as another role, so nothing the caller defines can run here.
 */
PG_FUNCTION_INFO_V1(cachebridge_wait_delivered);
Datum
cachebridge_wait_delivered(PG_FUNCTION_ARGS)
{
	int32		timeout_ms = PG_GETARG_INT32(0);
	TimestampTz deadline;
	CbOutboxRel o;
	int64		maxid;
	bool		applied = true;

	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative, not %d", timeout_ms)));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cachebridge.wait_delivered() must be called in a READ COMMITTED transaction"),
				 errdetail("It watches the outbox empty, which a transaction snapshot cannot see.")));

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	CbOutboxOpen(&o);
	maxid = CbOutboxLastId(&o);
	while (maxid >= 0 && CbPendingCount(&o, maxid, 1) > 0)
	{
		if (GetCurrentTimestamp() >= deadline)
		{
			applied = false;
			break;
		}
		CbWorkerWake(MyDatabaseId);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	CbOutboxClose(&o);
	PG_RETURN_BOOL(applied);
}
