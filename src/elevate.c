/*-------------------------------------------------------------------------
 *
 * elevate.c
 *		Running code as another role, out of reach of the caller's
 *		settings: the one way cachebridge switches roles.
 *
 * The outbox insert at commit runs as the outbox's owner, the worker as the
 * extension's owner: with more rights than the session they serve.  Such
 * code must run nothing that the session, a role setting or a database
 * setting chose.  So every statement it runs is schema-qualified down to
 * its operators, and between CbElevate() and CbElevateEnd() search_path is
 * pg_catalog, pg_temp -- what fmgr does for a SECURITY DEFINER function
 * with SET search_path -- and the operation is security-restricted.  Code
 * that can do without SQL (wait_delivered, ring loading) reads the tables
 * directly and switches nothing.
 *
 * An ERROR in between needs no cleanup: (sub)transaction abort restores the
 * user id, the security context and the settings.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "elevate.h"

/*
 * The extension's row as last read: the commit path and every worker pass
 * need it, and pg_extension has no syscache.  Forgotten on any invalidation
 * of pg_class or pg_namespace entries -- creating or dropping the extension
 * creates or drops its tables, and its schema's owner and name are checked
 * below -- counted, so that one arriving while the row is read is not
 * missed.  (Its owner changes only by REASSIGN OWNED, which re-owns the
 * schema too.)
 */
static bool ext_known = false;
static Oid	ext_owner = InvalidOid;
static Oid	ext_nsp = InvalidOid;
static uint64 ext_invals = 0;

static void
CbExtensionForget(Datum arg, int cacheid, uint32 hashvalue)
{
	ext_known = false;
	ext_invals++;
}

/*
 * How many invalidations of pg_class or pg_namespace entries this backend
 * has seen: what is derived from those catalogs and the extension's row
 * (here, and the checked outbox in outbox.c) holds while it is unchanged.
 */
uint64
CbCatalogGeneration(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(RELOID, CbExtensionForget, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, CbExtensionForget, (Datum) 0);
		registered = true;
	}
	return ext_invals;
}

/*
 * The owner and the schema of the cachebridge extension in this database,
 * both InvalidOid if it is not installed here.
 */
static void
CbExtensionRow(Oid *owner, Oid *nsp)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	uint64		invals;

	(void) CbCatalogGeneration();
	if (ext_known)
	{
		*owner = ext_owner;
		*nsp = ext_nsp;
		return;
	}

	rel = table_open(ExtensionRelationId, AccessShareLock);
	invals = ext_invals;
	*owner = *nsp = InvalidOid;
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("cachebridge"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		*nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (invals == ext_invals)
	{
		ext_owner = *owner;
		ext_nsp = *nsp;
		ext_known = true;
	}
}

/*
 * Checks that the schema nsp of the cachebridge extension is the one its
 * SQL names -- "cachebridge" -- owned by the extension's owner.  A schema
 * "cachebridge" made by another role before CREATE EXTENSION would
 * otherwise let that role, as its owner, rename it and put a table
 * "cachebridge.outbox" of its own, with triggers, where the worker and
 * the commit path write as the extension's owner.
 */
static bool
CbSchemaIsOwners(Oid owner, Oid nsp)
{
	HeapTuple	tup;
	bool		ok = false;

	tup = OidIsValid(nsp) ? SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp)) : NULL;
	if (HeapTupleIsValid(tup))
	{
		Form_pg_namespace form = (Form_pg_namespace) GETSTRUCT(tup);

		ok = strcmp(NameStr(form->nspname), "cachebridge") == 0 &&
			form->nspowner == owner;
		ReleaseSysCache(tup);
	}
	return ok;
}

/* Raises the ERROR of a schema that fails CbSchemaIsOwners. */
static void
CbRefuseSchema(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the schema of extension \"cachebridge\" is not a schema \"cachebridge\" owned by the extension's owner"),
			 errdetail("Another role created, owns or renamed that schema, and could put its own objects where cachebridge works as the extension's owner."),
			 errhint("Drop the extension and that schema, and create the extension again as a superuser, with no schema \"cachebridge\" there before.")));
}

/*
 * The owner of the cachebridge extension in this database, or InvalidOid
 * if it is not installed here; an ERROR if its schema fails
 * CbSchemaIsOwners, since what runs as that owner names that schema.
 */
Oid
CbExtensionOwner(void)
{
	Oid			owner;
	Oid			nsp;

	CbExtensionRow(&owner, &nsp);
	if (OidIsValid(owner) && !CbSchemaIsOwners(owner, nsp))
		CbRefuseSchema();
	return owner;
}

/*
 * The schema of the cachebridge extension, in *nspid; false if it fails
 * CbSchemaIsOwners or the extension is not installed.
 */
bool
CbExtensionSchemaOk(Oid *nspid)
{
	Oid			owner;

	CbExtensionRow(&owner, nspid);
	return CbSchemaIsOwners(owner, *nspid);
}

/* As CbExtensionSchemaOk, returning the schema, or raising an ERROR. */
Oid
CbExtensionSchema(void)
{
	Oid			nsp;

	if (!CbExtensionSchemaOk(&nsp))
		CbRefuseSchema();
	return nsp;
}

/*
 * Runs what follows as role, in a security-restricted operation, with
 * search_path fixed to CB_SAFE_SEARCH_PATH, until CbElevateEnd().
 */
void
CbElevate(Oid role, CbElevation *elevation)
{
	GetUserIdAndSecContext(&elevation->saved_userid,
						   &elevation->saved_sec_context);
	SetUserIdAndSecContext(role, elevation->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	elevation->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", CB_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/* Returns to the role and settings CbElevate() found. */
void
CbElevateEnd(const CbElevation *elevation)
{
	AtEOXact_GUC(true, elevation->guc_nestlevel);
	SetUserIdAndSecContext(elevation->saved_userid,
						   elevation->saved_sec_context);
}
