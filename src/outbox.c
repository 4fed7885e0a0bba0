/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		The cachebridge.outbox table: one row per committed transaction
 *		whose effects Redis has not acknowledged yet, and
 *		cachebridge.wait_delivered().
 *
 * A row is written in the committing transaction itself (so it exists if
 * and only if the transaction commits), holds the encoded plan (see
 * delivery.c) and is deleted by the worker once Redis acknowledged it,
 * whether the committing backend or the worker delivered it.  Rows are
 * written as the table's owner, so that any role whose writes fire a
 * cachebridge trigger can queue effects without rights on the table.
 *
 * Every statement here runs with more rights than the session it serves
 * (as the outbox's owner, or in the worker as the extension's owner), so
 * each goes through CbElevate() and names every function and operator
 * with its schema.  wait_delivered(), which any role may call, reads the
 * table directly through its primary key and runs no SQL at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "cachebridge.h"
#include "delivery.h"
#include "elevate.h"
#include "outbox.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(cachebridge_wait_delivered);

static SPIPlanPtr insert_plan = NULL;

/*
 * cachebridge.outbox as last checked, and its owner: every durable commit
 * needs them, and checking costs catalog scans (pg_extension and pg_depend
 * have no syscache).  Kept while CbCatalogGeneration() does not change:
 * renaming, moving, dropping or re-owning the table or its schema
 * invalidates pg_class or pg_namespace entries; the extension's membership
 * and owner can only be changed by the extension's owner, who is trusted
 * anyway.
 */
static Oid	outbox_relid = InvalidOid;
static Oid	outbox_owner = InvalidOid;
static uint64 outbox_generation = 0;

/*
 * The OID of cachebridge.outbox: in the extension's own schema (checked,
 * see CbExtensionSchema), and a member of the extension, so that the SQL
 * naming cachebridge.outbox reaches it and no look-alike.  Sets its owner.
 */
static Oid
CbOutboxRelid(void)
{
	uint64		generation = CbCatalogGeneration();
	Oid			nsp;
	Oid			relid;
	HeapTuple	tup;

	if (OidIsValid(outbox_relid) && outbox_generation == generation)
		return outbox_relid;

	nsp = CbExtensionSchema();
	relid = get_relname_relid("outbox", nsp);
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != get_extension_oid("cachebridge", false))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"cachebridge.outbox\" of extension \"cachebridge\" does not exist")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	outbox_owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	/* kept only if nothing was invalidated while it was looked up */
	outbox_relid = relid;
	outbox_generation = generation == CbCatalogGeneration() ? generation : 0;
	return relid;
}

/* The owner of cachebridge.outbox, as whom rows are written. */
static Oid
CbOutboxOwner(void)
{
	(void) CbOutboxRelid();
	return outbox_owner;		/* set even when not kept */
}

/*
 * Writes the encoded plan of the current transaction to the outbox;
 * returns the row's id.  direct says the committing backend will try to
 * deliver it itself, holding the row's lock while it does (delivery.c), so
 * the worker waits for it.
 */
int64
CbOutboxInsert(bytea *effects, int neffects, XLogRecPtr version, bool direct)
{
	CbElevation elevation;
	Datum		values[4];
	int64		id;
	bool		isnull;

	values[0] = LSNGetDatum(version);
	values[1] = PointerGetDatum(effects);
	values[2] = Int32GetDatum(neffects);
	values[3] = BoolGetDatum(direct);

	CbElevate(CbOutboxOwner(), &elevation);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (insert_plan == NULL)
	{
		Oid			types[4] = {PG_LSNOID, BYTEAOID, INT4OID, BOOLOID};

		/* one generic plan: a custom one per commit only copies the blob */
		insert_plan = SPI_prepare_cursor("INSERT INTO cachebridge.outbox "
										 "(version, effects, neffects, direct) "
										 "VALUES ($1, $2, $3, $4) RETURNING id",
										 4, types, CURSOR_OPT_GENERIC_PLAN);
		if (insert_plan == NULL)
			elog(ERROR, "could not prepare the cachebridge outbox insert: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(insert_plan);
	}
	if (SPI_execute_plan(insert_plan, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into cachebridge.outbox");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	PopActiveSnapshot();
	SPI_finish();
	CbElevateEnd(&elevation);
	return id;
}

/*
 * Runs a statement of the worker, which runs it elevated (see worker.c);
 * an unexpected result is an ERROR.  The statement is planned once per
 * worker and kept in *plan: a worker runs its few statements for every
 * pass, and parsing and planning them each time cost more than running
 * them.  (Its search_path never changes, and a change of the outbox
 * invalidates the plan as usual.)
 */
static void
CbOutboxExec(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
			 Datum *values, int expected)
{
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

		if (p == NULL)
			elog(ERROR, "could not prepare cachebridge outbox statement (%s): %s",
				 SPI_result_code_string(SPI_result), sql);
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "could not keep cachebridge outbox statement: %s", sql);
		*plan = p;
	}
	rc = SPI_execute_plan(*plan, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "cachebridge outbox statement failed (%s): %s",
			 SPI_result_code_string(rc), sql);
}

/* Orders outbox ids. */
static int
CbIdCompare(const void *a, const void *b)
{
	int64		ia = *(const int64 *) a;
	int64		ib = *(const int64 *) b;

	return (ia > ib) - (ia < ib);
}

/*
 * Deletes acknowledged rows, directly through the primary key: the worker
 * does this for nearly every commit, and an executor round per call costs
 * more than the deletes.  Runs inside the worker's transaction; what it
 * deletes is visible to the statements after it.  ids is sorted in place.
 */
void
CbOutboxDelete(int64 *ids, int nids)
{
	Relation	rel;
	Relation	pkey;
	Oid			pkey_oid;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;

	if (nids == 0)
		return;
	qsort(ids, nids, sizeof(int64), CbIdCompare);
	rel = table_open(CbOutboxRelid(), RowExclusiveLock);
	pkey_oid = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkey_oid))
		elog(ERROR, "table \"cachebridge.outbox\" has no primary key");
	pkey = index_open(pkey_oid, RowExclusiveLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, pkey, snapshot, 1, 0);
	for (int i = 0; i < nids; i++)
	{
		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ,
					Int64GetDatum(ids[i]));
		index_rescan(scan, &key, 1, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
			simple_table_tuple_delete(rel, &slot->tts_tid, snapshot);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	CommandCounterIncrement();
}

/* Marks a row the worker cannot deliver (it is kept for inspection). */
static void
CbOutboxMark(int64 id, const char *error, bool dead)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, TEXTOID, BOOLOID};
	Datum		values[3] = {Int64GetDatum(id), CStringGetTextDatum(error), BoolGetDatum(dead)};

	CbOutboxExec(&plan, "UPDATE cachebridge.outbox "
				 "SET attempts = attempts OPERATOR(pg_catalog.+) 1, "
				 "last_error = $2, dead = $3 WHERE id OPERATOR(pg_catalog.=) $1",
				 3, types, values, SPI_OK_UPDATE);
}

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
typedef struct CbOutboxBatch
{
	StringInfoData cmds;
	int			ncommands;
	int			neffects;
	int			nrows;
	int			maxrows;
	CbBatchRow *rows;
} CbOutboxBatch;

/* Most bytes of commands the worker sends in one round trip. */
#define CB_BATCH_BYTES (8 * 1024 * 1024)

/* Most bytes of outbox rows the worker reads in one pass. */
#define CB_DRAIN_BYTES (64 * 1024 * 1024)

/*
 * Redis did not take the effects of the rows from first_id on, for now:
 * it could not be reached, or answered with a retryable error.  The rows
 * stay; the breaker opens so that backends leave their effects to the
 * worker, which backs off and tries again.
 */
static void
CbOutboxKeep(CbDeliveryResult result, int64 first_id, const char *detail)
{
	CbBreakerTrip();
	CbDeliveryCountError(result, detail);
	CbOutboxMark(first_id, detail, false);
}

/*
 * Counts the effects of a delivered row, and the lag since its
 * transaction wrote it (at commit: see CbDeliveryPreCommit).
 */
static void
CbOutboxCount(int neffects, int failed, TimestampTz created_at)
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
CbOutboxDead(int64 id, TimestampTz created_at, int neffects, int failed,
			 const char *detail)
{
	ereport(WARNING,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("Redis rejected %d effect(s) of cachebridge outbox row %lld",
					failed, (long long) id),
			 errdetail_internal("%s", detail),
			 errhint("The row is kept with dead = true in cachebridge.outbox; its other effects were applied.")));
	CbOutboxCount(neffects, failed, created_at);
	CbStatsAdd(CB_STAT_FAILED, failed);
	CbDeliveryCountError(CB_REJECTED, detail);
	CbOutboxMark(id, detail, true);
}

/*
 * Sends one row alone and accounts for it; returns false, leaving it, if
 * Redis did not take it for now.  *done says whether it is to be deleted.
 */
static bool
CbOutboxDeliverRow(int64 id, TimestampTz created_at, const char *blob,
				   size_t len, int neffects,
				   bool *done)
{
	int			failed;
	char		detail[512];
	CbDeliveryResult result = CbDeliverBlob(blob, len, false, true, &failed,
											detail, sizeof(detail));

	*done = false;
	switch (result)
	{
		case CB_DELIVERED:
			CbBreakerReset();
			CbOutboxCount(neffects, 0, created_at);
			*done = true;
			break;
		case CB_REJECTED:
			CbBreakerReset();
			CbOutboxDead(id, created_at, neffects, failed, detail);
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
			CbOutboxKeep(result, id, detail);
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
CbOutboxFlush(CbOutboxBatch *batch, int64 *done, int *ndone)
{
	int			failed;
	char		detail[512];
	CbDeliveryResult result;
	bool	   *rejected;
	bool		ok = true;
	int			keep = *ndone - batch->nrows;

	if (batch->nrows == 0)
		return true;
	rejected = palloc0(sizeof(bool) * batch->ncommands);
	result = CbDeliverCommands(batch->cmds.data, batch->cmds.len,
							   batch->ncommands, batch->neffects,
							   rejected, &failed, detail, sizeof(detail));
	if (CbDeliveryPending(result))
	{
		CbOutboxKeep(result, batch->rows[0].id, detail);
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
				CbOutboxCount(row->neffects, 0, row->created_at);
				done[keep++] = row->id;
				continue;
			}
			if (!CbOutboxDeliverRow(row->id, row->created_at, row->blob, row->bloblen,
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
 * The end of the WAL inserted so far.  When nothing is on the current page
 * yet, GetXLogInsertRecPtr() points past that page's header, which no flush
 * can reach until more WAL is written (XLogFlush would fail on an idle
 * server, pass after pass): take the page's start then.
 */
static XLogRecPtr
CbWalInsertedEnd(void)
{
	XLogRecPtr	ptr = GetXLogInsertRecPtr();
	uint32		header = XLogSegmentOffset(ptr, wal_segment_size) < XLOG_BLCKSZ ?
		SizeOfXLogLongPHD : SizeOfXLogShortPHD;

	if (ptr % XLOG_BLCKSZ == header)
		ptr -= header;
	return ptr;
}

/*
 * Delivers up to limit outbox rows (and at most about CB_DRAIN_BYTES of
 * them) in id order.  It stops at a row its committing backend is still
 * delivering itself (it holds the row's lock: see CbOutboxRowFree), so
 * that no row is sent before an older one; a row that backend has since
 * acknowledged is left for the next pass to delete.  Consecutive rows made
 * of pipelines only go out together in one round trip.  Delivered rows are
 * deleted, rows that do not parse are marked dead and reported.  Stops at
 * the first failure to reach Redis, setting *unreachable.  Returns the
 * number of rows handled.  Runs inside the worker's transaction, with SPI
 * connected.
 */
int
CbOutboxDrain(int limit, bool *unreachable)
{
	static SPIPlanPtr drain_plan = NULL;
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(limit), Int64GetDatum(CB_DRAIN_BYTES)};
	int64	   *done;
	int			ndone = 0;
	int			handled = 0;
	uint64		nrows;
	SPITupleTable *rows;
	CbOutboxBatch batch = {0};

	*unreachable = false;
	CbOutboxExec(&drain_plan, "SELECT id, effects, neffects, direct, created_at FROM ("
				 "SELECT id, effects, neffects, direct, created_at, "
				 "pg_catalog.row_number() OVER w AS n, "
				 "pg_catalog.sum(pg_catalog.octet_length(effects)) OVER w AS upto "
				 "FROM cachebridge.outbox "
				 "WHERE NOT dead "
				 "WINDOW w AS (ORDER BY id) ORDER BY id LIMIT $1) s "
				 "WHERE n OPERATOR(pg_catalog.=) 1 OR upto OPERATOR(pg_catalog.<=) $2 "
				 "ORDER BY id",
				 2, types, values, SPI_OK_SELECT);
	rows = SPI_tuptable;
	nrows = SPI_processed;

	/*
	 * A row is visible once its transaction's commit record is in WAL, but
	 * with synchronous_commit off not yet flushed: a crash now would undo
	 * the transaction.  Its effects must not reach Redis before it is
	 * durable, so flush WAL up to every commit record written so far (a
	 * no-op when they all are).
	 */
	if (nrows > 0)
		XLogFlush(CbWalInsertedEnd());
	done = palloc(sizeof(int64) * Max(nrows, 1));
	initStringInfo(&batch.cmds);

	for (uint64 i = 0; i < nrows && !*unreachable; i++)
	{
		HeapTuple	tup = rows->vals[i];
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 1, &isnull));
		bytea	   *effects = DatumGetByteaPP(SPI_getbinval(tup, rows->tupdesc, 2, &isnull));
		int			neffects = DatumGetInt32(SPI_getbinval(tup, rows->tupdesc, 3, &isnull));
		bool		direct = DatumGetBool(SPI_getbinval(tup, rows->tupdesc, 4, &isnull));
		TimestampTz created_at = DatumGetTimestampTz(SPI_getbinval(tup, rows->tupdesc, 5, &isnull));
		int			first_command = batch.ncommands;
		int			first_effect = batch.neffects;
		bool		rowdone;

		/* its backend is still sending it: it goes first, so wait for it */
		if (direct && !CbOutboxRowFree(id))
			break;
		/* it sent it: the next pass deletes it */
		if (direct && CbWorkerAcknowledged(id))
			continue;

		/* rows of pipelines only join the batch */
		if (CbBlobAppendPipelines(VARDATA_ANY(effects), VARSIZE_ANY_EXHDR(effects),
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
			row->id = id;
			row->created_at = created_at;
			row->first_command = first_command;
			row->ncommands = batch.ncommands - first_command;
			row->neffects = batch.neffects - first_effect;
			row->blob = VARDATA_ANY(effects);
			row->bloblen = VARSIZE_ANY_EXHDR(effects);
			done[ndone++] = id;
			handled++;
			if (batch.cmds.len >= CB_BATCH_BYTES && !CbOutboxFlush(&batch, done, &ndone))
				*unreachable = true;
			continue;
		}

		/* anything else goes alone, after the batch before it */
		if (!CbOutboxFlush(&batch, done, &ndone) ||
			!CbOutboxDeliverRow(id, created_at, VARDATA_ANY(effects), VARSIZE_ANY_EXHDR(effects),
								neffects, &rowdone))
		{
			*unreachable = true;
			break;
		}
		if (rowdone)
			done[ndone++] = id;
		handled++;
	}
	if (!*unreachable && !CbOutboxFlush(&batch, done, &ndone))
		*unreachable = true;
	if (ndone > 0)
		CbOutboxDelete(done, ndone);
	return handled;
}

/*
 * True when the outbox of this database holds nothing to deliver.  (A
 * prepared transaction's row becomes visible at COMMIT PREPARED, which
 * wakes the worker: see the ProcessUtility hook.)  Runs with SPI
 * connected.
 */
bool
CbOutboxIdle(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;

	CbOutboxExec(&plan, "SELECT NOT EXISTS (SELECT FROM cachebridge.outbox WHERE NOT dead)",
				 0, NULL, NULL, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  1, &isnull));
}

/*
 * A scan of the outbox in id order, through its primary key, under a
 * fresh snapshot: what has committed by now.
 */
typedef struct CbOutboxScan
{
	Snapshot	snapshot;
	TupleTableSlot *slot;
	IndexScanDesc scan;
} CbOutboxScan;

/* Starts a scan of the rows with id <= upto, or of every row if upto < 0. */
static void
CbOutboxScanBegin(CbOutboxScan *s, Relation rel, Relation pkey, int64 upto)
{
	ScanKeyData key;
	int			nkeys = upto >= 0 ? 1 : 0;

	ScanKeyInit(&key, 1, BTLessEqualStrategyNumber, F_INT8LE,
				Int64GetDatum(upto));
	s->snapshot = RegisterSnapshot(GetLatestSnapshot());
	s->slot = table_slot_create(rel, NULL);
	s->scan = index_beginscan(rel, pkey, s->snapshot, nkeys, 0);
	index_rescan(s->scan, &key, nkeys, NULL, 0);
}

/* Ends a scan that CbOutboxScanBegin started. */
static void
CbOutboxScanEnd(CbOutboxScan *s)
{
	index_endscan(s->scan);
	ExecDropSingleTupleTableSlot(s->slot);
	UnregisterSnapshot(s->snapshot);
}

/* The value of a bigint or boolean column of the scan's current row. */
static Datum
CbOutboxColumn(CbOutboxScan *s, AttrNumber attnum)
{
	bool		isnull;
	Datum		d = slot_getattr(s->slot, attnum, &isnull);

	if (isnull)
		elog(ERROR, "column %d of cachebridge.outbox is null", attnum);
	return d;
}

/* cachebridge.outbox opened for reading through its primary key. */
typedef struct CbOutboxRel
{
	Relation	rel;
	Relation	pkey;
	AttrNumber	att_id;
	AttrNumber	att_dead;
} CbOutboxRel;

/* Opens the outbox and its primary key for reading. */
static void
CbOutboxOpen(CbOutboxRel *o)
{
	Oid			pkey_oid;

	o->rel = table_open(CbOutboxRelid(), AccessShareLock);
	pkey_oid = RelationGetPrimaryKeyIndex(o->rel);
	if (!OidIsValid(pkey_oid))
		elog(ERROR, "table \"cachebridge.outbox\" has no primary key");
	o->pkey = index_open(pkey_oid, AccessShareLock);
	o->att_id = get_attnum(RelationGetRelid(o->rel), "id");
	o->att_dead = get_attnum(RelationGetRelid(o->rel), "dead");
	if (o->att_id == InvalidAttrNumber || o->att_dead == InvalidAttrNumber)
		elog(ERROR, "table \"cachebridge.outbox\" lacks column id or dead");
}

/* Closes what CbOutboxOpen opened (its locks are kept). */
static void
CbOutboxClose(CbOutboxRel *o)
{
	index_close(o->pkey, NoLock);
	table_close(o->rel, NoLock);
}

/* The highest id in the outbox now, or -1 if it is empty. */
static int64
CbOutboxLastId(CbOutboxRel *o)
{
	CbOutboxScan s;
	int64		id = -1;

	CbOutboxScanBegin(&s, o->rel, o->pkey, -1);
	if (index_getnext_slot(s.scan, BackwardScanDirection, s.slot))
		id = DatumGetInt64(CbOutboxColumn(&s, o->att_id));
	CbOutboxScanEnd(&s);
	return id;
}

/*
 * How many rows with id <= upto (every row if upto < 0) wait for delivery
 * now, counting up to limit.  A dead row is done with: its rejected
 * effects are counted and kept for inspection; so is one its committing
 * backend delivered, which only waits for the worker to delete it.
 */
static int64
CbOutboxCountLive(CbOutboxRel *o, int64 upto, int64 limit)
{
	CbOutboxScan s;
	int64		n = 0;

	CbOutboxScanBegin(&s, o->rel, o->pkey, upto);
	while (n < limit && index_getnext_slot(s.scan, ForwardScanDirection, s.slot))
		if (!DatumGetBool(CbOutboxColumn(&s, o->att_dead)) &&
			!CbOutboxAcknowledged(MyDatabaseId,
								  DatumGetInt64(CbOutboxColumn(&s, o->att_id))))
			n++;
	CbOutboxScanEnd(&s);
	return n;
}

/* How many outbox rows of this database wait for delivery now. */
int64
CbOutboxUndelivered(void)
{
	CbOutboxRel o;
	int64		n;

	CbOutboxOpen(&o);
	n = CbOutboxCountLive(&o, -1, PG_INT64_MAX);
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
CbOutboxAllDelivered(bool worker)
{
	CbOutboxRel o;
	CbOutboxScan s;
	bool		all = true;

	CbOutboxOpen(&o);
	CbOutboxScanBegin(&s, o.rel, o.pkey, -1);
	while (all && index_getnext_slot(s.scan, ForwardScanDirection, s.slot))
	{
		int64		id = DatumGetInt64(CbOutboxColumn(&s, o.att_id));

		if (DatumGetBool(CbOutboxColumn(&s, o.att_dead)))
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
	while (maxid >= 0 && CbOutboxCountLive(&o, maxid, 1) > 0)
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
