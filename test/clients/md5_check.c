/*-------------------------------------------------------------------------
 *
 * md5_check.c
 *		Checks cachebridge's MD5 (src/md5.c) against OpenSSL's, and times
 *		both on short keys.
 *
 * Built and run by test/t/040_ring_clients.pl:
 *
 *	cc -O2 -I<server includes> -Isrc test/clients/md5_check.c src/md5.c -lcrypto
 *
 * Without arguments it hashes 2,000 random messages of every length from 0
 * to 300 bytes (across the 55/56-byte edge of the one-block path and the
 * block sizes) with CbMd5, CbMd5First32 and CbMd5First64 and compares each
 * with OpenSSL's MD5(), then prints "checks N mismatches M".  With "time"
 * it also prints the best time per key, over interleaved rounds, of each
 * on keys like the benchmark's ("user:<n>:profile").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <openssl/md5.h>

#include "md5.h"

/* PostgreSQL's port layer would route these to its own implementations. */
#undef printf
#undef snprintf

#define ROUNDS		200
#define KEYS		1000
#define PASSES		100

/* Read the little-endian 32-bit word at p. */
static uint32
Word(const uint8 *p)
{
	return (uint32) p[0] | ((uint32) p[1] << 8) |
		((uint32) p[2] << 16) | ((uint32) p[3] << 24);
}

/* Monotonic time in nanoseconds. */
static double
Now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Compare every cachebridge digest function with OpenSSL's MD5(). */
static void
Check(void)
{
	uint8		buf[300];
	long		checks = 0;
	long		mismatches = 0;

	srandom(1);
	for (int rep = 0; rep < 2000; rep++)
	{
		for (int len = 0; len <= 300; len++)
		{
			uint8		ref[CB_MD5_DIGEST_LEN];
			uint8		got[CB_MD5_DIGEST_LEN];

			for (int i = 0; i < len; i++)
				buf[i] = (uint8) random();
			MD5(buf, len, ref);
			CbMd5(buf, len, got);
			mismatches += memcmp(ref, got, CB_MD5_DIGEST_LEN) != 0;
			mismatches += CbMd5First32(buf, len) != Word(ref);
			mismatches += CbMd5First64(buf, len) !=
				((uint64) Word(ref) | ((uint64) Word(ref + 4) << 32));
			checks += 3;
		}
	}
	printf("checks %ld mismatches %ld\n", checks, mismatches);
}

/* Best time per key of each function, rounds interleaved. */
static void
Time(void)
{
	static char keys[KEYS][32];
	int			lens[KEYS];
	const char *names[] = {"CbMd5", "CbMd5First32", "CbMd5First64", "OpenSSL MD5()"};
	double		best[4] = {1e18, 1e18, 1e18, 1e18};
	volatile uint32 sink = 0;

	for (int i = 0; i < KEYS; i++)
		lens[i] = snprintf(keys[i], sizeof(keys[i]), "user:%d:profile", 100000 + i * 997);

	for (int round = 0; round < ROUNDS; round++)
	{
		for (int f = 0; f < 4; f++)
		{
			double		t0 = Now();
			double		t;

			for (int pass = 0; pass < PASSES; pass++)
			{
				for (int i = 0; i < KEYS; i++)
				{
					uint8		d[CB_MD5_DIGEST_LEN];

					switch (f)
					{
						case 0:
							CbMd5(keys[i], lens[i], d);
							sink += d[0];
							break;
						case 1:
							sink += CbMd5First32(keys[i], lens[i]);
							break;
						case 2:
							sink += (uint32) CbMd5First64(keys[i], lens[i]);
							break;
						case 3:
							MD5((const uint8 *) keys[i], lens[i], d);
							sink += d[0];
							break;
					}
				}
			}
			t = (Now() - t0) / ((double) PASSES * KEYS);
			if (t < best[f])
				best[f] = t;
		}
	}
	for (int f = 0; f < 4; f++)
		printf("%-14s %6.1f ns/key (best of %d rounds, %d-byte keys)\n",
			   names[f], best[f], ROUNDS, lens[0]);
}

int
main(int argc, char **argv)
{
	Check();
	if (argc > 1 && strcmp(argv[1], "time") == 0)
		Time();
	return 0;
}
