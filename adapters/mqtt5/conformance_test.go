package mqtt5_test

import (
	"testing"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pubsubtest"
)

// TestConformance runs the transport conformance suite over an in-process
// mochi broker whose TLS listener requires a client certificate.
func TestConformance(t *testing.T) {
	e := newEnv(t, brokertest.Options{})
	pubsubtest.Run(t, func(t *testing.T) pubsubtest.Client {
		return connect(t, conformanceConfig(e.config(t, "")))
	}, pubsubtest.Features{
		NoLocal:      true,
		DollarTopics: true,
		Reconnect: func(t testing.TB, c pubsubtest.Client) {
			if err := e.broker.DropClient(c.(*mqtt5.Client).ClientID()); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// conformanceConfig raises the receive maximum for the suite. When a
// client has as many QoS 1 messages in flight as its receive maximum
// allows, mochi (and mosquitto) hold further QoS 1 messages back but send
// QoS 0 ones at once: MQTT orders messages per topic and QoS only, while
// the suite's ConcurrentPublishers check expects one order across QoS 0
// and 1 for 400 messages published at once.
func conformanceConfig(cfg mqtt5.Config) mqtt5.Config {
	cfg.ReceiveMaximum = 1024
	return cfg
}
