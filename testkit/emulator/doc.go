// Package emulator serves a local stand-in for AWS IoT Core's Jobs: an MQTT
// 5 broker in-process with the fake Jobs service of testkit/jobstest
// attached, and a control plane over HTTP JSON on loopback to create, cancel
// and list jobs. A device program can run end to end against it without an
// AWS account.
package emulator
