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
  AND p.proname IN ('get', 'set', 'del', 'invalidate_pattern', 'stats', 'stats_reset',
                    'write_through', 'invalidate', 'attach', 'detach', 'validate_trigger',
                    'check_new_triggers', 'wait_delivered', 'delivery_status', 'publish',
                    'trigger_arguments', 'check_table_change', 'check_altered_tables',
                    'check_table_owner')
ORDER BY 1::text;

-- the outbox holds copies of cached rows: PUBLIC cannot read it
SELECT has_table_privilege('public', 'cachebridge.outbox', 'SELECT') AS public_reads_outbox,
       has_table_privilege('cachebridge_writer', 'cachebridge.outbox', 'SELECT') AS writer_reads_outbox;

-- an ordinary role is refused, a member of cachebridge_writer may write
CREATE ROLE cb_plain;
CREATE ROLE cb_app IN ROLE cachebridge_writer;
SET ROLE cb_plain;
SELECT cachebridge.set('sec:k', 'v');
SELECT cachebridge.get('sec:k');
SELECT cachebridge.del('sec:k');
SELECT * FROM cachebridge.stats;
-- anyone may wait for delivery (the outbox is read as its owner)
SELECT cachebridge.wait_delivered(1000);
SELECT * FROM cachebridge.outbox;
SET ROLE cb_app;
SELECT cachebridge.set('sec:k', 'v');
SELECT cachebridge.get('sec:k');
SELECT cachebridge.del('sec:k');
RESET ROLE;
DROP ROLE cb_plain;
DROP ROLE cb_app;

-- every object lives in the cachebridge schema, and the extension cannot move
SELECT extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'cachebridge';
