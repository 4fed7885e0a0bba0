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

/* What an effect does to its key (or, for a pattern, to every match). */
typedef enum CbEffectOp
{
	CB_OP_SET,					/* SET key value [EX ttl] */
	CB_OP_HASH,					/* replace the hash at key by fields [EXPIRE] */
	CB_OP_DEL,					/* DEL key */
	CB_OP_PATTERN,				/* SCAN + UNLINK every key matching a glob */
	CB_OP_XADD,					/* append an entry to the stream at key */
	CB_OP_PUBLISH				/* PUBLISH a key (or pattern) on a channel */
} CbEffectOp;

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

#endif							/* CACHEBRIDGE_QUEUE_H */
