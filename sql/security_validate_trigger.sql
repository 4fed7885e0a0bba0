--
-- validate_trigger() (granted to writers, run by the CREATE TRIGGER event
-- trigger) checks the caller's rights on the table before it opens and
-- locks it, and that the trigger is one of that table's
--
\set VERBOSITY default

CREATE ROLE cb_vt_writer IN ROLE cachebridge_writer;
CREATE TABLE cb_vt_secret (id int PRIMARY KEY);
CREATE TABLE cb_vt_granted (id int PRIMARY KEY);
GRANT TRIGGER ON cb_vt_granted TO cb_vt_writer;
CREATE TABLE cb_vt_mine (id int PRIMARY KEY);
ALTER TABLE cb_vt_mine OWNER TO cb_vt_writer;

SET ROLE cb_vt_writer;
-- the table's owner, and a role with TRIGGER on a table, may make triggers
CREATE TRIGGER vt AFTER INSERT ON cb_vt_mine
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vt:{id}');
CREATE TRIGGER vt AFTER INSERT ON cb_vt_granted
    FOR EACH ROW EXECUTE FUNCTION cachebridge.invalidate('vt:{id}');
-- and the event trigger still finds their mistakes
CREATE TRIGGER vt_bad AFTER INSERT ON cb_vt_mine
    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('vt:{nope}');
SELECT cachebridge.validate_trigger(
    (SELECT oid FROM pg_trigger WHERE tgrelid = 'cb_vt_mine'::regclass AND tgname = 'vt'),
    'cb_vt_mine'::regclass, 'write_through');

-- a table the writer has no rights on: refused before it is opened
SELECT cachebridge.validate_trigger(0, 'cb_vt_secret'::regclass, 'write_through');
-- a trigger of another table
SELECT cachebridge.validate_trigger(
    (SELECT oid FROM pg_trigger WHERE tgrelid = 'cb_vt_granted'::regclass AND tgname = 'vt'),
    'cb_vt_mine'::regclass, 'write_through');
-- no such trigger, no such relation, no such mode
SELECT cachebridge.validate_trigger(0, 'cb_vt_mine'::regclass, 'write_through');
SELECT cachebridge.validate_trigger(0, 0, 'write_through');
SELECT cachebridge.validate_trigger(0, 'cb_vt_mine'::regclass, 'bogus');
RESET ROLE;

DROP TABLE cb_vt_secret, cb_vt_granted, cb_vt_mine;
DROP ROLE cb_vt_writer;
