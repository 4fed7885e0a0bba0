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
/* the first 4 or 8 bytes of the digest, read as a little-endian integer */
extern uint32 CbMd5First32(const void *data, size_t len);
extern uint64 CbMd5First64(const void *data, size_t len);

#endif							/* CACHEBRIDGE_MD5_H */
