package agent_test

import (
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/app/agent"
	"github.com/iotjobs/iotjobs/domain/job"
)

func TestSanitizeDetails(t *testing.T) {
	long := strings.Repeat("ü", 1500)
	exact := strings.Repeat("x", job.MaxStatusDetailValueLength)
	tests := []struct {
		name string
		in   job.StatusDetails
		want job.StatusDetails
	}{
		{name: "nil", in: nil, want: nil},
		{name: "empty", in: job.StatusDetails{}, want: nil},
		{name: "valid", in: job.StatusDetails{"a:b_c-1": "ok é 😀", "x": exact}, want: job.StatusDetails{"a:b_c-1": "ok é 😀", "x": exact}},
		{name: "key characters", in: job.StatusDetails{"a b/ü": "v"}, want: job.StatusDetails{"a_b__": "v"}},
		{name: "invalid UTF-8 key", in: job.StatusDetails{"k\xff": "v"}, want: job.StatusDetails{"k_": "v"}},
		{name: "long key", in: job.StatusDetails{strings.Repeat("k", 200) + "!": "v"}, want: job.StatusDetails{strings.Repeat("k", 128): "v"}},
		{name: "empty key", in: job.StatusDetails{"": "v", "k": "v"}, want: job.StatusDetails{"k": "v"}},
		{name: "valid key wins", in: job.StatusDetails{"a_b": "valid", "a b": "x", "a!b": "y"}, want: job.StatusDetails{"a_b": "valid"}},
		{name: "smaller invalid key wins", in: job.StatusDetails{"a!b": "y", "a b": "x"}, want: job.StatusDetails{"a_b": "x"}},
		{name: "control characters", in: job.StatusDetails{"k": "a\tb\nc\r\x00d\x7f\u200be\xffé"}, want: job.StatusDetails{"k": "a b c de\u00e9"}},
		{name: "empty values", in: job.StatusDetails{"a": "", "b": "\x00\u200b", "c": "c"}, want: job.StatusDetails{"c": "c"}},
		{name: "long value", in: job.StatusDetails{"k": long}, want: job.StatusDetails{"k": strings.Repeat("ü", 1023) + "…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := maps.Clone(tt.in)
			got := agent.SanitizeDetails(tt.in)
			if !maps.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("SanitizeDetails(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
			if !maps.Equal(in, tt.in) {
				t.Errorf("SanitizeDetails changed its argument")
			}
			if err := got.Validate(); err != nil {
				t.Errorf("result invalid: %v", err)
			}
		})
	}
}

func TestSanitizeDetailsSize(t *testing.T) {
	in := job.StatusDetails{}
	for i := range 100 {
		in[string(rune('a'+i%26))+strings.Repeat("k", i/26)] = strings.Repeat("<", 1024) // 6 bytes each in JSON
	}
	got := agent.SanitizeDetails(in)
	if len(got) == 0 || len(got) == len(in) {
		t.Fatalf("kept %d of %d entries", len(got), len(in))
	}
	if n := encodedSize(t, got); n > agent.MaxDetailsSize {
		t.Errorf("encoding is %d bytes, over %d", n, agent.MaxDetailsSize)
	}
	if _, ok := got["a"]; !ok {
		t.Errorf("dropped the first key")
	}
}

// FuzzSanitizeDetails checks that whatever goes in, valid details within
// the size limit come out, that valid details are kept as they are, and
// that sanitizing twice changes nothing more.
func FuzzSanitizeDetails(f *testing.F) {
	f.Add("key", "value", "k2", "v2")
	f.Add("a b", "x\x00y", "a_b", "")
	f.Add("", "\xff\xfe", strings.Repeat("k", 130), strings.Repeat("é", 1100))
	f.Add("ü", "\u2028<>&\"\\", ":", "\t")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := job.StatusDetails{k1: v1, k2: v2}
		got := agent.SanitizeDetails(in)
		if err := got.Validate(); err != nil {
			t.Fatalf("SanitizeDetails(%q) = %q: %v", in, got, err)
		}
		if n := encodedSize(t, got); n > agent.MaxDetailsSize {
			t.Fatalf("encoding is %d bytes", n)
		}
		if again := agent.SanitizeDetails(got); !maps.Equal(again, got) {
			t.Fatalf("not idempotent: %q then %q", got, again)
		}
		if in.Validate() == nil && !maps.Equal(got, in) {
			t.Fatalf("valid %q changed to %q", in, got)
		}
		for _, v := range got {
			if !utf8.ValidString(v) {
				t.Fatalf("value %q is not UTF-8", v)
			}
		}
	})
}
