/*-------------------------------------------------------------------------
 *
 * delivery.h
 *		A committing transaction's delivery: the delivery modes, who sends
 *		the plan (the backend or the worker), and when.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_DELIVERY_H
#define CACHEBRIDGE_DELIVERY_H

#include "plan.h"

typedef enum CbDeliveryMode
{
	CB_DELIVERY_SYNC,			/* committing backend only; failures are warnings */
	CB_DELIVERY_DURABLE,		/* outbox row, committing backend, worker retries */
	CB_DELIVERY_ASYNC			/* outbox row, worker only */
} CbDeliveryMode;

extern int	cb_delivery;
extern bool cb_preloaded;
extern int	cb_delivery_timeout;

extern void CbLockStreams(const CbKeyRef *streams, int n);
extern void CbDeliveryPreCommit(CbPlan *plan, bytea *effects, bool prepare);
extern void CbDeliveryCommit(void);
extern void CbDeliveryReset(void);

#endif							/* CACHEBRIDGE_DELIVERY_H */
