/*-------------------------------------------------------------------------
 *
 * backlog.h
 *		Whether a database has outbox rows left to its worker, which
 *		decides whether a committing backend may send its own row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_BACKLOG_H
#define CACHEBRIDGE_BACKLOG_H

extern bool CbBacklogPending(void);
extern void CbBacklogAdd(void);
extern void CbBacklogAddCommitted(void);
extern bool CbBacklogTryClear(bool worker);
extern void CbBacklogShmemRequest(void);
extern void CbBacklogShmemStartup(void);

#endif							/* CACHEBRIDGE_BACKLOG_H */
