/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		The cachebridge.outbox table: storing, claiming, reading, deleting
 *		and marking the rows of committed transactions whose effects Redis
 *		has not acknowledged yet.  Nothing here talks to Redis.
 *
 * A row is written in the committing transaction itself (so it exists if
 * and only if the transaction commits), holds the encoded plan (plan.c) and
 * is deleted by the worker once Redis acknowledged it, whether the
 * committing backend or the worker delivered it.  Rows are written straight
 * into the heap and its indexes, without SQL, so that any role whose writes
 * fire a cachebridge trigger can queue effects without rights on the table
 * (and a commit does not pay for an executor round).
 *
 * A committing backend that will send its own row claims it (an advisory
 * lock on the row's id, taken before commit and released once it has
 * delivered or given up); the worker never sends a claimed row, nor any
 * row after it, so that who delivers a row is never a guess.
 *
 * Every statement here runs with more rights than the session it serves
 * (in the worker, as the extension's owner), so each goes through
 * CbElevate() and names every function and operator with its schema.  The scans that any role's wait_delivered() uses
 * (pending.c) read the table directly through its primary key and run no
 * SQL at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "nodes/makefuncs.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/xid8.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "elevate.h"
#include "outbox.h"

/* field4 of the advisory lock of a backend's claim on its outbox row */
#define CB_ROW_LOCK_FIELD4 0xCB03

/*
 * cachebridge.outbox as last checked: every durable commit needs it, and
 * checking costs catalog scans (pg_extension and pg_depend
 * have no syscache).  Kept while CbCatalogGeneration() does not change:
 * renaming, moving, dropping or re-owning the table or its schema
 * invalidates pg_class or pg_namespace entries; the extension's membership
 * and owner can only be changed by the extension's owner, who is trusted
 * anyway.
 */
static Oid	outbox_relid = InvalidOid;
static uint64 outbox_generation = 0;

static Datum CbOutboxColumn(CbOutboxScan *s, AttrNumber attnum);

/*
 * The OID of cachebridge.outbox: in the extension's own schema (checked,
 * see CbExtensionSchema), and a member of the extension, so that the SQL
 * naming cachebridge.outbox reaches it and no look-alike.
 */
static Oid
CbOutboxRelid(void)
{
	uint64		generation = CbCatalogGeneration();
	Oid			nsp;
	Oid			relid;

	if (OidIsValid(outbox_relid) && outbox_generation == generation)
		return outbox_relid;

	nsp = CbExtensionSchema();
	relid = get_relname_relid("outbox", nsp);
	if (!OidIsValid(relid) ||
		getExtensionOfObject(RelationRelationId, relid) != get_extension_oid("cachebridge", false))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table \"cachebridge.outbox\" of extension \"cachebridge\" does not exist")));
	/* kept only if nothing was invalidated while it was looked up */
	outbox_relid = relid;
	outbox_generation = generation == CbCatalogGeneration() ? generation : 0;
	return relid;
}

/*
 * Where CbOutboxInsert puts each column of cachebridge.outbox, and the
 * sequence of its id: looked up with the table (CbOutboxRelid) and kept
 * as long as it is.
 */
typedef struct CbOutboxColumns
{
	Oid			relid;			/* of the table they were looked up in */
	uint64		generation;
	int			natts;
	Oid			id_seq;
	AttrNumber	id;
	AttrNumber	xid;
	AttrNumber	version;
	AttrNumber	created_at;
	AttrNumber	neffects;
	AttrNumber	direct;
	AttrNumber	attempts;
	AttrNumber	dead;
	AttrNumber	last_error;
	AttrNumber	effects;
} CbOutboxColumns;

static CbOutboxColumns outbox_columns;

/* The number of column name of rel; an ERROR if it has none. */
static AttrNumber
CbOutboxAttnum(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "table \"cachebridge.outbox\" has no column \"%s\"", name);
	return attnum;
}

/*
 * The columns of the outbox (open as rel), looked up once: every column
 * must be one this code fills, so that no column of a later version is
 * left NULL (or without its default) by the direct insert.
 */
static const CbOutboxColumns *
CbOutboxInsertColumns(Relation rel)
{
	CbOutboxColumns *c = &outbox_columns;
	TupleDesc	desc = RelationGetDescr(rel);
	int			known = 0;

	if (c->relid == RelationGetRelid(rel) && c->generation == outbox_generation &&
		outbox_generation != 0 && c->natts == desc->natts)
		return c;
	c->relid = InvalidOid;
	c->id = CbOutboxAttnum(rel, "id");
	c->xid = CbOutboxAttnum(rel, "xid");
	c->version = CbOutboxAttnum(rel, "version");
	c->created_at = CbOutboxAttnum(rel, "created_at");
	c->neffects = CbOutboxAttnum(rel, "neffects");
	c->direct = CbOutboxAttnum(rel, "direct");
	c->attempts = CbOutboxAttnum(rel, "attempts");
	c->dead = CbOutboxAttnum(rel, "dead");
	c->last_error = CbOutboxAttnum(rel, "last_error");
	c->effects = CbOutboxAttnum(rel, "effects");
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			known++;
	if (known != 10)
		elog(ERROR, "table \"cachebridge.outbox\" has %d columns, not the 10 this version of cachebridge writes",
			 known);
	c->id_seq = getIdentitySequence(RelationGetRelid(rel), c->id, false);
	c->natts = desc->natts;
	c->generation = outbox_generation;
	c->relid = RelationGetRelid(rel);
	return c;
}

/*
 * Writes the encoded plan of the current transaction, *effects, to the
 * outbox; returns the row's id.  direct says the committing backend will
 * try to deliver it itself, holding the row's lock while it does
 * (delivery.c), so the worker waits for it.
 *
 * The heap needs the row as one tuple holding the plan before it toasts
 * it: that copy is made first (in the plan's memory context), *effects is
 * freed, and *effects then points to the plan in the copy, which the
 * caller keeps instead -- a large plan is held once, not twice, while its
 * TOAST and WAL are written.
 *
 * Every durable commit does this, so the row goes straight into the heap
 * and its indexes, as the executor would put it there, with the columns'
 * defaults computed here (the identity, pg_current_xact_id(),
 * clock_timestamp(), 0 attempts, not dead): no statement is planned or
 * run, so no role or search_path has a say in it and none is switched to.
 * The table's triggers and row security are not applied; the extension
 * creates none, and rows are the extension's own.
 */
int64
CbOutboxInsert(bytea **effects, int neffects, XLogRecPtr version, bool direct)
{
	Relation	rel = table_open(CbOutboxRelid(), RowExclusiveLock);
	const CbOutboxColumns *c = CbOutboxInsertColumns(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	HeapTuple	tuple;
	bytea	   *stored;
	MemoryContext oldcxt;
	bool		isnull;
	int64		id;

	memset(nulls, true, sizeof(bool) * desc->natts);
	id = nextval_internal(c->id_seq, false);
#define CB_SET(att, datum) (values[(att) - 1] = (datum), nulls[(att) - 1] = false)
	CB_SET(c->id, Int64GetDatum(id));
	CB_SET(c->xid, FullTransactionIdGetDatum(GetTopFullTransactionId()));
	CB_SET(c->version, LSNGetDatum(version));
	CB_SET(c->created_at, TimestampTzGetDatum(GetCurrentTimestamp()));
	CB_SET(c->neffects, Int32GetDatum(neffects));
	CB_SET(c->direct, BoolGetDatum(direct));
	CB_SET(c->attempts, Int32GetDatum(0));
	CB_SET(c->dead, BoolGetDatum(false));
	CB_SET(c->effects, PointerGetDatum(*effects));
#undef CB_SET
	/* beside the plan, which the caller keeps until after commit */
	oldcxt = MemoryContextSwitchTo(GetMemoryChunkContext(*effects));
	tuple = heap_form_tuple(desc, values, nulls);
	MemoryContextSwitchTo(oldcxt);
	stored = (bytea *) DatumGetPointer(heap_getattr(tuple, c->effects, desc, &isnull));
	/* (a small plan may be stored with a short header: it stays) */
	if (VARATT_IS_4B_U(stored))
	{
		pfree(*effects);
		*effects = stored;
	}

	/* the heap toasts the plan (stored external, uncompressed) */
	heap_insert(rel, tuple, GetCurrentCommandId(true), 0, NULL);
	if (RelationGetForm(rel)->relhasindex)
	{
		estate = CreateExecutorState();
		rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsHeapTuple);
		ExecStoreHeapTuple(tuple, slot, false);
		(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
		ExecDropSingleTupleTableSlot(slot);
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
	}
	pfree(values);
	pfree(nulls);
	table_close(rel, NoLock);
	CommandCounterIncrement();
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

/*
 * Marks a row the worker could not deliver: one more attempt, the reason,
 * and whether it is dead (kept for inspection, never sent again).
 */
void
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





/*
 * Reads, in id order, up to limit live (not dead) rows, and at most about
 * bytes of them (but always the first): the rows a worker pass delivers.
 * Returns how many; *rows points to them, copied into the current memory
 * context.  The outbox is read directly through its primary key under a
 * fresh snapshot, as a statement would see it: a worker pass runs this
 * for nearly every commit of a publishing table, and an executor round
 * with a window over the rows cost a fifth of the worker's CPU.
 */
int
CbOutboxFetch(int limit, int64 bytes, CbOutboxRow **rows)
{
	CbOutboxRel o;
	CbOutboxScan s;
	const CbOutboxColumns *c;
	CbOutboxRow *r = palloc(sizeof(CbOutboxRow) * Max(limit, 1));
	int			n = 0;
	int64		total = 0;
	int64		id;
	bool		dead;

	CbOutboxOpen(&o);
	c = CbOutboxInsertColumns(o.rel);
	CbOutboxScanBegin(&s, o.rel, o.pkey, -1);
	while (n < limit && CbOutboxScanNext(&s, &o, &id, &dead))
	{
		Datum		effects;
		bytea	   *plan;

		if (dead)
			continue;
		effects = CbOutboxColumn(&s, c->effects);
		total += toast_raw_datum_size(effects) - VARHDRSZ;
		if (n > 0 && total > bytes)
			break;
		plan = DatumGetByteaPCopy(effects);
		r[n].id = id;
		r[n].effects = VARDATA(plan);
		r[n].len = VARSIZE(plan) - VARHDRSZ;
		r[n].neffects = DatumGetInt32(CbOutboxColumn(&s, c->neffects));
		r[n].direct = DatumGetBool(CbOutboxColumn(&s, c->direct));
		r[n].created_at = DatumGetTimestampTz(CbOutboxColumn(&s, c->created_at));
		r[n].xid = FullTransactionIdFromU64(DatumGetUInt64(CbOutboxColumn(&s, c->xid)));
		n++;
	}
	CbOutboxScanEnd(&s);
	CbOutboxClose(&o);
	*rows = r;
	return n;
}

/*
 * True when the outbox of this database holds nothing to deliver.  (A
 * prepared transaction's row becomes visible at COMMIT PREPARED, which
 * wakes the worker: see the ProcessUtility hook.)
 */
bool
CbOutboxIdle(void)
{
	CbOutboxRel o;
	CbOutboxScan s;
	int64		id;
	bool		dead = true;

	CbOutboxOpen(&o);
	CbOutboxScanBegin(&s, o.rel, o.pkey, -1);
	while (CbOutboxScanNext(&s, &o, &id, &dead) && dead)
		;
	CbOutboxScanEnd(&s);
	CbOutboxClose(&o);
	return dead;
}

/* Starts a scan of the rows with id <= upto, or of every row if upto < 0. */
void
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
void
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

/* Opens the outbox and its primary key for reading. */
void
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
void
CbOutboxClose(CbOutboxRel *o)
{
	index_close(o->pkey, NoLock);
	table_close(o->rel, NoLock);
}

/* The highest id in the outbox now, or -1 if it is empty. */
int64
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
 * The next row of a scan, with its id and whether it is dead; false at the
 * end.
 */
bool
CbOutboxScanNext(CbOutboxScan *s, const CbOutboxRel *o, int64 *id, bool *dead)
{
	if (!index_getnext_slot(s->scan, ForwardScanDirection, s->slot))
		return false;
	*id = DatumGetInt64(CbOutboxColumn(s, o->att_id));
	*dead = DatumGetBool(CbOutboxColumn(s, o->att_dead));
	return true;
}

/* ---------------------------------------------------------------------
 * Claims: which rows a committing backend is sending itself
 * ---------------------------------------------------------------------
 */

/* The advisory lock tag of outbox row id's claim. */
static void
CbOutboxClaimTag(LOCKTAG *tag, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (id >> 32), (uint32) id,
						 CB_ROW_LOCK_FIELD4);
}

/*
 * Claims outbox row id for the committing backend, which will send it
 * itself after commit: a session lock, so that it outlives the commit, and
 * CbOutboxUnclaim lets go of it.
 */
void
CbOutboxClaim(int64 id)
{
	LOCKTAG		tag;

	CbOutboxClaimTag(&tag, id);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
}

/* Lets go of the claim of row id.  Raises no ERROR (after commit). */
void
CbOutboxUnclaim(int64 id)
{
	LOCKTAG		tag;

	CbOutboxClaimTag(&tag, id);
	LockRelease(&tag, ExclusiveLock, true);
}

/* True if no backend has claimed outbox row id. */
bool
CbOutboxRowFree(int64 id)
{
	LOCKTAG		tag;

	CbOutboxClaimTag(&tag, id);
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(&tag, ShareLock, false);
	return true;
}

/*
 * Waits until no backend has claimed outbox row id; true (the wait is
 * interruptible, and the holder lets go after delivery_timeout at the
 * latest).
 */
bool
CbOutboxRowWait(int64 id)
{
	LOCKTAG		tag;

	CbOutboxClaimTag(&tag, id);
	(void) LockAcquire(&tag, ShareLock, false, false);
	LockRelease(&tag, ShareLock, false);
	return true;
}
