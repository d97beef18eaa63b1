package balance

import (
	"fmt"
	"math/bits"
	"slices"
)

// The hash policy is a consistent-hash ring with virtual nodes, as nginx's
// "hash $key consistent" (ketama): each backend gets ringPointsPerWeight
// points per unit of weight, placed by hashing its address, and a key goes
// to the owner of the first point at or after the key's hash.
//
// A ring rather than a Maglev table because a ring keeps the one property
// the issue asks for exactly: when a backend leaves, only its keys move.
// Its points vanish and its keys fall to the next points clockwise; every
// other key still finds the same first point. A Maglev table rebuilt without
// a backend also reassigns a few percent of other backends' slots. The same
// walk serves ineligible backends: a draining, down, disabled or full
// backend's keys go to the next eligible point, so draining a backend moves
// exactly the keys that removing it would, and removing it after the drain
// moves nothing more. Slow start does not apply (nginx Plus refuses
// slow_start with hash): a key's backend does not depend on load.

// ringPointsPerWeight is ketama's and nginx's 160 points per weight unit;
// with it a backend's share of keys is within about ±10% of its weight's.
const ringPointsPerWeight = 160

// Ring entries pack the point's position (top 48 bits of its hash) with the
// index of its owner in the set's list (low 16 bits), so the binary search
// and the owner lookup read one word.
const (
	ringOwnerBits = 16
	ringOwnerMask = 1<<ringOwnerBits - 1
	// maxHashBackends follows from the owner bits.
	maxHashBackends = 1 << ringOwnerBits
	// maxRingPoints bounds the ring at 32 MiB (8 bytes a point).
	maxRingPoints = 1 << 22
)

// ring is the sorted points and an index over their top bits: index[j] is
// the first point whose top bits are >= j, so a lookup reads two index
// entries and scans one or two points instead of binary-searching (which
// was over half of Pick at 16 backends, 2560 points).
type ring struct {
	points []uint64
	index  []uint32 // 1<<bits + 1 entries
	shift  uint     // 64 - bits
}

// buildRing places every backend's points. A point depends only on the
// backend's address and the point's index, so adding, removing or
// re-weighting one backend leaves every other point where it was.
func buildRing(list []*Backend) (*ring, error) {
	if len(list) > maxHashBackends {
		return nil, fmt.Errorf("hash policy: %d backends: at most %d", len(list), maxHashBackends)
	}
	points := 0
	for _, b := range list {
		points += b.Weight() * ringPointsPerWeight
	}
	if points > maxRingPoints {
		return nil, fmt.Errorf("hash policy: ring of %d points (%d per weight unit): at most %d; lower the weights",
			points, ringPointsPerWeight, maxRingPoints)
	}
	pts := make([]uint64, 0, points)
	for i, b := range list {
		seed := hashKey([]byte(b.addr))
		for j := range b.Weight() * ringPointsPerWeight {
			h := mix64(seed + uint64(j+1)*0x9e3779b97f4a7c15)
			pts = append(pts, h&^ringOwnerMask|uint64(i))
		}
	}
	slices.Sort(pts)
	// About one point per index slot.
	nbits := min(max(bits.Len(uint(len(pts))), 1), 22)
	r := &ring{points: pts, index: make([]uint32, 1<<nbits+1), shift: uint(64 - nbits)}
	k := 0
	for j := range r.index {
		for k < len(pts) && pts[k]>>r.shift < uint64(j) {
			k++
		}
		r.index[j] = uint32(k)
	}
	return r, nil
}

// search returns the position of the first point at or after h, or
// len(points) past the last.
func (r *ring) search(h uint64) int {
	j := h >> r.shift
	i, end := int(r.index[j]), int(r.index[j+1])
	for i < end && r.points[i] < h {
		i++
	}
	return i
}

// pickHash walks the ring from the key's point to the first eligible owner.
// seen marks owners already rejected so a walk past many points of a few
// down backends stays cheap, and stops once every owner was rejected.
func (s *backendSet) pickHash(key []byte, exclude []*Backend, c *clock) *Backend {
	if s.ring == nil || len(s.ring.points) == 0 {
		return nil
	}
	ring := s.ring.points
	i := s.ring.search(hashKey(key) &^ ringOwnerMask)
	var seen [8]uint64 // owners < 512
	rejected := 0
	for range len(ring) {
		if i == len(ring) {
			i = 0
		}
		o := int(ring[i] & ringOwnerMask)
		i++
		if o < len(seen)*64 && seen[o/64]&(1<<(o%64)) != 0 {
			continue
		}
		b := s.list[o]
		ok := b.flags.Load() == 0
		if !ok {
			_, _, ok = b.candidate(c)
		}
		if ok && (len(exclude) == 0 || !excluded(b, exclude)) {
			return b
		}
		if o < len(seen)*64 {
			seen[o/64] |= 1 << (o % 64)
			if rejected++; rejected == len(s.list) {
				return nil
			}
		}
	}
	return nil
}

// hashKey is FNV-1a 64 followed by a 64-bit finaliser: FNV-1a alone
// scatters the low bits well but not the high ones the ring position is
// taken from, for short keys such as IPv4 addresses.
func hashKey(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

// mix64 is the finaliser of MurmurHash3 (fmix64): full avalanche.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
