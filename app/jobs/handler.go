package jobs

import (
	"bytes"
	"encoding/json"
	"sync/atomic"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/ports"
)

// handler receives the client's subscription on the transport's goroutine.
// It does only what must be done there: check the topic, find the token,
// hand replies to the waiting table and queue events. It never blocks.
type handler struct{ c *Client }

// HandleMessage routes one message: a reply to its waiting request, a
// notification to the Changed flag and the event queue. Anything else is
// ignored.
func (h handler) HandleMessage(m ports.Message) {
	c := h.c
	t, err := jobtopic.Parse(m.Topic)
	if err != nil || t.Thing != c.thing || t.Kind.IsRequest() {
		c.drop(&c.ignored, "not a reply or notification of this thing", m)
		return
	}
	switch t.Kind {
	case jobtopic.Notify:
		c.notify(m)
	case jobtopic.NotifyNext:
		c.notifyNext(m)
	default:
		k := key{kind: t.Kind.Request(), jobID: t.JobID, token: clientToken(m.Payload)}
		// The table drops (and counts) a reply nobody waits for, including
		// one without a readable token.
		if !c.table.Deliver(k, response{rejected: t.Kind.IsRejected(), payload: m.Payload}) {
			c.drop(nil, "reply nobody waits for", m)
		}
	}
}

// HandleState reports a lost subscription as EventLost; a restored one sets
// the Changed flag and schedules a resync.
func (h handler) HandleState(s ports.State) {
	c := h.c
	switch s {
	case ports.StateLost:
		if c.onEvent != nil {
			c.enqueue(item{ev: Event{Kind: EventLost}})
		}
	case ports.StateRestored:
		c.changed.Store(true)
		if c.onEvent != nil {
			c.enqueue(item{resync: true})
		}
	}
}

// dup reports whether payload equals *last, and remembers it otherwise.
func (c *Client) dup(last *[]byte, payload []byte) bool {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if *last != nil && bytes.Equal(*last, payload) {
		return true
	}
	*last = payload
	return false
}

// drop counts a dropped message in counter (none when nil: the reply
// table counts its own) and logs it at debug level.
func (c *Client) drop(counter *atomic.Uint64, reason string, m ports.Message) {
	if counter != nil {
		counter.Add(1)
	}
	if c.logger != nil {
		c.logger.Debug("jobs: message dropped", "reason", reason, "thing", c.thing, "topic", m.Topic, "bytes", len(m.Payload))
	}
}

func (c *Client) notify(m ports.Message) {
	if c.dup(&c.lastNotify, m.Payload) {
		c.drop(&c.duplicates, "duplicate notification", m)
		return
	}
	var n job.JobExecutionsChanged
	if err := json.Unmarshal(m.Payload, &n); err != nil {
		c.drop(&c.ignored, "undecodable notification", m)
		return
	}
	c.changed.Store(true)
	if c.onEvent != nil {
		c.enqueue(item{ev: Event{Kind: EventJobsChanged, JobsChanged: &n}})
	}
}

func (c *Client) notifyNext(m ports.Message) {
	if c.dup(&c.lastNext, m.Payload) {
		c.drop(&c.duplicates, "duplicate notification", m)
		return
	}
	var n job.NextJobExecutionChanged
	if err := json.Unmarshal(m.Payload, &n); err != nil {
		c.drop(&c.ignored, "undecodable notification", m)
		return
	}
	c.changed.Store(true)
	if c.onEvent != nil {
		c.enqueue(item{ev: Event{Kind: EventNextChanged, NextChanged: &n}})
	}
}

// clientToken returns the clientToken of a reply body, or "" when it has
// none. A body that is not valid JSON is scanned up to its first error, so
// that a truncated reply still completes its request (with a decode error)
// instead of leaving it to time out.
func clientToken(payload []byte) string {
	// Every reply is decoded in full by its request later: here a scan
	// finds the token without reflection in the usual case.
	if json.Valid(payload) {
		if tok, ok := job.ScanClientToken(payload); ok {
			return tok
		}
	}
	var b struct {
		ClientToken string `json:"clientToken"`
	}
	err := json.Unmarshal(payload, &b)
	if _, syntax := err.(*json.SyntaxError); !syntax {
		return b.ClientToken
	}
	return scanToken(payload)
}

// scanToken reads the top-level members of a JSON object until clientToken
// or the first syntax error.
func scanToken(payload []byte) string {
	d := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for d.More() {
		name, err := d.Token()
		if err != nil {
			return ""
		}
		if name == "clientToken" {
			var s string
			if d.Decode(&s) != nil {
				return ""
			}
			return s
		}
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}
