/*-------------------------------------------------------------------------
 *
 * key_slot.h
 *		The Redis Cluster hash slot of a key.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_KEY_SLOT_H
#define CACHEBRIDGE_KEY_SLOT_H

/* Hash slots of a Redis Cluster. */
#define CB_CLUSTER_SLOTS 16384

extern int	CbKeySlot(const char *key, size_t len);
extern bool CbKeyHasHashTag(const char *key, size_t len);

#endif							/* CACHEBRIDGE_KEY_SLOT_H */
