--
-- Statistics: cachebridge.stats counts round trips, hits and misses
--
SELECT cachebridge.stats_reset();
SELECT cluster_wide, round_trips, cache_hits, cache_misses, errors, last_error
FROM cachebridge.stats;
-- (the backend's first fill also reads Redis' clock: 6 round trips for 5 calls)
SELECT cachebridge.set('stats:k', 'v');
SELECT cachebridge.get('stats:k');
SELECT cachebridge.get('stats:k');
SELECT cachebridge.get('stats:missing');
SELECT cachebridge.del('stats:k');
SELECT round_trips, cache_hits, cache_misses, errors, pending
FROM cachebridge.stats;
SELECT stats_reset <= now() AS reset_recorded FROM cachebridge.stats;

-- deleting 2,600 keys is one round trip, however many DEL commands it takes
SELECT round_trips AS before FROM cachebridge.stats \gset
SELECT cachebridge.del(VARIADIC array_agg('stats:bulk:' || i)) FROM generate_series(1, 2600) i;
SELECT round_trips - :before AS round_trips FROM cachebridge.stats;
