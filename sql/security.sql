--
-- Privileges: nothing that writes to Redis is executable by PUBLIC
--
\set VERBOSITY default

-- what PUBLIC may run, function by function
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('cachebridge_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('cachebridge_writer', p.oid, 'EXECUTE') AS writer
FROM pg_proc p
WHERE p.pronamespace = 'cachebridge'::regnamespace
  AND p.proname IN ('get', 'set', 'del', 'invalidate_pattern', 'stats', 'stats_reset')
ORDER BY 1::text;

-- an ordinary role is refused, a member of cachebridge_writer may write
CREATE ROLE cb_plain;
CREATE ROLE cb_app IN ROLE cachebridge_writer;
SET ROLE cb_plain;
SELECT cachebridge.set('sec:k', 'v');
SELECT cachebridge.get('sec:k');
SELECT cachebridge.del('sec:k');
SELECT * FROM cachebridge.stats;
SET ROLE cb_app;
SELECT cachebridge.set('sec:k', 'v');
SELECT cachebridge.get('sec:k');
SELECT cachebridge.del('sec:k');
RESET ROLE;
DROP ROLE cb_plain;
DROP ROLE cb_app;

-- every object lives in the cachebridge schema, and the extension cannot move
SELECT extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'cachebridge';
