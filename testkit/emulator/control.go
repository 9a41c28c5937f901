package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/iotjobs/iotjobs/domain/job"
	"github.com/iotjobs/iotjobs/testkit/jobstest"
)

// maxControlBody bounds a control request's body: a job document is at
// most 32 KiB, and JSON escaping can double it.
const maxControlBody = 128 * 1024

// CreateJobRequest is the body of POST /jobs.
type CreateJobRequest struct {
	JobID    string          `json:"jobId"`
	Document json.RawMessage `json:"document"`
	Targets  []string        `json:"targets"`
	// InProgressTimeoutSeconds, if set, times executions out that long
	// after they went IN_PROGRESS.
	InProgressTimeoutSeconds int64 `json:"inProgressTimeoutSeconds,omitempty"`
}

// ControlHandler serves the control plane of svc as JSON over HTTP:
//
//	POST   /jobs                                create a job (CreateJobRequest)
//	POST   /jobs/{jobId}/cancel[?force=true]    cancel a job
//	GET    /executions[?thing=NAME]             list executions
//	GET    /things/{thing}/jobs/{jobId}         one execution
//	POST   /things/{thing}/jobs/{jobId}/cancel[?force=true]
//	                                            cancel one execution
//	DELETE /things/{thing}/jobs/{jobId}         delete one execution
//
// Errors are {"error": "..."} with status 400 for invalid input, 404 for
// an unknown job or execution, 409 for a job id in use or a change the
// execution's status forbids.
func ControlHandler(svc *jobstest.Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		var req CreateJobRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("emulator: create job: %w", err))
			return
		}
		if req.InProgressTimeoutSeconds < 0 {
			writeError(w, http.StatusBadRequest, errors.New("emulator: create job: negative inProgressTimeoutSeconds"))
			return
		}
		spec := jobstest.JobSpec{
			JobID: req.JobID, Document: req.Document, Targets: req.Targets,
			InProgressTimeout: time.Duration(req.InProgressTimeoutSeconds) * time.Second,
		}
		if err := svc.CreateJob(r.Context(), spec); err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"jobId": req.JobID})
	})
	mux.HandleFunc("POST /jobs/{jobId}/cancel", func(w http.ResponseWriter, r *http.Request) {
		force, err := forceOf(r)
		if err == nil {
			err = svc.CancelJob(r.Context(), r.PathValue("jobId"), force)
		}
		respond(w, err)
	})
	mux.HandleFunc("GET /executions", func(w http.ResponseWriter, r *http.Request) {
		thing := r.URL.Query().Get("thing")
		out := []job.Execution{}
		for _, e := range svc.Executions() {
			if thing == "" || e.ThingName == thing {
				out = append(out, e)
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /things/{thing}/jobs/{jobId}", func(w http.ResponseWriter, r *http.Request) {
		e, ok := svc.Execution(r.PathValue("thing"), r.PathValue("jobId"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Errorf("emulator: %w", jobstest.ErrNotFound))
			return
		}
		writeJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("POST /things/{thing}/jobs/{jobId}/cancel", func(w http.ResponseWriter, r *http.Request) {
		force, err := forceOf(r)
		if err == nil {
			err = svc.CancelExecution(r.Context(), r.PathValue("thing"), r.PathValue("jobId"), force)
		}
		respond(w, err)
	})
	mux.HandleFunc("DELETE /things/{thing}/jobs/{jobId}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, svc.DeleteExecution(r.Context(), r.PathValue("thing"), r.PathValue("jobId")))
	})
	return mux
}

func forceOf(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	force, err := strconv.ParseBool(v)
	if err != nil {
		return false, &job.ValidationError{Field: "force", Reason: fmt.Sprintf("%q is not a boolean", v)}
	}
	return force, nil
}

func respond(w http.ResponseWriter, err error) {
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, job.ErrInvalidInput):
		return http.StatusBadRequest
	case errors.Is(err, jobstest.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, jobstest.ErrJobExists), errors.Is(err, jobstest.ErrInvalidState):
		return http.StatusConflict
	case errors.Is(err, jobstest.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}
