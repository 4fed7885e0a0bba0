/*-------------------------------------------------------------------------
 *
 * namespace.c
 *		The namespace a table's cachebridge triggers write into: the
 *		cachebridge.key_prefix configured for the table's owner.
 *
 * Every key, pattern, notify channel and stream name a trigger makes starts
 * with the prefix its table's owner would get on logging in to this
 * database: from ALTER ROLE owner IN DATABASE d SET, else ALTER ROLE owner
 * SET, else ALTER DATABASE d SET, else ALTER ROLE ALL SET -- the order in
 * which PostgreSQL applies pg_db_role_setting at login -- else the
 * server-wide value (postgresql.conf, ALTER SYSTEM, the postmaster's
 * command line), else none.  The firing session's own setting plays no
 * part: otherwise a session could make a row of another role's table land
 * in its own namespace, or, through a foreign key ON UPDATE CASCADE, a row
 * of its own in another's.  The session's setting governs only the
 * cache-aside functions it calls (cache.c).
 *
 * The prefix is looked up once per trigger and backend (trigger.c caches
 * it until the table's relcache entry is invalidated, as by ALTER TABLE
 * OWNER); like every ALTER ROLE/DATABASE SET, a changed setting applies
 * to sessions started afterwards.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_db_role_setting.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "namespace.h"

#define CB_KEY_PREFIX_SETTING "cachebridge.key_prefix"

/* The server-wide cachebridge.key_prefix (malloc'd), NULL for none. */
static char *server_key_prefix = NULL;

/* True while _PG_init defines the settings (see CbNoteServerKeyPrefix). */
static bool defining_settings = false;

/*
 * The value cachebridge.key_prefix has in one setconfig array of
 * pg_db_role_setting, parsed as ProcessGUCArray() does (the last entry
 * wins), or NULL if the array does not set it.
 */
static char *
CbPrefixInSetconfig(ArrayType *setconfig)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	   *found = NULL;

	deconstruct_array(setconfig, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		char	   *value;

		if (nulls[i])
			continue;
		ParseLongOption(TextDatumGetCString(elems[i]), &name, &value);
		if (value != NULL && pg_strcasecmp(name, CB_KEY_PREFIX_SETTING) == 0)
			found = value;
	}
	return found;
}

/*
 * The cachebridge.key_prefix that pg_db_role_setting gives roleid on
 * logging in to this database (palloc'd), or NULL if no row sets it.
 */
char *
CbRoleKeyPrefix(Oid roleid)
{
	/* (database, role) of each row, in the order of precedence */
	const Oid	order[][2] = {
		{MyDatabaseId, roleid},
		{InvalidOid, roleid},
		{MyDatabaseId, InvalidOid},
		{InvalidOid, InvalidOid},
	};
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	char	   *prefix = NULL;

	for (int i = 0; i < lengthof(order) && prefix == NULL; i++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(order[i][0]));
		ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(order[i][1]));
		scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true,
								  NULL, 2, keys);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			bool		isnull;
			Datum		setconfig = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
												 RelationGetDescr(rel), &isnull);

			if (!isnull)
				prefix = CbPrefixInSetconfig(DatumGetArrayTypeP(setconfig));
		}
		systable_endscan(scan);
	}
	table_close(rel, AccessShareLock);
	return prefix;
}

/* The server-wide cachebridge.key_prefix ("" for none). */
const char *
CbServerKeyPrefix(void)
{
	return server_key_prefix != NULL ? server_key_prefix : "";
}

/* Marks the time _PG_init defines cachebridge's settings. */
void
CbDefiningSettings(bool defining)
{
	defining_settings = defining;
}

/*
 * Called by the check hook of cachebridge.key_prefix with every value it
 * checks: remembers the server-wide one.  Returns false (out of memory)
 * if it could not.
 *
 * A session's current value says nothing about the server-wide one once
 * it is overridden (ALTER ROLE/DATABASE SET, SET), and PostgreSQL keeps no
 * other copy, so the value is taken where it passes by: a check of a
 * source at or below PGC_S_ARGV (boot value, postgresql.conf and
 * postgresql.auto.conf, the postmaster's command line) is a server-wide
 * value.  The check is made for it whether or not it then becomes the
 * session's value, so a reload is seen even in a session whose value is
 * set by a higher source.  Such checks made inside a transaction are not
 * reloads but ALTER SYSTEM or pg_file_settings validating a value not yet
 * in force, and are ignored -- except while _PG_init defines the settings
 * in a backend that loads the library late, where the placeholder's
 * server-wide value is checked.  Two gaps remain, both closed by
 * reconnecting: a reload that removes the setting from the file resets
 * (and checks) it only in sessions whose value at login came from the
 * file, so other sessions keep the old server-wide value; and a backend
 * that loads the library late, after a role or database setting replaced
 * the placeholder's file value, never sees that value.  With the library
 * in shared_preload_libraries, as production runs it, new backends inherit
 * the postmaster's value, which always follows the file.
 */
bool
CbNoteServerKeyPrefix(const char *value, GucSource source)
{
	char	   *copy;

	if (source > PGC_S_ARGV || (IsTransactionState() && !defining_settings))
		return true;
	copy = strdup(value != NULL ? value : "");
	if (copy == NULL)
		return false;
	free(server_key_prefix);
	server_key_prefix = copy;
	return true;
}
