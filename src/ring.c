/*-------------------------------------------------------------------------
 *
 * ring.c
 *		Sharding in SQL: shard_for(), ring_balance(), shard_moves() and the
 *		per-backend cache of compiled rings.
 *
 * Rings live in cachebridge.ring and cachebridge.ring_node.  A ring is read
 * and compiled (ring_compile.c) on its first use after a change and kept in
 * a backend-local cache; lookups never scan a table.
 *
 * Changes reach the cache through relcache invalidation: a statement trigger
 * on both tables (ring_changed) queues an invalidation of the table, which is
 * sent to every backend when the transaction commits, and dropped if it
 * rolls back.  The backend that made the change sees it at its next command.
 * Rings are read with a fresh catalog snapshot, never the transaction's, so a
 * rebuild after an invalidation always sees the change that caused it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "nodes/primnodes.h"
#include "storage/lockdefs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "ring.h"

PG_FUNCTION_INFO_V1(shard_for);
PG_FUNCTION_INFO_V1(ring_balance);
PG_FUNCTION_INFO_V1(shard_moves);
PG_FUNCTION_INFO_V1(ring_changed);

#define RING_SCHEMA			"cachebridge"
#define RING_TABLE			"ring"
#define RING_NODE_TABLE		"ring_node"
#define DEFAULT_RING		"default"

/*
 * Per-call-site state of shard_for: the ring it used last and, when the
 * ring is named by a constant, its node names as ready-made text values.
 */
typedef struct ShardForState
{
	uint64		generation;		/* ring_generation when ring was looked up */
	CompiledRing *ring;
	bool		ring_is_const;	/* the ring argument is a constant or omitted */
	text	  **nodetext;		/* ring_is_const: node names, in fn_mcxt */
} ShardForState;

/* Backend-local ring cache */
static MemoryContext RingCacheContext = NULL;
static List *ring_cache = NIL;	/* CompiledRing *, in RingCacheContext */
static uint64 ring_cache_generation = 0;	/* generation ring_cache holds */

/* Bumped by every invalidation of the ring tables; never 0. */
static uint64 ring_generation = 1;
static bool ring_callback_registered = false;
static Oid	ring_relid = InvalidOid;
static Oid	ring_node_relid = InvalidOid;

/* Relcache callback: a ring table changed (or all relations were reset). */
static void
RingRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == ring_relid || relid == ring_node_relid)
	{
		ring_generation++;
		/* look the tables up again: they may have been dropped */
		ring_relid = InvalidOid;
		ring_node_relid = InvalidOid;
	}
}

/* Find the ring tables of the installed extension. */
static void
RingLookupTables(void)
{
	Oid			nsp = get_namespace_oid(RING_SCHEMA, false);

	ring_relid = get_relname_relid(RING_TABLE, nsp);
	ring_node_relid = get_relname_relid(RING_NODE_TABLE, nsp);
	if (!OidIsValid(ring_relid) || !OidIsValid(ring_node_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("ring tables \"%s.%s\" and \"%s.%s\" do not exist",
						RING_SCHEMA, RING_TABLE, RING_SCHEMA, RING_NODE_TABLE)));
}

/* Column number of attname in a ring table; the tables are ours. */
static AttrNumber
RingColumn(Oid relid, const char *attname)
{
	AttrNumber	attnum = get_attnum(relid, attname);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of ring table %u does not exist",
			 attname, relid);
	return attnum;
}

/* Text value of a column as a C string, or NULL. */
static char *
RingTextColumn(HeapTuple tuple, TupleDesc desc, AttrNumber attnum)
{
	bool		isnull;
	Datum		value = heap_getattr(tuple, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/* Order nodes by their "ord" column (ring order), for qsort. */
static int
RingNodeOrdCompare(const void *a, const void *b)
{
	int64		oa = ((const int64 *) a)[0];
	int64		ob = ((const int64 *) b)[0];

	return (oa > ob) - (oa < ob);
}

/* A node read from the table, with the column that orders it. */
typedef struct OrderedNode
{
	int64		ord;			/* first, so RingNodeOrdCompare can read it */
	RingNode	node;
} OrderedNode;

/*
 * Read the nodes of a ring, in ring order.  Returns the number of nodes;
 * *nodes is palloc'd in the current memory context.
 */
static int
RingReadNodes(const char *name, RingNode **nodes)
{
	Relation	rel = table_open(ring_node_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	att_ring = RingColumn(ring_node_relid, "ring");
	AttrNumber	att_node = RingColumn(ring_node_relid, "node");
	AttrNumber	att_weight = RingColumn(ring_node_relid, "weight");
	AttrNumber	att_lo = RingColumn(ring_node_relid, "range_lo");
	AttrNumber	att_hi = RingColumn(ring_node_relid, "range_hi");
	AttrNumber	att_ord = RingColumn(ring_node_relid, "ord");
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	int			nalloc = 16;
	int			n = 0;
	OrderedNode *found = palloc(sizeof(OrderedNode) * nalloc);
	HeapTuple	tuple;

	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		char	   *ring = RingTextColumn(tuple, desc, att_ring);
		bool		lonull,
					hinull,
					isnull;
		Datum		lo,
					hi;
		RingNode   *node;

		if (ring == NULL || strcmp(ring, name) != 0)
			continue;
		if (n == nalloc)
		{
			nalloc *= 2;
			found = repalloc(found, sizeof(OrderedNode) * nalloc);
		}
		found[n].ord = DatumGetInt64(heap_getattr(tuple, att_ord, desc, &isnull));
		node = &found[n].node;
		node->name = RingTextColumn(tuple, desc, att_node);
		if (node->name == NULL)
			continue;
		node->namelen = strlen(node->name);
		node->weight = DatumGetInt32(heap_getattr(tuple, att_weight, desc, &isnull));
		lo = heap_getattr(tuple, att_lo, desc, &lonull);
		hi = heap_getattr(tuple, att_hi, desc, &hinull);
		node->has_range = !lonull && !hinull;
		node->range_lo = node->has_range ? DatumGetInt64(lo) : 0;
		node->range_hi = node->has_range ? DatumGetInt64(hi) : 0;
		n++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	qsort(found, n, sizeof(OrderedNode), RingNodeOrdCompare);
	*nodes = palloc(sizeof(RingNode) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*nodes)[i] = found[i].node;
	return n;
}

/*
 * Read a ring from the tables and compile it in cxt.  Returns NULL when the
 * ring does not exist.
 */
static CompiledRing *
RingLoad(const char *name, MemoryContext cxt)
{
	Relation	rel;
	TupleDesc	desc;
	SysScanDesc scan;
	HeapTuple	tuple;
	AttrNumber	att_name,
				att_algorithm,
				att_key_hash;
	char	   *algorithm = NULL;
	char	   *key_hash = NULL;
	RingNode   *nodes;
	int			nnodes;

	if (!OidIsValid(ring_relid) || !OidIsValid(ring_node_relid))
		RingLookupTables();

	rel = table_open(ring_relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	att_name = RingColumn(ring_relid, "name");
	att_algorithm = RingColumn(ring_relid, "algorithm");
	att_key_hash = RingColumn(ring_relid, "key_hash");

	/* a NULL snapshot means a fresh catalog snapshot, see file header */
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		char	   *ringname = RingTextColumn(tuple, desc, att_name);

		if (ringname != NULL && strcmp(ringname, name) == 0)
		{
			algorithm = RingTextColumn(tuple, desc, att_algorithm);
			key_hash = RingTextColumn(tuple, desc, att_key_hash);
			break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (algorithm == NULL)
		return NULL;

	nnodes = RingReadNodes(name, &nodes);
	return RingCompile(cxt, name, RingAlgorithmFromName(algorithm),
					   RingKeyHashFromName(key_hash ? key_hash : "md5"),
					   nodes, nnodes);
}

/* Drop every cached ring if the ring tables changed since they were built. */
static void
RingCacheCheck(void)
{
	if (!ring_callback_registered)
	{
		CacheRegisterRelcacheCallback(RingRelcacheCallback, (Datum) 0);
		ring_callback_registered = true;
	}
	if (RingCacheContext == NULL)
		RingCacheContext = AllocSetContextCreate(TopMemoryContext,
												 "cachebridge ring cache",
												 ALLOCSET_DEFAULT_SIZES);
	if (ring_cache_generation != ring_generation)
	{
		MemoryContextReset(RingCacheContext);
		ring_cache = NIL;
		ring_cache_generation = ring_generation;
	}
}

/*
 * The compiled ring called name, from the cache or freshly built.  Errors
 * out if there is no such ring.  The result is valid while ring_generation
 * does not change.
 */
static CompiledRing *
RingGet(const char *name, int namelen)
{
	ListCell   *lc;
	CompiledRing *ring;
	MemoryContext ringcxt;
	MemoryContext oldcxt;
	char	   *cname;

	RingCacheCheck();
	foreach(lc, ring_cache)
	{
		ring = (CompiledRing *) lfirst(lc);
		if (ring->namelen == namelen && memcmp(ring->name, name, namelen) == 0)
			return ring;
	}

	cname = pnstrdup(name, namelen);
	for (;;)
	{
		uint64		generation = ring_generation;

		/* build under the caller's context, so an error frees it */
		ringcxt = AllocSetContextCreate(CurrentMemoryContext,
										"cachebridge ring",
										ALLOCSET_DEFAULT_SIZES);
		ring = RingLoad(cname, ringcxt);
		if (ring == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("ring \"%s\" does not exist", cname),
					 errhint("Add a node with cachebridge.ring_add_node() to create it.")));
		if (generation == ring_generation)
			break;
		/* the tables changed while we read them: read them again */
		MemoryContextDelete(ringcxt);
		RingCacheCheck();
	}

	MemoryContextSetParent(ringcxt, RingCacheContext);
	oldcxt = MemoryContextSwitchTo(RingCacheContext);
	ring_cache = lappend(ring_cache, ring);
	MemoryContextSwitchTo(oldcxt);
	pfree(cname);
	return ring;
}

/* The ring named by a text argument. */
static CompiledRing *
RingGetByText(text *name)
{
	return RingGet(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
}

/* Raise the error for a key that RingLookup could not place. */
static void
RingLookupFailed(const CompiledRing *ring, const char *key, int keylen,
				 int result)
{
	char	   *ckey = pnstrdup(key, keylen);

	if (ring->nnodes == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ring \"%s\" has no nodes", ring->name),
				 errhint("Add a node with cachebridge.ring_add_node().")));
	if (result == RING_NOT_INTEGER)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("key \"%s\" is not an integer", ckey),
				 errdetail("Ring \"%s\" uses the range algorithm, which needs bigint keys.",
						   ring->name)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("key \"%s\" is outside every range of ring \"%s\"",
					ckey, ring->name)));
}

/* Node name of key on ring, as text; errors if the key has no node. */
static text *
RingNodeOf(const CompiledRing *ring, const char *key, int keylen)
{
	int			node = RingLookup(ring, key, keylen);

	if (node < 0)
		RingLookupFailed(ring, key, keylen, node);
	return cstring_to_text_with_len(ring->nodes[node].name,
									ring->nodes[node].namelen);
}

/* The ring name a shard_for call asks for. */
static void
ShardForRingName(FunctionCallInfo fcinfo, const char **name, int *namelen)
{
	if (PG_NARGS() > 1)
	{
		text	   *ringname = PG_GETARG_TEXT_PP(1);

		*name = VARDATA_ANY(ringname);
		*namelen = VARSIZE_ANY_EXHDR(ringname);
	}
	else
	{
		*name = DEFAULT_RING;
		*namelen = strlen(DEFAULT_RING);
	}
}

/* Whether a shard_for call names its ring by a constant, or not at all. */
static bool
ShardForRingIsConst(FunctionCallInfo fcinfo)
{
	Node	   *expr = fcinfo->flinfo->fn_expr;

	if (PG_NARGS() == 1)
		return true;
	return expr != NULL && IsA(expr, FuncExpr) &&
		list_length(((FuncExpr *) expr)->args) == 2 &&
		IsA(lsecond(((FuncExpr *) expr)->args), Const);
}

/*
 * The node names of a ring as text values allocated in cxt, so that
 * shard_for can return them without a copy per call.
 */
static text **
RingNodeTexts(const CompiledRing *ring, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	text	  **texts = palloc(sizeof(text *) * Max(ring->nnodes, 1));

	for (int i = 0; i < ring->nnodes; i++)
		texts[i] = cstring_to_text_with_len(ring->nodes[i].name,
											ring->nodes[i].namelen);
	MemoryContextSwitchTo(oldcxt);
	return texts;
}

/*
 * shard_for(key text [, ring text]) returns text
 *		The node of key on the ring (default: "default").
 *
 * The ring found is remembered in fn_extra until the next invalidation, so
 * a query over many keys looks the ring up once, and when the ring is named
 * by a constant a call does not even compare ring names.  Pending
 * invalidations are taken in once per query, so that a change committed by
 * another session is seen by the next statement even inside a transaction
 * block.
 *
 * With a constant ring the result is one of the node names made into text
 * once per call site (in fn_mcxt, which lives as long as the query or the
 * cached expression), not a fresh copy per call: a copy cost a tenth of a
 * call.  Those values are never freed before fn_mcxt is, not even when the
 * ring changes during the query, because an earlier result may still be in
 * use; a change makes a new set.  The set is tied to the ring generation,
 * not to the address of the compiled ring, which a rebuilt ring may reuse.
 */
Datum
shard_for(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	ShardForState *state = (ShardForState *) fcinfo->flinfo->fn_extra;
	const char *name;
	int			namelen;
	int			node;

	if (state == NULL)
	{
		state = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
									   sizeof(ShardForState));
		state->ring_is_const = ShardForRingIsConst(fcinfo);
		fcinfo->flinfo->fn_extra = state;
		AcceptInvalidationMessages();
	}

	if (state->generation != ring_generation)
	{
		ShardForRingName(fcinfo, &name, &namelen);
		state->ring = RingGet(name, namelen);
		state->generation = ring_generation;
		if (state->ring_is_const)
			state->nodetext = RingNodeTexts(state->ring,
											fcinfo->flinfo->fn_mcxt);
	}
	else if (!state->ring_is_const)
	{
		ShardForRingName(fcinfo, &name, &namelen);
		if (state->ring->namelen != namelen ||
			memcmp(state->ring->name, name, namelen) != 0)
			state->ring = RingGet(name, namelen);
	}

	if (!state->ring_is_const)
		PG_RETURN_TEXT_P(RingNodeOf(state->ring, VARDATA_ANY(key),
									VARSIZE_ANY_EXHDR(key)));

	node = RingLookup(state->ring, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (node < 0)
		RingLookupFailed(state->ring, VARDATA_ANY(key),
						 VARSIZE_ANY_EXHDR(key), node);
	PG_RETURN_TEXT_P(state->nodetext[node]);
}

/*
 * ring_balance(ring text) returns table (node, weight, slots, share)
 *		Each node's share of the key space: for ketama the part of the
 *		32-bit hash circle its points own.
 */
Datum
ring_balance(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CompiledRing *ring;
	double	   *share;
	int64	   *slots;

	InitMaterializedSRF(fcinfo, 0);
	ring = RingGetByText(PG_GETARG_TEXT_PP(0));
	share = palloc(sizeof(double) * Max(ring->nnodes, 1));
	slots = palloc(sizeof(int64) * Max(ring->nnodes, 1));
	RingBalance(ring, share, slots);

	for (int i = 0; i < ring->nnodes; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = PointerGetDatum(cstring_to_text_with_len(ring->nodes[i].name,
															 ring->nodes[i].namelen));
		values[1] = Int32GetDatum(ring->nodes[i].weight);
		values[2] = Int64GetDatum(slots[i]);
		values[3] = Float8GetDatum(share[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Index of the node called name on ring, or -1. */
static int
RingFindNode(const CompiledRing *ring, const char *name)
{
	for (int i = 0; i < ring->nnodes; i++)
		if (strcmp(ring->nodes[i].name, name) == 0)
			return i;
	return -1;
}

/*
 * The ring that results from adding and/or removing one node, compiled in
 * the current memory context.  Validates the change like ring_add_node and
 * ring_remove_node would.
 */
static CompiledRing *
RingPlanChange(const CompiledRing *ring, const char *add_node,
			   int32 add_weight, const char *remove_node)
{
	RingNode   *nodes = palloc(sizeof(RingNode) * (ring->nnodes + 1));
	int			n = 0;

	if (remove_node != NULL && RingFindNode(ring, remove_node) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not on ring \"%s\"",
						remove_node, ring->name)));

	for (int i = 0; i < ring->nnodes; i++)
		if (remove_node == NULL || strcmp(ring->nodes[i].name, remove_node) != 0)
			nodes[n++] = ring->nodes[i];

	if (add_node != NULL)
	{
		if (ring->algorithm == RING_RANGE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot plan adding a node to range ring \"%s\"",
							ring->name),
					 errhint("Keys of a range ring move only when ranges are changed.")));
		if (add_node[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("node name must not be empty")));
		if (add_weight < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid weight %d for node \"%s\"", add_weight, add_node),
					 errhint("A node's weight must be at least 1.")));
		if (RingFindNode(ring, add_node) >= 0 &&
			(remove_node == NULL || strcmp(remove_node, add_node) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("node \"%s\" is already on ring \"%s\"",
							add_node, ring->name)));
		nodes[n].name = (char *) add_node;
		nodes[n].namelen = strlen(add_node);
		nodes[n].weight = add_weight;
		nodes[n].has_range = false;
		n++;
	}

	return RingCompile(CurrentMemoryContext, ring->name, ring->algorithm,
					   ring->key_hash, nodes, n);
}

/* Node name for a shard_moves column: NULL when the key has no node. */
static Datum
RingMoveNode(const CompiledRing *ring, int node, bool *isnull)
{
	*isnull = (node < 0);
	if (node < 0)
		return (Datum) 0;
	return PointerGetDatum(cstring_to_text_with_len(ring->nodes[node].name,
													ring->nodes[node].namelen));
}

/*
 * shard_moves(ring, keys, add_node, add_weight, remove_node)
 *		returns table (key, from_node, to_node)
 *		The keys that would change node if add_node were added and/or
 *		remove_node removed.  A key that would have no node (range rings)
 *		shows a NULL node.
 */
Datum
shard_moves(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CompiledRing *current;
	CompiledRing *planned;
	char	   *add_node = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	int32		add_weight = PG_ARGISNULL(3) ? 1 : PG_GETARG_INT32(3);
	char	   *remove_node = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	ArrayIterator it;
	Datum		value;
	bool		isnull;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ring name must not be null")));
	if (add_node == NULL && remove_node == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("shard_moves needs add_node or remove_node")));

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(1))
		return (Datum) 0;

	current = RingGetByText(PG_GETARG_TEXT_PP(0));
	planned = RingPlanChange(current, add_node, add_weight, remove_node);

	it = array_create_iterator(PG_GETARG_ARRAYTYPE_P(1), 0, NULL);
	while (array_iterate(it, &value, &isnull))
	{
		text	   *key;
		int			from,
					to;
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if (isnull)
			continue;
		key = DatumGetTextPP(value);
		from = RingLookup(current, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		to = RingLookup(planned, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		if (from == RING_NOT_INTEGER || (from < 0 && current->nnodes == 0))
			RingLookupFailed(current, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), from);

		if (from >= 0 && to >= 0 &&
			strcmp(current->nodes[from].name, planned->nodes[to].name) == 0)
			continue;
		if (from < 0 && to < 0)
			continue;

		values[0] = PointerGetDatum(key);
		values[1] = RingMoveNode(current, from, &nulls[1]);
		values[2] = RingMoveNode(planned, to, &nulls[2]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	array_free_iterator(it);
	return (Datum) 0;
}

/*
 * ring_changed() trigger
 *		Statement trigger on the ring tables: queue a relcache invalidation
 *		of the table, so every backend rebuilds its rings once the change
 *		commits (and this one at its next command).
 */
Datum
ring_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ring_changed() was not called by trigger manager")));

	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
