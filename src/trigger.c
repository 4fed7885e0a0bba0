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
 * template, then columns=a,b (row and old hold only those), maxlen=N and
 * old=true|false.  notify= also PUBLISHes
 * every key changed on the channel (with the key prefix), after commit.
 * Keys, patterns, channels and stream names all start with the key prefix
 * of the table's owner (namespace.c), whatever session fires the trigger;
 * a key or stream name that would be a version marker's name is refused.
 * An argument of the form name=value
 * (lower-case name, no braces) is an option, each given at most once.
 * Arguments are parsed once per trigger and cached until the table's
 * relcache entry is invalidated (ALTER TABLE, CREATE/DROP TRIGGER, ...).
 * Rows are rendered under fixed output settings (template.c), so that
 * what reaches Redis does not depend on the writing session.
 *
 * The same parsing checks a trigger when it is created (validate_trigger,
 * from an event trigger), including how it is defined (AFTER, FOR EACH
 * ROW, not on a view); check_table_change refuses an ALTER TABLE that
 * would break a trigger's templates; trigger_arguments splits a trigger's
 * arguments for the view cachebridge.attachments.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/deparse_utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
#include "utils/fmgrprotos.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "namespace.h"
#include "queue.h"
#include "scripts.h"
#include "stats.h"
#include "template.h"
#include "trigger.h"
#include "version.h"

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
	bool	   *unordered;		/* per template: no unique index orders its keys */
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
	bool		monetary;		/* a column can hold money (lc_monetary) */
	LocalTransactionId degraded_lxid;	/* transaction it degraded in */
} CbTriggerInfo;

static HTAB *trigger_cache = NULL;

/* Set while refresh fires publish triggers: they append op READ entries. */
bool		cb_refresh_snapshot = false;

PG_FUNCTION_INFO_V1(cachebridge_write_through);
PG_FUNCTION_INFO_V1(cachebridge_invalidate);
PG_FUNCTION_INFO_V1(cachebridge_publish);
PG_FUNCTION_INFO_V1(cachebridge_validate_trigger);
PG_FUNCTION_INFO_V1(cachebridge_check_table_change);
PG_FUNCTION_INFO_V1(cachebridge_trigger_arguments);

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
	return "a stream name template and the options columns=, maxlen= and old=";
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
	/* columns= keeps secrets of the table off a stream, as off a cache */
	return strcmp(name, "maxlen") == 0 || strcmp(name, "old") == 0 ||
		strcmp(name, "columns") == 0;
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

	/* digits only: strtol would also take leading white space and a sign */
	if (!isdigit((unsigned char) *value))
		CbBadOption(name, value, trigname, relname, problem);
	errno = 0;
	n = strtol(value, &end, 10);
	if (*end != '\0' || errno != 0 || n < 1 || n > PG_INT32_MAX)
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

/*
 * Raises an ERROR if the option name was given before (in *seen, the
 * options parsed so far, as written), else adds arg to *seen.  A second
 * value is an error even when it repeats the first: which one would win
 * is not something a reader of the trigger should have to know.
 */
static void
CbCheckOptionOnce(List **seen, const char *name, const char *arg,
				  const char *trigname, const char *relname)
{
	ListCell   *lc;
	size_t		namelen = strlen(name);

	foreach(lc, *seen)
	{
		const char *prev = lfirst(lc);

		if (strncmp(prev, name, namelen) == 0 && prev[namelen] == '=')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is given more than once in trigger \"%s\" on table \"%s\"",
							name, trigname, relname),
					 errdetail("The trigger has both \"%s\" and \"%s\".", prev, arg),
					 errhint("Give each option once.")));
	}
	*seen = lappend(*seen, (char *) arg);
}

/*
 * Parses one name=value option into info; *seen lists the options parsed
 * before it.
 */
static void
CbParseOption(CbTriggerInfo *info, const char *arg, TupleDesc desc,
			  const char *trigname, const char *relname, List **seen)
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

	CbCheckOptionOnce(seen, name, arg, trigname, relname);
	if (*value != '\0' &&
		(isspace((unsigned char) value[0]) ||
		 isspace((unsigned char) value[strlen(value) - 1])))
		CbBadOption(name, value, trigname, relname,
					"An option's value must not begin or end with white space.");

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
		{
			const char *colname = lfirst(lc);
			AttrNumber	attnum = CbColumnByName(desc, colname, trigname, relname);

			for (int j = 0; j < i; j++)
				if (info->columns[j] == attnum)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_COLUMN),
							 errmsg("column \"%s\" appears more than once in option \"columns\" of trigger \"%s\" on table \"%s\"",
									colname, trigname, relname),
							 errhint("Name each column once.")));
			info->columns[i++] = attnum;
		}
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

/* True if the template renders column attnum. */
static bool
CbTemplateUsesColumn(const CbTemplate *tmpl, AttrNumber attnum)
{
	for (int s = 0; s < tmpl->nsegments; s++)
		if (tmpl->segments[s].attnum == attnum)
			return true;
	return false;
}

/*
 * True if the template renders every column of a unique index of rel that
 * is checked at once (not deferred), on plain columns, without predicate:
 * then two writers of one of its keys are ordered by a row lock or a unique
 * check, and commit in the order of their versions (see version.c, which
 * locks the keys of the other templates).
 */
static bool
CbTemplateHoldsUniqueKey(Relation rel, const CbTemplate *tmpl)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		holds = false;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		bool		covered = form->indisunique && form->indimmediate &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL);

		for (int k = 0; covered && k < form->indnkeyatts; k++)
			covered = form->indkey.values[k] != 0 &&
				CbTemplateUsesColumn(tmpl, form->indkey.values[k]);
		index_close(index, AccessShareLock);
		if (covered)
		{
			holds = true;
			break;
		}
	}
	list_free(indexes);
	return holds;
}

/*
 * Raises an ERROR unless the trigger is defined as cachebridge needs: on a
 * table (not a view), AFTER, and FOR EACH ROW for INSERT, UPDATE and
 * DELETE (a TRUNCATE trigger is FOR EACH STATEMENT).  PostgreSQL accepts
 * any definition; this is checked when the trigger is created (by the
 * event trigger, through validate_trigger) and when it first fires.
 */
static void
CbCheckTriggerDefinition(CbTriggerMode mode, Relation rel, Trigger *trigger)
{
	const char *relname = RelationGetRelationName(rel);
	int16		tgtype = trigger->tgtype;

	if (rel->rd_rel->relkind == RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("trigger \"%s\" on view \"%s\" cannot use %s()",
						trigger->tgname, relname, CbModeFunction(mode)),
				 errdetail("A view stores no rows: cachebridge follows the rows of the tables they are stored in."),
				 errhint("Create the trigger on the table the view reads.")));
	if (!TRIGGER_FOR_AFTER(tgtype))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be an AFTER trigger",
						trigger->tgname, relname),
				 errdetail("%s() acts after the change is made, so that it sees the row as stored.",
						   CbModeFunction(mode))));
	if (!TRIGGER_FOR_ROW(tgtype) &&
		(TRIGGER_FOR_INSERT(tgtype) || TRIGGER_FOR_UPDATE(tgtype) ||
		 TRIGGER_FOR_DELETE(tgtype)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" must be FOR EACH ROW",
						trigger->tgname, relname),
				 errhint("Only a TRUNCATE trigger may be FOR EACH STATEMENT.")));
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
	List	   *seen = NIL;
	ListCell   *lc;
	int			i = 0;

	CbCheckTriggerDefinition(mode, rel, trigger);

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
			CbParseOption(info, arg, desc, trigname, relname, &seen);
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
					 errhint("cachebridge.publish() takes one stream name template, then the options columns=, maxlen= and old=.")));
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
	info->unordered = palloc(sizeof(bool) * info->ntemplates);
	foreach(lc, templates)
	{
		info->templates[i] = *(CbTemplate *) lfirst(lc);
		info->unordered[i] = (mode != CB_MODE_PUBLISH &&
							  !CbTemplateHoldsUniqueKey(rel, &info->templates[i]));
		i++;
	}

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
		if (!info->monetary && CbTypeHasMoney(att->atttypid))
			info->monetary = true;
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

	/*
	 * An entry serves the relation it was parsed against only: partition.c
	 * fires a partitioned table's trigger on the rows of a partition being
	 * detached, attached or dropped, whose columns may lie elsewhere.
	 */
	info = hash_search(trigger_cache, &trigger->tgoid, HASH_ENTER, &found);
	if (found && info->valid && info->mode == mode &&
		info->relid == RelationGetRelid(rel))
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
			 CbHasVersionSuffix(key->data, key->len)
			 ? errdetail("The %s \"%.*s%s\" ends in \"%s\".", kind, shown, key->data,
						 shown < key->len ? "..." : "", CB_VERSION_SUFFIX)
			 : errdetail("The %s \"%.*s%s\" holds \"%s}\", the hash tag of a marker on a Redis Cluster.",
						 kind, shown, key->data, shown < key->len ? "..." : "",
						 CB_VERSION_SUFFIX)));
	return true;
}

/*
 * Queues an effect unless the key is refused (a marker name: nothing
 * queued) or the queue is full (then degrades the trigger and returns
 * false).
 */
static bool
CbTriggerQueue(CbTriggerInfo *info, Relation rel, Trigger *trigger,
			   bool unordered, CbEffectOp op, StringInfo key,
			   const char *payload, size_t len, int nfields)
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
	if (unordered)
		CbOrderKey(key->data, key->len);
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
		if (!CbTriggerQueue(info, rel, trigger, info->unordered[0], CB_OP_DEL,
							&oldkey, NULL, 0, 0))
			return;
	}
	if (hasnew)
	{
		StringInfoData value;
		int			nfields;

		initStringInfo(&value);
		CbRowValue(info, newtup, desc, &value, &nfields);
		CbTriggerQueue(info, rel, trigger, info->unordered[0],
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
			!CbTriggerQueue(info, rel, trigger, info->unordered[i], CB_OP_DEL,
							&oldkey, NULL, 0, 0))
			return;
		/* an UPDATE that kept the key needs one deletion, not two */
		if (hasnew && !(hasold && CbSameKey(&oldkey, &newkey)) &&
			!CbTriggerQueue(info, rel, trigger, info->unordered[i], CB_OP_DEL,
							&newkey, NULL, 0, 0))
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

/* Turns the firing row change (or TRUNCATE) into queued effects. */
static void
CbTriggerApply(CbTriggerInfo *info, CbTriggerMode mode, TriggerData *trigdata)
{
	TriggerEvent event = trigdata->tg_event;
	Relation	rel = trigdata->tg_relation;
	Trigger    *trigger = trigdata->tg_trigger;
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;

	if (mode == CB_MODE_PUBLISH)
	{
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
		return;
	}
	if (TRIGGER_FIRED_BY_TRUNCATE(event))
	{
		CbQueueTemplatePatterns(info);
		return;
	}
	if (CbTriggerDegraded(info))
		return;

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
		CbWriteThroughRow(info, rel, trigger, oldtup, newtup);
	else
		CbInvalidateRow(info, rel, trigger, oldtup, newtup);
}

/*
 * Common body of the trigger functions.  Keys, values and stream entries
 * are rendered under fixed output settings (template.c), put in force
 * once for the row and restored even if an ERROR escapes.
 */
static Datum
CbTriggerFire(FunctionCallInfo fcinfo, CbTriggerMode mode)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CbTriggerInfo *info;
	CbOutputSettings saved;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function %s() was not called by the trigger manager",
						CbModeFunction(mode))));

	info = CbTriggerInfoGet(mode, trigdata->tg_relation, trigdata->tg_trigger);
	CbOutputSettingsFix(&saved, info->monetary);
	PG_TRY();
	{
		CbTriggerApply(info, mode, trigdata);
	}
	PG_CATCH();
	{
		CbOutputSettingsRestore(&saved, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	CbOutputSettingsRestore(&saved, false);
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

/* The mode of the trigger function named name (unqualified); false if none. */
static bool
CbModeByName(const char *name, CbTriggerMode *mode)
{
	if (strcmp(name, "write_through") == 0)
		*mode = CB_MODE_WRITE_THROUGH;
	else if (strcmp(name, "invalidate") == 0)
		*mode = CB_MODE_INVALIDATE;
	else if (strcmp(name, "publish") == 0)
		*mode = CB_MODE_PUBLISH;
	else
		return false;
	return true;
}

/*
 * Raises an ERROR unless the calling role may make triggers on relation
 * relid -- it owns it or holds TRIGGER on it, as CREATE TRIGGER requires --
 * and tgoid is a trigger of relid.  Runs before the relation is opened, so
 * a role without rights on it cannot even lock it.
 */
/*
 * Raises an ERROR unless relation relid exists and the calling role owns it
 * or holds TRIGGER on it (what CREATE TRIGGER requires); returns its name.
 * Looks at the catalog only: the relation is not locked.
 */
char *
CbCheckTriggerRights(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()) &&
		pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV,
					   get_relkind_objtype(get_rel_relkind(relid)), relname);
	return relname;
}

static void
CbCheckTriggerTarget(Oid tgoid, Oid relid)
{
	char	   *relname = CbCheckTriggerRights(relid);
	Relation	tgrel;
	FormData_pg_trigger tg;
	bool		found;

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

	if (!CbModeByName(name, &mode))
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

/*
 * Table changes under cachebridge triggers.
 *
 * At ddl_command_end of ALTER TABLE, cachebridge.check_table_change() gets
 * each collected command.  A column a trigger's templates or columns=
 * option name may not be renamed or dropped (the next write would fail),
 * nor may a key column change type (keys rendered from the new type can
 * differ from those already in Redis, which would then never be replaced
 * or deleted): the command is refused, naming the trigger.  The check
 * reads the templates as written, by column name, because after a rename
 * or drop the name no longer resolves.  Enabling or disabling one trigger
 * of a row/TRUNCATE pair differently from the other gets a WARNING.
 */

/* What a table change does to a column, for messages. */
typedef enum CbColumnChange
{
	CB_COLUMN_RENAME,
	CB_COLUMN_DROP,
	CB_COLUMN_TYPE
} CbColumnChange;

/* The mode of a cachebridge trigger function; false for another function. */
static bool
CbFunctionMode(Oid funcoid, CbTriggerMode *mode)
{
	Oid			nsp = get_func_namespace(funcoid);
	char	   *nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	char	   *name;

	if (nspname == NULL || strcmp(nspname, "cachebridge") != 0)
		return false;
	name = get_func_name(funcoid);
	return name != NULL && CbModeByName(name, mode);
}

/*
 * The argument of trigger that names column colname -- a template, or
 * (unless keys_only) the columns= option -- or NULL; *what says which.
 */
static const char *
CbArgumentUsingColumn(Trigger *trigger, CbTriggerMode mode, const char *relname,
					  const char *colname, bool keys_only, const char **what)
{
	for (int a = 0; a < trigger->tgnargs; a++)
	{
		const char *arg = trigger->tgargs[a];

		if (CbIsOption(arg))
		{
			List	   *names;
			ListCell   *lc;

			if (keys_only || strncmp(arg, "columns=", 8) != 0 ||
				!SplitIdentifierString(pstrdup(arg + 8), ',', &names))
				continue;
			foreach(lc, names)
				if (strcmp(lfirst(lc), colname) == 0)
				{
					*what = "option";
					return arg;
				}
		}
		else
		{
			CbTemplate	tmpl;

			*what = mode == CB_MODE_PUBLISH ? "stream name template" : "key template";
			CbTemplateParse(&tmpl, *what, arg, NULL, trigger->tgname, relname);
			if (CbTemplateNamesColumn(&tmpl, colname))
				return arg;
		}
	}
	return NULL;
}

/*
 * Raises an ERROR naming the trigger if a cachebridge trigger of relid or
 * of one of its partitions or children uses the column colname the
 * change is made to (its name before a rename).
 */
static void
CbCheckColumnChange(Oid relid, const char *colname, CbColumnChange change)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		TriggerDesc *trigdesc = rel->trigdesc;
		const char *relname = RelationGetRelationName(rel);

		for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
		{
			Trigger    *trigger = &trigdesc->triggers[i];
			CbTriggerMode mode;
			const char *what;
			const char *arg;

			if (!CbFunctionMode(trigger->tgfoid, &mode))
				continue;
			arg = CbArgumentUsingColumn(trigger, mode, relname, colname,
										change == CB_COLUMN_TYPE, &what);
			if (arg == NULL)
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 change == CB_COLUMN_RENAME
					 ? errmsg("cannot rename column \"%s\" of table \"%s\" because cachebridge trigger \"%s\" uses it",
							  colname, relname, trigger->tgname)
					 : change == CB_COLUMN_DROP
					 ? errmsg("cannot drop column \"%s\" of table \"%s\" because cachebridge trigger \"%s\" uses it",
							  colname, relname, trigger->tgname)
					 : errmsg("cannot change the type of column \"%s\" of table \"%s\" because cachebridge trigger \"%s\" renders it in a %s",
							  colname, relname, trigger->tgname, what),
					 change == CB_COLUMN_TYPE
					 ? errdetail("Its %s \"%s\" renders the column's text, which another type can change: what Redis holds under the names rendered before would never be replaced or deleted.",
								 what, arg)
					 : errdetail("Its %s \"%s\" names the column.", what, arg),
					 errhint("Drop the trigger (with cachebridge.detach() if cachebridge.attach() made it), change the column, then create the trigger again.")));
		}
		table_close(rel, AccessShareLock);
	}
}

/* How a tgenabled state reads in ALTER TABLE, for messages. */
static const char *
CbEnabledName(char tgenabled)
{
	switch (tgenabled)
	{
		case TRIGGER_FIRES_ALWAYS:
			return "ENABLE ALWAYS";
		case TRIGGER_FIRES_ON_REPLICA:
			return "ENABLE REPLICA";
		case TRIGGER_DISABLED:
			return "DISABLE";
	}
	return "ENABLE";
}

/*
 * Warns if the cachebridge trigger named tgname on relid was just enabled
 * or disabled differently from its partner: the TRUNCATE trigger with the
 * same function and arguments as a row trigger, or the other way round.
 * A subscriber's ENABLE ALWAYS on the row trigger alone would let a
 * replicated TRUNCATE leave every key behind.
 */
static void
CbCheckPartnerEnabled(Oid relid, const char *tgname)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TriggerDesc *trigdesc = rel->trigdesc;
	Trigger    *changed = NULL;
	CbTriggerMode mode;

	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
		if (strcmp(trigdesc->triggers[i].tgname, tgname) == 0)
			changed = &trigdesc->triggers[i];
	if (changed != NULL && CbFunctionMode(changed->tgfoid, &mode))
	{
		for (int i = 0; i < trigdesc->numtriggers; i++)
		{
			Trigger    *other = &trigdesc->triggers[i];
			bool		same_args = other->tgnargs == changed->tgnargs;

			for (int a = 0; same_args && a < other->tgnargs; a++)
				same_args = strcmp(other->tgargs[a], changed->tgargs[a]) == 0;
			if (other == changed || other->tgfoid != changed->tgfoid || !same_args ||
				TRIGGER_FOR_TRUNCATE(other->tgtype) == TRIGGER_FOR_TRUNCATE(changed->tgtype) ||
				other->tgenabled == changed->tgenabled)
				continue;
			ereport(WARNING,
					(errmsg("cachebridge trigger \"%s\" on table \"%s\" is not enabled like trigger \"%s\"",
							changed->tgname, RelationGetRelationName(rel), other->tgname),
					 errdetail("Trigger \"%s\" is %s, trigger \"%s\" is %s; they keep the same keys, one for row changes, the other for TRUNCATE.",
							   changed->tgname, CbEnabledName(changed->tgenabled),
							   other->tgname, CbEnabledName(other->tgenabled)),
					 errhint("Run the same ALTER TABLE for trigger \"%s\".", other->tgname)));
		}
	}
	table_close(rel, AccessShareLock);
}

/* Checks one subcommand of an ALTER TABLE on relid. */
static void
CbCheckAlterTableCmd(Oid relid, AlterTableCmd *cmd)
{
	switch (cmd->subtype)
	{
		case AT_DropColumn:
		case AT_DropColumnRecurse:
			CbCheckColumnChange(relid, cmd->name, CB_COLUMN_DROP);
			break;
		case AT_AlterColumnType:
			CbCheckColumnChange(relid, cmd->name, CB_COLUMN_TYPE);
			break;
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableReplicaTrig:
		case AT_DisableTrig:
			CbCheckPartnerEnabled(relid, cmd->name);
			break;
		default:
			break;
	}
}

/*
 * SQL: cachebridge.check_table_change(command pg_ddl_command) -- at
 * ddl_command_end of ALTER TABLE, refuses a change of a column that a
 * cachebridge trigger uses (see above).  Only an event trigger can obtain
 * a pg_ddl_command, so any role may call it: it only reads the catalogs
 * of the table the caller has just altered.
 */
Datum
cachebridge_check_table_change(PG_FUNCTION_ARGS)
{
	CollectedCommand *cmd = (CollectedCommand *) PG_GETARG_POINTER(0);

	if (cmd->type == SCT_Simple && IsA(cmd->parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) cmd->parsetree;

		if (stmt->renameType == OBJECT_COLUMN &&
			cmd->d.simple.address.classId == RelationRelationId)
			CbCheckColumnChange(cmd->d.simple.address.objectId, stmt->subname,
								CB_COLUMN_RENAME);
	}
	else if (cmd->type == SCT_AlterTable)
	{
		ListCell   *lc;

		foreach(lc, cmd->d.alterTable.subcmds)
		{
			CollectedATSubcmd *sub = lfirst(lc);

			if (IsA(sub->parsetree, AlterTableCmd))
				CbCheckAlterTableCmd(cmd->d.alterTable.objectId,
									 (AlterTableCmd *) sub->parsetree);
		}
	}
	PG_RETURN_VOID();
}

/*
 * SQL: cachebridge.trigger_arguments(tgnargs int2, tgargs bytea, OUT
 * templates text[], OUT options text[]) -- a trigger's arguments, as
 * pg_trigger stores them (each ends in a zero byte), split the way the
 * trigger functions read them: name=value options, and templates.  For the
 * view cachebridge.attachments.
 */
Datum
cachebridge_trigger_arguments(PG_FUNCTION_ARGS)
{
	int			nargs = PG_GETARG_INT16(0);
	bytea	   *raw = PG_GETARG_BYTEA_PP(1);
	const char *p = VARDATA_ANY(raw);
	const char *end = p + VARSIZE_ANY_EXHDR(raw);
	ArrayBuildState *templates = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	ArrayBuildState *options = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	for (int a = 0; a < nargs && p < end; a++)
	{
		size_t		len = strnlen(p, end - p);
		char	   *arg = pnstrdup(p, len);

		accumArrayResult(CbIsOption(arg) ? options : templates,
						 CStringGetTextDatum(arg), false, TEXTOID,
						 CurrentMemoryContext);
		p += len + 1;
	}
	values[0] = makeArrayResult(templates, CurrentMemoryContext);
	values[1] = makeArrayResult(options, CurrentMemoryContext);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
