package brokertest

import (
	"bytes"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// parentHook repairs a matching bug of mochi v2.7.9: a filter whose last
// two levels are "+/#" does not match a topic at its parent level ("a/+/#"
// misses "a/x"), though MQTT says "#" includes the parent level. For each
// such filter a client subscribes, the hook also subscribes the client to
// the parent filter ("a/+") with the same options, in mochi's own
// bookkeeping so that sessions, takeovers and expiry treat it like the
// client's other subscriptions, and removes it when the client unsubscribes
// the filter. mochi merges the subscriptions of one client, so a message
// matching both is still delivered once. A parent filter the client
// subscribed itself is left alone.
type parentHook struct {
	mqtt.HookBase
	server *mqtt.Server

	mu     sync.Mutex
	hidden map[string]map[string]bool // client ID → parent filters the hook added
}

func newParentHook(s *mqtt.Server) *parentHook {
	return &parentHook{server: s, hidden: make(map[string]map[string]bool)}
}

func (h *parentHook) ID() string { return "brokertest-parent-level" }

func (h *parentHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSubscribed, mqtt.OnUnsubscribed}, []byte{b})
}

// plusParent returns the parent of a filter ending in "+/#", such as "a/+"
// for "a/+/#".
func plusParent(filter string) (string, bool) {
	if strings.HasPrefix(filter, "$share/") {
		return "", false
	}
	if filter == "+/#" || strings.HasSuffix(filter, "/+/#") {
		return strings.TrimSuffix(filter, "/#"), true
	}
	return "", false
}

func (h *parentHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, sub := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		delete(h.hidden[cl.ID], sub.Filter) // subscribed by the client itself now
		parent, ok := plusParent(sub.Filter)
		if !ok {
			continue
		}
		if _, exists := cl.State.Subscriptions.Get(parent); exists && !h.hidden[cl.ID][parent] {
			continue
		}
		ps := sub
		ps.Filter = parent
		h.server.Topics.Subscribe(cl.ID, ps)
		cl.State.Subscriptions.Add(parent, ps)
		if h.hidden[cl.ID] == nil {
			h.hidden[cl.ID] = make(map[string]bool)
		}
		h.hidden[cl.ID][parent] = true
	}
}

func (h *parentHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sub := range pk.Filters {
		parent, ok := plusParent(sub.Filter)
		if !ok || !h.hidden[cl.ID][parent] {
			continue
		}
		h.server.Topics.Unsubscribe(parent, cl.ID)
		cl.State.Subscriptions.Delete(parent)
		delete(h.hidden[cl.ID], parent)
	}
}

// connackHook announces the broker's maximum packet size in CONNACK, which
// mochi v2.7.9 enforces without announcing it (MQTT 5 §3.2.2.3.6).
type connackHook struct {
	mqtt.HookBase
	maxPacket uint32
}

func (h *connackHook) ID() string { return "brokertest-connack" }

func (h *connackHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *connackHook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}
