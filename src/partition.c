/*-------------------------------------------------------------------------
 *
 * partition.c
 *		What the partition DDL that moves rows out of a partitioned table, or
 *		into one, means for the keys of the table's cachebridge triggers:
 *		the event trigger function cachebridge.partition_rows_moved().
 *
 * PostgreSQL fires no row trigger when a partition is detached, attached
 * or dropped, although each of these takes every row of the partition out
 * of its partitioned table, or puts it in.  Here each of them is applied
 * as the row changes it amounts to, through the partitioned table's
 * cachebridge row triggers (refresh.c fires them), so that the effects are
 * queued, deduplicated, versioned and delivered at commit like any other:
 *
 *	ALTER TABLE ... DETACH PARTITION [CONCURRENTLY | FINALIZE]: a DELETE of
 *		every row of the partition (of each of its leaves), at
 *		ddl_command_end.  The DETACH then holds an ACCESS EXCLUSIVE lock on
 *		the partition (in the second transaction of CONCURRENTLY, too), so
 *		no row can change between the scan and the commit, and the row
 *		triggers' clones are gone from the partition, so nothing can bring
 *		a key back.  The copies of TRUNCATE triggers that the partition had
 *		from its former ancestors (see cachebridge.partition_truncate_
 *		triggers()) are dropped, so that a TRUNCATE of the detached table no
 *		longer removes the partitioned table's keys.
 *	ALTER TABLE ... ATTACH PARTITION: an INSERT of every row, at
 *		ddl_command_end (the partition is locked ACCESS EXCLUSIVE): a
 *		write_through trigger writes each row, an invalidate trigger
 *		deletes its keys (a value cached while the row was not the
 *		partitioned table's is not its value).  A trigger with a WHEN
 *		condition deletes the row's keys instead, whatever the condition
 *		says: deleting is right in every case, writing only where the
 *		condition holds, and it is not evaluated here.
 *	DROP TABLE of a partition: a DELETE of every row, at ddl_command_start,
 *		the last moment the rows can be read.  The partitioned table and
 *		then the partition are locked ACCESS EXCLUSIVE first, in the order
 *		and with the lock DROP TABLE takes them, so that no write can
 *		commit between the scan and the drop; only when the caller may drop
 *		the partition, as its owner or its schema's (else the DROP fails
 *		anyway, and no lock is taken for it).
 *
 * publish triggers are not fired: a stream carries the changes of rows,
 * and none of these statements changes a row (the detached rows still
 * exist, in a table of their own), which is also what PostgreSQL's logical
 * decoding, and so Debezium, sends for them: nothing.  A consumer that
 * mirrors the partitioned table learns of the DDL from its own schema
 * management.  It also keeps a large DETACH possible: stream entries
 * cannot degrade, so a partition of more rows than max_pending_memory
 * holds could never be detached.
 *
 * A DELETE or INSERT of a large partition counts against
 * cachebridge.max_pending_memory like any transaction, and degrades to a
 * pattern invalidation past it.  Event triggers do not fire under
 * session_replication_role = replica, so DDL run so is not covered.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "refresh.h"

PG_FUNCTION_INFO_V1(cachebridge_partition_rows_moved);

/* The suffix of a TRUNCATE trigger's copy on a partition. */
#define CB_COPY_SUFFIX "_partition"

/*
 * Fires parent's cachebridge cache triggers on every row of the leaf
 * tables at or under relid, as the event given (TRIGGER_EVENT_DELETE or
 * TRIGGER_EVENT_INSERT).  The caller holds a lock on relid that no writer
 * can share; the partitions under it are locked here against writers (a
 * DETACH does not lock them, and a row written straight into one of them
 * would be missed), in the order PostgreSQL locks a partition tree.
 */
static void
CbRowsMoved(Oid parentid, Oid relid, TriggerEvent event)
{
	Relation	parent = table_open(parentid, NoLock);
	CbRowTriggersSkipped skipped;
	int			ntriggers;
	CbRowTrigger *triggers = CbFiringRowTriggers(parent, false, &ntriggers,
												 &skipped);
	CbRowTrigger *unconditional = NULL;
	CbRowTrigger *conditional = NULL;
	int			nunconditional = 0;
	int			nconditional = 0;
	List	   *leaves;
	ListCell   *lc;
	Snapshot	snapshot;
	MemoryContext rowcxt;

	if (ntriggers == 0)
	{
		table_close(parent, NoLock);
		return;
	}

	/* an INSERT by a trigger with a WHEN condition deletes (see above) */
	unconditional = palloc(sizeof(CbRowTrigger) * ntriggers);
	conditional = palloc(sizeof(CbRowTrigger) * ntriggers);
	for (int t = 0; t < ntriggers; t++)
	{
		if (event == TRIGGER_EVENT_INSERT && triggers[t].trigger->tgqual != NULL)
			conditional[nconditional++] = triggers[t];
		else
			unconditional[nunconditional++] = triggers[t];
	}

	/* every committed row (and this transaction's): the rows are locked */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snapshot);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext,
								   "cachebridge partition rows",
								   ALLOCSET_DEFAULT_SIZES);
	leaves = find_all_inheritors(relid, ShareLock, NULL);
	foreach(lc, leaves)
	{
		Relation	leaf = table_open(lfirst_oid(lc), NoLock);
		TupleTableSlot *slot;
		TableScanDesc scan;

		if (leaf->rd_rel->relkind != RELKIND_RELATION)
		{
			table_close(leaf, NoLock);
			continue;
		}
		slot = table_slot_create(leaf, NULL);
		scan = table_beginscan(leaf, snapshot, 0, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			MemoryContext oldcxt;

			CHECK_FOR_INTERRUPTS();
			oldcxt = MemoryContextSwitchTo(rowcxt);
			CbFireRowTriggers(leaf, unconditional, nunconditional, event, slot);
			CbFireRowTriggers(leaf, conditional, nconditional,
							  TRIGGER_EVENT_DELETE, slot);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(rowcxt);
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		table_close(leaf, NoLock);
	}
	MemoryContextDelete(rowcxt);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	table_close(parent, NoLock);
}

/* Whether some ancestor of relid has a trigger named tgname. */
static bool
CbAncestorHasTrigger(Oid relid, const char *tgname)
{
	List	   *ancestors = get_partition_ancestors(relid);
	ListCell   *lc;

	foreach(lc, ancestors)
		if (OidIsValid(get_trigger_oid(lfirst_oid(lc), tgname, true)))
			return true;
	return false;
}

/*
 * Drops the copies of cachebridge TRUNCATE triggers at or under the
 * detached relid that no ancestor it still has accounts for: a copy
 * "<name>_partition" stays only while an ancestor has the trigger "<name>".
 * They are cachebridge's own, made as whoever made the partition, so they
 * go without a check of the rights to drop them (the DETACH was allowed).
 */
static void
CbDropStaleTruncateCopies(Oid relid)
{
	List	   *rels = find_all_inheritors(relid, NoLock, NULL);
	List	   *drop = NIL;
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);
		TriggerDesc *trigdesc = rel->trigdesc;

		for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
		{
			Trigger    *trigger = &trigdesc->triggers[i];
			size_t		len = strlen(trigger->tgname);
			size_t		suffix = strlen(CB_COPY_SUFFIX);
			char	   *original;

			if (!TRIGGER_FOR_TRUNCATE(trigger->tgtype) || len <= suffix ||
				strcmp(trigger->tgname + len - suffix, CB_COPY_SUFFIX) != 0 ||
				!CbIsTriggerFunction(trigger->tgfoid, NULL))
				continue;
			original = pnstrdup(trigger->tgname, len - suffix);
			if (!CbAncestorHasTrigger(RelationGetRelid(rel), original))
			{
				ObjectAddress *address = palloc(sizeof(ObjectAddress));

				ObjectAddressSet(*address, TriggerRelationId, trigger->tgoid);
				drop = lappend(drop, address);
			}
		}
		table_close(rel, NoLock);
	}
	foreach(lc, drop)
		performDeletion((ObjectAddress *) lfirst(lc), DROP_RESTRICT,
						PERFORM_DELETION_INTERNAL);
	if (drop != NIL)
		CommandCounterIncrement();
}

/* ddl_command_end of ALTER TABLE: an ATTACH or DETACH of a partition. */
static void
CbAlterTableEnd(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		PartitionCmd *partcmd;
		Oid			parentid;
		Oid			relid;

		if (cmd->subtype != AT_AttachPartition &&
			cmd->subtype != AT_DetachPartition &&
			cmd->subtype != AT_DetachPartitionFinalize)
			continue;
		partcmd = castNode(PartitionCmd, cmd->def);

		/* the statement holds its locks on both, so their names hold */
		parentid = RangeVarGetRelid(stmt->relation, NoLock, true);
		relid = RangeVarGetRelid(partcmd->name, NoLock, true);
		if (!OidIsValid(parentid) || !OidIsValid(relid) ||
			get_rel_relkind(parentid) != RELKIND_PARTITIONED_TABLE)
			continue;

		if (cmd->subtype == AT_AttachPartition)
			CbRowsMoved(parentid, relid, TRIGGER_EVENT_INSERT);
		else
		{
			CbRowsMoved(parentid, relid, TRIGGER_EVENT_DELETE);
			CbDropStaleTruncateCopies(relid);
		}
	}
}

/*
 * ddl_command_start of DROP TABLE: each partition dropped (that the caller
 * owns) loses its rows from its partitioned table.
 */
static void
CbDropTableStart(DropStmt *stmt)
{
	ListCell   *lc;

	if (stmt->removeType != OBJECT_TABLE)
		return;
	foreach(lc, stmt->objects)
	{
		RangeVar   *rv = makeRangeVarFromNameList(lfirst(lc));
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);
		Oid			parentid;

		if (!OidIsValid(relid) || !get_rel_relispartition(relid) ||
			!(pg_class_ownercheck(relid, GetUserId()) ||
			  pg_namespace_ownercheck(get_rel_namespace(relid), GetUserId())))
			continue;
		parentid = get_partition_parent(relid, true);
		if (!OidIsValid(parentid))
			continue;

		/* the locks DROP TABLE takes, in its order (parent first) */
		LockRelationOid(parentid, AccessExclusiveLock);
		LockRelationOid(relid, AccessExclusiveLock);
		/* it may have been dropped or detached while we waited */
		if (get_rel_relkind(relid) == '\0' ||
			get_partition_parent(relid, true) != parentid)
			continue;
		(void) find_all_inheritors(relid, AccessExclusiveLock, NULL);
		CbRowsMoved(parentid, relid, TRIGGER_EVENT_DELETE);
	}
}

/*
 * SQL: event trigger cachebridge.partition_rows_moved() -- at
 * ddl_command_end of ALTER TABLE and ddl_command_start of DROP TABLE
 * (see the file header).
 */
Datum
cachebridge_partition_rows_moved(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function cachebridge.partition_rows_moved() was not called by the event trigger manager")));
	trigdata = (EventTriggerData *) fcinfo->context;

	if (strcmp(trigdata->event, "ddl_command_end") == 0 &&
		IsA(trigdata->parsetree, AlterTableStmt))
		CbAlterTableEnd((AlterTableStmt *) trigdata->parsetree);
	else if (strcmp(trigdata->event, "ddl_command_start") == 0 &&
			 IsA(trigdata->parsetree, DropStmt))
		CbDropTableStart((DropStmt *) trigdata->parsetree);
	PG_RETURN_VOID();
}
