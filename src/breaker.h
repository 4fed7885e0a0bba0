/*-------------------------------------------------------------------------
 *
 * breaker.h
 *		The circuit breaker, in shared memory: whether Redis is known to be
 *		unreachable, so that committing backends do not wait on it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_BREAKER_H
#define CACHEBRIDGE_BREAKER_H

/* cachebridge.retry_interval, in ms */
extern int	cb_retry_interval;

extern bool CbBreakerIsOpen(void);
extern void CbBreakerTrip(void);
extern void CbBreakerReset(void);
extern bool CbBreakerAllowsProbe(void);
extern void CbBreakerShmemRequest(void);
extern void CbBreakerShmemStartup(void);

#endif							/* CACHEBRIDGE_BREAKER_H */
