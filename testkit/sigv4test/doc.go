// Package sigv4test checks MQTT-over-WebSocket connections signed with
// SigV4 the way AWS IoT Core does, so that a transport using IAM
// credentials can be tested on one machine, without an AWS account.
//
// Verify checks one presigned upgrade request: algorithm, credential scope
// (region, service iotdevicegateway), date within five minutes of a clock
// (or within X-Amz-Expires when present), the signature recomputed from the
// request with the session token left out of it, and the session token
// itself. It is an implementation of its own, not the AWS signer, so that
// it cross-checks the presigner of adapters/sigv4ws.
//
// Listener is a WebSocket listener for the mochi-mqtt broker that runs
// Verify on every upgrade request and answers HTTP 403 with the reason, as
// AWS IoT Core answers 403, before handing the connection to the broker.
package sigv4test
