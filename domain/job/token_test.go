package job

import (
	"encoding/json"
	"testing"
)

// tokenCases are bodies whose clientToken ScanClientToken reads or leaves
// to encoding/json.
var tokenCases = []string{
	`{"clientToken":"abc"}`,
	`{"clientToken":"abc","execution":{"jobId":"j1","statusDetails":{"a":"}"},"x":[1,{"clientToken":"no"}]}}`,
	` { "timestamp" : 12 , "clientToken" : "t-1" } `,
	`{"a":true,"b":null,"c":-1.5e3,"d":"x\"y","clientToken":"z"}`,
	`{"CLIENTTOKEN":"a"}`,
	`{"clientToken":"a","clientToken":"b"}`,
	`{"clientToken":"a","ClientToken":"b"}`,
	`{"client\u0054oken":"a"}`,
	`{"clientToken":"a\"b"}`,
	`{"clientToken":"\u00e9"}`,
	`{"clientToken":5}`,
	`{"clientToken":null}`,
	`{"x":[[{"y":"]"}]],"clientToken":"deep"}`,
	`[1,2]`,
	`"s"`,
	`{}`,
	`{"code":"InvalidRequest","clientToken":"tok","executionState":{"status":"QUEUED","versionNumber":1}}`,
}

// TestScanClientToken checks that whenever ScanClientToken answers, its
// answer is encoding/json's.
func TestScanClientToken(t *testing.T) {
	answered := 0
	for _, body := range tokenCases {
		var want struct {
			ClientToken string `json:"clientToken"`
		}
		werr := json.Unmarshal([]byte(body), &want)
		got, ok := ScanClientToken([]byte(body))
		if !ok {
			continue
		}
		answered++
		if werr != nil || got != want.ClientToken {
			t.Errorf("ScanClientToken(%s) = %q; encoding/json gives %q (%v)", body, got, want.ClientToken, werr)
		}
	}
	if answered < 5 {
		t.Errorf("ScanClientToken answered only %d of %d bodies: the fast path is not taken", answered, len(tokenCases))
	}
}

func FuzzScanClientToken(f *testing.F) {
	for _, body := range tokenCases {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return // the caller's contract: valid JSON only
		}
		got, ok := ScanClientToken(body)
		if !ok {
			return
		}
		var want struct {
			ClientToken string `json:"clientToken"`
		}
		if err := json.Unmarshal(body, &want); err != nil || got != want.ClientToken {
			t.Errorf("ScanClientToken(%q) = %q; encoding/json gives %q (%v)", body, got, want.ClientToken, err)
		}
	})
}

// TestScanClientTokenTruncated feeds bodies cut short, outside the
// contract (valid JSON), which must not panic and must not pass for a
// token read in full.
func TestScanClientTokenTruncated(t *testing.T) {
	full := `{"a":[1,{"b":"x\"y"}],"c":{"d":[]},"clientToken":"tok","e":true}`
	for i := range len(full) - 1 {
		body := full[:i]
		if tok, ok := ScanClientToken([]byte(body)); ok && tok == "tok" && i < len(full)-12 {
			t.Errorf("ScanClientToken(%q) = %q, true: a truncated body passed", body, tok)
		}
	}
	for _, body := range []string{`{"clientToken"x`, `{"clientToken":"a"x`, `{"a" 1}`, `{"clientToken":"é"}`, `{"cLientToken":"a","x":1}`} {
		ScanClientToken([]byte(body))
	}
}
