package sigv4ws_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
	"github.com/iotjobs/iotjobs/ports"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/pki"
	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

// Presign with static credentials at a fixed time: the first test vector
// of the SigV4 WebSocket spec. With temporary credentials the session
// token would follow the signature, unsigned.
func ExamplePresign() {
	creds := aws.Credentials{
		AccessKeyID:     "AKIDEXAMPLE",
		SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	}
	at := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	// The region comes from the endpoint.
	u, err := sigv4ws.Presign("example-ats.iot.us-east-1.amazonaws.com", "", creds, at)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.ReplaceAll(u, "&", "\n  &"))
	// Output:
	// wss://example-ats.iot.us-east-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256
	//   &X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request
	//   &X-Amz-Date=20150830T123600Z
	//   &X-Amz-SignedHeaders=host
	//   &X-Amz-Signature=026c20a61bae0c9e109ab3720b96164d965f64dfc0dd03bfc9f1152ab1d323f9
}

// Connect the MQTT 5 adapter with IAM credentials. Here the endpoint is an
// in-process broker behind testkit/sigv4test's listener, which checks the
// signatures as AWS IoT Core does; against AWS, leave Credentials nil (the
// default chain) and RootCAs nil (the system's roots).
func ExampleNewDialer() {
	// The emulated endpoint.
	ca, err := pki.NewCA("example CA")
	if err != nil {
		log.Fatal(err)
	}
	serverCert, err := ca.Server("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "example-secret"}
	l := sigv4test.NewListener(sigv4test.Config{
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{serverCert}},
		Region:      "eu-west-1",
		Credentials: sigv4test.StaticLookup(creds),
	})
	broker, err := brokertest.Start(brokertest.Options{Listeners: []listeners.Listener{l}})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	// The device.
	ctx := context.Background()
	d, err := sigv4ws.NewDialer(sigv4ws.Config{
		Endpoint:    l.Address(), // e.g. "abc123-ats.iot.eu-west-1.amazonaws.com"
		Region:      "eu-west-1", // not needed with an AWS endpoint
		Credentials: credentials.StaticCredentialsProvider{Value: creds},
		RootCAs:     ca.Pool(),
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := mqtt5.Connect(ctx, mqtt5.Config{ClientID: "my-thing", Endpoint: d.Endpoint(), Dialer: d})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan ports.Message, 1)
	if _, err := c.Subscribe(ctx, ports.Filter{Topic: "$aws/things/my-thing/jobs/notify", QoS: ports.AtLeastOnce},
		ports.HandlerFuncs{Message: func(m ports.Message) { got <- m }}); err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, ports.Message{Topic: "$aws/things/my-thing/jobs/notify", Payload: []byte(`{"jobs":{}}`), QoS: ports.AtLeastOnce}); err != nil {
		log.Fatal(err)
	}
	m := <-got
	fmt.Printf("%s %s\n", m.Topic, m.Payload)
	// Output: $aws/things/my-thing/jobs/notify {"jobs":{}}
}
