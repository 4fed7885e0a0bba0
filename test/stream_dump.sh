#!/bin/sh
# stream_dump.sh STREAM -- prints the entries of a Redis stream of the test
# server ($CB_REDIS_PORT) as "field: value" lines, with what changes from
# run to run replaced by stable names:
#   lsn           T1, T2, ... numbered by transaction, in order of appearance
#   xid           X1, X2, ...
#   committed_at  <time> if it is an ISO 8601 UTC timestamp
# and a line "ERROR: ..." if a transaction's entries are not contiguous or
# its lsn is not above the one before it (streams are in commit order).
redis-cli -p "$CB_REDIS_PORT" --raw xrange "$1" - + | perl -ne '
	chomp;
	if (!defined $field) {
		if (/^\d+-\d+$/) { print "--\n"; next }
		$field = $_;
		next;
	}
	my $v = $_;
	if ($field eq "lsn") {
		if ($v !~ m{^([0-9A-F]+)/([0-9A-F]+)$}) { $v = "BAD lsn $v" }
		else {
			my $n = hex($1) * 4294967296 + hex($2);
			if ($v ne $last) {
				if (exists $lsn{$v}) { print "ERROR: entries of $lsn{$v} are not contiguous\n" }
				elsif (defined $last_n && $n <= $last_n) { print "ERROR: lsn $v is not above $last\n" }
				$lsn{$v} //= "T" . ++$nlsn;
				($last, $last_n) = ($v, $n);
			}
			$v = $lsn{$v};
		}
	} elsif ($field eq "xid") {
		$v = $v =~ /^\d+$/ ? ($xid{$v} //= "X" . ++$nxid) : "BAD xid $v";
	} elsif ($field eq "committed_at") {
		$v = $v =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/ ? "<time>" : "BAD time $v";
	}
	print "$field: $v\n";
	undef $field;
'
