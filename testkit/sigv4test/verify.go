package sigv4test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Service is the SigV4 service name the verifier expects.
const Service = "iotdevicegateway"

// MaxSkew is how far the signature's date may be from the verifier's clock.
const MaxSkew = 5 * time.Minute

// maxExpires is the largest X-Amz-Expires SigV4 allows: seven days.
const maxExpires = 7 * 24 * 60 * 60

// emptySHA256 is the payload hash of the upgrade request, which has none.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Errors of Verify; each is wrapped with detail that holds no secret.
var (
	// ErrMalformed reports a request without the SigV4 query parameters,
	// or with one that cannot be parsed.
	ErrMalformed = errors.New("sigv4test: malformed presigned request")
	// ErrUnknownKey reports an access key id the lookup does not know.
	ErrUnknownKey = errors.New("sigv4test: unknown access key id")
	// ErrScope reports a credential scope of another region or service.
	ErrScope = errors.New("sigv4test: wrong credential scope")
	// ErrDate reports a signature dated too far from the verifier's clock,
	// or past its X-Amz-Expires.
	ErrDate = errors.New("sigv4test: signature date out of range")
	// ErrSignature reports a signature that does not match the request.
	ErrSignature = errors.New("sigv4test: signature does not match")
	// ErrToken reports a session token missing, unexpected or not the
	// credentials' own.
	ErrToken = errors.New("sigv4test: invalid security token")
)

// Lookup returns the credentials of an access key id, and false for an
// unknown one. The credentials' SessionToken, if not empty, is the token a
// request with that key must carry.
type Lookup func(accessKeyID string) (aws.Credentials, bool)

// StaticLookup returns a Lookup that knows the given credentials.
func StaticLookup(creds ...aws.Credentials) Lookup {
	m := make(map[string]aws.Credentials, len(creds))
	for _, c := range creds {
		m[c.AccessKeyID] = c
	}
	return func(id string) (aws.Credentials, bool) {
		c, ok := m[id]
		return c, ok
	}
}

// Verify checks a WebSocket upgrade request presigned for AWS IoT Core the
// way AWS IoT Core does, and returns nil if it is valid at time now for
// region:
//
//   - the query carries X-Amz-Algorithm=AWS4-HMAC-SHA256, X-Amz-Credential
//     (access key id / date / region / iotdevicegateway / aws4_request),
//     X-Amz-Date, X-Amz-SignedHeaders (with host) and X-Amz-Signature, each
//     once;
//   - the access key id is known to creds, the scope names region and the
//     service, and its date is X-Amz-Date's;
//   - X-Amz-Date is within MaxSkew of now, or, when the request carries
//     X-Amz-Expires (1 to 604800 seconds), now is between X-Amz-Date less
//     MaxSkew and X-Amz-Date plus X-Amz-Expires;
//   - the signature is the one recomputed from the request: method, path,
//     the canonical query of every parameter but X-Amz-Signature and
//     X-Amz-Security-Token (the session token is not signed), the signed
//     headers as received (host is r.Host) and the hash of an empty payload;
//   - X-Amz-Security-Token is present exactly when the credentials have a
//     session token, and equal to it.
//
// The error matches one of the package's Err values and says what was
// wrong, without any secret or signature: it may be shown to the client.
// Verify does not panic on any request.
func Verify(r *http.Request, creds Lookup, region string, now time.Time) error {
	if r == nil || r.URL == nil {
		return fmt.Errorf("%w: no request", ErrMalformed)
	}
	params, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	get := func(name string) (string, error) {
		v, ok := params[name]
		if !ok {
			return "", fmt.Errorf("%w: missing %s", ErrMalformed, name)
		}
		return v, nil
	}
	alg, err := get("X-Amz-Algorithm")
	if err != nil {
		return err
	}
	if alg != "AWS4-HMAC-SHA256" {
		return fmt.Errorf("%w: X-Amz-Algorithm %q, want AWS4-HMAC-SHA256", ErrMalformed, clip(alg))
	}
	credential, err := get("X-Amz-Credential")
	if err != nil {
		return err
	}
	amzDate, err := get("X-Amz-Date")
	if err != nil {
		return err
	}
	signedHeaders, err := get("X-Amz-SignedHeaders")
	if err != nil {
		return err
	}
	signature, err := get("X-Amz-Signature")
	if err != nil {
		return err
	}
	if len(signature) != 64 || strings.Trim(signature, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: X-Amz-Signature is not 64 lower-case hex digits", ErrMalformed)
	}

	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" {
		return fmt.Errorf("%w: X-Amz-Credential: want ACCESSKEY/YYYYMMDD/REGION/SERVICE/aws4_request", ErrMalformed)
	}
	keyID, day, scopeRegion, service := scope[0], scope[1], scope[2], scope[3]
	signedAt, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return fmt.Errorf("%w: X-Amz-Date %q: want YYYYMMDDTHHMMSSZ", ErrMalformed, clip(amzDate))
	}
	if day != amzDate[:8] {
		return fmt.Errorf("%w: credential date %q is not the day of X-Amz-Date %q", ErrScope, clip(day), amzDate)
	}
	if scopeRegion != region {
		return fmt.Errorf("%w: signed for region %q, this endpoint is in %q", ErrScope, clip(scopeRegion), region)
	}
	if service != Service {
		return fmt.Errorf("%w: signed for service %q, want %q", ErrScope, clip(service), Service)
	}

	if err := checkDate(signedAt, params, now); err != nil {
		return err
	}

	c, ok := creds(keyID)
	if !ok || c.SecretAccessKey == "" {
		return fmt.Errorf("%w: %q", ErrUnknownKey, clip(keyID))
	}

	headers := strings.Split(signedHeaders, ";")
	if !slices.Contains(headers, "host") {
		return fmt.Errorf("%w: X-Amz-SignedHeaders must include host", ErrMalformed)
	}
	if !slices.IsSorted(headers) || slices.Contains(headers, "") {
		return fmt.Errorf("%w: X-Amz-SignedHeaders must be sorted lower-case names", ErrMalformed)
	}
	var canonHeaders strings.Builder
	for _, h := range headers {
		if h != strings.ToLower(h) {
			return fmt.Errorf("%w: X-Amz-SignedHeaders must be sorted lower-case names", ErrMalformed)
		}
		var value string
		if h == "host" {
			value = r.Host
		} else {
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return fmt.Errorf("%w: signed header %q is missing", ErrSignature, clip(h))
			}
			for i := range vs {
				vs[i] = strings.Join(strings.Fields(vs[i]), " ")
			}
			value = strings.Join(vs, ",")
		}
		canonHeaders.WriteString(h + ":" + value + "\n")
	}

	canonPath := canonicalPath(r.URL)
	key := signingKey(c.SecretAccessKey, day, region, Service)
	scopeStr := strings.Join(scope[1:], "/")
	sign := func(withToken bool) string {
		query := canonicalQuery(params, withToken)
		creq := strings.Join([]string{r.Method, canonPath, query, canonHeaders.String(), signedHeaders, emptySHA256}, "\n")
		sum := sha256.Sum256([]byte(creq))
		sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scopeStr + "\n" + hex.EncodeToString(sum[:])
		return hex.EncodeToString(hmacSHA256(key, sts))
	}
	if !equal(sign(false), signature) {
		if _, hasToken := params["X-Amz-Security-Token"]; hasToken && equal(sign(true), signature) {
			return fmt.Errorf("%w: X-Amz-Security-Token was signed; AWS IoT wants it appended after the signature, unsigned", ErrSignature)
		}
		return fmt.Errorf("%w: check the secret key, the signed host %q and the canonical request", ErrSignature, clip(r.Host))
	}

	token, hasToken := params["X-Amz-Security-Token"]
	switch {
	case c.SessionToken == "" && hasToken:
		return fmt.Errorf("%w: session token given for long-term credentials %q", ErrToken, keyID)
	case c.SessionToken != "" && !hasToken:
		return fmt.Errorf("%w: temporary credentials %q need X-Amz-Security-Token", ErrToken, keyID)
	case hasToken && !equal(token, c.SessionToken):
		return fmt.Errorf("%w: session token is not the one of %q", ErrToken, keyID)
	}
	return nil
}

// checkDate applies MaxSkew and X-Amz-Expires.
func checkDate(signedAt time.Time, params map[string]string, now time.Time) error {
	if signedAt.After(now.Add(MaxSkew)) {
		return fmt.Errorf("%w: signed at %s, more than %s after the server's clock (%s)",
			ErrDate, signedAt.Format(time.RFC3339), MaxSkew, now.UTC().Format(time.RFC3339))
	}
	exp, ok := params["X-Amz-Expires"]
	if !ok {
		if signedAt.Before(now.Add(-MaxSkew)) {
			return fmt.Errorf("%w: signed at %s, more than %s before the server's clock (%s)",
				ErrDate, signedAt.Format(time.RFC3339), MaxSkew, now.UTC().Format(time.RFC3339))
		}
		return nil
	}
	secs, err := strconv.Atoi(exp)
	if err != nil || secs < 1 || secs > maxExpires || exp[0] == '+' || exp[0] == '0' {
		return fmt.Errorf("%w: X-Amz-Expires %q: want 1 to %d seconds", ErrMalformed, clip(exp), maxExpires)
	}
	if now.After(signedAt.Add(time.Duration(secs) * time.Second)) {
		return fmt.Errorf("%w: signed at %s for %d s, expired by the server's clock (%s)",
			ErrDate, signedAt.Format(time.RFC3339), secs, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// parseQuery decodes a raw query into one value per name, refusing
// repeated names and invalid escapes.
func parseQuery(raw string) (map[string]string, error) {
	params := make(map[string]string)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: invalid escape in the query", ErrMalformed)
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("%w: parameter %q repeated", ErrMalformed, clip(key))
		}
		params[key] = value
	}
	return params, nil
}

// canonicalQuery is the SigV4 canonical query string: every parameter but
// the signature (and the session token unless withToken), names and values
// URI-encoded, sorted by name.
func canonicalQuery(params map[string]string, withToken bool) string {
	type pair struct{ k, v string }
	pairs := make([]pair, 0, len(params))
	for k, v := range params {
		if k == "X-Amz-Signature" || k == "X-Amz-Security-Token" && !withToken {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k, true), uriEncode(v, true)})
	}
	// Names are unique (parseQuery refuses repeats): sort by name.
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	return b.String()
}

// canonicalPath is the URI-encoded path, each segment encoded again as
// SigV4 does for services other than S3.
func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return uriEncode(p, false)
}

// uriEncode percent-encodes every byte but the unreserved characters, and
// '/' too when encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~',
			c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// signingKey derives the SigV4 key of a day, region and service.
func signingKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// clip shortens what the client sent before it goes into an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
