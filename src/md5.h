/*-------------------------------------------------------------------------
 *
 * md5.h
 *		MD5 (RFC 1321) of a byte string, for hash rings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_MD5_H
#define CACHEBRIDGE_MD5_H

#define CB_MD5_DIGEST_LEN	16

extern void CbMd5(const void *data, size_t len, uint8 digest[CB_MD5_DIGEST_LEN]);

#endif							/* CACHEBRIDGE_MD5_H */
