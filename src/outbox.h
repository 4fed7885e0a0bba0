/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		The cachebridge.outbox table and the background workers that
 *		drain it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_OUTBOX_H
#define CACHEBRIDGE_OUTBOX_H

#include "access/xlogdefs.h"

/* outbox.c */
extern int64 CbOutboxInsert(bytea *effects, int neffects,
							XLogRecPtr version, bool direct);
extern int	CbOutboxDrain(int limit, bool *unreachable);
extern void CbOutboxDelete(int64 *ids, int nids);
extern bool CbOutboxIdle(void);
extern int64 CbOutboxUndelivered(void);
extern bool CbOutboxAllDelivered(bool worker);

/* worker.c */
extern bool CbWorkerWake(Oid dboid);
extern void CbWorkerNotify(Oid dboid);
extern void CbOutboxAcknowledge(Oid dboid, int64 id);
extern bool CbWorkerAcknowledged(int64 id);
extern bool CbOutboxAcknowledged(Oid dboid, int64 id);
extern void CbWorkerStepAside(Oid dboid);
extern void CbWorkerComeBack(Oid dboid);
extern void CbWorkerShmemRequest(void);
extern void CbWorkerShmemStartup(void);
extern void CbWorkerRegisterLauncher(void);

#endif							/* CACHEBRIDGE_OUTBOX_H */
