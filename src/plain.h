/*-------------------------------------------------------------------------
 *
 * plain.h
 *		The copy codec (plain.c): copies of committed rows as calls of the
 *		copy script, which write no version marker, for a refresh batch
 *		that still holds its row locks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_PLAIN_H
#define CACHEBRIDGE_PLAIN_H

#include "plan.h"
#include "resp.h"

/* A write or deletion gathered, its key and payload in CbPlain.data. */
typedef struct CbPlainEffect
{
	uint32		keyoff;
	uint32		keylen;
	uint32		payoff;
	uint32		len;
	int			nfields;
	int			ttl;
} CbPlainEffect;

/* Copies being built: calls closed so far, and effects of one op gathered. */
typedef struct CbPlain
{
	CbPipeline	pipeline;		/* the calls closed so far */
	char		fence[64];		/* no later than the rows were locked */
	CbEffectOp	op;				/* of every effect gathered */
	StringInfoData data;		/* their keys and payloads */
	CbPlainEffect *gathered;
	int			ngathered;
	int			maxgathered;
	CbPlanWrite *writes;		/* scratch for encoding them */
	StringInfoData scratch;
	int			neffects;		/* effects in pipeline and gathered */
} CbPlain;

extern void CbPlainInit(CbPlain *plain, const char *fence);
extern void CbPlainAdd(CbPlain *plain, CbEffectOp op, const char *key,
					   size_t keylen, const char *payload, size_t len,
					   int nfields, int ttl);
extern void CbPlainClose(CbPlain *plain);
extern void CbPlainReset(CbPlain *plain);
extern size_t CbPlainBytes(const CbPlain *plain);

#endif							/* CACHEBRIDGE_PLAIN_H */
