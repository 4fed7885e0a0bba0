/*-------------------------------------------------------------------------
 *
 * worker.c
 *		Background workers that deliver cachebridge.outbox: a launcher,
 *		and one worker per database that has outbox rows.
 *
 * A background worker connects to one database, so cachebridge runs one
 * worker per database with work to do, started on demand: a backend that
 * commits an outbox row wakes its database's worker, registering it if
 * none runs, and so does COMMIT PREPARED.  A worker exits when its outbox
 * has stayed empty for a while, so it does not hold a connection (or a
 * worker slot) for an idle database, whatever prepared transactions it
 * has; and it steps aside for statements that need its database without
 * other sessions (DROP, CREATE DATABASE ... TEMPLATE, RENAME).  After a
 * start or crash restart, the launcher starts a worker for every database
 * once, so rows left by a crash are delivered.
 *
 * Backends wake the worker and acknowledge the rows they delivered
 * themselves through its slot in shared memory (mailbox.c); the worker
 * deletes those rows.  Each pass reads the other rows in id order
 * (outbox.c), sends them through the apply layer (apply.c) and, by what
 * came of it, deletes them, keeps them for a retry with the breaker open
 * (breaker.c), or keeps them dead with the reason.
 *
 * A worker connects as the bootstrap superuser (a background worker must
 * connect as someone before it can look the extension up), then fixes the
 * settings that a database or role setting could have chosen for it (as
 * autovacuum does: search_path first) and runs each pass as the extension's
 * owner through CbElevate(), with schema-qualified statements only.
 *
 * Shape of the loops as in pg_prewarm's autoprewarm: signal handlers,
 * BackgroundWorkerUnblockSignals, WaitLatch with WL_EXIT_ON_PM_DEATH,
 * ProcessConfigFile on SIGHUP.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "apply.h"
#include "backlog.h"
#include "breaker.h"
#include "elevate.h"
#include "mailbox.h"
#include "outbox.h"
#include "plan.h"
#include "redis.h"
#include "stats.h"
#include "version.h"

/* How long a worker woken by an acknowledgement waits for more (ms). */
#define CB_ACK_LINGER_MS 20

/*
 * While announced rows keep coming (a pass delivered rows less than
 * CB_FLOW_WINDOW_MS before the next announcement woke the worker), the
 * worker lets the rows of CB_FLOW_LINGER_MS gather before its next pass,
 * so that one pass (a transaction, a read of the outbox, a round trip)
 * delivers many commits' rows rather than one: the rows it delivers
 * itself are those of durable transactions with stream entries (every
 * one, see delivery.c) and those a backend could not deliver.  A single
 * commit, or the first after a pause, is delivered at once.
 */
#define CB_FLOW_WINDOW_MS 20
#define CB_FLOW_LINGER_MS 4

/* Rows a worker delivers per transaction. */
#define CB_DRAIN_BATCH 500

/*
 * How long an empty outbox keeps its worker alive (ms): short enough that
 * DROP DATABASE, which waits 5 s for other sessions to leave, succeeds.
 */
#define CB_IDLE_EXIT_MS 2000

/* Most bytes of commands the worker sends in one round trip. */
#define CB_BATCH_BYTES (8 * 1024 * 1024)

/* Most bytes of outbox rows the worker reads in one pass. */
#define CB_DRAIN_BYTES (64 * 1024 * 1024)

PGDLLEXPORT void CbLauncherMain(Datum arg);
PGDLLEXPORT void CbWorkerMain(Datum arg);

/* The databases a worker may serve: every connectable non-template one. */
static List *
CbDatabaseList(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * Launcher: starts the worker of every database once (each exits at once
 * where there is nothing to do), then sleeps until shutdown.
 */
void
CbLauncherMain(Datum arg)
{
	List	   *todo;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("cachebridge launcher");

	todo = CbDatabaseList();
	for (;;)
	{
		/* start what there is room for; retry the rest a second later */
		while (todo != NIL && CbWorkerWake(linitial_oid(todo)))
			todo = list_delete_first(todo);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 todo != NIL ? 1000 : 3600 * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

/* ---------------------------------------------------------------------
 * Draining the outbox
 * ---------------------------------------------------------------------
 */

/* A row of a batch: where its commands are, and its encoded plan. */
typedef struct CbBatchRow
{
	int64		id;
	TimestampTz created_at;
	int			first_command;
	int			ncommands;
	int			neffects;
	const char *blob;
	size_t		bloblen;
} CbBatchRow;

/* Outbox rows sent together, in one round trip. */
typedef struct CbDrainBatch
{
	StringInfoData cmds;
	int			ncommands;
	int			neffects;
	int			nrows;
	int			maxrows;
	CbBatchRow *rows;
} CbDrainBatch;

/*
 * Redis did not take the effects of the rows from first_id on, for now:
 * it could not be reached, or answered with a retryable error.  The rows
 * stay; the breaker opens so that backends leave their effects to the
 * worker, which backs off and tries again.
 */
static void
CbDrainKeep(CbApplyResult result, int64 first_id, const char *detail)
{
	CbBreakerTrip();
	CbApplyCountError(result, detail);
	CbOutboxMark(first_id, detail, false);
}

/*
 * Counts the effects of a delivered row, and the lag since its
 * transaction wrote it (at commit: see CbDeliveryPreCommit).
 */
static void
CbDrainCount(int neffects, int failed, TimestampTz created_at)
{
	CbStatsAdd(CB_STAT_RETRIED, neffects);
	CbStatsAdd(CB_STAT_DELIVERED, neffects - failed);
	CbStatsRecordLag(CB_LAG_WORKER, created_at);
}

/*
 * Redis rejected failed effects of row id for good (the others are
 * applied): the row is kept as dead, with the reason, and never sent
 * again.
 */
static void
CbDrainDead(int64 id, TimestampTz created_at, int neffects, int failed,
			 const char *detail)
{
	ereport(WARNING,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("Redis rejected %d effect(s) of cachebridge outbox row %lld",
					failed, (long long) id),
			 errdetail_internal("%s", detail),
			 errhint("The row is kept with dead = true in cachebridge.outbox; its other effects were applied.")));
	CbDrainCount(neffects, failed, created_at);
	CbStatsAdd(CB_STAT_FAILED, failed);
	CbApplyCountError(CB_REJECTED, detail);
	CbOutboxMark(id, detail, true);
}

/*
 * Sends one row alone and accounts for it; returns false, leaving it, if
 * Redis did not take it for now.  *done says whether it is to be deleted.
 */
static bool
CbDrainRow(int64 id, TimestampTz created_at, const char *blob,
				   size_t len, int neffects,
				   bool *done)
{
	int			failed;
	char		detail[512];
	CbApplyResult result = CbApplyBlob(blob, len, false, true, &failed,
											detail, sizeof(detail));

	*done = false;
	switch (result)
	{
		case CB_APPLIED:
			CbBreakerReset();
			CbDrainCount(neffects, 0, created_at);
			*done = true;
			break;
		case CB_REJECTED:
			CbBreakerReset();
			CbDrainDead(id, created_at, neffects, failed, detail);
			break;
		case CB_CORRUPT:
			ereport(WARNING,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("cachebridge skipped outbox row %lld: its effects cannot be decoded",
							(long long) id),
					 errdetail_internal("%s", detail),
					 errhint("The row is kept with dead = true in cachebridge.outbox.")));
			CbStatsAdd(CB_STAT_FAILED, neffects);
			CbOutboxMark(id, detail, true);
			break;
		case CB_RETRYABLE:
		case CB_UNREACHABLE:
			CbDrainKeep(result, id, detail);
			return false;
	}
	return true;
}

/*
 * Sends the batch, if it has rows; its rows are the last nrows of the
 * *ndone rows to delete.  Rows Redis rejected effects of are sent again
 * alone, to learn each one's reason, and kept as dead.  If Redis did not
 * take the batch for now, takes its rows back off the rows to delete and
 * returns false.
 */
static bool
CbDrainFlush(CbDrainBatch *batch, int64 *done, int *ndone)
{
	int			failed;
	char		detail[512];
	CbApplyResult result;
	bool	   *rejected;
	bool		ok = true;
	int			keep = *ndone - batch->nrows;

	if (batch->nrows == 0)
		return true;
	rejected = palloc0(sizeof(bool) * batch->ncommands);
	result = CbApplyCommands(batch->cmds.data, batch->cmds.len,
							   batch->ncommands, batch->neffects,
							   rejected, &failed, detail, sizeof(detail));
	if (CbApplyPending(result))
	{
		CbDrainKeep(result, batch->rows[0].id, detail);
		*ndone = keep;
		ok = false;
	}
	else
	{
		CbBreakerReset();
		for (int r = 0; r < batch->nrows; r++)
		{
			CbBatchRow *row = &batch->rows[r];
			bool		any = false;
			bool		rowdone;

			for (int c = 0; c < row->ncommands; c++)
				any |= rejected[row->first_command + c];
			if (!any)
			{
				CbDrainCount(row->neffects, 0, row->created_at);
				done[keep++] = row->id;
				continue;
			}
			if (!CbDrainRow(row->id, row->created_at, row->blob, row->bloblen,
									row->neffects, &rowdone))
			{
				ok = false;
				break;
			}
			if (rowdone)
				done[keep++] = row->id;
		}
		*ndone = keep;
	}
	pfree(rejected);
	resetStringInfo(&batch->cmds);
	batch->ncommands = batch->neffects = batch->nrows = 0;
	return ok;
}

/*
 * The end of the WAL the commit records of rows[0..nrows) need flushed
 * before their effects may reach Redis, or InvalidXLogRecPtr: a
 * transaction committed with synchronous_commit on flushed its commit
 * record before others could see its row; one committed without waiting
 * left its commit record's end in the commit log (as for hint bits, the
 * LSN of its group of transactions: at or past its own).  A transaction
 * older than the commit log's oldest entry is long durable.
 */
static XLogRecPtr
CbRowsCommitEnd(const CbOutboxRow *rows, int nrows)
{
	XLogRecPtr	end = InvalidXLogRecPtr;
	FullTransactionId next = ReadNextFullTransactionId();

	LWLockAcquire(XactTruncationLock, LW_SHARED);
	for (int i = 0; i < nrows; i++)
	{
		TransactionId xid = XidFromFullTransactionId(rows[i].xid);

		if (!FullTransactionIdPrecedes(rows[i].xid, next) ||
			U64FromFullTransactionId(next) - U64FromFullTransactionId(rows[i].xid) >= (UINT64CONST(1) << 31) ||
			!TransactionIdIsNormal(xid) ||
			TransactionIdPrecedes(xid, ShmemVariableCache->oldestClogXid))
			continue;
		end = Max(end, TransactionIdGetCommitLSN(xid));
	}
	LWLockRelease(XactTruncationLock);
	return end;
}

/*
 * Gives the rows made in an older history -- replicated before a
 * promotion, kept through a point-in-time recovery or pg_upgrade -- the
 * epoch of this one (see CbPlanRestamp), in copies of their plans.
 */
static void
CbWorkerRestamp(CbOutboxRow *rows, int nrows)
{
	CbEpoch		epoch;
	int			restamped = 0;

	(void) CbCurrentEpoch(&epoch, true);
	for (int i = 0; i < nrows; i++)
	{
		char	   *copy;

		if (CbPlanRestamp(rows[i].effects, rows[i].len, &epoch, NULL) == 0)
			continue;
		copy = palloc(rows[i].len);
		memcpy(copy, rows[i].effects, rows[i].len);
		(void) CbPlanRestamp(rows[i].effects, rows[i].len, &epoch, copy);
		rows[i].effects = copy;
		restamped++;
	}
	if (restamped > 0)
		ereport(LOG,
				(errmsg("cachebridge gave %d outbox row(s) of an older history the versions of this one (timeline %u)",
						restamped, epoch.timeline)));
}

/*
 * Delivers up to limit outbox rows (and at most about CB_DRAIN_BYTES of
 * them) in id order.  It stops at a row its committing backend is still
 * delivering itself (it claimed the row: see CbOutboxClaim), so
 * that no row is sent before an older one; a row that backend has since
 * acknowledged is left for the next pass to delete.  Consecutive rows made
 * of pipelines only go out together in one round trip.  Delivered rows are
 * deleted, rows that do not parse are marked dead and reported.  Stops at
 * the first failure to reach Redis, setting *unreachable.  Returns the
 * number of rows handled.  Runs inside the worker's transaction, with SPI
 * connected.
 */
static int
CbWorkerDrain(int limit, bool *unreachable)
{
	CbOutboxRow *rows;
	int			nrows;
	int64	   *done;
	int			ndone = 0;
	int			handled = 0;
	CbDrainBatch batch = {0};

	*unreachable = false;
	nrows = CbOutboxFetch(limit, CB_DRAIN_BYTES, &rows);
	if (nrows > 0)
		CbWorkerRestamp(rows, nrows);

	/*
	 * A row is visible once its transaction's commit record is in WAL, but
	 * with synchronous_commit off not yet flushed: a crash now would undo
	 * the transaction.  Its effects must not reach Redis before it is
	 * durable, so flush WAL up to the commit records of the rows read (a
	 * no-op when they all are: flushing all WAL written so far instead,
	 * other transactions' included, cost the worker a WAL flush per pass
	 * under load).
	 */
	if (nrows > 0)
	{
		XLogRecPtr	end = CbRowsCommitEnd(rows, nrows);

		if (!XLogRecPtrIsInvalid(end))
			XLogFlush(end);
	}
	done = palloc(sizeof(int64) * Max(nrows, 1));
	initStringInfo(&batch.cmds);

	for (int i = 0; i < nrows && !*unreachable; i++)
	{
		const CbOutboxRow *r = &rows[i];
		int			first_command = batch.ncommands;
		int			first_effect = batch.neffects;
		bool		rowdone;

		/* its backend is still sending it: it goes first, so wait for it */
		if (r->direct && !CbOutboxRowFree(r->id))
			break;
		/* it sent it: the next pass deletes it */
		if (r->direct && CbWorkerAcknowledged(r->id))
			continue;

		/* rows of pipelines only join the batch */
		if (CbBlobAppendPipelines(r->effects, r->len,
								  &batch.cmds, &batch.ncommands, &batch.neffects))
		{
			CbBatchRow *row;

			if (batch.nrows == batch.maxrows)
			{
				batch.maxrows = Max(64, batch.maxrows * 2);
				batch.rows = batch.rows == NULL
					? palloc(sizeof(CbBatchRow) * batch.maxrows)
					: repalloc(batch.rows, sizeof(CbBatchRow) * batch.maxrows);
			}
			row = &batch.rows[batch.nrows++];
			row->id = r->id;
			row->created_at = r->created_at;
			row->first_command = first_command;
			row->ncommands = batch.ncommands - first_command;
			row->neffects = batch.neffects - first_effect;
			row->blob = r->effects;
			row->bloblen = r->len;
			done[ndone++] = r->id;
			handled++;
			if (batch.cmds.len >= CB_BATCH_BYTES && !CbDrainFlush(&batch, done, &ndone))
				*unreachable = true;
			continue;
		}

		/* anything else goes alone, after the batch before it */
		if (!CbDrainFlush(&batch, done, &ndone) ||
			!CbDrainRow(r->id, r->created_at, r->effects, r->len, r->neffects,
						&rowdone))
		{
			*unreachable = true;
			break;
		}
		if (rowdone)
			done[ndone++] = r->id;
		handled++;
	}
	if (!*unreachable && !CbDrainFlush(&batch, done, &ndone))
		*unreachable = true;
	if (ndone > 0)
		CbOutboxDelete(done, ndone);
	return handled;
}

/* ---------------------------------------------------------------------
 * The worker's loop
 * ---------------------------------------------------------------------
 */

/* Exits because the outbox is idle, unless work was announced meanwhile. */
static void
CbWorkerExitIfIdle(void)
{
	if (CbMailboxLeaveIfIdle())
		proc_exit(0);			/* exit code 0: not restarted */
}

/*
 * One pass: delete what backends acknowledged, deliver what they did not.
 * The outbox is drained when a backend announced work for it, or when
 * force says so (the first pass, a pass after a nap that nothing cut short,
 * one after a full batch): a pass woken only by acknowledgements deletes
 * them and reads nothing, which is all that most commits need.  Returns
 * the rows handled; sets *unreachable, *idle (nothing was done and nothing
 * is left) and *absent (the database has no cachebridge).
 */
static int
CbWorkerPass(bool try_redis, bool force, bool *unreachable, bool *idle,
			 bool *absent)
{
	int64		acks[CB_ACK_RING];
	int			nacks;
	int			handled = 0;
	bool		drain;
	bool		announced;
	Oid			owner;
	CbElevation elevation;

	nacks = CbMailboxTake(&announced, acks);
	drain = try_redis && (force || announced);

	*unreachable = false;
	*idle = false;
	*absent = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "cachebridge: delivering the outbox");

	owner = CbExtensionOwner();
	if (!OidIsValid(owner))
		*absent = true;			/* nothing to do in this database */
	else
	{
		CbElevate(owner, &elevation);
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (nacks > 0)
			CbOutboxDelete(acks, nacks);
		if (drain)
			handled = CbWorkerDrain(CB_DRAIN_BATCH, unreachable);
		/* all sent: backends may send their own rows again (backlog.c) */
		if (drain && !*unreachable && handled < CB_DRAIN_BATCH &&
			CbBacklogPending())
			(void) CbBacklogTryClear(true);
		*idle = nacks == 0 && handled == 0 && CbOutboxIdle();
		PopActiveSnapshot();
		SPI_finish();
		CbElevateEnd(&elevation);
	}
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return handled;
}

/*
 * Woken by the first acknowledgement of a batch (nothing else to do): let
 * more gather for CB_ACK_LINGER_MS, so that one pass deletes the rows of
 * many commits.  Announced work, a half-full ring or a signal end it early.
 * Nothing waits on it: wait_delivered() and DROP EXTENSION count a row
 * waiting here as delivered (CbOutboxAcknowledged).  Woken by announced
 * rows less than CB_FLOW_WINDOW_MS after a pass that delivered rows
 * (delivered_at): let the rows of CB_FLOW_LINGER_MS gather, whatever wakes
 * it meanwhile (a signal is handled right after).
 */
static void
CbWorkerLinger(TimestampTz delivered_at)
{
	if (CbMailboxOnlyAcks())
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CB_ACK_LINGER_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	else if (delivered_at != 0 &&
			 !TimestampDifferenceExceeds(delivered_at, GetCurrentTimestamp(),
										 CB_FLOW_WINDOW_MS))
	{
		/* announced rows keep coming: gather those of CB_FLOW_LINGER_MS */
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CB_FLOW_LINGER_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Overrides what ALTER DATABASE ... SET or ALTER ROLE ... SET chose for the
 * worker's session, as autovacuum does.  search_path: the worker's
 * statements resolve names in pg_catalog only.  No default meant for the
 * database's sessions may make the worker fail (read-only transactions, a
 * stricter isolation level, timeouts).  synchronous_commit: the worker's
 * transactions only delete delivered rows and mark failed ones; losing one
 * in a crash means a second, harmless, delivery, so they need not wait for
 * the WAL flush.
 */
static void
CbWorkerFixSettings(void)
{
	static const char *const settings[][2] = {
		{"search_path", CB_SAFE_SEARCH_PATH},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"synchronous_commit", "off"},
	};

	for (int i = 0; i < lengthof(settings); i++)
		SetConfigOption(settings[i][0], settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
}

/* Names the worker's Redis connection after its database (CLIENT LIST). */
static void
CbWorkerNameConnection(Oid dboid)
{
	char	   *dbname;

	StartTransactionCommand();
	dbname = get_database_name(dboid);
	CbRedisSetClientName("worker", dbname != NULL ? dbname : "?");
	CommitTransactionCommand();
}

/*
 * Worker of one database: drains the outbox in commit order, backing off
 * while Redis is unreachable, and exits once the outbox stays idle.
 */
void
CbWorkerMain(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	long		backoff = 100;
	TimestampTz next_try = 0;
	TimestampTz idle_since = 0;
	TimestampTz delivered_at = 0;	/* when a pass last delivered rows */
	bool		force = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	CbMailboxAttach(dboid);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	CbWorkerFixSettings();
	pgstat_report_appname("cachebridge worker");
	CbWorkerNameConnection(dboid);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		unreachable;
		bool		idle;
		bool		absent;
		int			handled;
		long		naptime;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		handled = CbWorkerPass(now >= next_try, force, &unreachable, &idle,
							   &absent);
		if (absent)
			CbWorkerExitIfIdle();
		if (unreachable)
		{
			/* back off while Redis is down: 100 ms doubling up to 5 s */
			next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
			backoff = Min(backoff * 2, 5000);
		}
		else if (handled > 0)
			backoff = 100;

		if (!idle)
			idle_since = 0;
		else if (idle_since == 0)
			idle_since = now;
		else if (TimestampDifferenceExceeds(idle_since, now, CB_IDLE_EXIT_MS))
			CbWorkerExitIfIdle();

		if (handled > 0 && !unreachable)
			delivered_at = GetCurrentTimestamp();
		naptime = (handled == CB_DRAIN_BATCH && !unreachable) ? 0 :
			unreachable ? backoff : 1000;
		force = true;
		if (naptime > 0)
		{
			int			rc = WaitLatch(MyLatch,
									   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									   naptime, PG_WAIT_EXTENSION);

			ResetLatch(MyLatch);
			force = (rc & WL_LATCH_SET) == 0;
			if (!force)
				CbWorkerLinger(delivered_at);
		}
		CHECK_FOR_INTERRUPTS();
	}
}
