package engine

import (
	"slices"
	"testing"
)

// wheelHarness is a slab and a wheel over it, recording what fires.
func wheelHarness(n int) (*slab, *wheel, *[]int32) {
	s := &slab{}
	s.init()
	for i := 0; i < n; i++ {
		s.alloc()
	}
	w := &wheel{}
	w.init(s, 0)
	fired := &[]int32{}
	return s, w, fired
}

func TestWheelFiresAtDue(t *testing.T) {
	_, w, fired := wheelHarness(4)
	w.arm(0, 5)
	w.arm(1, 3)
	w.arm(2, 3)
	w.arm(3, 2000) // beyond the wheel's span: parked and re-armed
	fire := func(i int32) { *fired = append(*fired, i) }
	for now := uint32(1); now <= 2100; now++ {
		before := len(*fired)
		w.advance(now, fire)
		for _, i := range (*fired)[before:] {
			want := map[int32]uint32{0: 5, 1: 3, 2: 3, 3: 2000}[i]
			if now != want {
				t.Errorf("tunnel %d fired at %d, want %d", i, now, want)
			}
		}
	}
	got := slices.Clone(*fired)
	slices.Sort(got)
	if !slices.Equal(got, []int32{0, 1, 2, 3}) {
		t.Fatalf("fired %v", *fired)
	}
}

func TestWheelDisarmAndRearm(t *testing.T) {
	_, w, fired := wheelHarness(3)
	fire := func(i int32) { *fired = append(*fired, i) }
	w.arm(0, 2)
	w.arm(1, 2)
	w.arm(2, 2)
	w.disarm(1) // middle of a list
	w.disarm(2) // head of the list
	w.arm(0, 4) // moved later
	w.advance(3, fire)
	if len(*fired) != 0 {
		t.Fatalf("fired %v before any due tick", *fired)
	}
	w.advance(4, fire)
	if !slices.Equal(*fired, []int32{0}) {
		t.Fatalf("fired %v, want [0]", *fired)
	}
	w.disarm(0) // already fired: a no-op
}

func TestWheelPastDueFiresNextTick(t *testing.T) {
	_, w, fired := wheelHarness(1)
	fire := func(i int32) { *fired = append(*fired, i) }
	w.advance(10, fire)
	w.arm(0, 5) // already past
	w.advance(11, fire)
	if !slices.Equal(*fired, []int32{0}) {
		t.Fatalf("fired %v", *fired)
	}
}

// TestWheelRearmFromFire: a timeout handler that re-arms its tunnel one
// full turn ahead lands in the slot being processed; it must fire then,
// not at once.
func TestWheelRearmFromFire(t *testing.T) {
	_, w, fired := wheelHarness(1)
	count := 0
	fire := func(i int32) {
		count++
		*fired = append(*fired, i)
		if count == 1 {
			w.arm(i, w.now+wheelSlots)
		}
	}
	w.arm(0, 1)
	w.advance(1, fire)
	if count != 1 {
		t.Fatalf("fired %d times at tick 1", count)
	}
	w.advance(wheelSlots, fire)
	if count != 1 {
		t.Fatalf("fired early: %d times by tick %d", count, wheelSlots)
	}
	w.advance(wheelSlots+1, fire)
	if count != 2 {
		t.Fatalf("fired %d times by tick %d, want 2", count, wheelSlots+1)
	}
}
