/*-------------------------------------------------------------------------
 *
 * schema.c
 *		The schema "cachebridge" goes with the extension: DROP EXTENSION
 *		cachebridge drops it too, when nothing else is left in it.
 *
 * The control file names the schema (schema = cachebridge), so CREATE
 * EXTENSION makes it before the install script runs, and PostgreSQL does
 * not make it a member of the extension: DROP EXTENSION leaves it behind.
 * Making it a member by hand is no way out: ALTER EXTENSION ADD SCHEMA
 * refuses the schema that holds the extension, and a pg_depend row saying
 * so anyway makes a dependency loop that pg_dump cannot order and that
 * pg_upgrade's dump (which adds members back with ALTER EXTENSION ADD)
 * cannot restore.
 *
 * So an event trigger at ddl_command_start of DROP EXTENSION (itself a
 * member, present until the drop runs) notes the extension's schema, and
 * just before the transaction commits, if the extension is really gone and
 * the schema holds nothing any more, the schema is dropped as well.  A
 * schema that still holds objects of a role's own is left, with a NOTICE:
 * dropping the extension must not take a user's table with it.  The same
 * code serves a fresh install and a database upgraded from 1.0, whose
 * schema is not a member either.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "elevate.h"

PG_FUNCTION_INFO_V1(cachebridge_drop_extension_start);

/* The schema to drop at commit if the extension is gone, or InvalidOid. */
static Oid	schema_to_drop = InvalidOid;
static bool callback_registered = false;

/* True if some object still lives in (depends on) schema nsp. */
static bool
CbSchemaHoldsObjects(Oid nsp)
{
	Relation	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(NamespaceRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(nsp));
	scan = systable_beginscan(rel, DependReferenceIndexId, true, NULL, 2, key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Before commit: drops the noted schema if the extension was dropped (not
 * rolled back to a savepoint, nor created again) and the schema is still
 * the same, still its owner's -- the dropping role's -- and empty.
 */
static void
CbDropSchemaAtCommit(void)
{
	Oid			nsp = schema_to_drop;
	ObjectAddress schema;

	schema_to_drop = InvalidOid;
	if (OidIsValid(get_extension_oid("cachebridge", true)))
		return;
	if (get_namespace_oid("cachebridge", true) != nsp ||
		!pg_namespace_ownercheck(nsp, GetUserId()))
		return;
	if (CbSchemaHoldsObjects(nsp))
	{
		ereport(NOTICE,
				(errmsg("schema \"cachebridge\" is kept: it holds objects that were not the extension's"),
				 errhint("Drop them, or the schema with DROP SCHEMA cachebridge CASCADE.")));
		return;
	}
	ObjectAddressSet(schema, NamespaceRelationId, nsp);
	performDeletion(&schema, DROP_RESTRICT, 0);
}

/* Transaction callback: acts before commit, forgets at every end. */
static void
CbSchemaXactCallback(XactEvent event, void *arg)
{
	if (!OidIsValid(schema_to_drop))
		return;
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
		CbDropSchemaAtCommit();
	else
		schema_to_drop = InvalidOid;
}

/* True if a DROP EXTENSION statement names cachebridge. */
static bool
CbDropsCachebridge(Node *stmt)
{
	DropStmt   *drop = (DropStmt *) stmt;
	ListCell   *lc;

	if (stmt == NULL || !IsA(stmt, DropStmt) || drop->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, drop->objects)
		if (strcmp(strVal(lfirst(lc)), "cachebridge") == 0)
			return true;
	return false;
}

/*
 * SQL: event trigger function of ddl_command_start for DROP EXTENSION.
 * Notes the extension's schema, if it passes the checks of elevate.c (the
 * schema "cachebridge" of the extension's owner), to be dropped at commit.
 */
Datum
cachebridge_drop_extension_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Oid			nsp;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"cachebridge.drop_extension_start\" was not called by the event trigger manager")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!CbDropsCachebridge(trigdata->parsetree) || !CbExtensionSchemaOk(&nsp))
		PG_RETURN_VOID();

	if (!callback_registered)
	{
		RegisterXactCallback(CbSchemaXactCallback, NULL);
		callback_registered = true;
	}
	schema_to_drop = nsp;
	PG_RETURN_VOID();
}
