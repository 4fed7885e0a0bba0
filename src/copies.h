/*-------------------------------------------------------------------------
 *
 * copies.h
 *		The copy codec (copies.c): copies of committed rows as calls of the
 *		copy script, which write no version marker, for a refresh batch
 *		that still holds its row locks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_COPIES_H
#define CACHEBRIDGE_COPIES_H

#include "plan.h"
#include "resp.h"

/* A write or deletion gathered, its key and payload in CbCopies.data. */
typedef struct CbCopyEffect
{
	uint32		keyoff;
	uint32		keylen;
	uint32		payoff;
	uint32		len;
	int			nfields;
	int			ttl;
} CbCopyEffect;

/* Copies being built: calls closed so far, and effects of one op gathered. */
typedef struct CbCopies
{
	CbPipeline	pipeline;		/* the calls closed so far */
	char		fence[64];		/* no later than the rows were locked */
	CbEffectOp	op;				/* of every effect gathered */
	StringInfoData data;		/* their keys and payloads */
	CbCopyEffect *gathered;
	int			ngathered;
	int			maxgathered;
	CbPlanWrite *writes;		/* scratch for encoding them */
	StringInfoData scratch;
	int			neffects;		/* effects in pipeline and gathered */
} CbCopies;

extern void CbCopiesInit(CbCopies *copies, const char *fence);
extern void CbCopiesAdd(CbCopies *copies, CbEffectOp op, const char *key,
					   size_t keylen, const char *payload, size_t len,
					   int nfields, int ttl);
extern void CbCopiesClose(CbCopies *copies);
extern void CbCopiesReset(CbCopies *copies);
extern size_t CbCopiesBytes(const CbCopies *copies);

#endif							/* CACHEBRIDGE_COPIES_H */
