package sigv4ws

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/gorilla/websocket"
)

// Defaults of Config.
const (
	// DefaultHandshakeTimeout bounds one connection attempt when the
	// caller's context allows longer.
	DefaultHandshakeTimeout = 20 * time.Second
	// DefaultExpiryMargin is how long before its temporary credentials
	// expire a connection closes itself to reconnect with fresh ones.
	DefaultExpiryMargin = 2 * time.Minute
)

// Subprotocol is the WebSocket subprotocol of MQTT.
const Subprotocol = "mqtt"

// writeBufferSize lets one WebSocket frame carry an MQTT packet of AWS IoT
// Core's largest payload (128 KiB) with its topic and properties; a larger
// packet is one message in several frames. The buffers are pooled: an idle
// connection holds none.
const writeBufferSize = 136 << 10

var writeBuffers sync.Pool

// ErrAuth is matched by the *AuthError that reports credentials refused by
// the server.
var ErrAuth = errors.New("sigv4ws: authentication failed")

// ErrCredentials is matched by the errors that report credentials that
// could not be retrieved, or had already expired.
var ErrCredentials = errors.New("sigv4ws: no usable credentials")

// AuthError reports that the server refused the WebSocket upgrade with HTTP
// 403 (or 401): AWS IoT Core did not accept the signature or the
// credentials, or the IAM policy does not allow the connection.
// errors.Is(err, ErrAuth) is true for it. It holds no secret.
type AuthError struct {
	// Endpoint is the host (and port) the request was signed for.
	Endpoint string
	// Region is the region the request was signed for.
	Region string
	// AccessKeyID identifies the credentials used (not a secret).
	AccessKeyID string
	// SignedAt is the time of the signature, by the device's clock.
	SignedAt time.Time
	// StatusCode is the HTTP status of the refusal.
	StatusCode int
	// Reason is the start of the server's answer, if it gave one.
	Reason string
}

// Error says what was refused and what to check.
func (e *AuthError) Error() string {
	reason := ""
	if e.Reason != "" {
		reason = ": " + e.Reason
	}
	return fmt.Sprintf("sigv4ws: %s refused the connection (HTTP %d%s); check "+
		"the device clock (signed at %s; more than 5 minutes off is refused), "+
		"the region (%q must be the endpoint's), "+
		"the IAM policy (iot:Connect must allow this client id), "+
		"and the credentials (access key %s: active, not expired, with a current session token if temporary)",
		e.Endpoint, e.StatusCode, reason, e.SignedAt.UTC().Format(time.RFC3339), e.Region, e.AccessKeyID)
}

// Is reports whether target is ErrAuth.
func (e *AuthError) Is(target error) bool { return target == ErrAuth }

// Config configures a Dialer. Endpoint is required; every other zero value
// has a useful meaning.
type Config struct {
	// Endpoint is the AWS IoT Core data endpoint, HOST or HOST:PORT, such
	// as "abc123-ats.iot.eu-west-1.amazonaws.com" (port 443 by default).
	Endpoint string

	// Region signs the requests. Empty means the region in Endpoint (see
	// RegionFromEndpoint), else the one of the default configuration
	// (AWS_REGION, the profile's region).
	Region string

	// Credentials are retrieved for every connection attempt, so give a
	// cached provider (aws.NewCredentialsCache) when retrieving is costly.
	// Nil means the default chain of aws-sdk-go-v2 (see
	// LoadDefaultCredentials), with Profile.
	Credentials aws.CredentialsProvider

	// Profile selects a shared configuration profile for the default chain;
	// empty means AWS_PROFILE or "default". Ignored when Credentials is set.
	Profile string

	// RootCAs verifies the server's certificate; nil means the system's
	// roots. The server is always verified.
	RootCAs *x509.CertPool

	// HandshakeTimeout bounds each connection attempt (TCP, TLS, WebSocket
	// upgrade) in addition to the context given to Dial; 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// ExpiryMargin is how long before temporary credentials expire the
	// connection closes itself, so that the MQTT client reconnects with
	// fresh ones before the broker cuts it; 0 means DefaultExpiryMargin.
	ExpiryMargin time.Duration

	// Now tells the time that dates the signatures and schedules the
	// reconnection before expiry; nil means time.Now. For tests.
	Now func() time.Time

	// Logger receives the dialer's events (never a secret, signature or
	// presigned URL); nil discards them.
	Logger *slog.Logger
}

// Dialer opens MQTT connections to AWS IoT Core over WebSockets signed with
// SigV4. Its Dial method is the mqtt5.Dialer seam:
//
//	d, err := sigv4ws.NewDialer(sigv4ws.Config{Endpoint: endpoint})
//	...
//	client, err := mqtt5.Connect(ctx, mqtt5.Config{ClientID: id, Dialer: d})
//
// Each Dial retrieves credentials, presigns a URL with them at that moment
// and upgrades a TLS connection to a WebSocket with subprotocol "mqtt".
// When the credentials can expire, the returned connection closes itself
// ExpiryMargin before they do, with an MQTT DISCONNECT; the MQTT client
// then reconnects, which dials again with fresh credentials, and restores
// its subscriptions. A Dialer is safe for concurrent use.
type Dialer struct {
	host     string
	region   string
	creds    aws.CredentialsProvider
	tls      *tls.Config
	timeout  time.Duration
	margin   time.Duration
	now      func() time.Time
	log      *slog.Logger
	defaults bool // creds is the default chain
}

// NewDialer checks cfg and returns a Dialer. With no Credentials, it loads
// the default configuration (environment, shared files); nothing is
// fetched from the network until Dial.
func NewDialer(cfg Config) (*Dialer, error) {
	host, err := normalizeEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout < 0 || cfg.ExpiryMargin < 0 {
		return nil, fmt.Errorf("%w: negative HandshakeTimeout or ExpiryMargin", ErrConfig)
	}
	d := &Dialer{
		host:    host,
		region:  cfg.Region,
		creds:   cfg.Credentials,
		timeout: cfg.HandshakeTimeout,
		margin:  cfg.ExpiryMargin,
		now:     cfg.Now,
		log:     cfg.Logger,
		tls:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
	}
	if d.timeout == 0 {
		d.timeout = DefaultHandshakeTimeout
	}
	if d.margin == 0 {
		d.margin = DefaultExpiryMargin
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.region == "" {
		d.region, _ = RegionFromEndpoint(host)
	}
	if d.creds == nil {
		creds, region, err := LoadDefaultCredentials(context.Background(), d.region, cfg.Profile)
		if err != nil {
			return nil, err
		}
		d.creds, d.region, d.defaults = creds, region, true
	}
	if d.region == "" {
		// Explicit credentials: the region may still be configured.
		if _, region, err := LoadDefaultCredentials(context.Background(), "", cfg.Profile); err == nil {
			d.region = region
		}
	}
	if d.region == "" {
		return nil, fmt.Errorf("%w: no region: set one (Config.Region, AWS_REGION, the profile's region) or use an endpoint that names one", ErrConfig)
	}
	if !validRegion(d.region) {
		return nil, fmt.Errorf("%w: region %q is not an AWS region name", ErrConfig, d.region)
	}
	return d, nil
}

// LoadDefaultCredentials loads the default configuration of aws-sdk-go-v2
// (config.LoadDefaultConfig) and returns its credentials provider and
// region. The provider tries, in order: the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), web identity
// (AWS_WEB_IDENTITY_TOKEN_FILE), the shared files' profile (static keys,
// SSO, credential_process, assume role), container credentials (ECS,
// EKS Pod Identity), then EC2 instance metadata. It is cached: it
// refreshes temporary credentials when they expire, and fetches nothing
// until first used.
//
// region, if not empty, overrides the configured one (AWS_REGION, the
// profile's); profile, if not empty, selects a profile of the shared files
// instead of AWS_PROFILE or "default". The returned region may be empty.
func LoadDefaultCredentials(ctx context.Context, region, profile string) (aws.CredentialsProvider, string, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("%w: load the default AWS configuration: %w", ErrCredentials, err)
	}
	if cfg.Credentials == nil {
		return nil, "", fmt.Errorf("%w: the default AWS configuration has no credentials provider", ErrCredentials)
	}
	return cfg.Credentials, cfg.Region, nil
}

// Endpoint returns the normalised endpoint the Dialer signs for: lower
// case, without port 443.
func (d *Dialer) Endpoint() string { return d.host }

// Region returns the region the Dialer signs for.
func (d *Dialer) Region() string { return d.region }

// Dial opens one connection: it retrieves credentials, presigns a URL,
// upgrades a verified TLS connection to a WebSocket with subprotocol "mqtt"
// and returns it as a *Conn. It gives up when ctx ends or after
// HandshakeTimeout. A refusal with HTTP 403 or 401 is an *AuthError
// (errors.Is(err, ErrAuth)); credentials that cannot be retrieved or have
// expired give an error matching ErrCredentials.
func (d *Dialer) Dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	u, creds, at, err := d.presign(ctx)
	if err != nil {
		return nil, err
	}
	d.log.Debug("sigv4ws: connecting", "endpoint", d.host, "region", d.region,
		"access_key_id", creds.AccessKeyID, "signed_at", at.UTC().Format(time.RFC3339),
		"temporary", creds.SessionToken != "")

	// Close the socket when ctx ends: gorilla heeds the context's deadline
	// only, not its cancellation, once the TCP connection is open.
	var rawMu sync.Mutex
	var raw []net.Conn
	nd := &net.Dialer{}
	wd := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err == nil {
				rawMu.Lock()
				raw = append(raw, c)
				rawMu.Unlock()
			}
			return c, err
		},
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: d.tls.Clone(),
		Subprotocols:    []string{Subprotocol},
		WriteBufferSize: writeBufferSize,
		WriteBufferPool: &writeBuffers,
	}
	stop := context.AfterFunc(ctx, func() {
		rawMu.Lock()
		defer rawMu.Unlock()
		for _, c := range raw {
			_ = c.Close()
		}
	})
	ws, resp, err := wd.DialContext(ctx, u, nil)
	stopped := stop()
	if err == nil && !stopped {
		_ = ws.Close()
		err = ctx.Err()
	}
	if err != nil {
		secrets := []string{creds.SecretAccessKey, creds.SessionToken, uriEncode(creds.SessionToken), signatureOf(u)}
		return nil, d.dialError(ctx, err, resp, creds, at, secrets)
	}
	if p := ws.Subprotocol(); p != Subprotocol {
		_ = ws.Close()
		return nil, fmt.Errorf("sigv4ws: %s did not accept WebSocket subprotocol %q (answered %q)", d.host, Subprotocol, p)
	}
	c := newConn(ws, d.log)
	if creds.CanExpire {
		d.scheduleExpiry(c, creds, at)
	}
	d.log.Debug("sigv4ws: connected", "endpoint", d.host, "access_key_id", creds.AccessKeyID)
	return c, nil
}

// Presigned is a URL made by Dialer.Presign, with what it was signed with.
type Presigned struct {
	// URL is the presigned wss:// URL. It holds a signature, and the
	// session token of temporary credentials: treat it as a secret.
	URL string
	// Region is the region it was signed for.
	Region string
	// AccessKeyID identifies the credentials (not a secret).
	AccessKeyID string
	// Source names the provider the credentials came from, if it said.
	Source string
	// SignedAt is the signature's time.
	SignedAt time.Time
	// Temporary reports credentials with a session token.
	Temporary bool
	// Expires is when the credentials expire; zero if they cannot.
	Expires time.Time
}

// Presign retrieves credentials and presigns a URL as Dial does, without
// connecting: to debug with another client, as "iotjobs presign" does.
func (d *Dialer) Presign(ctx context.Context) (Presigned, error) {
	u, creds, at, err := d.presign(ctx)
	if err != nil {
		return Presigned{}, err
	}
	p := Presigned{
		URL:         u,
		Region:      d.region,
		AccessKeyID: creds.AccessKeyID,
		Source:      creds.Source,
		SignedAt:    at,
		Temporary:   creds.SessionToken != "",
	}
	if creds.CanExpire {
		p.Expires = creds.Expires
	}
	return p, nil
}

// presign retrieves credentials and presigns with them, now.
func (d *Dialer) presign(ctx context.Context) (string, aws.Credentials, time.Time, error) {
	creds, err := d.retrieve(ctx)
	if err != nil {
		return "", aws.Credentials{}, time.Time{}, err
	}
	at := d.now()
	u, err := presign(d.host, d.region, creds, at)
	if err != nil {
		return "", aws.Credentials{}, time.Time{}, err
	}
	return u, creds, at, nil
}

// retrieve gets credentials that will not expire within the margin if the
// provider can give them: credentials too close to expiry make it
// invalidate a caching provider and retrieve again.
func (d *Dialer) retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, d.credsError(err)
	}
	if inv, ok := d.creds.(interface{ Invalidate() }); ok && creds.CanExpire && !creds.Expires.After(d.now().Add(d.margin)) {
		d.log.Debug("sigv4ws: credentials expire within the margin; refreshing",
			"access_key_id", creds.AccessKeyID, "expires", creds.Expires.UTC().Format(time.RFC3339))
		inv.Invalidate()
		if creds, err = d.creds.Retrieve(ctx); err != nil {
			return aws.Credentials{}, d.credsError(err)
		}
	}
	if !creds.HasKeys() {
		return aws.Credentials{}, fmt.Errorf("%w: the provider returned no access key id or secret key", ErrCredentials)
	}
	if creds.CanExpire && !creds.Expires.After(d.now()) {
		return aws.Credentials{}, fmt.Errorf("%w: credentials %s expired at %s",
			ErrCredentials, creds.AccessKeyID, creds.Expires.UTC().Format(time.RFC3339))
	}
	return creds, nil
}

func (d *Dialer) credsError(err error) error {
	hint := ""
	if d.defaults {
		hint = " (default chain: environment, shared config and credentials files, SSO, web identity, container, EC2 instance metadata)"
	}
	return fmt.Errorf("%w: retrieve credentials%s: %w", ErrCredentials, hint, err)
}

// scheduleExpiry makes c close itself ExpiryMargin before creds expire, or
// when they expire if they were already within the margin (the provider
// had nothing fresher).
func (d *Dialer) scheduleExpiry(c *Conn, creds aws.Credentials, now time.Time) {
	at := creds.Expires.Add(-d.margin)
	if !at.After(now) {
		d.log.Warn("sigv4ws: credentials expire within the margin and the provider gave none fresher; the connection will end when they expire",
			"access_key_id", creds.AccessKeyID, "expires", creds.Expires.UTC().Format(time.RFC3339))
		at = creds.Expires
	}
	c.closeAfter(at.Sub(now), "access_key_id", creds.AccessKeyID,
		"expires", creds.Expires.UTC().Format(time.RFC3339))
}

// dialError explains a failed attempt. Nothing in it comes from the URL; the
// server's answer is shortened and stripped of anything secret.
func (d *Dialer) dialError(ctx context.Context, err error, resp *http.Response, creds aws.Credentials, at time.Time, secrets []string) error {
	if resp != nil {
		reason := readReason(resp, secrets)
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			ae := &AuthError{
				Endpoint:    d.host,
				Region:      d.region,
				AccessKeyID: creds.AccessKeyID,
				SignedAt:    at,
				StatusCode:  resp.StatusCode,
				Reason:      reason,
			}
			d.log.Warn("sigv4ws: connection refused", "endpoint", d.host, "status", resp.StatusCode,
				"reason", reason, "access_key_id", creds.AccessKeyID)
			return ae
		}
		if reason != "" {
			reason = ": " + reason
		}
		return fmt.Errorf("sigv4ws: %s refused the WebSocket upgrade: HTTP %d%s", d.host, resp.StatusCode, reason)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("sigv4ws: connect to %s: %w", d.host, ctxErr)
	}
	// The socket's deadline is the context's and may fire first.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("sigv4ws: connect to %s: %w (%v)", d.host, context.DeadlineExceeded, err)
	}
	// Not from us: the message may quote the server (net/http quotes a
	// malformed status line), which could echo the request.
	return redact(fmt.Errorf("sigv4ws: connect to %s: %w", d.host, err), secrets)
}

// readReason returns the start of the body of a refusal, on one line,
// printable, without any of the request's secrets in it (a server could
// echo the URL).
func readReason(resp *http.Response, secrets []string) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(string(b), ""))
	s = redactString(strings.TrimSpace(s), secrets)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// signatureOf returns the X-Amz-Signature of a presigned URL.
func signatureOf(u string) string {
	_, sig, _ := strings.Cut(u, "X-Amz-Signature=")
	sig, _, _ = strings.Cut(sig, "&")
	return sig
}

// minSecret is the length under which a "secret" is not redacted: AWS
// secret keys have 40 characters, tokens hundreds, signatures 64.
const minSecret = 8

// redactString cuts s at the first query parameter of a signed request and
// replaces every secret in what is left.
func redactString(s string, secrets []string) string {
	if i := strings.Index(strings.ToLower(s), "x-amz-"); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " [rest withheld]"
	}
	for _, secret := range secrets {
		// Real secrets are long; a short one would blank ordinary words.
		if len(secret) >= minSecret {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// redact returns err, or, if its message shows a secret or a piece of the
// signed query (a server can echo anything back), an error with the message
// redacted that still matches the sentinels err matched.
func redact(err error, secrets []string) error {
	msg := err.Error()
	clean := redactString(msg, secrets)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, is: err}
}

type redactedError struct {
	msg string
	is  error
}

func (e *redactedError) Error() string { return e.msg }

// Is matches the sentinels and types the original error matched, without
// exposing its message through Unwrap.
func (e *redactedError) Is(target error) bool { return errors.Is(e.is, target) }
