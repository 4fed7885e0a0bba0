/*-------------------------------------------------------------------------
 *
 * version.h
 *		What a version is: the epoch of the history a transaction belongs
 *		to (generation, timeline) ahead of its WAL position; and the locks
 *		that make versions follow commit order for keys no row lock orders.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_VERSION_H
#define CACHEBRIDGE_VERSION_H

#include "access/xlogdefs.h"

/*
 * "V" + 8 hex digits of generation + 8 of timeline: the epoch, as the fill
 * script compares it with a marker's first CB_EPOCH_LEN characters.
 */
#define CB_EPOCH_LEN 17
/* the epoch, then 16 hex digits of WAL position */
#define CB_VERSION_LEN (CB_EPOCH_LEN + 16)

typedef struct CbEpoch
{
	uint32		generation;		/* bumped when the system identifier changes */
	TimeLineID	timeline;		/* grows at promotion and at the end of PITR */
} CbEpoch;

extern XLogRecPtr CbCurrentEpoch(CbEpoch *epoch, bool writer);
extern void CbFormatEpoch(char *buf, const CbEpoch *epoch);
extern void CbFormatVersion(char *buf, const CbEpoch *epoch, XLogRecPtr lsn);

extern void CbOrderKey(const char *key, size_t len);
extern void CbOrderLock(void);
extern void CbOrderReset(void);

#endif							/* CACHEBRIDGE_VERSION_H */
