/*-------------------------------------------------------------------------
 *
 * ring.h
 *		Compiled hash rings: the data structure shard_for() looks keys up in.
 *
 * A ring is loaded from the tables cachebridge.ring and cachebridge.ring_node
 * (ring.c) and compiled once per change into the form below (ring_compile.c):
 * a sorted continuum of points for ketama, cut into equal arcs by the top
 * bits of the hash -- about four arcs a point, so that most arcs hold at
 * most one point and a lookup needs no search;
 * cumulative weights for jump and modulo; ranges sorted by their lower bound
 * for range rings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CACHEBRIDGE_RING_H
#define CACHEBRIDGE_RING_H

#include "utils/palloc.h"

/* How a ring maps a key to a node. */
typedef enum RingAlgorithm
{
	RING_KETAMA,				/* twemproxy/libmemcached weighted ketama */
	RING_JUMP,					/* Lamping & Veach jump consistent hash */
	RING_MODULO,				/* hash mod total weight, twemproxy "modula" */
	RING_RANGE					/* integer keys in inclusive ranges */
} RingAlgorithm;

/* How a ring hashes a key (not used by range rings). */
typedef enum RingKeyHash
{
	RING_HASH_MD5,				/* first bytes of MD5(key), little-endian */
	RING_HASH_FNV1A_64			/* FNV-1a 64, bytes as signed char */
} RingKeyHash;

/* One node as stored in cachebridge.ring_node, in ring order. */
typedef struct RingNode
{
	char	   *name;
	int			namelen;
	int32		weight;
	bool		has_range;		/* range rings only: range_lo..range_hi */
	int64		range_lo;		/* inclusive */
	int64		range_hi;
} RingNode;

/* One point of a ketama continuum. */
typedef struct RingPoint
{
	uint32		value;
	int32		node;			/* index into CompiledRing.nodes */
} RingPoint;

/* A ring ready for lookups; everything lives in one memory context. */
typedef struct CompiledRing
{
	char	   *name;
	int			namelen;
	RingAlgorithm algorithm;
	RingKeyHash key_hash;
	int			nnodes;
	RingNode   *nodes;			/* in ring order */
	int			npoints;		/* ketama: sorted continuum, */
	RingPoint  *points;			/* then a sentinel, see IndexKetama() */
	int			pointshift;		/* ketama: hash >> pointshift is an arc */
	int		   *pointindex;		/* ketama: first point of each arc */
	uint64	   *cumweight;		/* jump, modulo: running sum of weights */
	uint64		totalweight;
	int		   *byrange;		/* range: node indexes sorted by range_lo */
} CompiledRing;

extern CompiledRing *RingCompile(MemoryContext cxt, const char *name,
								 RingAlgorithm algorithm, RingKeyHash key_hash,
								 const RingNode *nodes, int nnodes);
/* RingLookup() results that are not a node index */
#define RING_NO_NODE		(-1)	/* empty ring, or key outside every range */
#define RING_NOT_INTEGER	(-2)	/* range ring and the key is no bigint */

extern int	RingLookup(const CompiledRing *ring, const char *key, int keylen);
extern void RingBalance(const CompiledRing *ring, double *share, int64 *slots);
extern RingAlgorithm RingAlgorithmFromName(const char *name);
extern RingKeyHash RingKeyHashFromName(const char *name);

#endif							/* CACHEBRIDGE_RING_H */
