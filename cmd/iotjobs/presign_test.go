package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/iotjobs/iotjobs/testkit/sigv4test"
)

// awsEnv keeps the machine's AWS configuration out of a test: empty
// shared files, no instance metadata, no credentials in the environment;
// then sets env.
func awsEnv(t *testing.T, env map[string]string) (configFile string) {
	t.Helper()
	dir := t.TempDir()
	configFile = filepath.Join(dir, "config")
	for _, f := range []string{configFile, filepath.Join(dir, "credentials")} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", configFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return configFile
}

// verifyURL checks a presigned URL as AWS IoT Core would, now.
func verifyURL(t *testing.T, raw string, creds aws.Credentials, region string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	if u.Scheme != "wss" || u.Path != "/mqtt" {
		t.Errorf("URL %s: want wss://HOST/mqtt?...", raw)
	}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: u.Path, RawQuery: u.RawQuery}, Host: u.Host, Header: http.Header{}}
	if err := sigv4test.Verify(r, sigv4test.StaticLookup(creds), region, time.Now()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestPresign(t *testing.T) {
	const endpoint = "abc123-ats.iot.eu-west-1.amazonaws.com"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		profile string // written to the config file
		creds   aws.Credentials
		region  string
		host    string
	}{
		{
			name:   "environment keys, region from the endpoint",
			args:   []string{"--endpoint", endpoint},
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_REGION": "us-east-1"},
			creds:  aws.Credentials{AccessKeyID: "AKIDENV", SecretAccessKey: "env-secret"},
			region: "eu-west-1",
			host:   endpoint,
		},
		{
			name:   "session token, region flag, port",
			args:   []string{"-endpoint", "LocalHost:9443", "-region", "ap-northeast-1"},
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "ASIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "tok/en+=="},
			creds:  aws.Credentials{AccessKeyID: "ASIAENV", SecretAccessKey: "env-secret", SessionToken: "tok/en+=="},
			region: "ap-northeast-1",
			host:   "localhost:9443",
		},
		{
			name:   "region from the environment",
			args:   []string{"--endpoint", "iot.example.com"},
			env:    map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_REGION": "sa-east-1"},
			creds:  aws.Credentials{AccessKeyID: "AKIDENV", SecretAccessKey: "env-secret"},
			region: "sa-east-1",
			host:   "iot.example.com",
		},
		{
			name:    "profile",
			args:    []string{"--endpoint", "iot.example.com:8443", "--profile", "dev"},
			profile: "[profile dev]\nregion = us-west-2\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
			creds:   aws.Credentials{AccessKeyID: "AKIDPROFILE", SecretAccessKey: "profile-secret"},
			region:  "us-west-2",
			host:    "iot.example.com:8443",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgFile := awsEnv(t, tt.env)
			if tt.profile != "" {
				if err := os.WriteFile(cfgFile, []byte(tt.profile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), append([]string{"presign"}, tt.args...), &stdout, &stderr); err != nil {
				t.Fatalf("presign: %v\n%s", err, &stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("stdout %q: want one line, the URL", stdout.String())
			}
			verifyURL(t, lines[0], tt.creds, tt.region)
			if u, _ := url.Parse(lines[0]); u.Host != tt.host {
				t.Errorf("host %q, want %q", u.Host, tt.host)
			}
			if tok := tt.creds.SessionToken; tok != "" && !strings.HasSuffix(lines[0], "&X-Amz-Security-Token="+url.QueryEscape(tok)) {
				t.Errorf("URL %s does not end with the session token", lines[0])
			}
			note := stderr.String()
			if !strings.Contains(note, tt.creds.AccessKeyID) || !strings.Contains(note, tt.region) {
				t.Errorf("stderr %q does not name the access key and region", note)
			}
			for _, secret := range []string{tt.creds.SecretAccessKey, "X-Amz-Signature"} {
				if strings.Contains(note, secret) {
					t.Errorf("stderr shows a secret: %q", note)
				}
			}
		})
	}
}

func TestPresignErrors(t *testing.T) {
	keys := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no endpoint", nil, keys, "--endpoint is required"},
		{"bad endpoint", []string{"--endpoint", "wss://x.iot.eu-west-1.amazonaws.com/mqtt"}, keys, "want HOST or HOST:PORT"},
		{"no region", []string{"--endpoint", "localhost:9443"}, keys, "no region"},
		{"bad region", []string{"--endpoint", "localhost:9443", "--region", "moon"}, keys, "not an AWS region"},
		{"unknown profile", []string{"--endpoint", "x.iot.eu-west-1.amazonaws.com", "--profile", "nope"}, keys, "nope"},
		{"no credentials", []string{"--endpoint", "x.iot.eu-west-1.amazonaws.com"}, nil, "retrieve credentials"},
		{"extra argument", []string{"--endpoint", "x.iot.eu-west-1.amazonaws.com", "extra"}, keys, "unexpected arguments"},
		{"unknown flag", []string{"--nope"}, keys, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			awsEnv(t, tt.env)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"presign"}, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("presign %q = %v, want an error with %q", tt.args, err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if strings.Contains(err.Error(), "env-secret") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestPresignHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"presign", "-h"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "--endpoint HOST[:PORT]") {
		t.Fatalf("presign -h = %v, stderr %q", err, stderr.String())
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "presign") {
		t.Fatalf("help = %v, %q: presign not listed", err, stdout.String())
	}
}
