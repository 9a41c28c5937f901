package jobs

import (
	"encoding/json"
	"testing"
)

// slowToken is what clientToken returned before job.ScanClientToken: the reference.
func slowToken(payload []byte) string {
	var b struct {
		ClientToken string `json:"clientToken"`
	}
	err := json.Unmarshal(payload, &b)
	if _, syntax := err.(*json.SyntaxError); !syntax {
		return b.ClientToken
	}
	return scanToken(payload)
}

var tokenSeeds = []string{
	`{"clientToken":"abc"}`,
	`{"clientToken":"abc","execution":{"jobId":"j1","statusDetails":{"a":"}"},"x":[1,{"clientToken":"no"}]}}`,
	` { "timestamp" : 12 , "clientToken" : "t-1" } `,
	`{"a":true,"b":null,"c":-1.5e3,"d":"x\"y","clientToken":"z"}`,
	`{"CLIENTTOKEN":"a"}`,
	`{"clientToken":"a","clientToken":"b"}`,
	`{"clientToken":"a","ClientToken":"b"}`,
	`{"client\u0054oken":"a"}`,
	`{"clientToken":"a\"b"}`,
	`{"clientToken":5}`,
	`{"clientToken":null}`,
	`{"clientToken":"a"`,
	`{"x":tru,"clientToken":"a"}`,
	`[1,2]`,
	`"s"`,
	`{}`,
	``,
	`{"code":"InvalidRequest","message":"m","clientToken":"tok","executionState":{"status":"QUEUED","versionNumber":1}}`,
}

// FuzzFastToken checks that clientToken (with its fast path) agrees with
// the reflection-based decoding it replaces, whatever the payload.
func FuzzFastToken(f *testing.F) {
	for _, s := range tokenSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := clientToken(p), slowToken(p); got != want {
			t.Errorf("clientToken(%q) = %q, want %q", p, got, want)
		}
	})
}

func BenchmarkClientToken(b *testing.B) {
	p := []byte(`{"timestamp":1700000000,"clientToken":"0123456789abcdefghijkl","execution":{"jobId":"job-1","status":"IN_PROGRESS","versionNumber":2,"jobDocument":{"operation":"install","url":"https://example.com/fw.bin"}}}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clientToken(p)
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			slowToken(p)
		}
	})
}

func init() {
	tokenSeeds = append(tokenSeeds, "{\"clientToken\":\"\xff\"}", `{"clientToken":"é"}`)
}
