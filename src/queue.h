/*-------------------------------------------------------------------------
 *
 * queue.h
 *		The pending-effects queue of the current transaction: what Redis
 *		must do once the transaction commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_QUEUE_H
#define CACHEBRIDGE_QUEUE_H

#include "copies.h"
#include "plan.h"

/*
 * CB_OP_PUBLISH effects are queued under "channel\0key", so that a key
 * notified twice on one channel is notified once.
 */

/* cachebridge.max_pending_memory, in kB */
extern int	cb_max_pending_memory;

extern void CbQueueInit(void);
extern bool CbQueueFull(size_t incoming);
extern void CbQueueEffect(CbEffectOp op, const char *key, size_t keylen,
						  const char *payload, size_t len, int nfields,
						  int ttl);
extern bool CbQueueHasPattern(const char *pattern, size_t len);
extern void CbQueueDivert(CbCopies *copies);

#endif							/* CACHEBRIDGE_QUEUE_H */
