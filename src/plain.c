/*-------------------------------------------------------------------------
 *
 * plain.c
 *		The plain codec: the effects of a refresh batch (refresh.c) as
 *		unversioned Redis commands -- MSET, SET ... EX, UNLINK, and DEL then
 *		HSET (and EXPIRE) for a hash -- without version markers.
 *
 * A refresh batch changes no data: it locks its rows FOR SHARE and copies
 * their committed state.  So its copies may reach Redis before it commits,
 * as long as they are applied while it still holds the row locks; why that
 * is safe is refresh.c's to say.  Here they are only encoded: values
 * without a TTL are gathered into MSETs and deletions into UNLINKs, a few
 * hundred keys each; a write with a TTL and a hash replace are commands of
 * their own.  The order of the effects is kept: a command of another kind
 * closes the one gathering first, so two triggers writing and deleting
 * the same key leave what the later one did.
 *
 * Pure: nothing here talks to Redis (apply.c sends the commands).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "plain.h"

/*
 * Most keys, and about the most bytes, of one MSET or UNLINK: Redis serves
 * no one else while it runs one command.
 */
#define CB_PLAIN_KEYS_PER_COMMAND 500
#define CB_PLAIN_BYTES_PER_COMMAND (256 * 1024)

/* Starts empty commands in the current memory context. */
void
CbPlainInit(CbPlain *plain)
{
	CbPipelineInit(&plain->pipeline);
	initStringInfo(&plain->gathered);
	plain->ngathered = 0;
	plain->gathering = CB_OP_SET;
	plain->neffects = 0;
}

/* Closes the MSET or UNLINK being gathered, if any, into the pipeline. */
void
CbPlainClose(CbPlain *plain)
{
	int			nargs;

	if (plain->ngathered == 0)
		return;
	nargs = plain->gathering == CB_OP_SET ? 2 * plain->ngathered : plain->ngathered;
	CbPipelineBegin(&plain->pipeline, 1 + nargs, NULL, 0);
	CbPipelineArgStr(&plain->pipeline, plain->gathering == CB_OP_SET ? "MSET" : "UNLINK");
	CbPipelineArgsEncoded(&plain->pipeline, plain->gathered.data,
						  plain->gathered.len, nargs);
	resetStringInfo(&plain->gathered);
	plain->ngathered = 0;
}

/* Gathers key (and, for an MSET, its value) into a command of op's kind. */
static void
CbPlainGather(CbPlain *plain, CbEffectOp op, const char *key, size_t keylen,
			  const char *value, size_t len)
{
	if (plain->ngathered > 0 && plain->gathering != op)
		CbPlainClose(plain);
	plain->gathering = op;
	CbRespAppendArg(&plain->gathered, key, keylen);
	if (op == CB_OP_SET)
		CbRespAppendArg(&plain->gathered, value, len);
	plain->ngathered++;
	if (plain->ngathered >= CB_PLAIN_KEYS_PER_COMMAND ||
		plain->gathered.len >= CB_PLAIN_BYTES_PER_COMMAND)
		CbPlainClose(plain);
}

/* Appends EXPIRE key ttl. */
static void
CbPlainExpire(CbPlain *plain, const char *key, size_t keylen, int ttl)
{
	CbPipelineBegin(&plain->pipeline, 3, key, keylen);
	CbPipelineArgStr(&plain->pipeline, "EXPIRE");
	CbPipelineArg(&plain->pipeline, key, keylen);
	CbPipelineArgInt(&plain->pipeline, ttl);
}

/*
 * Appends the replace of the hash at key by nfields pairs of (uint32
 * length, bytes): DEL, then HSET of the fields if there are any, then
 * EXPIRE if ttl.
 */
static void
CbPlainHash(CbPlain *plain, const char *key, size_t keylen,
			const char *fields, int nfields, int ttl)
{
	CbPipelineBegin(&plain->pipeline, 2, key, keylen);
	CbPipelineArgStr(&plain->pipeline, "DEL");
	CbPipelineArg(&plain->pipeline, key, keylen);
	if (nfields == 0)
		return;
	CbPipelineBegin(&plain->pipeline, 2 + 2 * nfields, key, keylen);
	CbPipelineArgStr(&plain->pipeline, "HSET");
	CbPipelineArg(&plain->pipeline, key, keylen);
	for (int i = 0; i < 2 * nfields; i++)
	{
		uint32		flen;

		memcpy(&flen, fields, sizeof(uint32));
		CbPipelineArg(&plain->pipeline, fields + sizeof(uint32), flen);
		fields += sizeof(uint32) + flen;
	}
	if (ttl > 0)
		CbPlainExpire(plain, key, keylen, ttl);
}

/*
 * Appends one effect: op CB_OP_SET (payload the value), CB_OP_HASH
 * (payload nfields pairs of (uint32 length, bytes)) or CB_OP_DEL, with ttl
 * seconds (0 for none) for the writes.
 */
void
CbPlainAdd(CbPlain *plain, CbEffectOp op, const char *key, size_t keylen,
		   const char *payload, size_t len, int nfields, int ttl)
{
	Assert(op == CB_OP_SET || op == CB_OP_HASH || op == CB_OP_DEL);
	plain->neffects++;
	if (op == CB_OP_DEL || (op == CB_OP_SET && ttl == 0))
	{
		CbPlainGather(plain, op, key, keylen, payload, len);
		return;
	}
	CbPlainClose(plain);
	if (op == CB_OP_HASH)
	{
		CbPlainHash(plain, key, keylen, payload, nfields, ttl);
		return;
	}
	CbPipelineBegin(&plain->pipeline, 5, key, keylen);
	CbPipelineArgStr(&plain->pipeline, "SET");
	CbPipelineArg(&plain->pipeline, key, keylen);
	CbPipelineArg(&plain->pipeline, payload, len);
	CbPipelineArgStr(&plain->pipeline, "EX");
	CbPipelineArgInt(&plain->pipeline, ttl);
}

/* Empties the commands, keeping their buffers. */
void
CbPlainReset(CbPlain *plain)
{
	CbPipelineReset(&plain->pipeline);
	resetStringInfo(&plain->gathered);
	plain->ngathered = 0;
	plain->neffects = 0;
}

/* Bytes of commands built so far, gathered ones included. */
size_t
CbPlainBytes(const CbPlain *plain)
{
	return plain->pipeline.buf.len + plain->gathered.len;
}
