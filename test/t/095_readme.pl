# test/t/095_readme.pl -- every ```sql block of README.md runs as written, in
# order, on a fresh server with cachebridge preloaded and a redis-server of
# the test's own, and fails on any error.
#
# The blocks run one after the other in the database "postgres" (one psql
# session per block, ON_ERROR_STOP), starting before CREATE EXTENSION, as a
# reader following the README would.  Two things are adjusted, and only
# these:
#   - README addresses Redis as 127.0.0.1:6379; the test's redis-server
#     listens on a free port of its own, which is put in its place (a
#     README block must never reach a Redis the test did not start);
#   - a statement on one line that ends in a comment holding only an
#     integer or true/false, as in
#         SELECT cachebridge.del('user:42', 'user:43', 'never-set');   -- 2
#     is checked to return exactly one row whose first column is that.
# A block that cannot run here (it needs a TLS server, a file in /etc...)
# opts out with a line "-- readme-test: skip (why)" in it; README's
# contributor notes say so.  New blocks are picked up without changing
# this file.

use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

my $readme = dirname($ENV{TESTDIR} // 'test') . '/README.md';
$readme = 'README.md' unless -f $readme;
open(my $fh, '<', $readme) or die "cannot read $readme: $!";
my @lines = <$fh>;
close $fh;

# The ```sql blocks, each with the line it starts on.
my @blocks;
my $current;
for my $n (0 .. $#lines)
{
	my $line = $lines[$n];
	if (!defined $current && $line =~ /^```sql\s*$/)
	{
		$current = { line => $n + 2, text => '' };
	}
	elsif (defined $current && $line =~ /^```\s*$/)
	{
		push @blocks, $current;
		undef $current;
	}
	elsif (defined $current)
	{
		$current->{text} .= $line;
	}
}
die "README.md has an unterminated ```sql block from line $current->{line}"
  if defined $current;
ok(@blocks >= 10, 'README.md has SQL blocks to run (' . scalar(@blocks) . ')');

my $redis = CacheBridgeTest::Redis->new(name => 'readme');
my $node = CacheBridgeTest::new_node('readme', redis => $redis, extension => 0);
my $port = $redis->port;

# The check of an annotated statement: an integer cast of a message that
# is not one fails with the message in the error.
sub checked_statement
{
	my ($select, $expected, $lineno) = @_;
	$expected = 'true' if $expected eq 't';
	$expected = 'false' if $expected eq 'f';
	return "SELECT CASE WHEN pg_catalog.count(*) = 1 AND pg_catalog.bool_and(v::text = '$expected') "
	  . "THEN 'as README says' "
	  . "ELSE ('README.md line $lineno returned ' || "
	  . "coalesce(pg_catalog.string_agg(coalesce(v::text, 'NULL'), ', '), 'no row') || "
	  . "', not $expected')::int::text END AS readme_check "
	  . "FROM ($select) AS readme_result(v);\n";
}

for my $b (@blocks)
{
	my $where = "README.md block at line $b->{line}";
	if ($b->{text} =~ /^\s*--\s*readme-test:\s*skip\b(.*)$/m)
	{
		my $why = $1;
		$why =~ s/^\W+|\W+$//g;
		SKIP: { skip("$where opts out: $why", 1); }
		next;
	}

	my $sql = '';
	my $lineno = $b->{line};
	for my $line (split /^/, $b->{text})
	{
		$line =~ s/127\.0\.0\.1:6379\b/127.0.0.1:$port/g;
		if ($line =~ /^\s*(SELECT\b.*?);\s*--\s*(-?\d+|true|false|t|f)\s*$/i)
		{
			$sql .= checked_statement($1, lc $2, $lineno);
		}
		else
		{
			$sql .= $line;
		}
		$lineno++;
	}

	my ($rc, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);
	my $first_line = (split /\n/, $b->{text})[0];
	ok($rc == 0 && $err !~ /\bERROR\b/, "$where runs: $first_line")
	  or diag("SQL:\n$sql\nstderr:\n$err");
}

$node->stop;
done_testing();
