// Package sigv4ws is the SigV4-signed WebSocket transport of iotjobs: MQTT
// over wss://ENDPOINT/mqtt, authenticated with IAM credentials as AWS IoT
// Core wants (SigV4 presigned URL, service iotdevicegateway, session token
// appended unsigned).
//
// It plugs into the MQTT 5 adapter through its Dialer seam: the MQTT
// protocol, subscriptions, reconnection and limits are the mqtt5 adapter's,
// with the same options; this package only opens the connections.
//
//	d, err := sigv4ws.NewDialer(sigv4ws.Config{
//		Endpoint: "abc123-ats.iot.eu-west-1.amazonaws.com",
//	}) // credentials and region from the default AWS chain
//	if err != nil { ... }
//	c, err := mqtt5.Connect(ctx, mqtt5.Config{ClientID: "my-thing", Dialer: d})
//
// Each connection attempt retrieves credentials and presigns a fresh URL.
// Temporary credentials are handled by reconnecting before they expire:
// the connection the Dialer returns closes itself Config.ExpiryMargin
// before its credentials' expiry (with an MQTT DISCONNECT, so no will is
// published), and the MQTT client reconnects, which dials again with fresh
// credentials and restores its subscriptions. Subscribers see
// ports.StateLost then ports.StateRestored, as for any reconnection.
//
// A refusal of the credentials (HTTP 403) is an *AuthError, matching
// ErrAuth, that says what to check. Nothing this package logs or returns
// shows the secret key, the session token or a signature; only Presign's
// result holds them.
//
// Presign is also usable on its own, to debug with another client: see the
// "iotjobs presign" command and docs/connect-iam.md.
package sigv4ws
