package jobs

import (
	"encoding/json"
	"strconv"

	"github.com/iotjobs/iotjobs/domain/job"
)

// marshalRequest returns the JSON of a request body: the bytes json.Marshal
// returns, written without reflection for the usual requests (plain ASCII
// strings, no status details), by json.Marshal otherwise.
func marshalRequest(body any) ([]byte, error) {
	var b []byte
	ok := false
	switch r := body.(type) {
	case *job.GetPendingRequest:
		b, ok = make([]byte, 0, 64), true
		b = append(b, '{')
		b, ok = appendStringField(b, "clientToken", r.ClientToken, true)
		b = append(b, '}')
	case *job.DescribeRequest:
		b, ok = make([]byte, 0, 96), true
		b = append(b, '{')
		if r.ExecutionNumber != nil {
			b = append(b, `"executionNumber":`...)
			b = strconv.AppendInt(b, *r.ExecutionNumber, 10)
		}
		if r.IncludeJobDocument != nil {
			b = comma(b)
			b = append(b, `"includeJobDocument":`...)
			b = strconv.AppendBool(b, *r.IncludeJobDocument)
		}
		b, ok = appendStringField(b, "clientToken", r.ClientToken, true)
		b = append(b, '}')
	case *job.UpdateRequest:
		if r.StatusDetails != nil {
			break
		}
		b = make([]byte, 0, 128)
		b = append(b, '{')
		b, ok = appendStringField(b, "status", string(r.Status), false)
		if r.ExpectedVersion != nil {
			b = append(b, `,"expectedVersion":`...)
			b = strconv.AppendInt(b, int64(*r.ExpectedVersion), 10)
		}
		if r.ExecutionNumber != nil {
			b = append(b, `,"executionNumber":`...)
			b = strconv.AppendInt(b, *r.ExecutionNumber, 10)
		}
		if r.IncludeJobExecutionState {
			b = append(b, `,"includeJobExecutionState":true`...)
		}
		if r.IncludeJobDocument {
			b = append(b, `,"includeJobDocument":true`...)
		}
		if r.StepTimeoutInMinutes != nil {
			b = append(b, `,"stepTimeoutInMinutes":`...)
			b = strconv.AppendInt(b, *r.StepTimeoutInMinutes, 10)
		}
		if ok {
			b, ok = appendStringField(b, "clientToken", r.ClientToken, true)
		}
		b = append(b, '}')
	}
	if ok {
		return b, nil
	}
	return json.Marshal(body)
}

// comma appends a comma unless b ends an opening brace.
func comma(b []byte) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	return b
}

// appendStringField appends "name":"value" (after a comma unless first),
// or nothing when omitEmpty and value is empty. It reports false for a
// value json.Marshal would escape: then the caller falls back to it.
func appendStringField(b []byte, name, value string, omitEmpty bool) ([]byte, bool) {
	if omitEmpty && value == "" {
		return b, true
	}
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case c < 0x20, c >= 0x80, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return b, false
		}
	}
	b = comma(b)
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = append(b, value...)
	return append(b, '"'), true
}
