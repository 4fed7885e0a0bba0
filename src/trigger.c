/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		The trigger functions cachebridge.write_through(),
 *		cachebridge.invalidate() and cachebridge.publish(), and the
 *		per-trigger cache of their parsed arguments.
 *
 * Row-level AFTER INSERT/UPDATE/DELETE triggers turn each row change into
 * effects on Redis keys and queue them (queue.c); nothing reaches Redis
 * before commit.  A statement-level AFTER TRUNCATE trigger with the same
 * function and arguments queues a pattern invalidation of every key the
 * templates can produce.
 *
 * publish() turns each row change into an entry of a Redis stream (op,
 * table, row, old, and at commit lsn, xid, committed_at); a TRUNCATE into
 * one entry with op TRUNCATE.  Entries are never deduplicated.
 *
 * Arguments: write_through takes one key template, then options ttl=N,
 * columns=a,b, format=json|hash and notify=channel; invalidate takes one
 * or more key templates and notify=channel; publish takes one stream name
 * template, then maxlen=N and old=true|false.  notify= also PUBLISHes
 * every key changed on the channel (with the key prefix), after commit.
 * Keys, patterns, channels and stream names all start with the key prefix
 * of the table's owner (namespace.c), whatever session fires the trigger;
 * a key or stream name that would be a version marker's name is refused.
 * An argument of the form name=value
 * (lower-case name, no braces) is an option.  Arguments are parsed once per
 * trigger and cached until the table's relcache entry is invalidated
 * (ALTER TABLE, CREATE/DROP TRIGGER, ...).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
#include "utils/fmgrprotos.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "cachebridge.h"
#include "namespace.h"
#include "queue.h"
#include "scripts.h"
#include "stats.h"
#include "template.h"

/* Bytes of a refused key shown in its WARNING. */
#define CB_SHOWN_KEY_LEN 200

typedef enum CbTriggerMode
{
	CB_MODE_WRITE_THROUGH,
	CB_MODE_INVALIDATE,
	CB_MODE_PUBLISH
} CbTriggerMode;

/* The parsed arguments of one trigger, cached by trigger OID. */
typedef struct CbTriggerInfo
{
	Oid			tgoid;			/* hash key */
	bool		valid;			/* false once its relation changed */
	Oid			relid;
	MemoryContext cxt;			/* holds everything below */
	CbTriggerMode mode;
	int			ntemplates;
	CbTemplate *templates;
	int			ttl;			/* seconds, 0 for none */
	bool		hash_format;	/* format=hash */
	int			ncolumns;		/* columns=, or 0 for every column */
	AttrNumber *columns;
	TupleDesc	json_desc;		/* blessed descriptor of the columns= row */
	char	   *notify;			/* notify= channel, without the prefix */
	char	   *key_prefix;		/* the owner's key_prefix, NULL: server's */
	int			maxlen;			/* publish: maxlen=, 0 for none */
	bool		publish_old;	/* publish: old=true */
	char	   *table;			/* publish: schema-qualified table name */
	FmgrInfo   *outfuncs;		/* output function per attribute */
	LocalTransactionId degraded_lxid;	/* transaction it degraded in */
} CbTriggerInfo;

static HTAB *trigger_cache = NULL;

PG_FUNCTION_INFO_V1(cachebridge_write_through);
PG_FUNCTION_INFO_V1(cachebridge_invalidate);
PG_FUNCTION_INFO_V1(cachebridge_publish);
PG_FUNCTION_INFO_V1(cachebridge_validate_trigger);

/* Relcache callback: forget the parsed arguments of the relation's triggers. */
static void
CbTriggerCacheInvalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	CbTriggerInfo *info;

	hash_seq_init(&seq, trigger_cache);
	while ((info = hash_seq_search(&seq)) != NULL)
		if (relid == InvalidOid || info->relid == relid)
			info->valid = false;
}

/* Name of the SQL function of a mode, for messages. */
static const char *
CbModeFunction(CbTriggerMode mode)
{
	switch (mode)
	{
		case CB_MODE_WRITE_THROUGH:
			return "cachebridge.write_through";
		case CB_MODE_INVALIDATE:
			return "cachebridge.invalidate";
		case CB_MODE_PUBLISH:
			break;
	}
	return "cachebridge.publish";
}

/* The options a mode accepts, for hints. */
static const char *
CbModeOptions(CbTriggerMode mode)
{
	switch (mode)
	{
		case CB_MODE_WRITE_THROUGH:
			return "the options ttl=, columns=, format= and notify=";
		case CB_MODE_INVALIDATE:
			return "key templates and the option notify=";
		case CB_MODE_PUBLISH:
			break;
	}
	return "a stream name template and the options maxlen= and old=";
}

/* True if the mode accepts the option. */
static bool
CbModeAccepts(CbTriggerMode mode, const char *name)
{
	switch (mode)
	{
		case CB_MODE_WRITE_THROUGH:
			return strcmp(name, "ttl") == 0 || strcmp(name, "columns") == 0 ||
				strcmp(name, "format") == 0 || strcmp(name, "notify") == 0;
		case CB_MODE_INVALIDATE:
			return strcmp(name, "notify") == 0;
		case CB_MODE_PUBLISH:
			break;
	}
	return strcmp(name, "maxlen") == 0 || strcmp(name, "old") == 0;
}

/* True if arg is an option: a lower-case name, '=', and no braces. */
static bool
CbIsOption(const char *arg)
{
	const char *p = arg;

	while (*p == '_' || (*p >= 'a' && *p <= 'z'))
		p++;
	return p > arg && *p == '=' && strpbrk(arg, "{}") == NULL;
}

/* Raises the ERROR for a bad option value. */
static void
CbBadOption(const char *option, const char *value, const char *trigname,
			const char *relname, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value \"%s\" for option \"%s\" of trigger \"%s\" on table \"%s\"",
					value, option, trigname, relname),
			 errdetail("%s", problem)));
}

/* Parses a positive int option value; raises the ERROR naming it if bad. */
static int
CbPositiveOption(const char *name, const char *value, const char *trigname,
				 const char *relname, const char *problem)
{
	char	   *end;
	long		n;

	errno = 0;
	n = strtol(value, &end, 10);
	if (*value == '\0' || *end != '\0' || errno != 0 || n < 1 || n > PG_INT32_MAX)
		CbBadOption(name, value, trigname, relname, problem);
	return (int) n;
}

/* Resolves a column name of columns= to its attribute number. */
static AttrNumber
CbColumnByName(TupleDesc desc, const char *name, const char *trigname,
			   const char *relname)
{
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of option \"columns\" does not exist in table \"%s\"",
					name, relname),
			 errcontext("trigger \"%s\" on table \"%s\"", trigname, relname)));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/* Parses one name=value option into info. */
static void
CbParseOption(CbTriggerInfo *info, const char *arg, TupleDesc desc,
			  const char *trigname, const char *relname)
{
	const char *eq = strchr(arg, '=');
	char	   *name = pnstrdup(arg, eq - arg);
	const char *value = eq + 1;

	if (!CbModeAccepts(info->mode, name))
	{
		bool		known = CbModeAccepts(CB_MODE_WRITE_THROUGH, name) ||
			CbModeAccepts(CB_MODE_PUBLISH, name);

		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" in trigger \"%s\" on table \"%s\"",
							name, trigname, relname),
					 errhint("%s() accepts %s.", CbModeFunction(info->mode),
							 CbModeOptions(info->mode))));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is not accepted by %s() in trigger \"%s\" on table \"%s\"",
						name, CbModeFunction(info->mode), trigname, relname),
				 info->mode == CB_MODE_INVALIDATE
				 ? errdetail("invalidate deletes keys; it writes no value to expire or format.")
				 : errhint("%s() accepts %s.", CbModeFunction(info->mode),
						   CbModeOptions(info->mode))));
	}

	if (strcmp(name, "ttl") == 0)
		info->ttl = CbPositiveOption(name, value, trigname, relname,
									 "The TTL must be a positive whole number of seconds.");
	else if (strcmp(name, "maxlen") == 0)
		info->maxlen = CbPositiveOption(name, value, trigname, relname,
										"maxlen must be a positive whole number of entries.");
	else if (strcmp(name, "old") == 0)
	{
		if (strcmp(value, "true") == 0)
			info->publish_old = true;
		else if (strcmp(value, "false") == 0)
			info->publish_old = false;
		else
			CbBadOption(name, value, trigname, relname,
						"old must be \"true\" or \"false\".");
	}
	else if (strcmp(name, "notify") == 0)
	{
		if (*value == '\0')
			CbBadOption(name, value, trigname, relname,
						"Give the name of the channel to PUBLISH changed keys on.");
		info->notify = pstrdup(value);
	}
	else if (strcmp(name, "format") == 0)
	{
		if (strcmp(value, "json") == 0)
			info->hash_format = false;
		else if (strcmp(value, "hash") == 0)
			info->hash_format = true;
		else
			CbBadOption(name, value, trigname, relname,
						"The format must be \"json\" or \"hash\".");
	}
	else
	{
		List	   *names;
		ListCell   *lc;
		char	   *copy = pstrdup(value);
		int			i = 0;

		if (!SplitIdentifierString(copy, ',', &names) || names == NIL)
			CbBadOption(name, value, trigname, relname,
						"Give a comma-separated list of column names.");
		info->ncolumns = list_length(names);
		info->columns = palloc(sizeof(AttrNumber) * info->ncolumns);
		foreach(lc, names)
			info->columns[i++] = CbColumnByName(desc, (char *) lfirst(lc),
												trigname, relname);
	}
}

/*
 * Copies the fixed-size part of the pg_trigger row of tgoid into *row;
 * false if there is no such trigger.  tgrel is pg_trigger, opened.
 */
static bool
CbTriggerFetch(Relation tgrel, Oid tgoid, FormData_pg_trigger *row)
{
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	ScanKeyInit(&skey, Anum_pg_trigger_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(tgoid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &skey);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
		*row = *(Form_pg_trigger) GETSTRUCT(tup);
	systable_endscan(scan);
	return found;
}

/*
 * The table a publish trigger reports: the one it was created on, which
 * for the clone of a partitioned table's trigger on a partition is an
 * ancestor.
 */
static Oid
CbTriggerOrigin(Relation rel, Trigger *trigger)
{
	Oid			relid = RelationGetRelid(rel);
	Oid			parent = trigger->tgoid;
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	FormData_pg_trigger tg;

	while (OidIsValid(parent) && CbTriggerFetch(tgrel, parent, &tg))
	{
		relid = tg.tgrelid;
		parent = tg.tgparentid;
	}
	table_close(tgrel, AccessShareLock);
	return relid;
}

/* Builds the descriptor of the row that columns= restricts JSON to. */
static TupleDesc
CbProjectedDesc(CbTriggerInfo *info, TupleDesc desc)
{
	TupleDesc	proj = CreateTemplateTupleDesc(info->ncolumns);

	for (int i = 0; i < info->ncolumns; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, info->columns[i] - 1);

		TupleDescInitEntry(proj, (AttrNumber) (i + 1), NameStr(att->attname),
						   att->atttypid, att->atttypmod, 0);
		TupleDescInitEntryCollation(proj, (AttrNumber) (i + 1), att->attcollation);
	}
	return BlessTupleDesc(proj);
}

/* Parses a trigger's arguments against its table into a new info. */
static void
CbTriggerInfoBuild(CbTriggerInfo *info, CbTriggerMode mode, Relation rel,
				   Trigger *trigger)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *relname = RelationGetRelationName(rel);
	const char *trigname = trigger->tgname;
	List	   *templates = NIL;
	ListCell   *lc;
	int			i = 0;

	/*
	 * A foreign table's rows change on another server, in transactions that
	 * have no local transaction id: fill protection cannot tell whether a
	 * fill saw them (see scripts.c), and a stale fill would win.
	 */
	if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("trigger \"%s\" on foreign table \"%s\" cannot use %s()",
						trigname, relname, CbModeFunction(mode)),
				 errdetail("The rows of a foreign table are changed on another server, outside this database's transactions, so cachebridge can neither version those changes nor order them against cache fills."),
				 errhint("Create the trigger on the table where the rows are stored.")));

	info->mode = mode;
	info->relid = RelationGetRelid(rel);
	info->degraded_lxid = InvalidLocalTransactionId;
	info->key_prefix = CbRoleKeyPrefix(rel->rd_rel->relowner);

	for (int a = 0; a < trigger->tgnargs; a++)
	{
		const char *arg = trigger->tgargs[a];

		if (CbIsOption(arg))
			CbParseOption(info, arg, desc, trigname, relname);
		else if (mode == CB_MODE_WRITE_THROUGH && templates != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("trigger \"%s\" on table \"%s\" has more than one key template",
							trigname, relname),
					 errdetail("Argument \"%s\" is neither the key template nor an option name=value.",
							   arg),
					 errhint("cachebridge.write_through() takes one key template; use cachebridge.invalidate() for several.")));
		else if (mode == CB_MODE_PUBLISH && templates != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("trigger \"%s\" on table \"%s\" has more than one stream name template",
							trigname, relname),
					 errdetail("Argument \"%s\" is neither the stream name template nor an option name=value.",
							   arg),
					 errhint("cachebridge.publish() takes one stream name template, then the options maxlen= and old=.")));
		else
		{
			CbTemplate *t = palloc0(sizeof(CbTemplate));

			CbTemplateParse(t, mode == CB_MODE_PUBLISH ? "stream name template" : "key template",
							arg, desc, trigname, relname);
			templates = lappend(templates, t);
		}
	}
	if (templates == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" names no %s template",
						trigname, relname,
						mode == CB_MODE_PUBLISH ? "stream name" : "key"),
				 errhint("Pass the template as the first argument, as in %s('%s').",
						 CbModeFunction(mode),
						 mode == CB_MODE_PUBLISH ? "events:orders" : "user:{id}")));

	info->ntemplates = list_length(templates);
	info->templates = palloc(sizeof(CbTemplate) * info->ntemplates);
	foreach(lc, templates)
		info->templates[i++] = *(CbTemplate *) lfirst(lc);

	if (mode == CB_MODE_PUBLISH)
	{
		Oid			origin = CbTriggerOrigin(rel, trigger);

		info->table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(origin)),
												 get_rel_name(origin));
		if (TRIGGER_FOR_TRUNCATE(trigger->tgtype))
		{
			for (int s = 0; s < info->templates[0].nsegments; s++)
				if (info->templates[0].segments[s].attnum != InvalidAttrNumber)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("TRUNCATE trigger \"%s\" on table \"%s\" cannot publish to stream \"%s\"",
									trigname, relname, info->templates[0].source),
							 errdetail("A TRUNCATE has no row to take the stream name's columns from."),
							 errhint("Use a stream name without columns, or publish TRUNCATE from another trigger.")));
		}
		else if (!TRIGGER_FOR_ROW(trigger->tgtype))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("trigger \"%s\" on table \"%s\" must be FOR EACH ROW",
							trigname, relname),
					 errhint("Only a TRUNCATE trigger may be FOR EACH STATEMENT.")));
	}

	info->outfuncs = palloc0(sizeof(FmgrInfo) * Max(desc->natts, 1));
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		Oid			outfunc;
		bool		isvarlena;

		if (att->attisdropped)
			continue;
		getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &info->outfuncs[a], info->cxt);
	}
	if (info->ncolumns > 0 && !info->hash_format)
		info->json_desc = CbProjectedDesc(info, desc);
}

/* The cached parsed arguments of the firing trigger, parsed if need be. */
static CbTriggerInfo *
CbTriggerInfoGet(CbTriggerMode mode, Relation rel, Trigger *trigger)
{
	CbTriggerInfo *info;
	bool		found;

	if (trigger_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CbTriggerInfo);
		ctl.hcxt = CacheMemoryContext;
		trigger_cache = hash_create("cachebridge triggers", 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(CbTriggerCacheInvalidate, (Datum) 0);
	}

	info = hash_search(trigger_cache, &trigger->tgoid, HASH_ENTER, &found);
	if (found && info->valid && info->mode == mode)
		return info;
	if (found && info->cxt != NULL)
		MemoryContextDelete(info->cxt);

	/* build in a fresh context; an ERROR leaves an entry that is not valid */
	info->valid = false;
	info->relid = RelationGetRelid(rel);
	info->cxt = AllocSetContextCreate(CacheMemoryContext, "cachebridge trigger",
									  ALLOCSET_SMALL_SIZES);
	{
		MemoryContext cxt = info->cxt;
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

		memset(((char *) info) + offsetof(CbTriggerInfo, mode), 0,
			   sizeof(CbTriggerInfo) - offsetof(CbTriggerInfo, mode));
		CbTriggerInfoBuild(info, mode, rel, trigger);
		MemoryContextSwitchTo(oldcxt);
	}
	info->valid = true;
	return info;
}

/*
 * The key prefix of the trigger's namespace: its table owner's, else the
 * server-wide one (looked up at each use, so that a reload is seen).
 */
static const char *
CbTriggerPrefix(CbTriggerInfo *info)
{
	return info->key_prefix != NULL ? info->key_prefix : CbServerKeyPrefix();
}

/*
 * Queues the PUBLISH of a changed key (or pattern) on the trigger's
 * notify= channel, if it has one.  Queued after the key's effect, it is
 * sent after it.
 */
static void
CbQueueNotify(CbTriggerInfo *info, const char *key, size_t keylen)
{
	StringInfoData msg;

	if (info->notify == NULL)
		return;
	initStringInfo(&msg);
	appendStringInfoString(&msg, CbTriggerPrefix(info));
	appendStringInfoString(&msg, info->notify);
	appendStringInfoChar(&msg, '\0');
	appendBinaryStringInfo(&msg, key, keylen);
	CbQueueEffect(CB_OP_PUBLISH, msg.data, msg.len, NULL, 0, 0, 0);
	pfree(msg.data);
}

/* Queues the invalidation of every key the trigger's templates can make. */
static void
CbQueueTemplatePatterns(CbTriggerInfo *info)
{
	StringInfoData pattern;

	initStringInfo(&pattern);
	for (int i = 0; i < info->ntemplates; i++)
	{
		resetStringInfo(&pattern);
		CbTemplatePattern(&info->templates[i], CbTriggerPrefix(info), &pattern);
		CbQueueEffect(CB_OP_PATTERN, pattern.data, pattern.len, NULL, 0, 0, 0);
		CbQueueNotify(info, pattern.data, pattern.len);
	}
}

/*
 * Degrades the trigger, for the rest of the transaction, to a pattern
 * invalidation of every key its templates make: the queue is full.  Only
 * a trigger that is not degraded gets here, so each degradation is counted
 * and logged, including one that follows a degradation rolled back with
 * its subtransaction.
 */
static void
CbTriggerDegrade(CbTriggerInfo *info, Relation rel, Trigger *trigger)
{
	StringInfoData patterns;

	CbQueueTemplatePatterns(info);
	info->degraded_lxid = MyProc->lxid;

	CbStatsAdd(CB_STAT_DEGRADED, 1);
	initStringInfo(&patterns);
	for (int i = 0; i < info->ntemplates; i++)
	{
		appendStringInfoString(&patterns, i > 0 ? ", \"" : "\"");
		CbTemplatePattern(&info->templates[i], CbTriggerPrefix(info), &patterns);
		appendStringInfoChar(&patterns, '"');
	}
	ereport(WARNING,
			(errmsg_plural("cachebridge trigger \"%s\" on table \"%s\" degraded to invalidating pattern %s",
						   "cachebridge trigger \"%s\" on table \"%s\" degraded to invalidating patterns %s",
						   info->ntemplates,
						   trigger->tgname, RelationGetRelationName(rel), patterns.data),
			 errdetail("The transaction's pending effects passed cachebridge.max_pending_memory (%d kB).",
					   cb_max_pending_memory),
			 errhint_plural("Every key matching the pattern is removed after commit.",
							"Every key matching the patterns is removed after commit.",
							info->ntemplates)));
}

/* True while the trigger is degraded in this transaction. */
static bool
CbTriggerDegraded(CbTriggerInfo *info)
{
	StringInfoData pattern;

	if (info->degraded_lxid != MyProc->lxid)
		return false;
	/* the degradation is undone if its subtransaction rolled back */
	initStringInfo(&pattern);
	CbTemplatePattern(&info->templates[0], CbTriggerPrefix(info), &pattern);
	return CbQueueHasPattern(pattern.data, pattern.len);
}

/*
 * True, once counted and warned about, if a rendered key or stream name
 * (kind) is the name of a version marker: its effect would overwrite or
 * delete the marker of another key or stream, so it is not queued.
 */
static bool
CbRefuseMarkerName(Relation rel, Trigger *trigger, StringInfo key,
				   const char *kind)
{
	int			shown;

	if (!CbIsMarkerName(key->data, key->len))
		return false;
	CbStatsAdd(CB_STAT_REFUSED_KEYS, 1);
	shown = key->len <= CB_SHOWN_KEY_LEN ? key->len
		: pg_mbcliplen(key->data, key->len, CB_SHOWN_KEY_LEN);
	ereport(WARNING,
			(errcode(ERRCODE_RESERVED_NAME),
			 errmsg("cachebridge trigger \"%s\" on table \"%s\" refused a %s reserved for version markers",
					trigger->tgname, RelationGetRelationName(rel), kind),
			 errdetail("The %s \"%.*s%s\" ends in \"%s\".", kind, shown, key->data,
					   shown < key->len ? "..." : "", CB_VERSION_SUFFIX)));
	return true;
}

/*
 * Queues an effect unless the key is refused (a marker name: nothing
 * queued) or the queue is full (then degrades the trigger and returns
 * false).
 */
static bool
CbTriggerQueue(CbTriggerInfo *info, Relation rel, Trigger *trigger,
			   CbEffectOp op, StringInfo key, const char *payload, size_t len,
			   int nfields)
{
	size_t		notifylen = info->notify ? 2 * key->len + strlen(info->notify) + 128 : 0;

	if (CbRefuseMarkerName(rel, trigger, key, "key"))
		return true;
	if (CbQueueFull(key->len + len + 128 + notifylen))
	{
		CbTriggerDegrade(info, rel, trigger);
		return false;
	}
	CbQueueEffect(op, key->data, key->len, payload, len, nfields, info->ttl);
	CbQueueNotify(info, key->data, key->len);
	return true;
}

/* Appends a field (or value) of a hash or stream entry: length, bytes. */
static void
CbAppendField(StringInfo buf, const char *data, size_t len)
{
	uint32		len32 = (uint32) len;

	appendBinaryStringInfo(buf, (char *) &len32, sizeof(len32));
	appendBinaryStringInfo(buf, data, len);
}

/* The cached value of a row: row_to_json text, or hash field/value pairs. */
static void
CbRowValue(CbTriggerInfo *info, HeapTuple tuple, TupleDesc desc,
		   StringInfo value, int *nfields)
{
	*nfields = 0;
	if (info->hash_format)
	{
		int			n = info->ncolumns > 0 ? info->ncolumns : desc->natts;

		for (int i = 0; i < n; i++)
		{
			AttrNumber	attnum = info->ncolumns > 0 ? info->columns[i] : i + 1;
			Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
			bool		isnull;
			Datum		d;
			char	   *text;

			if (att->attisdropped)
				continue;
			d = heap_getattr(tuple, attnum, desc, &isnull);
			if (isnull)
				continue;		/* a NULL column is an absent field */
			CbAppendField(value, NameStr(att->attname), strlen(NameStr(att->attname)));
			text = OutputFunctionCall(&info->outfuncs[attnum - 1], d);
			CbAppendField(value, text, strlen(text));
			(*nfields)++;
		}
	}
	else
	{
		Datum		row;
		text	   *json;

		if (info->ncolumns == 0)
			row = heap_copy_tuple_as_datum(tuple, desc);
		else
		{
			Datum	   *values = palloc(sizeof(Datum) * info->ncolumns);
			bool	   *nulls = palloc(sizeof(bool) * info->ncolumns);

			for (int i = 0; i < info->ncolumns; i++)
				values[i] = heap_getattr(tuple, info->columns[i], desc, &nulls[i]);
			row = HeapTupleGetDatum(heap_form_tuple(info->json_desc, values, nulls));
		}
		json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));
		appendBinaryStringInfo(value, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
	}
}

/* Renders a key of tuple into buf; false (and counted) if it has a NULL part. */
static bool
CbRenderKey(CbTriggerInfo *info, CbTemplate *tmpl, HeapTuple tuple,
			TupleDesc desc, StringInfo buf)
{
	resetStringInfo(buf);
	if (tuple == NULL)
		return false;
	if (CbTemplateRender(tmpl, CbTriggerPrefix(info), tuple, desc,
						 info->outfuncs, buf))
		return true;
	CbStatsAdd(CB_STAT_NULL_KEYS, 1);
	return false;
}

/* True if two rendered keys are the same. */
static bool
CbSameKey(StringInfo a, StringInfo b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* write_through: SET the new row's key, DEL the old key if it changed. */
static void
CbWriteThroughRow(CbTriggerInfo *info, Relation rel, Trigger *trigger,
				  HeapTuple oldtup, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData oldkey;
	StringInfoData newkey;
	bool		hasold;
	bool		hasnew;

	initStringInfo(&oldkey);
	initStringInfo(&newkey);
	hasold = CbRenderKey(info, &info->templates[0], oldtup, desc, &oldkey);
	hasnew = CbRenderKey(info, &info->templates[0], newtup, desc, &newkey);

	if (hasold && !(hasnew && CbSameKey(&oldkey, &newkey)))
	{
		if (!CbTriggerQueue(info, rel, trigger, CB_OP_DEL, &oldkey, NULL, 0, 0))
			return;
	}
	if (hasnew)
	{
		StringInfoData value;
		int			nfields;

		initStringInfo(&value);
		CbRowValue(info, newtup, desc, &value, &nfields);
		CbTriggerQueue(info, rel, trigger,
					   info->hash_format ? CB_OP_HASH : CB_OP_SET,
					   &newkey, value.data, value.len, nfields);
	}
}

/* invalidate: DEL every template's key of the old and the new row. */
static void
CbInvalidateRow(CbTriggerInfo *info, Relation rel, Trigger *trigger,
				HeapTuple oldtup, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData oldkey;
	StringInfoData newkey;

	initStringInfo(&oldkey);
	initStringInfo(&newkey);
	for (int i = 0; i < info->ntemplates; i++)
	{
		bool		hasold = CbRenderKey(info, &info->templates[i], oldtup, desc, &oldkey);
		bool		hasnew = CbRenderKey(info, &info->templates[i], newtup, desc, &newkey);

		if (hasold &&
			!CbTriggerQueue(info, rel, trigger, CB_OP_DEL, &oldkey, NULL, 0, 0))
			return;
		/* an UPDATE that kept the key needs one deletion, not two */
		if (hasnew && !(hasold && CbSameKey(&oldkey, &newkey)) &&
			!CbTriggerQueue(info, rel, trigger, CB_OP_DEL, &newkey, NULL, 0, 0))
			return;
	}
}

/* Appends the field "name" with the row as JSON to an entry. */
static void
CbAppendRowField(CbTriggerInfo *info, const char *name, HeapTuple tuple,
				 TupleDesc desc, StringInfo fields, StringInfo scratch)
{
	int			nfields;

	resetStringInfo(scratch);
	CbRowValue(info, tuple, desc, scratch, &nfields);
	CbAppendField(fields, name, strlen(name));
	CbAppendField(fields, scratch->data, scratch->len);
}

/*
 * publish: queues one stream entry for the row change (or, with both
 * tuples NULL, for a TRUNCATE): op, table, row, old.  Entries are never
 * dropped, so a full queue is an ERROR.
 */
static void
CbPublishRow(CbTriggerInfo *info, Relation rel, Trigger *trigger,
			 const char *op, HeapTuple oldtup, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	row = newtup != NULL ? newtup : oldtup;
	StringInfoData stream;
	StringInfoData fields;
	StringInfoData scratch;
	int			nfields = 2;

	initStringInfo(&stream);
	if (row != NULL)
	{
		if (!CbRenderKey(info, &info->templates[0], row, desc, &stream))
			return;
	}
	else if (!CbTemplateRender(&info->templates[0], CbTriggerPrefix(info), NULL,
							   desc, info->outfuncs, &stream))
		return;
	if (CbRefuseMarkerName(rel, trigger, &stream, "stream name"))
		return;

	initStringInfo(&fields);
	initStringInfo(&scratch);
	CbAppendField(&fields, "op", 2);
	CbAppendField(&fields, op, strlen(op));
	CbAppendField(&fields, "table", 5);
	CbAppendField(&fields, info->table, strlen(info->table));
	if (row != NULL)
	{
		CbAppendRowField(info, "row", row, desc, &fields, &scratch);
		nfields++;
	}
	if (info->publish_old && oldtup != NULL && newtup != NULL)
	{
		CbAppendRowField(info, "old", oldtup, desc, &fields, &scratch);
		nfields++;
	}

	if (CbQueueFull(stream.len + fields.len + 128))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the change events of this transaction passed cachebridge.max_pending_memory (%d kB)",
						cb_max_pending_memory),
				 errdetail("Trigger \"%s\" on table \"%s\" publishes every row change; none may be dropped.",
						   trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Raise cachebridge.max_pending_memory, or change fewer rows per transaction.")));
	CbQueueEffect(CB_OP_XADD, stream.data, stream.len, fields.data, fields.len,
				  nfields, info->maxlen);
	pfree(stream.data);
	pfree(fields.data);
	pfree(scratch.data);
}

/* Checks how the trigger was defined; raises an ERROR naming it if wrongly. */
static void
CbCheckTriggerEvent(TriggerData *trigdata, const char *funcname)
{
	TriggerEvent event = trigdata->tg_event;
	const char *trigname = trigdata->tg_trigger->tgname;
	const char *relname = RelationGetRelationName(trigdata->tg_relation);

	if (!TRIGGER_FIRED_AFTER(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be an AFTER trigger",
						trigname, relname),
				 errdetail("%s() acts after the change is made, so that it sees the row as stored.",
						   funcname)));
	if (!TRIGGER_FIRED_BY_TRUNCATE(event) && !TRIGGER_FIRED_FOR_ROW(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be FOR EACH ROW",
						trigname, relname),
				 errhint("Only a TRUNCATE trigger may be FOR EACH STATEMENT.")));
}

/* Common body of both trigger functions. */
static Datum
CbTriggerFire(FunctionCallInfo fcinfo, CbTriggerMode mode)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *funcname = CbModeFunction(mode);
	CbTriggerInfo *info;
	TriggerEvent event;
	Relation	rel;
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function %s() was not called by the trigger manager",
						funcname)));
	CbCheckTriggerEvent(trigdata, funcname);

	event = trigdata->tg_event;
	rel = trigdata->tg_relation;
	info = CbTriggerInfoGet(mode, rel, trigdata->tg_trigger);

	if (mode == CB_MODE_PUBLISH)
	{
		Trigger    *trigger = trigdata->tg_trigger;

		if (cb_refresh_snapshot)
			CbPublishRow(info, rel, trigger, "READ", NULL, trigdata->tg_newtuple);
		else if (TRIGGER_FIRED_BY_TRUNCATE(event))
			CbPublishRow(info, rel, trigger, "TRUNCATE", NULL, NULL);
		else if (TRIGGER_FIRED_BY_INSERT(event))
			CbPublishRow(info, rel, trigger, "INSERT", NULL, trigdata->tg_trigtuple);
		else if (TRIGGER_FIRED_BY_UPDATE(event))
			CbPublishRow(info, rel, trigger, "UPDATE", trigdata->tg_trigtuple,
						 trigdata->tg_newtuple);
		else
			CbPublishRow(info, rel, trigger, "DELETE", trigdata->tg_trigtuple, NULL);
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_TRUNCATE(event))
	{
		CbQueueTemplatePatterns(info);
		return PointerGetDatum(NULL);
	}
	if (CbTriggerDegraded(info))
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(event))
		newtup = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(event))
	{
		oldtup = trigdata->tg_trigtuple;
		newtup = trigdata->tg_newtuple;
	}
	else
		oldtup = trigdata->tg_trigtuple;

	if (mode == CB_MODE_WRITE_THROUGH)
		CbWriteThroughRow(info, rel, trigdata->tg_trigger, oldtup, newtup);
	else
		CbInvalidateRow(info, rel, trigdata->tg_trigger, oldtup, newtup);
	return PointerGetDatum(NULL);
}

/* SQL: trigger cachebridge.write_through(template, options...) */
Datum
cachebridge_write_through(PG_FUNCTION_ARGS)
{
	return CbTriggerFire(fcinfo, CB_MODE_WRITE_THROUGH);
}

/* SQL: trigger cachebridge.invalidate(template, ...) */
Datum
cachebridge_invalidate(PG_FUNCTION_ARGS)
{
	return CbTriggerFire(fcinfo, CB_MODE_INVALIDATE);
}

/* SQL: trigger cachebridge.publish(stream template, options...) */
Datum
cachebridge_publish(PG_FUNCTION_ARGS)
{
	return CbTriggerFire(fcinfo, CB_MODE_PUBLISH);
}

/*
 * Raises an ERROR unless the calling role may make triggers on relation
 * relid -- it owns it or holds TRIGGER on it, as CREATE TRIGGER requires --
 * and tgoid is a trigger of relid.  Runs before the relation is opened, so
 * a role without rights on it cannot even lock it.
 */
static void
CbCheckTriggerTarget(Oid tgoid, Oid relid)
{
	char	   *relname = get_rel_name(relid);
	Relation	tgrel;
	FormData_pg_trigger tg;
	bool		found;

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()) &&
		pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV,
					   get_relkind_objtype(get_rel_relkind(relid)), relname);

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	found = CbTriggerFetch(tgrel, tgoid, &tg);
	table_close(tgrel, AccessShareLock);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("trigger with OID %u does not exist", tgoid)));
	if (tg.tgrelid != relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" is not a trigger of table \"%s\"",
						NameStr(tg.tgname), relname)));
}

/*
 * SQL: cachebridge.validate_trigger(trigger oid, table oid, mode) -- parses
 * a cachebridge trigger's arguments against its table now, raising the
 * ERROR its first firing would.  Called when such a trigger is created;
 * the caller needs the rights CREATE TRIGGER needed.
 */
Datum
cachebridge_validate_trigger(PG_FUNCTION_ARGS)
{
	Oid			tgoid = PG_GETARG_OID(0);
	Oid			relid = PG_GETARG_OID(1);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	CbTriggerMode mode;
	Relation	rel;
	TriggerDesc *trigdesc;

	if (strcmp(name, "write_through") == 0)
		mode = CB_MODE_WRITE_THROUGH;
	else if (strcmp(name, "invalidate") == 0)
		mode = CB_MODE_INVALIDATE;
	else if (strcmp(name, "publish") == 0)
		mode = CB_MODE_PUBLISH;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown cachebridge trigger mode \"%s\"", name),
				 errhint("Use write_through, invalidate or publish.")));
	CbCheckTriggerTarget(tgoid, relid);
	rel = table_open(relid, AccessShareLock);
	trigdesc = rel->trigdesc;
	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
	{
		Trigger    *trigger = &trigdesc->triggers[i];

		if (trigger->tgoid == tgoid)
		{
			CbTriggerInfo info = {0};
			MemoryContext oldcxt;

			info.cxt = AllocSetContextCreate(CurrentMemoryContext,
											 "cachebridge trigger check",
											 ALLOCSET_SMALL_SIZES);
			oldcxt = MemoryContextSwitchTo(info.cxt);
			CbTriggerInfoBuild(&info, mode, rel, trigger);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextDelete(info.cxt);
		}
	}
	table_close(rel, AccessShareLock);
	PG_RETURN_VOID();
}
