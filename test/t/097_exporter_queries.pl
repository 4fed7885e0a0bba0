# test/t/097_exporter_queries.pl -- examples/postgres_exporter/cachebridge.yaml
# is a postgres_exporter queries file that works: every query runs as a
# role that is only in pg_monitor, returns exactly the columns its metrics
# name, with numbers where Prometheus needs numbers, and together the
# queries cover every column of cachebridge.stats (a column added to the
# view must be exported, or named below as no metric).

use strict;
use warnings;

use File::Basename qw(dirname);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use CacheBridgeTest;

# Columns of cachebridge.stats that are not metrics, and why.
my %not_metrics = (last_error => 'text: read it in SQL');

my $file = dirname($ENV{TESTDIR} // 'test')
  . '/examples/postgres_exporter/cachebridge.yaml';
ok(-f $file, 'the queries file exists');

# postgres_exporter reads YAML; so does python3-yaml (core Perl does not).
my $json = `python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' '$file'`;
is($?, 0, 'the queries file is valid YAML');
my $queries = decode_json($json);
ok(keys %$queries >= 1, 'it defines queries');

my $redis = CacheBridgeTest::Redis->new(name => 'exporter');
my $node = CacheBridgeTest::new_node('exporter', redis => $redis);
$node->safe_psql('postgres', q{
	CREATE ROLE exporter LOGIN IN ROLE pg_monitor;
	CREATE TABLE item (id int PRIMARY KEY, v text);
	CREATE TRIGGER item_cache AFTER INSERT OR UPDATE OR DELETE ON item
	    FOR EACH ROW EXECUTE FUNCTION cachebridge.write_through('item:{id}');
	INSERT INTO item SELECT i, 'v' FROM generate_series(1, 10) i;
	SELECT cachebridge.set('k', 'v'), cachebridge.get('k');
});

my %usages = map { $_ => 1 } qw(COUNTER GAUGE LABEL DISCARD DURATION MAPPEDMETRIC);
my $all_queries = '';
for my $ns (sort keys %$queries)
{
	my $q = $queries->{$ns};
	my $sql = $q->{query};
	$sql =~ s/;\s*$//;
	$all_queries .= $sql;

	my ($rc, $out, $err) = $node->psql('postgres',
		"SELECT pg_catalog.row_to_json(q) FROM ($sql) AS q",
		extra_params => [ '-U', 'exporter' ]);
	is($rc, 0, "$ns: the query runs as a pg_monitor role") or diag($err);
	my @rows = map { decode_json($_) } grep { /\S/ } split /\n/, $out;
	is(scalar @rows, 1, "$ns: one row");
	my $row = $rows[0] // {};

	my %metric;
	for my $m (@{ $q->{metrics} })
	{
		my ($name, $def) = %$m;
		$metric{$name} = $def;
		ok($usages{ $def->{usage} // '' }, "$ns.$name: usage $def->{usage} is one postgres_exporter knows");
		ok(($def->{description} // '') ne '', "$ns.$name: described");
		ok(exists $row->{$name}, "$ns.$name: a column of the query");
		my $v = $row->{$name};
		if (($def->{usage} // '') =~ /^(COUNTER|GAUGE)$/)
		{
			ok(!defined $v || (!ref $v && $v =~ /^-?[0-9.eE+-]+$/),
				"$ns.$name: a number (or NULL)") or diag explain $v;
		}
	}
	is_deeply([ sort keys %$row ], [ sort keys %metric ],
		"$ns: every column of the query is a metric and every metric a column");

	# activity shows
	if ($ns eq 'cachebridge')
	{
		ok($row->{delivered} >= 10, 'delivered counts the row writes');
		ok(defined $row->{direct_lag_p99} && $row->{direct_lag_p99} >= 0,
			'the direct lag is exported');
		is($row->{cluster_wide}, 1, 'counters are cluster-wide');
	}
}

# every column of the view is exported (by name in some query) or no metric
my @columns = split /\n/, $node->safe_psql('postgres', q{
	SELECT attname FROM pg_attribute
	WHERE attrelid = 'cachebridge.stats'::regclass AND attnum > 0 AND NOT attisdropped
	ORDER BY attnum});
ok(@columns >= 20, 'cachebridge.stats has its columns (' . scalar(@columns) . ')');
for my $c (@columns)
{
	next if $not_metrics{$c};
	like($all_queries, qr/\b\Q$c\E\b/, "column $c of cachebridge.stats is exported");
}

# and the exporter's role reads statistics, not the cache
my ($rc, $out, $err) = $node->psql('postgres', "SELECT cachebridge.get('k')",
	extra_params => [ '-U', 'exporter' ]);
like($err, qr/permission denied for function get/, 'the exporter role cannot read cached data');

$node->stop;
done_testing();
