/*-------------------------------------------------------------------------
 *
 * plain.h
 *		The plain codec (plain.c): copies of committed rows as unversioned
 *		Redis commands, for a refresh batch that still holds its row locks.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_PLAIN_H
#define CACHEBRIDGE_PLAIN_H

#include "plan.h"
#include "resp.h"

/* Unversioned commands being built; keys gathered into one MSET or UNLINK. */
typedef struct CbPlain
{
	CbPipeline	pipeline;		/* the commands closed so far */
	StringInfoData gathered;	/* encoded arguments of the command gathering */
	int			ngathered;		/* keys in it */
	CbEffectOp	gathering;		/* CB_OP_SET (an MSET) or CB_OP_DEL (UNLINK) */
	int			neffects;		/* effects in pipeline and gathered */
} CbPlain;

extern void CbPlainInit(CbPlain *plain);
extern void CbPlainAdd(CbPlain *plain, CbEffectOp op, const char *key,
					   size_t keylen, const char *payload, size_t len,
					   int nfields, int ttl);
extern void CbPlainClose(CbPlain *plain);
extern void CbPlainReset(CbPlain *plain);
extern size_t CbPlainBytes(const CbPlain *plain);

#endif							/* CACHEBRIDGE_PLAIN_H */
