package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/domain/jobtopic"
	"github.com/iotjobs/iotjobs/domain/reply"
	"github.com/iotjobs/iotjobs/ports"
)

// DefaultTimeout is the deadline applied to a request whose context has
// none, when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Errors returned by a Client. Test with errors.Is.
var (
	// ErrClosed is returned by requests made after Close, and by requests
	// in flight when Close is called.
	ErrClosed = errors.New("jobs: client closed")
	// ErrTokenInFlight is returned by a request whose client token is
	// already used by a request of the same kind and job id in flight.
	// Nothing is published.
	ErrTokenInFlight = errors.New("jobs: client token already in flight")
	// ErrInvalidReply is returned for a reply that cannot be decoded: a
	// reply that is not understood never passes for success.
	ErrInvalidReply = errors.New("jobs: invalid reply")
)

// Options configure a Client. Only Thing is required.
type Options struct {
	// Thing is the name of the thing whose jobs the client handles:
	// 1–128 characters of [a-zA-Z0-9:_-].
	Thing string
	// Timeout is the deadline of a request whose context has none, and of
	// the subscription made by New and the resync after a reconnect. Zero
	// means DefaultTimeout; it must not be negative.
	Timeout time.Duration
	// QoS is the quality of service of requests: ports.AtLeastOnce
	// (QoS 1, as AWS recommends) whether it is left zero or set to 1.
	// Since ports.AtMostOnce is its zero value it cannot select QoS 0: set
	// AtMostOnce for that. Values other than 0 and 1 are refused by New.
	QoS ports.QoS
	// AtMostOnce publishes requests with QoS 0 instead of QoS 1. A request
	// or its reply may then be lost; the request's deadline still bounds
	// the wait.
	AtMostOnce bool
	// OnEvent, when set, receives the client's Events: notifications,
	// subscription loss and resyncs. It is called from one goroutine owned
	// by the client, one call at a time, in the order the events happened,
	// and never after Close returns. It may make requests on the client
	// but must not call Close. While it runs, later events wait in an
	// unbounded queue.
	OnEvent func(Event)
	// Logger, if set, receives a debug record for every message the
	// client drops: other things' or request topics, undecodable
	// notifications, duplicates and replies nobody waits for (the topic and
	// size, never the payload). Stats counts them either way.
	Logger *slog.Logger
}

// key identifies the reply a request waits for: its kind (the request's,
// not the reply's), its job id as written in the topic (job.NextJobID for
// a Describe of the next job, empty for GetPending and StartNext) and its
// client token.
type key struct {
	kind  jobtopic.Kind
	jobID string
	token string
}

// response is a reply as received: decoded by the waiting request, not on
// the transport's goroutine.
type response struct {
	rejected bool
	payload  []byte
}

// Client is the Jobs client of one thing. Make one with New; it is safe for
// concurrent use.
type Client struct {
	ps      ports.PubSub
	thing   string
	timeout time.Duration
	qos     ports.QoS
	onEvent func(Event)
	logger  *slog.Logger // nil: none
	sub     ports.Subscription

	getPendingTopic string
	startNextTopic  string

	table reply.Table[key, response]

	// closing is canceled, with cause ErrClosed, when Close starts.
	closing   context.Context
	stop      context.CancelCauseFunc
	closeOnce sync.Once
	done      chan struct{} // closed when the event goroutine has ended

	changed atomic.Bool

	hmu        sync.Mutex // guards the handler's state below
	lastNotify []byte
	lastNext   []byte

	qmu   sync.Mutex // guards queue
	queue []item
	wake  chan struct{}

	jmu  sync.Mutex // guards jobs
	jobs map[string]*Job

	ignored    atomic.Uint64
	duplicates atomic.Uint64
}

// New makes the Jobs client of opts.Thing over ps. It subscribes to every
// reply and notification of the thing (jobtopic.Filter, QoS 1, NoLocal)
// before it returns, so no reply can be missed. ctx bounds the
// subscription (Options.Timeout applies when it has no deadline). The caller
// keeps ownership of ps: Close does not close it.
func New(ctx context.Context, ps ports.PubSub, opts Options) (*Client, error) {
	if ps == nil {
		return nil, errors.New("jobs: new: nil PubSub")
	}
	if err := job.ValidateThingName(opts.Thing); err != nil {
		return nil, fmt.Errorf("jobs: new: %w", err)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("jobs: new: %w", &job.ValidationError{Field: "Timeout", Reason: fmt.Sprintf("%v is negative", opts.Timeout)})
	}
	if !opts.QoS.Valid() {
		return nil, fmt.Errorf("jobs: new: %w: %d", ports.ErrInvalidQoS, opts.QoS)
	}
	filter, err := jobtopic.Filter(opts.Thing)
	if err != nil {
		return nil, fmt.Errorf("jobs: new: %w", err)
	}
	c := &Client{
		ps:              ps,
		thing:           opts.Thing,
		timeout:         opts.Timeout,
		qos:             ports.AtLeastOnce,
		onEvent:         opts.OnEvent,
		logger:          opts.Logger,
		getPendingTopic: jobtopic.Topic{Thing: opts.Thing, Kind: jobtopic.GetPending}.String(),
		startNextTopic:  jobtopic.Topic{Thing: opts.Thing, Kind: jobtopic.StartNext}.String(),
		done:            make(chan struct{}),
		wake:            make(chan struct{}, 1),
		jobs:            make(map[string]*Job),
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if opts.AtMostOnce {
		c.qos = ports.AtMostOnce
	}
	c.closing, c.stop = context.WithCancelCause(context.Background())

	sctx, cancel := c.deadline(ctx)
	defer cancel()
	sub, err := ps.Subscribe(sctx, ports.Filter{Topic: filter, QoS: ports.AtLeastOnce, NoLocal: true}, handler{c})
	if err != nil {
		c.stop(ErrClosed)
		return nil, fmt.Errorf("jobs: new: subscribe %s: %w", filter, err)
	}
	c.sub = sub
	go c.run()
	return c, nil
}

// Thing returns the name of the client's thing.
func (c *Client) Thing() string { return c.thing }

// Close ends the client: requests in flight fail at once with an error
// wrapping ErrClosed, the subscription is removed, queued events are
// discarded and the event goroutine ends (Close waits for a running OnEvent
// to return). It returns the error of the unsubscription, if any; a second
// Close returns nil. It does not close the transport.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.stop(ErrClosed)
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		err = c.sub.Unsubscribe(ctx)
		if errors.Is(err, ports.ErrClosed) {
			err = nil // the transport is closed: the subscription is gone
		}
		<-c.done
		c.qmu.Lock()
		c.queue = nil
		c.qmu.Unlock()
		if err != nil {
			err = fmt.Errorf("jobs: close: %w", err)
		}
	})
	return err
}

// Stats are counters of a Client, for tests and monitoring.
type Stats struct {
	// Waiting is the number of requests waiting for a reply.
	Waiting int
	// DroppedReplies counts replies nobody waited for: unknown, duplicate
	// or late (after their request timed out).
	DroppedReplies uint64
	// DuplicateNotifications counts notifications dropped as duplicates.
	DuplicateNotifications uint64
	// Ignored counts messages ignored: other things' topics, request
	// topics, non-jobs topics, and notifications that cannot be decoded.
	Ignored uint64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Waiting:                c.table.Len(),
		DroppedReplies:         c.table.Dropped(),
		DuplicateNotifications: c.duplicates.Load(),
		Ignored:                c.ignored.Load(),
	}
}

// deadline returns ctx with the client's timeout when ctx has no deadline.
func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}
