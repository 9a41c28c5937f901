package sigv4ws_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iotjobs/iotjobs/adapters/sigv4ws"
)

// The test vectors of the SigV4 WebSocket spec.
var (
	tvTime  = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	tvToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
	tvCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	tv1     = "wss://example-ats.iot.us-east-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=026c20a61bae0c9e109ab3720b96164d965f64dfc0dd03bfc9f1152ab1d323f9"
	tv2     = tv1 + "&X-Amz-Security-Token=AQoDYXdzEPT%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI%2FqkPpKPi%2FkMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d%2Bxo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz%2BscqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR%2FoLxBA%3D%3D"
	tv3sig  = "ecefb48cd728de6216d94509a55778992da7b493853735856853c8f2055ee90f"
)

func TestPresignVectors(t *testing.T) {
	withToken := tvCreds
	withToken.SessionToken = tvToken
	tests := []struct {
		name     string
		endpoint string
		region   string
		creds    aws.Credentials
		want     string
	}{
		{"TV1", "example-ats.iot.us-east-1.amazonaws.com", "us-east-1", tvCreds, tv1},
		{"TV1 region from endpoint", "example-ats.iot.us-east-1.amazonaws.com", "", tvCreds, tv1},
		{"TV1 upper case, port 443", "Example-ATS.iot.US-EAST-1.amazonaws.com:443", "", tvCreds, tv1},
		{"TV2 session token unsigned", "example-ats.iot.us-east-1.amazonaws.com", "us-east-1", withToken, tv2},
		{"TV3 host:port", "localhost:9443", "us-east-1", tvCreds,
			strings.Replace(strings.Replace(tv1, "example-ats.iot.us-east-1.amazonaws.com", "localhost:9443", 1),
				"026c20a61bae0c9e109ab3720b96164d965f64dfc0dd03bfc9f1152ab1d323f9", tv3sig, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sigv4ws.Presign(tt.endpoint, tt.region, tt.creds, tvTime)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Presign:\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
	// The time's location does not matter.
	got, err := sigv4ws.Presign("example-ats.iot.us-east-1.amazonaws.com", "", tvCreds, tvTime.In(time.FixedZone("X", 3600)))
	if err != nil || got != tv1 {
		t.Errorf("Presign in another zone = %s, %v", got, err)
	}
}

func TestPresignEndpoints(t *testing.T) {
	tests := []struct {
		endpoint string
		host     string // "" means refused
	}{
		{"abc-ats.iot.eu-west-1.amazonaws.com", "abc-ats.iot.eu-west-1.amazonaws.com"},
		{"ABC-ats.IOT.eu-west-1.amazonaws.com:443", "abc-ats.iot.eu-west-1.amazonaws.com"},
		{"localhost:8443", "localhost:8443"},
		{"127.0.0.1:1", "127.0.0.1:1"},
		{"[::1]:9443", "[::1]:9443"},
		{"[::1]", "[::1]"},
		{"::1", "[::1]"},
		{"", ""},
		{"wss://host", ""},
		{"host/mqtt", ""},
		{"host?x=1", ""},
		{"user@host", ""},
		{"host:", ""},
		{"host:0", ""},
		{"host:08883", ""},
		{"host:65536", ""},
		{"host:https", ""},
		{":443", ""},
		{"ho st", ""},
		{"hôst", ""},
		{"a:b:c", ""},
		{"[::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			u, err := sigv4ws.Presign(tt.endpoint, "us-east-1", tvCreds, tvTime)
			if tt.host == "" {
				if !errors.Is(err, sigv4ws.ErrConfig) {
					t.Fatalf("Presign(%q) = %v, want ErrConfig", tt.endpoint, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			if pu.Host != tt.host || pu.Scheme != "wss" || pu.Path != "/mqtt" {
				t.Errorf("URL %s: want wss://%s/mqtt", u, tt.host)
			}
		})
	}
}

func TestRegionFromEndpoint(t *testing.T) {
	tests := []struct {
		endpoint, region string
	}{
		{"abc123-ats.iot.eu-west-1.amazonaws.com", "eu-west-1"},
		{"abc123-ats.iot.us-gov-west-1.amazonaws.com:443", "us-gov-west-1"},
		{"abc123.iot.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"ABC-ATS.IOT.AP-SOUTHEAST-2.AMAZONAWS.COM", "ap-southeast-2"},
		{"localhost:9443", ""},
		{"127.0.0.1", ""},
		{"iot.example.com", ""},
		{"abc.iot.notaregion.amazonaws.com", ""},
		{"abc.iot.eu-west-x.amazonaws.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := sigv4ws.RegionFromEndpoint(tt.endpoint)
		if got != tt.region || ok != (tt.region != "") {
			t.Errorf("RegionFromEndpoint(%q) = %q, %v; want %q", tt.endpoint, got, ok, tt.region)
		}
	}
}

func TestPresignErrors(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		region   string
		creds    aws.Credentials
		at       time.Time
	}{
		{"no region", "localhost:9443", "", tvCreds, tvTime},
		{"bad region", "localhost:9443", "us-east-1/x", tvCreds, tvTime},
		{"no secret", "localhost:9443", "us-east-1", aws.Credentials{AccessKeyID: "A"}, tvTime},
		{"no key id", "localhost:9443", "us-east-1", aws.Credentials{SecretAccessKey: "S"}, tvTime},
		{"zero time", "localhost:9443", "us-east-1", tvCreds, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sigv4ws.Presign(tt.endpoint, tt.region, tt.creds, tt.at)
			if !errors.Is(err, sigv4ws.ErrConfig) {
				t.Fatalf("Presign = %v, want ErrConfig", err)
			}
			if strings.Contains(err.Error(), tvCreds.SecretAccessKey) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}
