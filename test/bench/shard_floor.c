/*-------------------------------------------------------------------------
 *
 * shard_floor.c
 *		Floors for the shard_for benchmark (test/bench/shard_for.sh): C
 *		functions of shard_for's signature that do less than it does.
 *
 * Built by shard_for.sh into a temporary library and loaded by absolute
 * path for the benchmark only; it is not part of the extension.
 *
 *	- shard_floor(key text, ring text) returns text: reads the key and
 *	  returns a node name made into text once per call site, as shard_for
 *	  does with a constant ring.  What a C function of this signature costs
 *	  the executor, with no hash and no ring.
 *	- shard_floor_md5(key text, ring text) returns text: the same, plus the
 *	  key hash of an md5 ring (src/md5.c, CbMd5First32) choosing among
 *	  three names.  What shard_for would cost with a free ring lookup.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "md5.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(shard_floor);
PG_FUNCTION_INFO_V1(shard_floor_md5);

#define FLOOR_NODES 3

/* Three node names as text, made once per call site. */
static text **
FloorNodeTexts(FunctionCallInfo fcinfo)
{
	text	  **texts = (text **) fcinfo->flinfo->fn_extra;

	if (texts == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		texts = palloc(sizeof(text *) * FLOOR_NODES);
		for (int i = 0; i < FLOOR_NODES; i++)
			texts[i] = cstring_to_text(psprintf("shard-%d", i + 1));
		MemoryContextSwitchTo(oldcxt);
		fcinfo->flinfo->fn_extra = texts;
	}
	return texts;
}

/* shard_floor(key, ring): the first node name, without looking at the key. */
Datum
shard_floor(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	text	  **texts = FloorNodeTexts(fcinfo);

	PG_RETURN_TEXT_P(texts[VARSIZE_ANY_EXHDR(key) == 0 ? 1 : 0]);
}

/* shard_floor_md5(key, ring): a node name chosen by the MD5 of the key. */
Datum
shard_floor_md5(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);
	text	  **texts = FloorNodeTexts(fcinfo);
	uint32		hash = CbMd5First32(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

	PG_RETURN_TEXT_P(texts[hash % FLOOR_NODES]);
}
