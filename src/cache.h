/*-------------------------------------------------------------------------
 *
 * cache.h
 *		The cache-aside functions (cache.c): what the rest of cachebridge
 *		tells them about the session, so that a fill knows how old its
 *		snapshot may be.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CB_CACHE_H
#define CB_CACHE_H

/* The library was loaded (not preloaded) in the current transaction. */
extern void CbCacheNoteLoad(void);

/* SET TRANSACTION SNAPSHOT imported a snapshot into the current transaction. */
extern void CbCacheNoteSnapshotImport(void);

/* A query of the current transaction starts, with its snapshot taken. */
extern void CbCacheNoteQueryStart(void);

#endif							/* CB_CACHE_H */
