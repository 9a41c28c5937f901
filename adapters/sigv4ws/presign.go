package sigv4ws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Service is the SigV4 service name of the AWS IoT Core data plane.
const Service = "iotdevicegateway"

// Path is the path of the MQTT WebSocket endpoint of AWS IoT Core.
const Path = "/mqtt"

// emptySHA256 is the hex SHA-256 of the empty payload of the upgrade request.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// ErrConfig is matched by the errors that report an invalid endpoint,
// region, credentials or other setting, found before anything is sent.
var ErrConfig = errors.New("sigv4ws: invalid configuration")

// Presign returns the URL that opens an MQTT WebSocket connection to
// endpoint, signed at time at with creds for region, as AWS IoT Core wants
// it: wss://endpoint/mqtt with a SigV4 query string (service
// iotdevicegateway, signed header host, no X-Amz-Expires), and the session
// token of temporary credentials appended unsigned after the signature.
//
// endpoint is HOST or HOST:PORT; it is lower-cased, and port 443 is dropped,
// so the signed host is "host" on the default port and "host:port" on any
// other. An empty region is derived from the endpoint (see
// RegionFromEndpoint). The URL holds a signature and possibly a session
// token: treat it as a secret, valid for a few minutes.
func Presign(endpoint, region string, creds aws.Credentials, at time.Time) (string, error) {
	host, err := normalizeEndpoint(endpoint)
	if err != nil {
		return "", err
	}
	if region == "" {
		r, ok := RegionFromEndpoint(host)
		if !ok {
			return "", fmt.Errorf("%w: no region given and none in endpoint %q", ErrConfig, host)
		}
		region = r
	}
	return presign(host, region, creds, at)
}

// presign signs for an endpoint already normalised and a region already
// known. Its errors never hold the secret key or the session token.
func presign(host, region string, creds aws.Credentials, at time.Time) (string, error) {
	if !validRegion(region) {
		return "", fmt.Errorf("%w: region %q is not an AWS region name", ErrConfig, region)
	}
	if !creds.HasKeys() {
		return "", fmt.Errorf("%w: credentials without an access key id or secret key", ErrConfig)
	}
	if at.IsZero() {
		return "", fmt.Errorf("%w: zero signing time", ErrConfig)
	}
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "https", Host: host, Path: Path},
		Header: http.Header{},
		Host:   host,
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableSessionToken = true })
	signed, _, err := signer.PresignHTTP(context.Background(), creds, req, emptySHA256, Service, region, at.UTC())
	if err != nil {
		// The signer's errors name no secret; wrap it all the same
		// without detail beyond the message.
		return "", fmt.Errorf("sigv4ws: presign: %w", err)
	}
	rest, ok := strings.CutPrefix(signed, "https://")
	if !ok {
		return "", fmt.Errorf("sigv4ws: presign: unexpected URL scheme from the signer")
	}
	u := "wss://" + rest
	if creds.SessionToken != "" {
		u += "&X-Amz-Security-Token=" + uriEncode(creds.SessionToken)
	}
	return u, nil
}

// normalizeEndpoint checks that endpoint is HOST or HOST:PORT and returns it
// lower-cased, without the port when it is 443.
func normalizeEndpoint(endpoint string) (string, error) {
	if endpoint == "" {
		return "", fmt.Errorf("%w: empty endpoint", ErrConfig)
	}
	if strings.ContainsAny(endpoint, "/?#@ \t\r\n\\%") {
		return "", fmt.Errorf("%w: endpoint %q: want HOST or HOST:PORT, without scheme or path", ErrConfig, endpoint)
	}
	e := strings.ToLower(endpoint)
	host, port := e, ""
	switch {
	case strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]"):
		host = e[1 : len(e)-1] // [IPv6] without a port
	case strings.HasPrefix(e, "[") || strings.Count(e, ":") == 1:
		h, p, err := net.SplitHostPort(e)
		if err != nil || p == "" {
			return "", fmt.Errorf("%w: endpoint %q: want HOST or HOST:PORT", ErrConfig, endpoint)
		}
		host, port = h, p
	}
	if host == "" {
		return "", fmt.Errorf("%w: endpoint %q has no host", ErrConfig, endpoint)
	}
	for _, r := range host {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == ':'
		if !ok {
			return "", fmt.Errorf("%w: endpoint %q: invalid character %q in host", ErrConfig, endpoint, r)
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", fmt.Errorf("%w: endpoint %q: invalid port %q", ErrConfig, endpoint, port)
		}
	}
	if strings.Contains(host, ":") {
		if net.ParseIP(host) == nil {
			return "", fmt.Errorf("%w: endpoint %q: want HOST or HOST:PORT", ErrConfig, endpoint)
		}
		host = "[" + host + "]"
	}
	if port == "" || port == "443" {
		return host, nil
	}
	return host + ":" + port, nil
}

// RegionFromEndpoint returns the region named in an AWS IoT Core endpoint,
// such as "eu-west-1" for "abc123-ats.iot.eu-west-1.amazonaws.com" (also
// with a port, and for the amazonaws.com.cn partition), and false for an
// endpoint that names none (a custom domain, localhost, an IP address).
func RegionFromEndpoint(endpoint string) (string, bool) {
	host := strings.ToLower(endpoint)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	labels := strings.Split(host, ".")
	for i := 0; i+2 < len(labels); i++ {
		if labels[i] == "iot" && labels[i+2] == "amazonaws" && validRegion(labels[i+1]) {
			return labels[i+1], true
		}
	}
	return "", false
}

// validRegion reports whether r looks like an AWS region name: lower-case
// words joined by dashes, ending with a number, such as "us-gov-west-1".
func validRegion(r string) bool {
	parts := strings.Split(r, "-")
	if len(parts) < 3 || len(r) > 64 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		for _, c := range p {
			last := i == len(parts)-1
			if last && (c < '0' || c > '9') || !last && (c < 'a' || c > 'z') {
				return false
			}
		}
	}
	return true
}

// uriEncode percent-encodes s as SigV4 does: every byte but the unreserved
// characters A-Z a-z 0-9 - _ . ~, with upper-case hex digits.
func uriEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) * 3 / 2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
