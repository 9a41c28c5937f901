package brokertest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// A broker that requires client certificates, a client of it, and a
// dropped connection that the client restores.
func Example() {
	ctx := context.Background()
	set, err := pki.NewSet("sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	b, err := brokertest.Start(brokertest.Options{TLS: set.CA.ServerTLS(set.Server)})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	states := make(chan ports.State, 2)
	c, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: b.Addr(), ClientID: "sensor-1", Certificate: &set.Client, RootCAs: set.CA.Pool(),
		ReconnectMin: 10 * time.Millisecond, // reconnect at once in this example
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.Subscribe(ctx, ports.Filter{Topic: "sensor/#", QoS: 1}, ports.HandlerFuncs{State: func(s ports.State) { states <- s }})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected:", b.Connected("sensor-1"))

	if err := b.DropClient("sensor-1"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-states, <-states)
	// Output:
	// connected: true
	// lost restored
}
