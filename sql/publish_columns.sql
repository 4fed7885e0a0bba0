--
-- publish(..., 'columns=a,b'): the row and old fields of a stream entry
-- hold only the columns named, so secrets of the table need not go onto
-- a stream, exactly as write_through's columns= keeps them out of a cache.
--
\set VERBOSITY default
\! redis-cli -p $CB_REDIS_PORT flushall

CREATE TABLE pub_accounts (
    id int PRIMARY KEY,
    login text,
    password_hash text,
    api_token text
);
CREATE TRIGGER pub_accounts_events AFTER INSERT OR UPDATE OR DELETE ON pub_accounts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:accounts', 'columns=id,login', 'old=true');
INSERT INTO pub_accounts VALUES (1, 'ada', '$2b$secret-hash', 'tok-SECRET');
UPDATE pub_accounts SET login = 'ada2', api_token = 'tok-SECRET2' WHERE id = 1;
DELETE FROM pub_accounts WHERE id = 1;
SELECT cachebridge.wait_delivered();
\! sh test/stream_dump.sh ev:accounts
-- no secret anywhere in the stream
\! redis-cli -p $CB_REDIS_PORT --raw xrange ev:accounts - + | grep -c SECRET

-- the stream name may use a column outside columns=
CREATE TABLE pub_tenant (tenant int, id int, secret text);
SELECT cachebridge.attach('pub_tenant', 'ev:t{tenant}', 'publish', NULL, 'columns=id');
INSERT INTO pub_tenant VALUES (7, 1, 'SECRET');
SELECT cachebridge.wait_delivered();
\! redis-cli -p $CB_REDIS_PORT --raw xrange ev:t7 - + | sed -n '/^row$/{n;p}'

-- mistakes are caught at CREATE TRIGGER, as for write_through
CREATE TRIGGER bad AFTER INSERT ON pub_accounts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:accounts', 'columns=id,nosuch');
CREATE TRIGGER bad AFTER INSERT ON pub_accounts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:accounts', 'columns=');
CREATE TRIGGER bad AFTER INSERT ON pub_accounts
    FOR EACH ROW EXECUTE FUNCTION cachebridge.publish('ev:accounts', 'format=hash');

DROP TABLE pub_accounts, pub_tenant;
