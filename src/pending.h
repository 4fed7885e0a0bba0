/*-------------------------------------------------------------------------
 *
 * pending.h
 *		Whether committed effects are applied yet.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_PENDING_H
#define CACHEBRIDGE_PENDING_H

extern int64 CbPendingRows(void);
extern bool CbPendingNone(bool worker);

#endif							/* CACHEBRIDGE_PENDING_H */
