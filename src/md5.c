/*-------------------------------------------------------------------------
 *
 * md5.c
 *		MD5 (RFC 1321) of a byte string, for hash rings.
 *
 * Ketama rings hash every key and every point name with MD5, so the hash
 * sits on the path of each shard_for() call.  Going through PostgreSQL's
 * cryptohash API costs several times the hash itself (with OpenSSL, every
 * digest initialisation looks the algorithm up under locks), and even
 * OpenSSL's one-shot MD5() measured no faster than this file for a short
 * key (README, Performance), so cachebridge computes MD5 itself: one call,
 * no allocation, no state between calls.
 *
 * A key hash needs only the first four (ketama, modulo) or eight (jump)
 * bytes of the digest, and nearly every cache key is at most 55 bytes long,
 * so that the key, its padding and its length fit in one 64-byte block.
 * CbMd5First32() and CbMd5First64() take that path: the block is built
 * with one copy and hashed with one pass of the compression function, and
 * for the first word the last three of its 64 steps, which do not change
 * that word, are skipped.  MD5's steps depend each on the one before, so
 * the compression function is bound by the latency of that chain; the
 * round-2 steps are written so that only one operation waits for it.
 *
 * MD5 is used here as a hash function for placement only, never for
 * security.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_bswap.h"

#include "md5.h"

#define MD5_BLOCK_LEN		64
/* longest message whose padding and length fit in its last block */
#define MD5_LAST_BLOCK_ROOM	(MD5_BLOCK_LEN - 1 - 8)

/* The state MD5 starts from (RFC 1321, section 3.3). */
#define MD5_INIT_STATE	{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}

/* The auxiliary functions F, H and I of RFC 1321, section 3.4. */
#define MD5_F(x, y, z)	((z) ^ ((x) & ((y) ^ (z))))
#define MD5_H(x, y, z)	((x) ^ (y) ^ (z))
#define MD5_I(x, y, z)	((y) ^ ((x) | ~(z)))

/* One step: a = b + ((a + f(b, c, d) + x + t) <<< s). */
#define MD5_STEP(f, a, b, c, d, x, t, s) \
	do { \
		(a) += f((b), (c), (d)) + (x) + (uint32) (t); \
		(a) = ((a) << (s) | (a) >> (32 - (s))) + (b); \
	} while (0)

/*
 * A step with G(b, c, d) = (b & d) | (c & ~d).  The two terms have no bit
 * in common, so their OR is their sum, and the term without b -- the value
 * the step before has just computed -- is added ahead of it.
 */
#define MD5_STEP_G(a, b, c, d, x, t, s) \
	do { \
		(a) += ((c) & ~(d)) + (x) + (uint32) (t); \
		(a) += (b) & (d); \
		(a) = ((a) << (s) | (a) >> (32 - (s))) + (b); \
	} while (0)

/* Read the little-endian 32-bit word at p. */
static inline uint32
Md5Word(const uint8 *p)
{
	return (uint32) p[0] | ((uint32) p[1] << 8) |
		((uint32) p[2] << 16) | ((uint32) p[3] << 24);
}

/*
 * Run the compression function on one block of sixteen message words.
 * With first_word_only, only state[0] is brought up to date (the others are
 * left as they were), which is all the first four bytes of a one-block
 * digest need.
 */
static pg_attribute_always_inline void
Md5Compress(uint32 state[4], const uint32 x[16], bool first_word_only)
{
	uint32		a = state[0];
	uint32		b = state[1];
	uint32		c = state[2];
	uint32		d = state[3];

	/* round 1 */
	MD5_STEP(MD5_F, a, b, c, d, x[0], 0xd76aa478, 7);
	MD5_STEP(MD5_F, d, a, b, c, x[1], 0xe8c7b756, 12);
	MD5_STEP(MD5_F, c, d, a, b, x[2], 0x242070db, 17);
	MD5_STEP(MD5_F, b, c, d, a, x[3], 0xc1bdceee, 22);
	MD5_STEP(MD5_F, a, b, c, d, x[4], 0xf57c0faf, 7);
	MD5_STEP(MD5_F, d, a, b, c, x[5], 0x4787c62a, 12);
	MD5_STEP(MD5_F, c, d, a, b, x[6], 0xa8304613, 17);
	MD5_STEP(MD5_F, b, c, d, a, x[7], 0xfd469501, 22);
	MD5_STEP(MD5_F, a, b, c, d, x[8], 0x698098d8, 7);
	MD5_STEP(MD5_F, d, a, b, c, x[9], 0x8b44f7af, 12);
	MD5_STEP(MD5_F, c, d, a, b, x[10], 0xffff5bb1, 17);
	MD5_STEP(MD5_F, b, c, d, a, x[11], 0x895cd7be, 22);
	MD5_STEP(MD5_F, a, b, c, d, x[12], 0x6b901122, 7);
	MD5_STEP(MD5_F, d, a, b, c, x[13], 0xfd987193, 12);
	MD5_STEP(MD5_F, c, d, a, b, x[14], 0xa679438e, 17);
	MD5_STEP(MD5_F, b, c, d, a, x[15], 0x49b40821, 22);

	/* round 2 */
	MD5_STEP_G(a, b, c, d, x[1], 0xf61e2562, 5);
	MD5_STEP_G(d, a, b, c, x[6], 0xc040b340, 9);
	MD5_STEP_G(c, d, a, b, x[11], 0x265e5a51, 14);
	MD5_STEP_G(b, c, d, a, x[0], 0xe9b6c7aa, 20);
	MD5_STEP_G(a, b, c, d, x[5], 0xd62f105d, 5);
	MD5_STEP_G(d, a, b, c, x[10], 0x02441453, 9);
	MD5_STEP_G(c, d, a, b, x[15], 0xd8a1e681, 14);
	MD5_STEP_G(b, c, d, a, x[4], 0xe7d3fbc8, 20);
	MD5_STEP_G(a, b, c, d, x[9], 0x21e1cde6, 5);
	MD5_STEP_G(d, a, b, c, x[14], 0xc33707d6, 9);
	MD5_STEP_G(c, d, a, b, x[3], 0xf4d50d87, 14);
	MD5_STEP_G(b, c, d, a, x[8], 0x455a14ed, 20);
	MD5_STEP_G(a, b, c, d, x[13], 0xa9e3e905, 5);
	MD5_STEP_G(d, a, b, c, x[2], 0xfcefa3f8, 9);
	MD5_STEP_G(c, d, a, b, x[7], 0x676f02d9, 14);
	MD5_STEP_G(b, c, d, a, x[12], 0x8d2a4c8a, 20);

	/* round 3 */
	MD5_STEP(MD5_H, a, b, c, d, x[5], 0xfffa3942, 4);
	MD5_STEP(MD5_H, d, a, b, c, x[8], 0x8771f681, 11);
	MD5_STEP(MD5_H, c, d, a, b, x[11], 0x6d9d6122, 16);
	MD5_STEP(MD5_H, b, c, d, a, x[14], 0xfde5380c, 23);
	MD5_STEP(MD5_H, a, b, c, d, x[1], 0xa4beea44, 4);
	MD5_STEP(MD5_H, d, a, b, c, x[4], 0x4bdecfa9, 11);
	MD5_STEP(MD5_H, c, d, a, b, x[7], 0xf6bb4b60, 16);
	MD5_STEP(MD5_H, b, c, d, a, x[10], 0xbebfbc70, 23);
	MD5_STEP(MD5_H, a, b, c, d, x[13], 0x289b7ec6, 4);
	MD5_STEP(MD5_H, d, a, b, c, x[0], 0xeaa127fa, 11);
	MD5_STEP(MD5_H, c, d, a, b, x[3], 0xd4ef3085, 16);
	MD5_STEP(MD5_H, b, c, d, a, x[6], 0x04881d05, 23);
	MD5_STEP(MD5_H, a, b, c, d, x[9], 0xd9d4d039, 4);
	MD5_STEP(MD5_H, d, a, b, c, x[12], 0xe6db99e5, 11);
	MD5_STEP(MD5_H, c, d, a, b, x[15], 0x1fa27cf8, 16);
	MD5_STEP(MD5_H, b, c, d, a, x[2], 0xc4ac5665, 23);

	/* round 4 */
	MD5_STEP(MD5_I, a, b, c, d, x[0], 0xf4292244, 6);
	MD5_STEP(MD5_I, d, a, b, c, x[7], 0x432aff97, 10);
	MD5_STEP(MD5_I, c, d, a, b, x[14], 0xab9423a7, 15);
	MD5_STEP(MD5_I, b, c, d, a, x[5], 0xfc93a039, 21);
	MD5_STEP(MD5_I, a, b, c, d, x[12], 0x655b59c3, 6);
	MD5_STEP(MD5_I, d, a, b, c, x[3], 0x8f0ccc92, 10);
	MD5_STEP(MD5_I, c, d, a, b, x[10], 0xffeff47d, 15);
	MD5_STEP(MD5_I, b, c, d, a, x[1], 0x85845dd1, 21);
	MD5_STEP(MD5_I, a, b, c, d, x[8], 0x6fa87e4f, 6);
	MD5_STEP(MD5_I, d, a, b, c, x[15], 0xfe2ce6e0, 10);
	MD5_STEP(MD5_I, c, d, a, b, x[6], 0xa3014314, 15);
	MD5_STEP(MD5_I, b, c, d, a, x[13], 0x4e0811a1, 21);
	MD5_STEP(MD5_I, a, b, c, d, x[4], 0xf7537e82, 6);

	/*
	 * a is final here: the three steps left change only d, c and b, which
	 * the first word of the digest does not depend on.
	 */
	if (first_word_only)
	{
		state[0] += a;
		return;
	}
	MD5_STEP(MD5_I, d, a, b, c, x[11], 0xbd3af235, 10);
	MD5_STEP(MD5_I, c, d, a, b, x[2], 0x2ad7d2bb, 15);
	MD5_STEP(MD5_I, b, c, d, a, x[9], 0xeb86d391, 21);

	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
}

/* Run the compression function on one 64-byte block. */
static void
Md5Block(uint32 state[4], const uint8 *block)
{
	uint32		x[16];

	for (int i = 0; i < 16; i++)
		x[i] = Md5Word(block + 4 * i);
	Md5Compress(state, x, false);
}

/*
 * The message words of a message of at most MD5_LAST_BLOCK_ROOM bytes,
 * padded and followed by its length in bits: one block.
 */
static inline void
Md5ShortBlock(const void *data, size_t len, uint32 x[16])
{
	memset(x, 0, MD5_BLOCK_LEN);
	memcpy(x, data, len);
	((uint8 *) x)[len] = 0x80;
#ifdef WORDS_BIGENDIAN
	for (int i = 0; i < 14; i++)
		x[i] = pg_bswap32(x[i]);
#endif
	x[14] = (uint32) (len * 8);
}

/*
 * MD5 of len bytes at data into digest.  Whole blocks are hashed where they
 * lie; the rest, the padding and the bit length are hashed from a copy, in
 * one block when the rest is at most 55 bytes, else in two.
 */
void
CbMd5(const void *data, size_t len, uint8 digest[CB_MD5_DIGEST_LEN])
{
	const uint8 *p = (const uint8 *) data;
	size_t		rest = len % MD5_BLOCK_LEN;
	uint64		bits = (uint64) len * 8;
	uint8		last[2 * MD5_BLOCK_LEN];
	size_t		lastlen = rest <= MD5_LAST_BLOCK_ROOM ? MD5_BLOCK_LEN : 2 * MD5_BLOCK_LEN;
	uint32		state[4] = MD5_INIT_STATE;

	for (const uint8 *end = p + (len - rest); p < end; p += MD5_BLOCK_LEN)
		Md5Block(state, p);

	memcpy(last, p, rest);
	last[rest] = 0x80;
	memset(last + rest + 1, 0, lastlen - 8 - (rest + 1));
	for (int i = 0; i < 8; i++)
		last[lastlen - 8 + i] = (uint8) (bits >> (8 * i));

	Md5Block(state, last);
	if (lastlen > MD5_BLOCK_LEN)
		Md5Block(state, last + MD5_BLOCK_LEN);

	for (int i = 0; i < 4; i++)
	{
		digest[4 * i] = (uint8) state[i];
		digest[4 * i + 1] = (uint8) (state[i] >> 8);
		digest[4 * i + 2] = (uint8) (state[i] >> 16);
		digest[4 * i + 3] = (uint8) (state[i] >> 24);
	}
}

/* The first eight bytes of MD5(data), read as a little-endian integer. */
uint64
CbMd5First64(const void *data, size_t len)
{
	uint32		x[16];
	uint32		state[4] = MD5_INIT_STATE;

	if (len > MD5_LAST_BLOCK_ROOM)
	{
		uint8		digest[CB_MD5_DIGEST_LEN];

		CbMd5(data, len, digest);
		return (uint64) Md5Word(digest) | ((uint64) Md5Word(digest + 4) << 32);
	}
	Md5ShortBlock(data, len, x);
	Md5Compress(state, x, false);
	return (uint64) state[0] | ((uint64) state[1] << 32);
}

/* The first four bytes of MD5(data), read as a little-endian integer. */
uint32
CbMd5First32(const void *data, size_t len)
{
	uint32		x[16];
	uint32		state[4] = MD5_INIT_STATE;

	if (len > MD5_LAST_BLOCK_ROOM)
		return (uint32) CbMd5First64(data, len);
	Md5ShortBlock(data, len, x);
	Md5Compress(state, x, true);
	return state[0];
}
