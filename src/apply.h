/*-------------------------------------------------------------------------
 *
 * apply.h
 *		The apply layer: sending a plan to Redis, and one result for what
 *		came of it.  Used by every deliverer (backend, worker).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_APPLY_H
#define CACHEBRIDGE_APPLY_H

#include "lib/stringinfo.h"

#include "copies.h"

/*
 * What a delivery came to, from the verdicts of reply.c on every reply.
 * Only CB_APPLIED and CB_REJECTED are done with: the others leave the
 * effects pending (CB_CORRUPT ones dead, as they can never be sent).
 */
typedef enum CbApplyResult
{
	CB_APPLIED,				/* every effect applied (or refused as older) */
	CB_REJECTED,				/* the rest applied, some permanently rejected */
	CB_RETRYABLE,				/* Redis answered, but refused some for now */
	CB_UNREACHABLE,				/* Redis could not be reached: try again */
	CB_CORRUPT					/* the encoded effects do not parse */
} CbApplyResult;

/* True if a delivery left effects to be sent again. */
#define CbApplyPending(r) ((r) == CB_RETRYABLE || (r) == CB_UNREACHABLE)

extern CbApplyResult CbApplyBlob(const char *blob, size_t len, bool skip_events,
								 bool stored, int *failed, char *detail,
								 size_t detaillen);
extern CbApplyResult CbApplyCommands(const char *cmds, size_t len,
									 int ncommands, int neffects,
									 bool *rejected, int *failed,
									 char *detail, size_t detaillen);
typedef struct CbCopyDelivery CbCopyDelivery;

extern CbCopyDelivery *CbApplyCopiesSend(CbCopies *copies);
extern CbApplyResult CbApplyCopiesWait(CbCopyDelivery *d, char *detail,
									  size_t detaillen);
extern void CbApplyCountError(CbApplyResult result, const char *detail);

#endif							/* CACHEBRIDGE_APPLY_H */
