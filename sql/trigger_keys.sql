--
-- Keys do not depend on the writer's session settings
--
-- A key column whose text output depends on DateStyle, TimeZone,
-- IntervalStyle, extra_float_digits or bytea_output is rendered under
-- fixed settings (ISO dates, UTC, shortest exact floats, hex bytea), so
-- writers with different settings make the same key for the same row.
--
\! redis-cli -p $CB_REDIS_PORT flushall > /dev/null
CREATE TABLE key_events (day date, at timestamptz, ratio float8, tag bytea, info text,
                         PRIMARY KEY (day, at));
CREATE TRIGGER key_events_cache AFTER INSERT OR UPDATE OR DELETE ON key_events
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('ev:{day}:{at}:{ratio}:{tag}');

-- a writer in a German, non-UTC session
SET datestyle = 'German';
SET timezone = 'Europe/Berlin';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SELECT cachebridge.set('ev:2024-03-01:2024-03-01 09:00:00+00:0.3333333333333333:\x6869', 'cached');
INSERT INTO key_events VALUES ('2024-03-01', '2024-03-01 10:00:00+01', 1.0/3, 'hi', 'x');
-- the cached key in ISO/UTC form was invalidated by the German writer
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'ev:*' | grep -v '#cbv$' | sort
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'ev:*#cbv' | sort
RESET datestyle;
RESET timezone;
RESET extra_float_digits;
RESET bytea_output;

-- the settings of the session are untouched by the rendering
SET datestyle = 'German';
UPDATE key_events SET info = 'y';
SHOW datestyle;
RESET datestyle;

-- a text or integer key column is rendered as it is
CREATE TABLE key_plain (id int PRIMARY KEY, name text);
CREATE TRIGGER key_plain_cache AFTER INSERT ON key_plain
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('plain:{id}:{name}');
SET datestyle = 'German';
INSERT INTO key_plain VALUES (7, 'Straße');
RESET datestyle;
\! redis-cli -p $CB_REDIS_PORT --scan --pattern 'plain:*' | sort

DROP TABLE key_events, key_plain;
