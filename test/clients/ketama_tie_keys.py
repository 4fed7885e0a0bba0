"""Equal ketama points: find a node name that shares a point with a ring,
or keys that land on points shared by two nodes.

Usage: python3 ketama_tie_keys.py collide PREFIX < "NODE<TAB>POINTS" lines
       python3 ketama_tie_keys.py keys < "NODE<TAB>POINTS" lines, in ring order
"collide" prints a node name PREFIX<n> whose first four points include a
point the ring keeps when the node joins it.  "keys" prints "KEY<TAB>NODE" lines: keys whose first
point >= hash is a value two nodes share, with the node the tie rule picks
(the one earlier in ring order); it exits with status 3 if there is no such
point.  Run by test/t/040_ring_clients.pl.
"""
import bisect
import hashlib
import sys


def points(name, count):
    """The ketama points of a node: four per MD5("name-i") digest."""
    for h in range(count // 4):
        digest = hashlib.md5(f"{name}-{h}".encode("utf-8")).digest()
        for x in range(4):
            yield int.from_bytes(digest[4 * x:4 * x + 4], "little")


def read_ring(spare=0):
    """Point value -> earliest node, and the values two nodes share.  With
    spare=4, leave out each node's last four points (which it may lose when
    one more node joins)."""
    owner, shared = {}, set()
    for line in sys.stdin.read().splitlines():
        node, count = line.split("\t")
        for value in points(node, int(count) - spare):
            if value in owner and owner[value] != node:
                shared.add(value)
            owner.setdefault(value, node)
    return owner, shared


def collide(prefix):
    owner, _ = read_ring(spare=4)
    for n in range(100_000_000):
        name = f"{prefix}{n}"
        if any(v in owner for v in points(name, 4)):
            print(name)
            return


def tie_keys():
    owner, shared = read_ring()
    if not shared:
        sys.exit(3)
    values = sorted(owner)
    found = {v: 0 for v in shared}
    for n in range(100_000_000):
        key = f"tie:{n}"
        h = int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little")
        v = values[bisect.bisect_left(values, h) % len(values)]
        if v in found and found[v] < 5:
            print(f"{key}\t{owner[v]}")
            found[v] += 1
            if min(found.values()) >= 5:
                return


if sys.argv[1] == "collide":
    collide(sys.argv[2])
else:
    tie_keys()
