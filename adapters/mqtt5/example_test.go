package mqtt5_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/iotjobs/iotjobs/adapters/mqtt5"
	"github.com/iotjobs/iotjobs/app/jobs"
	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/brokertest"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
	"github.com/iotjobs/iotjobs/testkit/pki"
)

// A device connects with its thing certificate, as it would to AWS IoT
// Core, and runs a job. Here the broker is an in-process test broker that
// requires client certificates, the certificates come from a test CA, and
// the fake Jobs service plays AWS IoT Jobs on a second connection.
func Example() {
	ctx := context.Background()

	// What AWS IoT gives a thing: a certificate, its key and the CA
	// (Amazon Root CA 1). Here: files from a test CA.
	dir, err := os.MkdirTemp("", "mqtt5-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	set, err := pki.NewSet("sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	files, err := set.WriteFiles(dir)
	if err != nil {
		log.Fatal(err)
	}

	// The broker, and the fake Jobs service with a job for the thing.
	broker, err := brokertest.Start(brokertest.Options{TLS: set.CA.ServerTLS(set.Server)})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	svcCert, err := set.CA.Client("jobs-service")
	if err != nil {
		log.Fatal(err)
	}
	svcConn, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: broker.Addr(), ClientID: "jobs-service", Certificate: &svcCert, RootCAs: set.CA.Pool(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer svcConn.Close()
	svc := jobstest.New(jobstest.Options{})
	if err := svc.Start(ctx, svcConn); err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	err = svc.CreateJob(ctx, jobstest.JobSpec{
		JobID:    "firmware-42",
		Document: json.RawMessage(`{"url":"https://example.com/fw.bin"}`),
		Targets:  []string{"sensor-1"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// The device, configured as for AWS IoT Core but for the endpoint.
	conn, err := mqtt5.Connect(ctx, mqtt5.Config{
		Endpoint: broker.Addr(), // e.g. "xxxx-ats.iot.eu-west-1.amazonaws.com"
		ClientID: "sensor-1",    // the thing name
		CertFile: files.ClientCert,
		KeyFile:  files.ClientKey,
		CAFile:   files.CA, // AmazonRootCA1.pem, or empty for the system roots
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println("connected as", conn.ClientID())

	c, err := jobs.New(ctx, conn, jobs.Options{Thing: "sensor-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	next, err := c.StartNext(ctx, job.StartNextRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(next.Execution.JobID, next.Execution.Status, string(next.Execution.JobDocument))
	if _, err := c.Update(ctx, next.Execution.JobID, job.UpdateRequest{Status: job.Succeeded}); err != nil {
		log.Fatal(err)
	}
	x, _ := svc.Execution("sensor-1", "firmware-42")
	fmt.Println("service:", x.Status)
	// Output:
	// connected as sensor-1
	// firmware-42 IN_PROGRESS {"url":"https://example.com/fw.bin"}
	// service: SUCCEEDED
}
