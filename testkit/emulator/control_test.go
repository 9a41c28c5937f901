package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// call sends one request to h and returns the status and the decoded body.
func call(t *testing.T, h http.Handler, method, target, body string) (int, map[string]any, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	var m map[string]any
	json.Unmarshal(rec.Body.Bytes(), &m) // lists do not decode into a map
	return rec.Code, m, rec.Body.Bytes()
}

func TestControlHandler(t *testing.T) {
	svc := jobstest.New(jobstest.Options{})
	h := ControlHandler(svc)
	create := `{"jobId":"j1","document":{"operation":"reboot"},"targets":["t1","t2"],"inProgressTimeoutSeconds":60}`

	steps := []struct {
		method, target, body string
		want                 int
	}{
		{"POST", "/jobs", create, http.StatusCreated},
		{"POST", "/jobs", create, http.StatusConflict},                                                // job id in use
		{"POST", "/jobs", `{"jobId":"bad id","document":{},"targets":["t1"]}`, http.StatusBadRequest}, // invalid id
		{"POST", "/jobs", `{"jobId":"j2","unknown":1}`, http.StatusBadRequest},
		{"POST", "/jobs", `{"jobId":"j2","document":{},"targets":["t1"],"inProgressTimeoutSeconds":-1}`, http.StatusBadRequest},
		{"POST", "/jobs", `not json`, http.StatusBadRequest},
		{"GET", "/things/t1/jobs/j1", "", http.StatusOK},
		{"GET", "/things/t1/jobs/nope", "", http.StatusNotFound},
		{"POST", "/things/t1/jobs/j1/cancel?force=maybe", "", http.StatusBadRequest},
		{"POST", "/things/t1/jobs/j1/cancel", "", http.StatusOK},
		{"POST", "/things/t1/jobs/j1/cancel", "", http.StatusConflict}, // already terminal
		{"POST", "/jobs/j1/cancel?force=true", "", http.StatusOK},
		{"POST", "/jobs/nope/cancel", "", http.StatusNotFound},
		{"DELETE", "/things/t2/jobs/j1", "", http.StatusOK},
		{"DELETE", "/things/t2/jobs/j1", "", http.StatusNotFound},
		{"GET", "/nowhere", "", http.StatusNotFound},
	}
	for _, s := range steps {
		req := httptest.NewRequest(s.method, s.target, strings.NewReader(s.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != s.want {
			t.Errorf("%s %s %s: status %d, want %d (body %s)", s.method, s.target, s.body, rec.Code, s.want, rec.Body)
		}
		if rec.Code >= 400 && s.target != "/nowhere" && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s %s: error body %s lacks an error", s.method, s.target, rec.Body)
		}
	}

	// The state the calls left, as the service holds it.
	e, ok := svc.Execution("t1", "j1")
	if !ok || e.Status != job.Canceled {
		t.Errorf("t1/j1 = %+v, %v; want CANCELED", e, ok)
	}
	if _, ok := svc.Execution("t2", "j1"); ok {
		t.Errorf("t2/j1 survived its deletion")
	}

	code, _, body := call(t, h, "GET", "/executions?thing=t1", "")
	var list []job.Execution
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /executions: %d %v %s", code, err, body)
	}
	if len(list) != 1 || list[0].JobID != "j1" || list[0].ThingName != "t1" || list[0].Status != job.Canceled {
		t.Errorf("GET /executions?thing=t1 = %+v, want j1 on t1 CANCELED", list)
	}
	code, m, _ := call(t, h, "GET", "/things/t1/jobs/j1", "")
	if code != http.StatusOK || m["status"] != string(job.Canceled) || m["jobDocument"] == nil {
		t.Errorf("GET one execution: %d %v", code, m)
	}
}

func TestControlHandlerClosedService(t *testing.T) {
	svc := jobstest.New(jobstest.Options{})
	svc.Close()
	code, m, _ := call(t, ControlHandler(svc), "POST", "/jobs", `{"jobId":"j1","document":{},"targets":["t1"]}`)
	if code != http.StatusServiceUnavailable || m["error"] == nil {
		t.Errorf("create on a closed service: %d %v, want 503 with an error", code, m)
	}
}
