package ports_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/ports"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// Exact names.
		{"a", "a", true},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a", "a/b", false},
		{"a/b", "a", false},
		{"a/", "a/", true},
		{"a/", "a", false},
		{"/a", "/a", true},
		{"/a", "a", false},
		{"A", "a", false},

		// '+' matches exactly one level, possibly empty.
		{"+", "a", true},
		{"+", "a/b", false},
		{"+", "/a", false},
		{"+/+", "/a", true},
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/+/c", "a//c", true},
		{"a/+/c", "a/b/d", false},
		{"a/+/c", "a/b/c/d", false},
		{"+/+/+", "a/b/c", true},

		// '#' matches the rest, including the parent level.
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true},
		{"a/#", "a/", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/b/#", "a", false},
		{"+/#", "a", true},
		{"+/#", "a/b", true},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},

		// A leading wildcard never matches a topic starting with '$'.
		{"#", "$SYS/x", false},
		{"#", "$aws", false},
		{"+", "$aws", false},
		{"+/things/T/jobs/#", "$aws/things/T/jobs/x/get/accepted", false},
		{"+/#", "$aws/x", false},
		{"$aws/things/T/jobs/#", "$aws/things/T/jobs/x/get/accepted", true},
		{"$aws/things/T/jobs/#", "$aws/things/T/jobs", true},
		{"$aws/things/+/jobs/notify", "$aws/things/T/jobs/notify", true},
		{"$aws/things/+/jobs/notify", "$aws/things/T/jobs/notify-next", false},
		{"$aws/#", "$aws", true},
		{"$aws", "$aws", true},
		// '$' is special only at the start of the topic.
		{"+/$x", "a/$x", true},
		{"a/#", "a/$x", true},
	}
	for _, tt := range tests {
		if got := ports.Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"a//b", true},
		{"$aws/things/T/jobs/get", true},
		{"ünïcödé/☃", true},
		{" ", true},
		{"", false},
		{"a/+", false},
		{"a/#", false},
		{"+", false},
		{"#", false},
		{"a+b", false},
		{"a\x00b", false},
		{"a\xffb", false},
	}
	for _, tt := range tests {
		err := ports.ValidateTopic(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidateTopic(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ports.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrInvalidTopic", tt.name, err)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		ok     bool
	}{
		{"a", true},
		{"a/b", true},
		{"+", true},
		{"#", true},
		{"+/+", true},
		{"a/+/c", true},
		{"a/#", true},
		{"+/#", true},
		{"/#", true},
		{"a//+", true},
		{"$aws/things/+/jobs/#", true},
		{"", false},
		{"a/#/b", false},
		{"#/a", false},
		{"##", false},
		{"a#", false},
		{"a/b#", false},
		{"a+", false},
		{"+a/b", false},
		{"a/++", false},
		{"a\x00", false},
		{"\xc3\x28", false},
	}
	for _, tt := range tests {
		err := ports.ValidateFilter(tt.filter)
		if tt.ok && err != nil {
			t.Errorf("ValidateFilter(%q) = %v, want nil", tt.filter, err)
		}
		if !tt.ok && !errors.Is(err, ports.ErrInvalidTopic) {
			t.Errorf("ValidateFilter(%q) = %v, want ErrInvalidTopic", tt.filter, err)
		}
	}
}

func TestQoSValid(t *testing.T) {
	for q, want := range map[ports.QoS]bool{0: true, 1: true, 2: false, 3: false, 255: false} {
		if got := q.Valid(); got != want {
			t.Errorf("QoS(%d).Valid() = %v, want %v", q, got, want)
		}
	}
}

func TestCheckMessage(t *testing.T) {
	small := ports.Limits{MaxPayload: 4, MaxTopicLength: 3}
	tests := []struct {
		name      string
		limits    ports.Limits
		m         ports.Message
		want      error  // nil, or the sentinel the error must match
		limit     string // for a *LimitError: its What
		size, max int
	}{
		{name: "ok", m: ports.Message{Topic: "a/b", Payload: []byte("x"), QoS: 1}},
		{name: "empty payload", m: ports.Message{Topic: "a"}},
		{name: "default payload limit", m: ports.Message{Topic: "a", Payload: make([]byte, ports.MaxPayload)}},
		{name: "default topic limit", m: ports.Message{Topic: strings.Repeat("t", ports.MaxTopicLength)}},
		{name: "at small limits", limits: small, m: ports.Message{Topic: "abc", Payload: []byte("1234")}},
		{name: "negative limits mean default", limits: ports.Limits{MaxPayload: -1, MaxTopicLength: -1}, m: ports.Message{Topic: "a", Payload: make([]byte, ports.MaxPayload)}},
		{
			name: "payload over default", m: ports.Message{Topic: "a", Payload: make([]byte, ports.MaxPayload+1)},
			want: ports.ErrTooLarge, limit: "payload", size: ports.MaxPayload + 1, max: ports.MaxPayload,
		},
		{
			name: "topic over default", m: ports.Message{Topic: strings.Repeat("t", ports.MaxTopicLength+1)},
			want: ports.ErrTooLarge, limit: "topic", size: ports.MaxTopicLength + 1, max: ports.MaxTopicLength,
		},
		{
			name: "payload over small", limits: small, m: ports.Message{Topic: "a", Payload: []byte("12345")},
			want: ports.ErrTooLarge, limit: "payload", size: 5, max: 4,
		},
		{
			name: "topic over small", limits: small, m: ports.Message{Topic: "abcd"},
			want: ports.ErrTooLarge, limit: "topic", size: 4, max: 3,
		},
		{name: "empty topic", m: ports.Message{}, want: ports.ErrInvalidTopic},
		{name: "wildcard topic", m: ports.Message{Topic: "a/#"}, want: ports.ErrInvalidTopic},
		{name: "QoS 2", m: ports.Message{Topic: "a", QoS: 2}, want: ports.ErrInvalidQoS},
		// The topic is checked before its length, and both before the payload.
		{name: "invalid and long", limits: small, m: ports.Message{Topic: "a/+/b"}, want: ports.ErrInvalidTopic},
		{
			name: "long topic and payload", limits: small, m: ports.Message{Topic: "abcd", Payload: []byte("12345")},
			want: ports.ErrTooLarge, limit: "topic", size: 4, max: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.limits.CheckMessage(tt.m), tt.want, tt.limit, tt.size, tt.max)
		})
	}
}

func TestCheckFilter(t *testing.T) {
	small := ports.Limits{MaxTopicLength: 3}
	tests := []struct {
		name      string
		limits    ports.Limits
		f         ports.Filter
		want      error
		limit     string
		size, max int
	}{
		{name: "ok", f: ports.Filter{Topic: "a/+/#", QoS: 1, NoLocal: true}},
		{name: "at limit", limits: small, f: ports.Filter{Topic: "a/#"}},
		{name: "default limit", f: ports.Filter{Topic: strings.Repeat("f", ports.MaxTopicLength)}},
		{
			name: "over limit", limits: small, f: ports.Filter{Topic: "a/b/#"},
			want: ports.ErrTooLarge, limit: "topic", size: 5, max: 3,
		},
		{
			name: "over default limit", f: ports.Filter{Topic: strings.Repeat("f", ports.MaxTopicLength+1)},
			want: ports.ErrTooLarge, limit: "topic", size: ports.MaxTopicLength + 1, max: ports.MaxTopicLength,
		},
		{name: "empty", f: ports.Filter{}, want: ports.ErrInvalidTopic},
		{name: "misplaced #", f: ports.Filter{Topic: "#/a"}, want: ports.ErrInvalidTopic},
		{name: "QoS 2", f: ports.Filter{Topic: "a", QoS: 2}, want: ports.ErrInvalidQoS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.limits.CheckFilter(tt.f), tt.want, tt.limit, tt.size, tt.max)
		})
	}
}

// checkErr checks err against want, and when want is ErrTooLarge that err is
// a *LimitError with the given fields.
func checkErr(t *testing.T, err, want error, what string, size, max int) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got error %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want one matching %v", err, want)
	}
	for _, other := range []error{ports.ErrTooLarge, ports.ErrInvalidTopic, ports.ErrInvalidQoS, ports.ErrClosed, ports.ErrNotConnected} {
		if other != want && errors.Is(err, other) {
			t.Errorf("error %v also matches %v", err, other)
		}
	}
	var le *ports.LimitError
	if got := errors.As(err, &le); got != (want == ports.ErrTooLarge) {
		t.Fatalf("errors.As(%v, *LimitError) = %v, want %v", err, got, !got)
	}
	if le == nil {
		return
	}
	if le.What != what || le.Size != size || le.Max != max {
		t.Errorf("got LimitError{What: %q, Size: %d, Max: %d}, want {%q, %d, %d}", le.What, le.Size, le.Max, what, size, max)
	}
	if !strings.HasPrefix(err.Error(), "ports: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestLimitError(t *testing.T) {
	err := &ports.LimitError{What: "payload", Size: 10, Max: 4}
	if got, want := err.Error(), "ports: payload of 10 bytes is over the limit of 4"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(wrapped, ports.ErrTooLarge) {
		t.Error("wrapped LimitError does not match ErrTooLarge")
	}
	var le *ports.LimitError
	if !errors.As(wrapped, &le) || le != err {
		t.Errorf("errors.As found %v, want %v", le, err)
	}
	if errors.Is(err, ports.ErrInvalidTopic) {
		t.Error("LimitError matches ErrInvalidTopic")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[ports.State]string{
		ports.StateLost:     "lost",
		ports.StateRestored: "restored",
		0:                   "State(0)",
		7:                   "State(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestHandlerFuncs(t *testing.T) {
	var gotMsg ports.Message
	var gotState ports.State
	h := ports.HandlerFuncs{
		Message: func(m ports.Message) { gotMsg = m },
		State:   func(s ports.State) { gotState = s },
	}
	var _ ports.Handler = h
	h.HandleMessage(ports.Message{Topic: "t", Payload: []byte("p"), QoS: 1})
	h.HandleState(ports.StateRestored)
	if gotMsg.Topic != "t" || string(gotMsg.Payload) != "p" || gotMsg.QoS != 1 {
		t.Errorf("Message got %+v", gotMsg)
	}
	if gotState != ports.StateRestored {
		t.Errorf("State got %v, want restored", gotState)
	}

	// Nil fields ignore their events.
	var empty ports.HandlerFuncs
	empty.HandleMessage(ports.Message{Topic: "t"})
	empty.HandleState(ports.StateLost)
}

func TestErrorsDistinct(t *testing.T) {
	errs := []error{ports.ErrClosed, ports.ErrNotConnected, ports.ErrTooLarge, ports.ErrInvalidTopic, ports.ErrInvalidQoS}
	for i, a := range errs {
		if !strings.HasPrefix(a.Error(), "ports: ") {
			t.Errorf("%q lacks the package prefix", a)
		}
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"a/+/#", "a/b/c"}, {"#", "$x"}, {"+/+", "/"}, {"a/#", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if ports.ValidateFilter(filter) != nil || ports.ValidateTopic(topic) != nil {
			return
		}
		got := ports.Match(filter, topic)
		if want := matchRef(filter, topic); got != want {
			t.Errorf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
	})
}

// matchRef is a straightforward reference implementation of MQTT matching.
func matchRef(filter, topic string) bool {
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false // "#" after the last topic level was handled above
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
