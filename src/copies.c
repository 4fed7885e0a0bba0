/*-------------------------------------------------------------------------
 *
 * copies.c
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

#include "copies.h"
#include "scripts.h"

/* Most effects, and about the most bytes, gathered for one call. */
#define CB_COPY_EFFECTS_PER_CALL 500
#define CB_COPY_BYTES_PER_CALL (256 * 1024)

/* Starts empty copies with their fence, in the current memory context. */
void
CbCopiesInit(CbCopies *copies, const char *fence)
{
	memset(copies, 0, sizeof(*copies));
	CbPipelineInit(&copies->pipeline);
	strlcpy(copies->fence, fence, sizeof(copies->fence));
	initStringInfo(&copies->data);
	initStringInfo(&copies->scratch);
	copies->maxgathered = CB_COPY_EFFECTS_PER_CALL;
	copies->gathered = palloc(sizeof(CbCopyEffect) * copies->maxgathered);
	copies->writes = palloc(sizeof(CbPlanWrite) * copies->maxgathered);
}

/* Closes the effects gathered, if any, into calls of the copy script. */
void
CbCopiesClose(CbCopies *copies)
{
	int			start = 0;

	for (int i = 0; i < copies->ngathered; i++)
	{
		const CbCopyEffect *e = &copies->gathered[i];
		CbPlanWrite *w = &copies->writes[i];

		w->key.data = copies->data.data + e->keyoff;
		w->key.len = e->keylen;
		w->payload = copies->data.data + e->payoff;
		w->len = e->len;
		w->nfields = e->nfields;
		w->ttl = e->ttl;
		w->op = copies->op;
	}
	while (start < copies->ngathered)
		start += CbEncodeWriteCall(&copies->pipeline, &copies->scratch, CB_SCRIPT_COPY,
								   copies->fence, &copies->writes[start],
								   copies->ngathered - start);
	resetStringInfo(&copies->data);
	copies->ngathered = 0;
}

/*
 * Gathers one effect: op CB_OP_SET (payload the value), CB_OP_HASH
 * (payload nfields pairs of (uint32 length, bytes)) or CB_OP_DEL, with ttl
 * seconds (0 for none) for the writes.
 */
void
CbCopiesAdd(CbCopies *copies, CbEffectOp op, const char *key, size_t keylen,
		   const char *payload, size_t len, int nfields, int ttl)
{
	CbCopyEffect *e;

	Assert(op == CB_OP_SET || op == CB_OP_HASH || op == CB_OP_DEL);
	if (copies->ngathered > 0 && copies->op != op)
		CbCopiesClose(copies);
	copies->op = op;
	e = &copies->gathered[copies->ngathered++];
	e->keyoff = copies->data.len;
	e->keylen = keylen;
	appendBinaryStringInfo(&copies->data, key, keylen);
	e->payoff = copies->data.len;
	e->len = len;
	if (len > 0)
		appendBinaryStringInfo(&copies->data, payload, len);
	e->nfields = nfields;
	e->ttl = ttl;
	copies->neffects++;
	if (copies->ngathered == copies->maxgathered ||
		copies->data.len >= CB_COPY_BYTES_PER_CALL)
		CbCopiesClose(copies);
}

/* Empties the copies, keeping their buffers and fence. */
void
CbCopiesReset(CbCopies *copies)
{
	CbPipelineReset(&copies->pipeline);
	resetStringInfo(&copies->data);
	copies->ngathered = 0;
	copies->neffects = 0;
}

/* Bytes of copies built so far, gathered ones included. */
size_t
CbCopiesBytes(const CbCopies *copies)
{
	return copies->pipeline.buf.len + copies->data.len;
}
