/*-------------------------------------------------------------------------
 *
 * plain.c
 *		The copy codec: the effects of a refresh batch (refresh.c) as calls
 *		of the copy script (scripts.c, CB_SCRIPT_COPY), which write values,
 *		hashes and deletions without writing any version marker.
 *
 * A refresh batch changes no data: it locks its rows FOR SHARE and copies
 * their committed state.  So its copies may reach Redis before it commits,
 * while it holds the row locks; why that is safe is refresh.c's to say.
 * Each call carries a fence, a version taken before the rows were locked,
 * and writes only the keys whose marker is not newer than it: a call that
 * Redis runs late, after the batch let go of its rows, cannot overwrite a
 * write committed since.  Calls are built as the plan's are (plan.c,
 * CbEncodeWriteCall), up to 500 keys each, but a call holds effects of one
 * op only, in the order they were made: the copy script applies its
 * values, deletions and hashes one kind after the other, and a key may
 * come twice (two triggers, or a template no unique index orders), so a
 * change of op closes the call.
 *
 * Pure: nothing here talks to Redis (apply.c sends the calls).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "plain.h"
#include "scripts.h"

/* Most effects, and about the most bytes, gathered for one call. */
#define CB_PLAIN_EFFECTS_PER_CALL 500
#define CB_PLAIN_BYTES_PER_CALL (256 * 1024)

/* Starts empty copies with their fence, in the current memory context. */
void
CbPlainInit(CbPlain *plain, const char *fence)
{
	memset(plain, 0, sizeof(*plain));
	CbPipelineInit(&plain->pipeline);
	strlcpy(plain->fence, fence, sizeof(plain->fence));
	initStringInfo(&plain->data);
	initStringInfo(&plain->scratch);
	plain->maxgathered = CB_PLAIN_EFFECTS_PER_CALL;
	plain->gathered = palloc(sizeof(CbPlainEffect) * plain->maxgathered);
	plain->writes = palloc(sizeof(CbPlanWrite) * plain->maxgathered);
}

/* Closes the effects gathered, if any, into calls of the copy script. */
void
CbPlainClose(CbPlain *plain)
{
	int			start = 0;

	for (int i = 0; i < plain->ngathered; i++)
	{
		const CbPlainEffect *e = &plain->gathered[i];
		CbPlanWrite *w = &plain->writes[i];

		w->key.data = plain->data.data + e->keyoff;
		w->key.len = e->keylen;
		w->payload = plain->data.data + e->payoff;
		w->len = e->len;
		w->nfields = e->nfields;
		w->ttl = e->ttl;
		w->op = plain->op;
	}
	while (start < plain->ngathered)
		start += CbEncodeWriteCall(&plain->pipeline, &plain->scratch, CB_SCRIPT_COPY,
								   plain->fence, &plain->writes[start],
								   plain->ngathered - start);
	resetStringInfo(&plain->data);
	plain->ngathered = 0;
}

/*
 * Gathers one effect: op CB_OP_SET (payload the value), CB_OP_HASH
 * (payload nfields pairs of (uint32 length, bytes)) or CB_OP_DEL, with ttl
 * seconds (0 for none) for the writes.
 */
void
CbPlainAdd(CbPlain *plain, CbEffectOp op, const char *key, size_t keylen,
		   const char *payload, size_t len, int nfields, int ttl)
{
	CbPlainEffect *e;

	Assert(op == CB_OP_SET || op == CB_OP_HASH || op == CB_OP_DEL);
	if (plain->ngathered > 0 && plain->op != op)
		CbPlainClose(plain);
	plain->op = op;
	e = &plain->gathered[plain->ngathered++];
	e->keyoff = plain->data.len;
	e->keylen = keylen;
	appendBinaryStringInfo(&plain->data, key, keylen);
	e->payoff = plain->data.len;
	e->len = len;
	if (len > 0)
		appendBinaryStringInfo(&plain->data, payload, len);
	e->nfields = nfields;
	e->ttl = ttl;
	plain->neffects++;
	if (plain->ngathered == plain->maxgathered ||
		plain->data.len >= CB_PLAIN_BYTES_PER_CALL)
		CbPlainClose(plain);
}

/* Empties the copies, keeping their buffers and fence. */
void
CbPlainReset(CbPlain *plain)
{
	CbPipelineReset(&plain->pipeline);
	resetStringInfo(&plain->data);
	plain->ngathered = 0;
	plain->neffects = 0;
}

/* Bytes of copies built so far, gathered ones included. */
size_t
CbPlainBytes(const CbPlain *plain)
{
	return plain->pipeline.buf.len + plain->data.len;
}
