package jobs

import (
	"fmt"

	"github.com/iotjobs/iotjobs/domain/job"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of events.
const (
	// EventJobsChanged: a notify message arrived, the pending list
	// changed; Event.JobsChanged holds it.
	EventJobsChanged EventKind = iota + 1
	// EventNextChanged: a notify-next message arrived, the next execution
	// changed; Event.NextChanged holds it (its Execution is nil when
	// nothing is pending).
	EventNextChanged
	// EventLost: the transport lost the subscription; notifications may be
	// missed until it is restored.
	EventLost
	// EventResynced: the subscription was restored and the pending set
	// re-read; Event.Pending holds it, or Event.Err says why it could not
	// be read.
	EventResynced
)

// String returns the kind's name, e.g. "JobsChanged".
func (k EventKind) String() string {
	switch k {
	case EventJobsChanged:
		return "JobsChanged"
	case EventNextChanged:
		return "NextChanged"
	case EventLost:
		return "Lost"
	case EventResynced:
		return "Resynced"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is something that happened to the client's thing, passed to
// Options.OnEvent. Only the field of its Kind is set.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// JobsChanged is the notify message of EventJobsChanged.
	JobsChanged *job.JobExecutionsChanged
	// NextChanged is the notify-next message of EventNextChanged.
	NextChanged *job.NextJobExecutionChanged
	// Pending is the pending set re-read for EventResynced.
	Pending *job.GetPendingResponse
	// Err is why the pending set could not be re-read, for EventResynced.
	Err error
}

// item is an entry of the event queue: an event to pass on, or a resync to
// do first.
type item struct {
	ev     Event
	resync bool
}

// enqueue adds it to the event queue and wakes the event goroutine. It
// never blocks for long: the queue has no bound.
func (c *Client) enqueue(it item) {
	c.qmu.Lock()
	c.queue = append(c.queue, it)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // already woken
	}
}

func (c *Client) pop() (item, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return item{}, false
	}
	it := c.queue[0]
	c.queue[0] = item{}
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.queue = nil // let the backing array go
	}
	return it, true
}

// run is the event goroutine: it drains the queue in order, calling
// OnEvent, until Close.
func (c *Client) run() {
	defer close(c.done)
	for {
		select {
		case <-c.closing.Done():
			return
		case <-c.wake:
		}
		for {
			it, ok := c.pop()
			if !ok {
				break
			}
			if c.closing.Err() != nil {
				return
			}
			ev := it.ev
			if it.resync {
				pending, err := c.GetPending(c.closing)
				ev = Event{Kind: EventResynced, Pending: pending, Err: err}
				if c.closing.Err() != nil {
					return
				}
			}
			c.onEvent(ev)
		}
	}
}
