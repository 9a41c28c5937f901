package job_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
)

// FuzzDocument decodes arbitrary JSON as a job document, the part of a
// reply or notify-next that a device acts on: it decodes exactly when it is
// JSON; null is empty; a string holding a JSON object is unwrapped to that
// object, any other value is kept as it came; and what is kept encodes to
// valid JSON that decodes back to the same document.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{
		`{"operation":"reboot"}`,
		`"{\"operation\":\"reboot\"}"`,
		`" {\"a\":[1,2,{\"b\":null}]} "`,
		`"{\"a\":"`,
		`"[1,2]"`,
		`"plain text"`,
		`{"steps":[{"action":{"name":"x","type":"runHandler","input":{"handler":"h","args":["\u00e9","\u2028"]}}}]}`,
		` null `,
		`null`,
		`[]`,
		`42`,
		`"\ud800"`,
		"\"\xff\"",
		`{"a":1}{"b":2}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d job.Document
		err := json.Unmarshal(data, &d)
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("Unmarshal(%q): %v, but json.Valid = %v", data, err, valid)
		}
		if err != nil {
			return
		}
		trimmed := bytes.TrimSpace(data)
		var s string
		switch {
		case string(trimmed) == "null":
			if d != nil {
				t.Fatalf("Unmarshal(%q) = %q, want empty", data, d)
			}
		case json.Unmarshal(trimmed, &s) == nil:
			inner := bytes.TrimSpace([]byte(s))
			want := trimmed
			if len(inner) > 0 && inner[0] == '{' && json.Valid(inner) {
				want = inner
			}
			if !bytes.Equal(d, want) {
				t.Fatalf("Unmarshal(%q) = %q, want %q", data, d, want)
			}
		case !bytes.Equal(d, trimmed):
			t.Fatalf("Unmarshal(%q) = %q, want it as it came", data, d)
		}
		b, err := json.Marshal(d)
		if err != nil || !json.Valid(b) {
			t.Fatalf("Marshal(%q) = %q, %v", d, b, err)
		}
		var back job.Document
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("Unmarshal(own encoding %q): %v", b, err)
		}
		// The same JSON value, not the same bytes: encoding/json compacts
		// and escapes <, > and & in what MarshalJSON returns.
		var raw json.RawMessage
		if err := d.Decode(&raw); (err == nil) != (len(d) > 0) {
			t.Fatalf("Decode of %q: %v", d, err)
		}
		if len(d) > 0 && !reflect.DeepEqual(jsonValue(t, d), jsonValue(t, back)) {
			t.Fatalf("round trip of %q gave %q", d, back)
		}
	})
}

// jsonValue decodes b, numbers kept as written.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}
