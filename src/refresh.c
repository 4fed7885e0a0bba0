/*-------------------------------------------------------------------------
 *
 * refresh.c
 *		cachebridge.refresh(): applying a table's attached effects to the
 *		rows it already holds (a backfill), in batches of their own
 *		transactions, resumable, with its progress in
 *		cachebridge.refresh_state.
 *
 * The procedure (SQL, in the install script) walks each leaf of the table
 * in ranges of heap blocks and commits after each range.  A range is one
 * call of cachebridge.refresh_blocks(): it locks the range's rows FOR SHARE
 * and fires the table's cachebridge row triggers on each as if the row had
 * just been updated to itself (publish triggers, when asked, append a
 * snapshot entry with op READ instead).
 *
 * How a batch is delivered.  A batch changes no data: it copies the
 * committed state of rows it holds locked.  So its writes and deletions
 * are sent before it commits, while it holds the locks, as calls of the
 * copy script (copies.c), which write no version marker: a pipeline per
 * 256 kB, sent while the batch fires the rows of the next one, and the
 * replies of all of them read before the batch returns; no outbox row.
 * That is safe because, per key of a locked row:
 *	- a write of the row that commits after the lock waits for the batch
 *	  to commit, and its delivery (versioned, after its commit) comes after
 *	  the copy was applied: it wins;
 *	- a write that committed before the lock is what the batch copied (the
 *	  lock follows the row to its newest version), or older: delivered
 *	  late, it is versioned, so it is refused by a newer marker or writes
 *	  an older state that the newer write's own delivery then corrects --
 *	  as it would without the refresh;
 *	- a cache-aside fill is checked against the markers, which the copy
 *	  did not change;
 *	- a copy that Redis runs late -- the batch aborted (cancelled) or gave
 *	  up waiting while its pipeline was in flight, and let go of its rows
 *	  -- is refused by the marker of any write committed since: each call
 *	  carries a fence, a version taken before the rows were locked, and
 *	  the copy script writes only keys whose marker is not newer;
 *	- nothing of an uncommitted transaction is copied: only a transaction
 *	  that has written nothing (no transaction id yet) sends copies early,
 *	  so a direct call of refresh_blocks() after a change of its own is
 *	  delivered at commit with versions.
 * Stream entries (publish, with events) and PUBLISHes (notify=) are queued
 * and delivered at commit as any transaction's.  If Redis cannot be
 * reached, or answers any error (OOM, READONLY, ...), the batch stops
 * sending copies, fires its write and invalidate triggers on every row of
 * its range again and is delivered at commit with versions (durable: the
 * outbox), so nothing is lost; copies already applied are harmless.  The
 * same when the circuit breaker is open.
 *
 * Why FOR SHARE: a batch delivered with versions takes its version at
 * its commit, and a writer of one of its rows either committed before the
 * lock was taken (the batch read its row, and its version is lower) or
 * waits for the batch to commit (its version is higher).  So a trigger
 * write that commits during the refresh always wins over the refresh's
 * copy, as any later transaction does.  Rows inserted or moved behind the
 * walk fired their own triggers; rows moved ahead of it are refreshed
 * twice, harmlessly.
 *
 * A batch reads its range with a TID range scan and locks each row as
 * SELECT ... FOR SHARE would (without the executor's per-statement cost);
 * where row-level security binds the caller it runs that statement
 * instead, so that it copies only the rows the caller may read.
 *
 * Runs as the caller, who needs SELECT and UPDATE (for the row locks) on
 * the table, and must own it or hold TRIGGER on it (what attaching needed).
 * Only the progress row is written as the extension's owner, through
 * CbElevate() with schema-qualified statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "breaker.h"
#include "elevate.h"
#include "copies.h"
#include "queue.h"
#include "refresh.h"
#include "trigger.h"
#include "version.h"

/*
 * About the most bytes of copies a batch gathers before it sends them: a
 * batch of the default 128 blocks of narrow rows sends several pipelines,
 * so that Redis runs each while the batch fires the rows of the next.
 */
#define CB_REFRESH_COPY_BYTES (256 * 1024)

/* One batch being refreshed: a range of one table's rows. */
typedef struct CbRefreshBatch
{
	Relation	rel;
	CbRowTrigger *triggers;
	int			ntriggers;
	MemoryContext rowcxt;		/* reset after each row */
	CbCopies   *copies;			/* copies being gathered, or NULL */
	CbCopies   *spare;			/* the other buffer of copies */
	CbCopyDelivery *inflight;	/* copies sent from spare, replies unread */
	bool		fell_back;		/* copies failed: deliver with versions */
} CbRefreshBatch;

PG_FUNCTION_INFO_V1(cachebridge_refresh_begin);
PG_FUNCTION_INFO_V1(cachebridge_refresh_blocks);

/*
 * Opens relid for a refresh, checking the caller may refresh it: a plain
 * table (partitioned ones are walked leaf by leaf by the procedure) the
 * caller owns or holds TRIGGER on.  Checked before the table is locked.
 */
static Relation
CbRefreshOpen(Oid relid)
{
	char	   *relname = CbCheckTriggerRights(relid);
	Relation	rel;

	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot refresh \"%s\": it is not a table", relname),
				 errhint("Refresh a table, or a partitioned table (its partitions are refreshed).")));
	return rel;
}

/*
 * Whether funcoid is one of cachebridge's trigger functions; *publish says
 * whether it is publish() (publish may be NULL).
 */
bool
CbIsTriggerFunction(Oid funcoid, bool *publish)
{
	FmgrInfo	flinfo;

	fmgr_info(funcoid, &flinfo);
	if (publish != NULL)
		*publish = (flinfo.fn_addr == cachebridge_publish);
	return (flinfo.fn_addr == cachebridge_write_through ||
			flinfo.fn_addr == cachebridge_invalidate ||
			flinfo.fn_addr == cachebridge_publish);
}

/*
 * The cachebridge row triggers of rel (write_through and invalidate, and
 * publish if asked) that would fire in this session now, as the trigger
 * manager decides it from session_replication_role; *skipped says what
 * was left out.  Triggers a partitioned table has are those its partitions
 * have clones of.
 */
CbRowTrigger *
CbFiringRowTriggers(Relation rel, bool publish, int *ntriggers,
					CbRowTriggersSkipped *skipped)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	CbRowTrigger *result;
	int			n = 0;

	memset(skipped, 0, sizeof(CbRowTriggersSkipped));
	result = palloc0(sizeof(CbRowTrigger) * Max(1, trigdesc ? trigdesc->numtriggers : 0));
	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];
		bool		is_publish;

		if (!TRIGGER_FOR_ROW(trigger->tgtype) ||
			!CbIsTriggerFunction(trigger->tgfoid, &is_publish))
			continue;
		if (trigger->tgenabled == TRIGGER_DISABLED ||
			(SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA
			 ? trigger->tgenabled == TRIGGER_FIRES_ON_ORIGIN
			 : trigger->tgenabled == TRIGGER_FIRES_ON_REPLICA))
		{
			skipped->disabled = true;
			continue;
		}
		if (is_publish && !publish)
		{
			skipped->publish = true;
			continue;
		}
		result[n].trigger = trigger;
		fmgr_info(trigger->tgfoid, &result[n].flinfo);
		result[n].publish = is_publish;
		n++;
	}
	*ntriggers = n;
	return result;
}

/*
 * The triggers refresh fires on rel: its cachebridge row triggers that fire
 * on INSERT or UPDATE in this session; publish triggers only if events.
 * An ERROR if there are none, or if one has a WHEN condition (which
 * refresh does not evaluate: it would apply effects the trigger would not).
 */
static CbRowTrigger *
CbRefreshTriggers(Relation rel, bool events, int *ntriggers)
{
	CbRowTriggersSkipped skipped;
	CbRowTrigger *all = CbFiringRowTriggers(rel, events, ntriggers, &skipped);
	int			n = 0;

	for (int i = 0; i < *ntriggers; i++)
	{
		Trigger    *trigger = all[i].trigger;

		if (!(TRIGGER_FOR_INSERT(trigger->tgtype) || TRIGGER_FOR_UPDATE(trigger->tgtype)))
			continue;
		if (trigger->tgqual != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot refresh table \"%s\": trigger \"%s\" has a WHEN condition",
							RelationGetRelationName(rel), trigger->tgname),
					 errhint("Refresh applies a trigger's effects to every row.")));
		all[n++] = all[i];
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" has no cachebridge trigger to refresh",
						RelationGetRelationName(rel)),
				 skipped.publish ? errhint("Its publish triggers are refreshed only with events => true.") :
				 skipped.disabled ? errdetail("Its cachebridge triggers do not fire in this session (disabled, or for another session_replication_role).") : 0));
	*ntriggers = n;
	return all;
}

/* Runs a statement on cachebridge.refresh_state as the extension's owner. */
static int64
CbRefreshState(const char *sql, int nargs, Oid *types, Datum *values,
			   bool *isnull)
{
	CbElevation elevation;
	int64		result = 0;

	CbElevate(CbExtensionOwner(), &elevation);
	SPI_connect();
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) < 0)
		elog(ERROR, "could not update cachebridge.refresh_state");
	*isnull = true;
	if (SPI_processed == 1 && SPI_tuptable != NULL)
		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, isnull));
	SPI_finish();
	CbElevateEnd(&elevation);
	return result;
}

/*
 * SQL: cachebridge.refresh_begin(tbl regclass, restart boolean, events
 * boolean) -- starts (or, unless restart or the last one finished, resumes)
 * the refresh of one table; returns the block to start from.  Checks first
 * that the table has something to refresh.
 */
Datum
cachebridge_refresh_begin(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	bool		restart = PG_GETARG_BOOL(1);
	bool		events = PG_GETARG_BOOL(2);
	Relation	rel = CbRefreshOpen(relid);
	int			ntriggers;
	Oid			types[5] = {OIDOID, INT4OID, TIMESTAMPTZOID, INT8OID, BOOLOID};
	Datum		values[5];
	bool		isnull;
	int64		next;

	(void) CbRefreshTriggers(rel, events, &ntriggers);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = Int32GetDatum(MyProcPid);
	values[2] = TimestampTzGetDatum(MyStartTimestamp);
	values[3] = Int64GetDatum((int64) RelationGetNumberOfBlocks(rel));
	values[4] = BoolGetDatum(restart);
	table_close(rel, AccessShareLock);

	next = CbRefreshState("INSERT INTO cachebridge.refresh_state AS s "
						  "(relid, pid, backend_start, started_at, updated_at, "
						  " finished_at, next_block, total_blocks, rows_done) "
						  "VALUES ($1, $2, $3, pg_catalog.now(), pg_catalog.now(), "
						  "        NULL, 0, $4, 0) "
						  "ON CONFLICT (relid) DO UPDATE SET "
						  " pid = $2, backend_start = $3, total_blocks = $4, "
						  " updated_at = pg_catalog.now(), finished_at = NULL, "
						  " started_at = CASE WHEN $5 OR s.finished_at IS NOT NULL "
						  "   THEN pg_catalog.now() ELSE s.started_at END, "
						  " next_block = CASE WHEN $5 OR s.finished_at IS NOT NULL "
						  "   THEN 0 ELSE s.next_block END, "
						  " rows_done = CASE WHEN $5 OR s.finished_at IS NOT NULL "
						  "   THEN 0 ELSE s.rows_done END "
						  "RETURNING next_block",
						  5, types, values, &isnull);
	if (isnull)
		elog(ERROR, "could not record the refresh of relation %u", relid);
	PG_RETURN_INT64(next);
}

/*
 * Fires triggers (which may be another relation's: a partitioned table's
 * on the rows of its partition) on the row in slot, a row of rel, as the
 * row event given: an UPDATE fires as an update of the row to itself.
 */
void
CbFireRowTriggers(Relation rel, CbRowTrigger *triggers, int ntriggers,
				  TriggerEvent event, TupleTableSlot *slot)
{
	bool		shouldfree;
	HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &shouldfree);

	for (int t = 0; t < ntriggers; t++)
	{
		LOCAL_FCINFO(fcinfo, 0);
		TriggerData td = {0};

		td.type = T_TriggerData;
		td.tg_event = event | TRIGGER_EVENT_ROW | TRIGGER_EVENT_AFTER;
		td.tg_relation = rel;
		td.tg_trigtuple = tuple;
		td.tg_trigslot = slot;
		if (TRIGGER_FIRED_BY_UPDATE(event))
		{
			td.tg_newtuple = tuple;
			td.tg_newslot = slot;
		}
		td.tg_trigger = triggers[t].trigger;
		InitFunctionCallInfoData(*fcinfo, &triggers[t].flinfo, 0, InvalidOid,
								 (Node *) &td, NULL);
		(void) FunctionCallInvoke(fcinfo);
	}
	if (shouldfree)
		heap_freetuple(tuple);
}

/*
 * Waits for the copies in flight; if Redis did not run every one, the
 * batch stops making copies and is to be delivered with versions.
 */
static void
CbRefreshWaitCopies(CbRefreshBatch *batch)
{
	char		detail[512];
	CbApplyResult result;

	if (batch->inflight == NULL)
		return;
	result = CbApplyCopiesWait(batch->inflight, detail, sizeof(detail));
	batch->inflight = NULL;
	CbCopiesReset(batch->spare);
	if (result == CB_APPLIED || batch->copies == NULL)
		return;
	if (result == CB_UNREACHABLE)
		CbBreakerTrip();
	CbApplyCountError(result, detail);
	ereport(LOG,
			(errmsg("cachebridge.refresh() of table \"%s\" delivers a batch with versions at commit",
					RelationGetRelationName(batch->rel)),
			 errdetail_internal("Redis did not apply the batch's copies: %s", detail)));
	CbQueueDivert(NULL);
	batch->copies = NULL;
	batch->fell_back = true;
}

/*
 * Sends the copies gathered, once the ones in flight are in, and gathers
 * the next ones in the other buffer meanwhile: Redis runs one pipeline
 * while the batch fires the rows of the next.
 */
static void
CbRefreshSendCopies(CbRefreshBatch *batch)
{
	CbCopies   *sending = batch->copies;

	CbRefreshWaitCopies(batch);
	if (batch->copies == NULL)
		return;
	batch->inflight = CbApplyCopiesSend(sending);
	batch->copies = batch->spare;
	batch->spare = sending;
	CbQueueDivert(batch->copies);
}

/*
 * Fires the batch's triggers on one locked row, in rowcxt (reset after),
 * and sends the copies gathered once they reach CB_REFRESH_COPY_BYTES.
 */
static void
CbRefreshRow(CbRefreshBatch *batch, TupleTableSlot *slot)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(batch->rowcxt);

	cb_refresh_snapshot = true;
	PG_TRY();
	{
		CbFireRowTriggers(batch->rel, batch->triggers, batch->ntriggers,
						  TRIGGER_EVENT_UPDATE, slot);
	}
	PG_FINALLY();
	{
		cb_refresh_snapshot = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(batch->rowcxt);
	if (batch->copies != NULL && CbCopiesBytes(batch->copies) >= CB_REFRESH_COPY_BYTES)
		CbRefreshSendCopies(batch);
}

/*
 * The rights SELECT ... FOR SHARE of the whole row would need: SELECT on
 * the table, UPDATE on it or on one of its columns.
 */
static void
CbRefreshCheckRights(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			user = GetUserId();

	if (pg_class_aclcheck(relid, user, ACL_SELECT) != ACLCHECK_OK ||
		(pg_class_aclcheck(relid, user, ACL_UPDATE) != ACLCHECK_OK &&
		 pg_attribute_aclcheck_all(relid, user, ACL_UPDATE, ACLMASK_ANY) != ACLCHECK_OK))
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
}

/*
 * Refreshes the rows of rel in [lo, hi) with a TID range scan, locking each
 * row FOR SHARE as SELECT ... FOR SHARE does (the newest version, once its
 * writer is done; a row deleted or moved to another partition meanwhile is
 * skipped; under REPEATABLE READ or SERIALIZABLE a row changed since the
 * snapshot is a serialization failure).  Returns the rows refreshed.
 */
static uint64
CbRefreshScan(CbRefreshBatch *batch, ItemPointer lo, ItemPointer hi)
{
	Relation	rel = batch->rel;
	Snapshot	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	TupleTableSlot *scanslot = table_slot_create(rel, NULL);
	TupleTableSlot *lockslot = table_slot_create(rel, NULL);
	TableScanDesc scan;
	CommandId	cid = GetCurrentCommandId(true);
	int			flags = IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION;
	uint64		nrows = 0;

	CbRefreshCheckRights(rel);
	PushActiveSnapshot(snapshot);
	scan = table_beginscan_tidrange(rel, snapshot, lo, hi);
	while (table_scan_getnextslot_tidrange(scan, ForwardScanDirection, scanslot))
	{
		TM_FailureData tmfd;
		TM_Result	result;

		CHECK_FOR_INTERRUPTS();
		result = table_tuple_lock(rel, &scanslot->tts_tid, snapshot, lockslot,
								  cid, LockTupleShare, LockWaitBlock, flags, &tmfd);
		switch (result)
		{
			case TM_Ok:
				CbRefreshRow(batch, lockslot);
				nrows++;
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				break;			/* gone, or in another partition: its
								 * triggers fired there */
			case TM_SelfModified:
				break;			/* changed by this transaction: fired */
			default:
				elog(ERROR, "unexpected table_tuple_lock status: %u", result);
		}
		ExecClearTuple(lockslot);
	}
	table_endscan(scan);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	ExecDropSingleTupleTableSlot(lockslot);
	ExecDropSingleTupleTableSlot(scanslot);
	return nrows;
}

/*
 * As CbRefreshScan, through SELECT ... FOR SHARE run as the caller: for a
 * table whose row-level security applies to the caller, so that the
 * refresh copies only the rows the caller may read.
 */
static uint64
CbRefreshQuery(CbRefreshBatch *batch, ItemPointer lo, ItemPointer hi)
{
	Relation	rel = batch->rel;
	StringInfoData sql;
	Oid			types[2] = {TIDOID, TIDOID};
	Datum		values[2] = {PointerGetDatum(lo), PointerGetDatum(hi)};
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	uint64		nrows;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT ctid FROM ONLY %s "
					 "WHERE ctid OPERATOR(pg_catalog.>=) $1 "
					 "AND ctid OPERATOR(pg_catalog.<) $2 FOR SHARE",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	SPI_connect();
	if (SPI_execute_with_args(sql.data, 2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the rows of \"%s\" to refresh",
			 RelationGetRelationName(rel));
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		isnull;
		ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc,
															1, &isnull));

		CHECK_FOR_INTERRUPTS();
		/* the version the lock was taken on: the newest committed */
		if (!table_tuple_fetch_row_version(rel, tid, SnapshotAny, slot))
			continue;
		CbRefreshRow(batch, slot);
		ExecClearTuple(slot);
	}
	SPI_finish();
	ExecDropSingleTupleTableSlot(slot);
	return nrows;
}

/*
 * SQL: cachebridge.refresh_blocks(tbl regclass, from_block bigint,
 * nblocks integer, events boolean) -- refreshes the rows in heap blocks
 * [from_block, from_block + nblocks) of one table; returns the block to go
 * on from, or NULL once past the table's end (the refresh is recorded as
 * finished).
 */
Datum
cachebridge_refresh_blocks(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		from = PG_GETARG_INT64(1);
	int32		nblocks = PG_GETARG_INT32(2);
	bool		events = PG_GETARG_BOOL(3);
	Relation	rel;
	CbRowTrigger *triggers;
	int			ntriggers;
	BlockNumber size;
	int64		to;
	ItemPointerData lo;
	ItemPointerData hi;
	ItemPointerData end;
	bool		isnull;
	bool		rls;
	volatile uint64 nrows;
	CbRefreshBatch batch;
	CbCopies		buffers[2];

	if (from < 0 || from > MaxBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("block %lld is out of range", (long long) from)));
	if (nblocks < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_blocks must be at least 1, not %d", nblocks)));

	rel = CbRefreshOpen(relid);
	triggers = CbRefreshTriggers(rel, events, &ntriggers);
	size = RelationGetNumberOfBlocks(rel);
	if (from >= size)
	{
		Oid			ftype = OIDOID;
		Datum		fvalue = ObjectIdGetDatum(relid);

		table_close(rel, AccessShareLock);
		(void) CbRefreshState("UPDATE cachebridge.refresh_state "
							  "SET finished_at = pg_catalog.now(), "
							  "updated_at = pg_catalog.now() "
							  "WHERE relid OPERATOR(pg_catalog.=) $1",
							  1, &ftype, &fvalue, &isnull);
		PG_RETURN_NULL();
	}
	to = Min(from + nblocks, (int64) size);

	/*
	 * Lock the range's rows, as the caller, and refresh them: the last TID
	 * of the range is the one before the first of block "to".
	 */
	ItemPointerSet(&lo, (BlockNumber) from, FirstOffsetNumber);
	ItemPointerSet(&hi, (BlockNumber) (to - 1), MaxOffsetNumber);
	ItemPointerSet(&end, (BlockNumber) to, 0);
	batch.rel = rel;
	batch.triggers = triggers;
	batch.ntriggers = ntriggers;
	batch.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "cachebridge refresh row",
										 ALLOCSET_DEFAULT_SIZES);
	batch.copies = NULL;
	batch.fell_back = false;
	rls = (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED);

	/*
	 * Copies before commit: see the file header for when and why.  Their
	 * fence is taken before the rows are locked: a write that commits
	 * after the batch lets go of them has a later version.
	 */
	batch.spare = NULL;
	batch.inflight = NULL;
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()) && !CbBreakerIsOpen())
	{
		CbEpoch		epoch;
		XLogRecPtr	now = CbCurrentEpoch(&epoch, true);
		char		fence[64];

		CbFormatVersion(fence, &epoch, now);
		strlcpy(fence + CB_VERSION_LEN, ":0", sizeof(fence) - CB_VERSION_LEN);
		CbCopiesInit(&buffers[0], fence);
		CbCopiesInit(&buffers[1], fence);
		batch.copies = &buffers[0];
		batch.spare = &buffers[1];
	}
	PG_TRY();
	{
		CbQueueDivert(batch.copies);
		nrows = rls ? CbRefreshQuery(&batch, &lo, &end) : CbRefreshScan(&batch, &lo, &hi);
		if (batch.copies != NULL)
			CbRefreshSendCopies(&batch);
		CbRefreshWaitCopies(&batch);
	}
	PG_FINALLY();
	{
		CbQueueDivert(NULL);
	}
	PG_END_TRY();

	/*
	 * Copies that Redis did not apply: the write and invalidate triggers
	 * again on every row, queued this time (their stream entries are queued
	 * already, and entries are never deduplicated).
	 */
	if (batch.fell_back)
	{
		int			n = 0;

		for (int t = 0; t < ntriggers; t++)
			if (!triggers[t].publish)
				triggers[n++] = triggers[t];
		batch.ntriggers = n;
		if (n > 0)
			(void) (rls ? CbRefreshQuery(&batch, &lo, &end) : CbRefreshScan(&batch, &lo, &hi));
	}
	MemoryContextDelete(batch.rowcxt);
	table_close(rel, AccessShareLock);

	{
		Oid			stypes[3] = {OIDOID, INT8OID, INT8OID};
		Datum		svalues[3] = {ObjectIdGetDatum(relid), Int64GetDatum(to),
		Int64GetDatum((int64) nrows)};

		(void) CbRefreshState("UPDATE cachebridge.refresh_state "
							  "SET next_block = $2, "
							  "rows_done = rows_done OPERATOR(pg_catalog.+) $3, "
							  "updated_at = pg_catalog.now() "
							  "WHERE relid OPERATOR(pg_catalog.=) $1",
							  3, stypes, svalues, &isnull);
	}
	PG_RETURN_INT64(to);
}
