/*-------------------------------------------------------------------------
 *
 * ring_compile.c
 *		Compile a ring's nodes into a lookup structure, and look keys up.
 *
 * This file holds the algorithms and nothing else: no catalog access, no
 * caching (see ring.c).  The ketama ring is the one twemproxy and
 * libmemcached (weighted ketama) build:
 *
 *	- a node of weight w among n nodes of total weight W gets
 *	  floorf((float) (pct * 160 / 4 * (float) n + 1e-10)) * 4 points, with
 *	  pct = (float) w / (float) W, evaluated in exactly those C types;
 *	- its points come four at a time from MD5("<node>-<i>"), i = 0, 1, ...,
 *	  each a little-endian 32-bit word of the digest;
 *	- a key hashes to the first four bytes of MD5(key), little-endian, and
 *	  goes to the first point >= that hash, wrapping to the first point;
 *	- among equal points the node earlier in ring order wins (that is what a
 *	  stable sort of the continuum gives twemproxy and libmemcached).
 *
 * Jump rings use Lamping & Veach's jump consistent hash over buckets where
 * each node, in ring order, owns "weight" consecutive buckets; modulo rings
 * send a key to bucket hash mod total weight the same way (twemproxy's
 * "modula").  Range rings parse the key as a bigint and find the node whose
 * inclusive range holds it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "lib/stringinfo.h"

#include "md5.h"
#include "ring.h"

/* Points per node at average weight, as in twemproxy and libmemcached. */
#define KETAMA_POINTS_PER_SERVER	160
#define KETAMA_POINTS_PER_HASH		4

/*
 * The continuum index cuts the hash circle into equal arcs, about four per
 * point, so that most arcs hold no point or one (the search of an arc is
 * then a comparison, not a loop whose branches depend on the hash); at most
 * 2^16 arcs, so that the index of a large ring stays small.
 */
#define KETAMA_ARCS_PER_POINT		4
#define KETAMA_INDEX_MAX_BITS		16

/* FNV-1a 64-bit parameters */
#define FNV_64_INIT		UINT64CONST(0xcbf29ce484222325)
#define FNV_64_PRIME	UINT64CONST(0x100000001b3)

/* Read the little-endian 32-bit word at p. */
static inline uint32
LittleEndian32(const uint8 *p)
{
	return (uint32) p[0] | ((uint32) p[1] << 8) |
		((uint32) p[2] << 16) | ((uint32) p[3] << 24);
}

/* FNV-1a 64 of a key, bytes sign-extended as twemproxy's (signed) char is. */
static inline uint64
Fnv1a64(const char *key, int keylen)
{
	uint64		hash = FNV_64_INIT;

	for (int i = 0; i < keylen; i++)
	{
		hash ^= (uint64) (int64) (signed char) key[i];
		hash *= FNV_64_PRIME;
	}
	return hash;
}

/*
 * The 32-bit hash of a key that ketama and modulo rings use (twemproxy's
 * md5 and fnv1a_64 hashes).  MD5 only needs to produce its first word.
 */
static inline uint32
RingKeyHash32(RingKeyHash key_hash, const char *key, int keylen)
{
	if (key_hash == RING_HASH_FNV1A_64)
		return (uint32) Fnv1a64(key, keylen);
	return CbMd5First32(key, keylen);
}

/* The 64-bit hash of a key that jump rings use; its low half is the above. */
static inline uint64
RingKeyHash64(RingKeyHash key_hash, const char *key, int keylen)
{
	if (key_hash == RING_HASH_FNV1A_64)
		return Fnv1a64(key, keylen);
	return CbMd5First64(key, keylen);
}

/*
 * Number of continuum points of a node of weight "weight": twemproxy's
 * float32 formula, kept in its exact types so that results agree at the
 * rounding edges.
 */
static uint32
KetamaPointsForWeight(int32 weight, uint64 totalweight, int nnodes)
{
	float		pct = (float) weight / (float) totalweight;

	return (uint32) ((floorf((float) (pct * KETAMA_POINTS_PER_SERVER / 4 *
									   (float) nnodes + 0.0000000001))) * 4);
}

/* Order continuum points by value, then by ring order of their node. */
static int
RingPointCompare(const void *a, const void *b)
{
	const RingPoint *pa = (const RingPoint *) a;
	const RingPoint *pb = (const RingPoint *) b;

	if (pa->value != pb->value)
		return pa->value < pb->value ? -1 : 1;
	return pa->node - pb->node;
}

/*
 * Index the sorted continuum by arcs: arc a holds the hashes whose top bits
 * are a, and pointindex[a] is the first point at or after the start of arc
 * a (npoints if none); pointindex[narcs] is npoints.  The points between
 * pointindex[a] and pointindex[a + 1] are those of arc a.
 *
 * points[npoints] is a sentinel: the largest value, owned by the node of
 * the first point, which is where a hash past the last point wraps to.  A
 * lookup that runs off the end of the continuum finds it without a test.
 */
static void
IndexKetama(CompiledRing *ring)
{
	int			bits = 1;
	uint32		narcs;
	int			p = 0;

	while (bits < KETAMA_INDEX_MAX_BITS &&
		   ((int64) 1 << bits) < (int64) ring->npoints * KETAMA_ARCS_PER_POINT)
		bits++;
	narcs = (uint32) 1 << bits;
	ring->pointshift = 32 - bits;
	ring->pointindex = palloc(sizeof(int) * (narcs + 1));

	for (uint32 arc = 0; arc < narcs; arc++)
	{
		uint32		arcstart = arc << ring->pointshift;

		while (p < ring->npoints && ring->points[p].value < arcstart)
			p++;
		ring->pointindex[arc] = p;
	}
	ring->pointindex[narcs] = ring->npoints;

	ring->points[ring->npoints].value = PG_UINT32_MAX;
	ring->points[ring->npoints].node = ring->npoints > 0 ? ring->points[0].node : 0;
}

/* Build the sorted ketama continuum of a ring. */
static void
CompileKetama(CompiledRing *ring)
{
	StringInfoData pointname;
	int			maxpoints = 0;

	for (int i = 0; i < ring->nnodes; i++)
		maxpoints += KetamaPointsForWeight(ring->nodes[i].weight,
										   ring->totalweight, ring->nnodes);

	/* one more for the sentinel */
	ring->points = palloc(sizeof(RingPoint) * (maxpoints + 1));
	ring->npoints = 0;
	initStringInfo(&pointname);

	for (int i = 0; i < ring->nnodes; i++)
	{
		const RingNode *node = &ring->nodes[i];
		uint32		npoints = KetamaPointsForWeight(node->weight,
													ring->totalweight,
													ring->nnodes);

		for (uint32 h = 0; h < npoints / KETAMA_POINTS_PER_HASH; h++)
		{
			uint8		digest[CB_MD5_DIGEST_LEN];

			resetStringInfo(&pointname);
			appendBinaryStringInfo(&pointname, node->name, node->namelen);
			appendStringInfo(&pointname, "-%u", h);
			CbMd5(pointname.data, pointname.len, digest);

			for (int x = 0; x < KETAMA_POINTS_PER_HASH; x++)
			{
				ring->points[ring->npoints].value = LittleEndian32(digest + 4 * x);
				ring->points[ring->npoints].node = i;
				ring->npoints++;
			}
		}
	}
	pfree(pointname.data);

	qsort(ring->points, ring->npoints, sizeof(RingPoint), RingPointCompare);
	IndexKetama(ring);
}

/* Build the running weight sums that jump and modulo rings use. */
static void
CompileBuckets(CompiledRing *ring)
{
	uint64		sum = 0;

	ring->cumweight = palloc(sizeof(uint64) * Max(ring->nnodes, 1));
	for (int i = 0; i < ring->nnodes; i++)
	{
		sum += ring->nodes[i].weight;
		ring->cumweight[i] = sum;
	}

	if (ring->algorithm == RING_JUMP && sum > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total weight %llu of ring \"%s\" is too large for jump consistent hash",
						(unsigned long long) sum, ring->name),
				 errhint("The weights of a jump ring must add up to at most %d.",
						 PG_INT32_MAX)));
}

/* Range rings: order nodes by range_lo of a given ring, for qsort_arg. */
static int
RangeCompare(const void *a, const void *b, void *arg)
{
	const RingNode *nodes = (const RingNode *) arg;
	int64		la = nodes[*(const int *) a].range_lo;
	int64		lb = nodes[*(const int *) b].range_lo;

	if (la != lb)
		return la < lb ? -1 : 1;
	return 0;
}

/* Sort the ranges of a range ring and check that every node has one. */
static void
CompileRanges(CompiledRing *ring)
{
	ring->byrange = palloc(sizeof(int) * Max(ring->nnodes, 1));
	for (int i = 0; i < ring->nnodes; i++)
	{
		if (!ring->nodes[i].has_range)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("node \"%s\" of range ring \"%s\" has no key range",
							ring->nodes[i].name, ring->name),
					 errhint("Set range_lo and range_hi in cachebridge.ring_node, or add the node with cachebridge.ring_add_range().")));
		ring->byrange[i] = i;
	}

	qsort_arg(ring->byrange, ring->nnodes, sizeof(int), RangeCompare,
			  ring->nodes);

	for (int i = 1; i < ring->nnodes; i++)
	{
		const RingNode *prev = &ring->nodes[ring->byrange[i - 1]];
		const RingNode *next = &ring->nodes[ring->byrange[i]];

		if (next->range_lo <= prev->range_hi)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("key ranges of nodes \"%s\" and \"%s\" of ring \"%s\" overlap",
							prev->name, next->name, ring->name)));
	}
}

/*
 * Compile a ring from its nodes (in ring order) into a structure allocated
 * in cxt.  A ring without nodes compiles; every lookup on it finds nothing.
 */
CompiledRing *
RingCompile(MemoryContext cxt, const char *name, RingAlgorithm algorithm,
			RingKeyHash key_hash, const RingNode *nodes, int nnodes)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	CompiledRing *ring = palloc0(sizeof(CompiledRing));

	ring->name = pstrdup(name);
	ring->namelen = strlen(name);
	ring->algorithm = algorithm;
	ring->key_hash = key_hash;
	ring->nnodes = nnodes;
	ring->nodes = palloc(sizeof(RingNode) * Max(nnodes, 1));
	for (int i = 0; i < nnodes; i++)
	{
		ring->nodes[i] = nodes[i];
		ring->nodes[i].name = pnstrdup(nodes[i].name, nodes[i].namelen);
		ring->totalweight += nodes[i].weight;
	}

	switch (algorithm)
	{
		case RING_KETAMA:
			CompileKetama(ring);
			break;
		case RING_JUMP:
		case RING_MODULO:
			CompileBuckets(ring);
			break;
		case RING_RANGE:
			CompileRanges(ring);
			break;
	}

	MemoryContextSwitchTo(oldcxt);
	return ring;
}

/* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm". */
static int32
JumpConsistentHash(uint64 key, int32 nbuckets)
{
	int64		b = -1;
	int64		j = 0;

	while (j < nbuckets)
	{
		b = j;
		key = key * UINT64CONST(2862933555777941757) + 1;
		j = (int64) ((b + 1) * ((double) (INT64CONST(1) << 31) /
								(double) ((key >> 33) + 1)));
	}
	return (int32) b;
}

/* The node owning a bucket: the first whose running weight exceeds it. */
static int
NodeOfBucket(const CompiledRing *ring, uint64 bucket)
{
	int			lo = 0;
	int			hi = ring->nnodes - 1;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ring->cumweight[mid] <= bucket)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Ketama: the node of the first point >= hash, wrapping around.  Points
 * before the hash's arc are smaller than the hash and points after it are
 * larger, so the answer is among the points of the arc or is the first
 * point after it (the sentinel when the arc is the last one).
 */
static inline int
KetamaLookup(const CompiledRing *ring, uint32 hash)
{
	uint32		arc = hash >> ring->pointshift;
	int			lo = ring->pointindex[arc];
	int			hi = ring->pointindex[arc + 1];

	if (likely(hi - lo <= 1))
	{
		/* step past the arc's one point if it is below the hash */
		lo += (lo < hi) & (ring->points[lo].value < hash);
	}
	else
	{
		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (ring->points[mid].value < hash)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return ring->points[lo].node;
}

/* Range rings: parse the key as a bigint and find the range holding it. */
static int
RangeLookup(const CompiledRing *ring, const char *key, int keylen)
{
	char		buf[32];
	char	   *end;
	int64		value;
	int			lo = 0;
	int			hi = ring->nnodes;

	if (keylen <= 0 || keylen >= (int) sizeof(buf))
		return RING_NOT_INTEGER;
	memcpy(buf, key, keylen);
	buf[keylen] = '\0';

	errno = 0;
	value = strtoi64(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\0' || isspace((unsigned char) buf[0]))
		return RING_NOT_INTEGER;

	/* last range whose lower bound is <= value */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ring->nodes[ring->byrange[mid]].range_lo <= value)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || ring->nodes[ring->byrange[lo - 1]].range_hi < value)
		return RING_NO_NODE;
	return ring->byrange[lo - 1];
}

/*
 * Index of the node that owns key, or RING_NO_NODE (empty ring, key outside
 * every range) or RING_NOT_INTEGER (range ring, key not a bigint).
 */
int
RingLookup(const CompiledRing *ring, const char *key, int keylen)
{
	if (ring->nnodes == 0)
		return RING_NO_NODE;

	switch (ring->algorithm)
	{
		case RING_KETAMA:
			if (ring->npoints == 0)
				return RING_NO_NODE;
			return KetamaLookup(ring, RingKeyHash32(ring->key_hash, key, keylen));
		case RING_JUMP:
			return NodeOfBucket(ring,
								JumpConsistentHash(RingKeyHash64(ring->key_hash, key, keylen),
												   (int32) ring->totalweight));
		case RING_MODULO:
			return NodeOfBucket(ring, RingKeyHash32(ring->key_hash, key, keylen) %
								ring->totalweight);
		case RING_RANGE:
			return RangeLookup(ring, key, keylen);
	}
	return RING_NO_NODE;
}

/*
 * Each node's share of the key space, and the number of slots it holds
 * (continuum points, buckets, or integers of its range).
 */
void
RingBalance(const CompiledRing *ring, double *share, int64 *slots)
{
	double		total = 0;

	for (int i = 0; i < ring->nnodes; i++)
	{
		share[i] = 0;
		slots[i] = 0;
	}

	switch (ring->algorithm)
	{
		case RING_KETAMA:
			/* point k owns the hashes after point k-1, up to and including k */
			for (int k = 0; k < ring->npoints; k++)
			{
				uint32		prev = ring->points[k == 0 ? ring->npoints - 1 : k - 1].value;
				uint32		arc = ring->points[k].value - prev;

				slots[ring->points[k].node]++;
				share[ring->points[k].node] +=
					(ring->npoints == 1) ? 4294967296.0 : (double) arc;
			}
			total = 4294967296.0;
			break;
		case RING_JUMP:
		case RING_MODULO:
			for (int i = 0; i < ring->nnodes; i++)
			{
				slots[i] = ring->nodes[i].weight;
				share[i] = ring->nodes[i].weight;
			}
			total = (double) ring->totalweight;
			break;
		case RING_RANGE:
			for (int i = 0; i < ring->nnodes; i++)
			{
				double		width = (double) ring->nodes[i].range_hi -
					(double) ring->nodes[i].range_lo + 1;

				slots[i] = (int64) Min(width, (double) PG_INT64_MAX);
				share[i] = width;
				total += width;
			}
			break;
	}

	for (int i = 0; i < ring->nnodes; i++)
		share[i] = total > 0 ? share[i] / total : 0;
}

/* Map an algorithm name as stored in cachebridge.ring to its enum. */
RingAlgorithm
RingAlgorithmFromName(const char *name)
{
	if (strcmp(name, "ketama") == 0)
		return RING_KETAMA;
	if (strcmp(name, "jump") == 0)
		return RING_JUMP;
	if (strcmp(name, "modulo") == 0)
		return RING_MODULO;
	if (strcmp(name, "range") == 0)
		return RING_RANGE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown ring algorithm \"%s\"", name),
			 errhint("Valid algorithms are \"ketama\", \"jump\", \"modulo\" and \"range\".")));
	return RING_KETAMA;			/* keep compiler quiet */
}

/* Map a key hash name as stored in cachebridge.ring to its enum. */
RingKeyHash
RingKeyHashFromName(const char *name)
{
	if (strcmp(name, "md5") == 0)
		return RING_HASH_MD5;
	if (strcmp(name, "fnv1a_64") == 0)
		return RING_HASH_FNV1A_64;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown ring key hash \"%s\"", name),
			 errhint("Valid key hashes are \"md5\" and \"fnv1a_64\".")));
	return RING_HASH_MD5;		/* keep compiler quiet */
}
