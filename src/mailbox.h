/*-------------------------------------------------------------------------
 *
 * mailbox.h
 *		The worker slots in shared memory: waking a database's worker,
 *		acknowledging rows to it, asking it to step aside.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_MAILBOX_H
#define CACHEBRIDGE_MAILBOX_H

/* Acknowledgements a slot holds. */
#define CB_ACK_RING 1024

/* backends */
extern bool CbWorkerWake(Oid dboid);
extern void CbWorkerNotify(Oid dboid);
extern void CbOutboxAcknowledge(Oid dboid, int64 id);
extern bool CbOutboxAcknowledged(Oid dboid, int64 id);
extern bool CbWorkerAcknowledged(int64 id);
extern void CbWorkerStepAside(Oid dboid);
extern void CbWorkerComeBack(Oid dboid);

/* the worker, about its own slot */
extern void CbMailboxAttach(Oid dboid);
extern int	CbMailboxTake(bool *announced, int64 *acks);
extern bool CbMailboxOnlyAcks(void);
extern bool CbMailboxLeaveIfIdle(void);

/* set-up */
extern void CbWorkerRegisterLauncher(void);
extern void CbMailboxShmemRequest(void);
extern void CbMailboxShmemStartup(void);

#endif							/* CACHEBRIDGE_MAILBOX_H */
