package engine

// wheel is a loop's timing wheel: one list head per tick slot, the lists
// threaded through the tunnels themselves (next/prev), so a tunnel costs no
// timer object and arming it costs two index writes. Every deadline a tunnel
// has (connect, backend answer, idle, linger, a drain close) goes through it.
//
// Activity does not move a tunnel: the tunnel records the tick of its last
// activity and, when its slot comes round, the timeout handler computes the
// real deadline and re-arms it if that is still ahead. That keeps the hot
// path to one store per transfer.
type wheel struct {
	slots [wheelSlots]int32
	now   uint32 // last tick processed
	tabs  *slab
}

const (
	wheelSlots = 1024 // power of two; with 100 ms ticks the wheel spans 102 s
	wheelMask  = wheelSlots - 1
	none       = int32(-1)
)

func (w *wheel) init(s *slab, now uint32) {
	w.tabs = s
	w.now = now
	for i := range w.slots {
		w.slots[i] = none
	}
}

// arm schedules tunnel i to be looked at on tick due (or the soonest tick
// after now). A deadline beyond the wheel's span is parked in the farthest
// slot and re-armed from there.
func (w *wheel) arm(i int32, due uint32) {
	t := w.tabs.at(i)
	if t.slot >= 0 {
		w.disarm(i)
	}
	t.due = due
	if int32(due-w.now) <= 0 {
		due = w.now + 1
	} else if due-w.now >= wheelSlots {
		due = w.now + wheelSlots - 1
	}
	slot := int16(due & wheelMask)
	s := &w.slots[slot]
	t.prev, t.next, t.slot = none, *s, slot
	if *s != none {
		w.tabs.at(*s).prev = i
	}
	*s = i
}

// disarm removes tunnel i from the wheel; it is a no-op when not armed.
func (w *wheel) disarm(i int32) {
	t := w.tabs.at(i)
	if t.slot < 0 {
		return
	}
	if t.prev != none {
		w.tabs.at(t.prev).next = t.next
	} else {
		w.slots[t.slot] = t.next
	}
	if t.next != none {
		w.tabs.at(t.next).prev = t.prev
	}
	t.prev, t.next, t.slot = none, none, -1
}

// advance moves the wheel to tick now, calling fire for every tunnel whose
// due tick has come. fire may re-arm or free the tunnel it is given, and
// must not touch another tunnel's timer: the slot's list is walked detached.
func (w *wheel) advance(now uint32, fire func(i int32)) {
	for int32(now-w.now) > 0 {
		w.now++
		s := &w.slots[w.now&wheelMask]
		// Detach the whole list first: fire may re-arm into this very
		// slot (a deadline exactly one wheel turn ahead).
		i := *s
		*s = none
		for i != none {
			t := w.tabs.at(i)
			next := t.next
			t.prev, t.next, t.slot = none, none, -1
			if int32(t.due-w.now) > 0 {
				w.arm(i, t.due)
			} else {
				fire(i)
			}
			i = next
		}
	}
}
