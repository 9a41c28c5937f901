package membroker_test

import (
	"context"
	"fmt"

	"github.com/iotjobs/iotjobs/adapters/membroker"
	"github.com/iotjobs/iotjobs/ports"
)

// printer is a handler that prints what it receives.
var printer = ports.HandlerFuncs{
	Message: func(m ports.Message) { fmt.Printf("%s: %s\n", m.Topic, m.Payload) },
	State:   func(s ports.State) { fmt.Println("subscription", s) },
}

func Example() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()

	device, _ := b.Connect("device")
	service, _ := b.Connect("service")

	// The service answers every request of every thing.
	service.Subscribe(ctx, ports.Filter{Topic: "things/+/get", QoS: 1}, ports.HandlerFuncs{
		Message: func(m ports.Message) {
			service.Publish(ctx, ports.Message{Topic: m.Topic + "/accepted", Payload: []byte("ok"), QoS: 1})
		},
	})
	device.Subscribe(ctx, ports.Filter{Topic: "things/T/get/#", QoS: 1}, printer)
	device.Publish(ctx, ports.Message{Topic: "things/T/get", Payload: []byte("?"), QoS: 1})

	// Wait for the request, the reply and its delivery.
	b.Quiesce(ctx)
	// Output:
	// things/T/get: ?
	// things/T/get/accepted: ok
}

func ExampleBroker_Quiesce() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("")

	var got int
	c.Subscribe(ctx, ports.Filter{Topic: "$aws/things/T/jobs/#"}, ports.HandlerFuncs{
		Message: func(ports.Message) { got++ },
	})
	// A leading wildcard does not match, but the literal prefix does.
	c.Publish(ctx, ports.Message{Topic: "$aws/things/U/jobs/notify"})
	c.Publish(ctx, ports.Message{Topic: "$aws/things/T/jobs/notify"})

	// Once the broker is quiescent, everything was delivered.
	b.Quiesce(ctx)
	fmt.Println("delivered:", got)
	// Output:
	// delivered: 1
}

func ExampleBroker_Disconnect() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("device")
	c.Subscribe(ctx, ports.Filter{Topic: "t"}, printer)

	b.Disconnect("device")
	b.Quiesce(ctx)
	// Output:
	// subscription lost
	// subscription restored
}

func ExampleBroker_DropConnection() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	device, _ := b.Connect("device")
	other, _ := b.Connect("other")
	device.Subscribe(ctx, ports.Filter{Topic: "t"}, printer)

	b.DropConnection("device")
	other.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("missed")})
	err := device.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("not sent")})
	b.Quiesce(ctx)
	fmt.Println(err)

	b.Reconnect("device")
	other.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("received")})
	b.Quiesce(ctx)
	// Output:
	// subscription lost
	// membroker: publish "t": ports: not connected
	// subscription restored
	// t: received
}

func ExampleBroker_DropNext() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("")
	c.Subscribe(ctx, ports.Filter{Topic: "t/#", QoS: 1}, printer)

	b.DropNext("t/lost", 1)
	b.DuplicateNext("t/#", 1)
	for _, topic := range []string{"t/lost", "t/twice", "t/once"} {
		c.Publish(ctx, ports.Message{Topic: topic, Payload: []byte("m"), QoS: 1})
	}
	b.Quiesce(ctx)
	// Output:
	// t/twice: m
	// t/twice: m
	// t/once: m
}

func ExampleBroker_Hold() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{})
	defer b.Close()
	c, _ := b.Connect("")
	c.Subscribe(ctx, ports.Filter{Topic: "t"}, printer)

	b.Hold()
	c.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("1")})
	c.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("2")})
	b.Quiesce(ctx)
	fmt.Println("held")
	b.Release()
	b.Quiesce(ctx)
	// Output:
	// held
	// t: 1
	// t: 2
}

func ExampleOptions() {
	ctx := context.Background()
	b := membroker.New(membroker.Options{
		Limits: ports.Limits{MaxPayload: 4},
		OnPublish: func(clientID string, m ports.Message) {
			fmt.Printf("%s published on %s\n", clientID, m.Topic)
		},
	})
	defer b.Close()
	c, _ := b.Connect("device")

	c.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("tiny")})
	err := c.Publish(ctx, ports.Message{Topic: "t", Payload: []byte("too big")})
	fmt.Println(err)
	// Output:
	// device published on t
	// membroker: publish: ports: payload of 7 bytes is over the limit of 4
}
