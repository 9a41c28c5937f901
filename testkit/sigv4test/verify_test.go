package sigv4test_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.uber.org/goleak"

	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The inputs and URLs of the test vectors of the SigV4 WebSocket spec.
var (
	tvTime  = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	tvToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
	tvCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	tv1     = "wss://example-ats.iot.us-east-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=026c20a61bae0c9e109ab3720b96164d965f64dfc0dd03bfc9f1152ab1d323f9"
	tv2     = tv1 + "&X-Amz-Security-Token=AQoDYXdzEPT%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI%2FqkPpKPi%2FkMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d%2Bxo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz%2BscqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR%2FoLxBA%3D%3D"
	tv3     = "wss://localhost:9443/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=ecefb48cd728de6216d94509a55778992da7b493853735856853c8f2055ee90f"
)

func withToken(c aws.Credentials, token string) aws.Credentials {
	c.SessionToken = token
	return c
}

// request makes the server's view of an upgrade request for a wss URL.
func request(t testing.TB, rawURL string) *http.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: u.Path, RawQuery: u.RawQuery}, Host: u.Host, Header: http.Header{}}
	return r
}

func TestVerifyVectors(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		creds aws.Credentials
	}{
		{"TV1 default port", tv1, tvCreds},
		{"TV2 session token", tv2, withToken(tvCreds, tvToken)},
		{"TV3 host with port", tv3, tvCreds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := sigv4test.StaticLookup(tt.creds)
			for _, now := range []time.Time{tvTime, tvTime.Add(sigv4test.MaxSkew), tvTime.Add(-sigv4test.MaxSkew)} {
				if err := sigv4test.Verify(request(t, tt.url), lookup, "us-east-1", now); err != nil {
					t.Errorf("Verify at %v: %v", now, err)
				}
			}
		})
	}
}

// presignAWS presigns with the AWS SDK's signer, optionally with
// X-Amz-Expires and with the session token signed (what a generic
// presigner does), so that the verifier is checked against what real SDKs
// send.
func presignAWS(t testing.TB, host string, creds aws.Credentials, at time.Time, expires string, signToken bool) string {
	t.Helper()
	u := &url.URL{Scheme: "https", Host: host, Path: "/mqtt"}
	if expires != "" {
		u.RawQuery = "X-Amz-Expires=" + expires
	}
	req := &http.Request{Method: http.MethodGet, URL: u, Host: host, Header: http.Header{}}
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableSessionToken = !signToken })
	signed, _, err := s.PresignHTTP(context.Background(), creds, req,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "iotdevicegateway", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if !signToken && creds.SessionToken != "" {
		signed += "&X-Amz-Security-Token=" + url.QueryEscape(creds.SessionToken)
	}
	return "wss" + strings.TrimPrefix(signed, "https")
}

func TestVerify(t *testing.T) {
	const host = "example-ats.iot.us-east-1.amazonaws.com"
	temp := withToken(tvCreds, tvToken)
	both := sigv4test.StaticLookup(temp)
	long := sigv4test.StaticLookup(tvCreds)
	now := tvTime
	tests := []struct {
		name   string
		url    string
		lookup sigv4test.Lookup
		region string
		now    time.Time
		mutate func(r *http.Request)
		want   error // nil: accepted
	}{
		{name: "expires accepted within its window", url: presignAWS(t, host, tvCreds, now, "86400", false), lookup: long, now: now.Add(23 * time.Hour)},
		{name: "expires passed", url: presignAWS(t, host, tvCreds, now, "60", false), lookup: long, now: now.Add(61 * time.Second), want: sigv4test.ErrDate},
		{name: "expires does not allow a future date", url: presignAWS(t, host, tvCreds, now, "86400", false), lookup: long, now: now.Add(-6 * time.Minute), want: sigv4test.ErrDate},
		{name: "expires zero", url: presignAWS(t, host, tvCreds, now, "0", false), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "expires too long", url: presignAWS(t, host, tvCreds, now, "604801", false), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "expires not a number", url: presignAWS(t, host, tvCreds, now, "1h", false), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "token with expires", url: presignAWS(t, host, temp, now, "86400", false), lookup: both, now: now},
		{name: "token signed", url: presignAWS(t, host, temp, now, "", true), lookup: both, now: now, want: sigv4test.ErrSignature},
		{name: "stale date", url: tv1, lookup: long, now: now.Add(5*time.Minute + time.Second), want: sigv4test.ErrDate},
		{name: "future date", url: tv1, lookup: long, now: now.Add(-5*time.Minute - time.Second), want: sigv4test.ErrDate},
		{name: "wrong secret", url: tv1, now: now, want: sigv4test.ErrSignature,
			lookup: sigv4test.StaticLookup(aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wrong"})},
		{name: "unknown key", url: tv1, lookup: sigv4test.StaticLookup(), now: now, want: sigv4test.ErrUnknownKey},
		{name: "nil-like lookup", url: tv1, lookup: func(string) (aws.Credentials, bool) { return aws.Credentials{}, true }, now: now, want: sigv4test.ErrUnknownKey},
		{name: "wrong region", url: tv1, lookup: long, region: "eu-west-1", now: now, want: sigv4test.ErrScope},
		{name: "token missing", url: tv1, lookup: both, now: now, want: sigv4test.ErrToken},
		{name: "token unexpected", url: tv2, lookup: long, now: now, want: sigv4test.ErrToken},
		{name: "token wrong", url: tv1 + "&X-Amz-Security-Token=other", lookup: both, now: now, want: sigv4test.ErrToken},
		{name: "other host", url: tv1, lookup: long, now: now, want: sigv4test.ErrSignature,
			mutate: func(r *http.Request) { r.Host = "other-ats.iot.us-east-1.amazonaws.com" }},
		{name: "upper-case host", url: tv1, lookup: long, now: now, want: sigv4test.ErrSignature,
			mutate: func(r *http.Request) { r.Host = strings.ToUpper(r.Host) }},
		{name: "port 443 in host", url: tv1, lookup: long, now: now, want: sigv4test.ErrSignature,
			mutate: func(r *http.Request) { r.Host += ":443" }},
		{name: "other path", url: tv1, lookup: long, now: now, want: sigv4test.ErrSignature,
			mutate: func(r *http.Request) { r.URL.Path = "/mqtt2" }},
		{name: "other method", url: tv1, lookup: long, now: now, want: sigv4test.ErrSignature,
			mutate: func(r *http.Request) { r.Method = http.MethodPost }},
		{name: "extra parameter", url: tv1 + "&a=b", lookup: long, now: now, want: sigv4test.ErrSignature},
		{name: "repeated parameter", url: tv1 + "&X-Amz-Date=20150830T123600Z", lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "bad escape", url: tv1 + "&a=%zz", lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "no query", url: "wss://h/mqtt", lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "signature upper case", url: strings.Replace(tv1, "026c20a6", "026C20A6", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "signature changed", url: strings.Replace(tv1, "026c20a6", "126c20a6", 1), lookup: long, now: now, want: sigv4test.ErrSignature},
		{name: "other algorithm", url: strings.Replace(tv1, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "other service", url: strings.Replace(tv1, "iotdevicegateway", "iotdata", 1), lookup: long, now: now, want: sigv4test.ErrScope},
		{name: "scope day differs", url: strings.Replace(tv1, "%2F20150830%2F", "%2F20150831%2F", 1), lookup: long, now: now, want: sigv4test.ErrScope},
		{name: "short scope", url: strings.Replace(tv1, "%2Faws4_request", "", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "bad date", url: strings.Replace(tv1, "X-Amz-Date=20150830T123600Z", "X-Amz-Date=2015-08-30", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "host not signed", url: strings.Replace(tv1, "SignedHeaders=host", "SignedHeaders=x-a", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
		{name: "signed header missing", url: strings.Replace(tv1, "SignedHeaders=host", "SignedHeaders=host%3Bx-a", 1), lookup: long, now: now, want: sigv4test.ErrSignature},
		{name: "signed headers unsorted", url: strings.Replace(tv1, "SignedHeaders=host", "SignedHeaders=x-a%3Bhost", 1), lookup: long, now: now, want: sigv4test.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, tt.url)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			region := tt.region
			if region == "" {
				region = "us-east-1"
			}
			err := sigv4test.Verify(r, tt.lookup, region, tt.now)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Verify: %v, want nil", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if err != nil {
				for _, secret := range []string{tvCreds.SecretAccessKey, tvToken, "026c20a61bae0c9e"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q shows a secret", err)
					}
				}
			}
		})
	}
}

// TestVerifySignedHeaders checks a request that signs another header than
// host, as a generic signer may.
func TestVerifySignedHeaders(t *testing.T) {
	const host = "example-ats.iot.us-east-1.amazonaws.com"
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: host, Path: "/mqtt"}, Host: host,
		Header: http.Header{"X-Amz-Meta": {"  a   b "}}}
	s := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableHeaderHoisting = true })
	signed, _, err := s.PresignHTTP(context.Background(), tvCreds, req, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"iotdevicegateway", "us-east-1", tvTime)
	if err != nil {
		t.Fatal(err)
	}
	r := request(t, signed)
	r.Header.Set("X-Amz-Meta", "  a   b ")
	if !strings.Contains(r.URL.RawQuery, "host%3Bx-amz-meta") {
		t.Fatalf("the header was not signed: %s", r.URL.RawQuery)
	}
	if err := sigv4test.Verify(r, sigv4test.StaticLookup(tvCreds), "us-east-1", tvTime); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	r.Header.Set("X-Amz-Meta", "c")
	if err := sigv4test.Verify(r, sigv4test.StaticLookup(tvCreds), "us-east-1", tvTime); !errors.Is(err, sigv4test.ErrSignature) {
		t.Fatalf("Verify with the header changed: %v, want ErrSignature", err)
	}
}

func TestVerifyNil(t *testing.T) {
	if err := sigv4test.Verify(nil, sigv4test.StaticLookup(), "us-east-1", tvTime); !errors.Is(err, sigv4test.ErrMalformed) {
		t.Fatalf("Verify(nil): %v", err)
	}
}

// FuzzVerify checks that no query, host or path makes Verify panic, and
// that what it accepts is signed: changing the signature is refused.
func FuzzVerify(f *testing.F) {
	for _, u := range []string{tv1, tv2, tv3} {
		r := request(f, u)
		f.Add(r.URL.RawQuery, r.Host, r.URL.Path)
	}
	f.Add("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb%2Fc%2Fd%2Fe&X-Amz-Date=x", "h", "/")
	f.Add("X-Amz-Expires=-1&&=&%", "", "")
	lookup := sigv4test.StaticLookup(withToken(tvCreds, tvToken), aws.Credentials{AccessKeyID: "a", SecretAccessKey: "s"})
	f.Fuzz(func(t *testing.T, query, host, path string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query}, Host: host, Header: http.Header{}}
		if err := sigv4test.Verify(r, lookup, "us-east-1", tvTime); err != nil {
			return
		}
		// Accepted: any other signature must not be.
		sig := r.URL.Query().Get("X-Amz-Signature")
		other := "0"
		if strings.HasPrefix(sig, "0") {
			other = "1"
		}
		r.URL.RawQuery = strings.Replace(query, "X-Amz-Signature="+sig, "X-Amz-Signature="+other+sig[1:], 1)
		if err := sigv4test.Verify(r, lookup, "us-east-1", tvTime); err == nil {
			t.Fatalf("accepted %q with another signature", query)
		}
	})
}
