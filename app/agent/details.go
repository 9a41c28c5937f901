package agent

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/domain/job"
)

// MaxDetailsSize bounds the JSON encoding of the status details the agent
// sends: entries are dropped, the last in key order first, until the rest
// fits. It keeps an update far below the 128 KiB MQTT payload limit of AWS
// IoT.
const MaxDetailsSize = 32 * 1024

// ReasonKey is the status detail in which the agent reports why a job
// FAILED or was REJECTED. It replaces a detail of that name reported by the
// handler.
const ReasonKey = "reason"

// truncated ends a value cut to job.MaxStatusDetailValueLength.
const truncated = "…"

// SanitizeDetails returns d changed as little as needed to pass AWS's rules
// (job.StatusDetails.Validate), rather than have the service reject the
// update:
//
//   - in keys, every character outside [a-zA-Z0-9:_-] becomes '_', and keys
//     are cut to 128 characters; an empty key is dropped, and when two keys
//     become the same, the one that was valid wins, else the smaller one;
//   - in values, invalid UTF-8 and control and format characters are
//     removed (tabs and line breaks become spaces), values longer than
//     1024 characters are cut on a character boundary and end with "…",
//     and entries left empty are dropped;
//   - entries are dropped, the last in key order first, until the
//     encoding fits in MaxDetailsSize.
//
// Valid details come back equal; nil or empty details give nil.
func SanitizeDetails(d job.StatusDetails) job.StatusDetails {
	return sanitize(d, MaxDetailsSize)
}

func sanitize(d job.StatusDetails, budget int) job.StatusDetails {
	if len(d) == 0 {
		return nil
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	// Valid keys first, so that a valid key wins over an invalid one that
	// becomes it; each group in order, so that the result is
	// deterministic.
	slices.SortFunc(keys, func(a, b string) int {
		va, vb := validKey(a), validKey(b)
		switch {
		case va && !vb:
			return -1
		case vb && !va:
			return 1
		}
		return strings.Compare(a, b)
	})
	out := make(job.StatusDetails, len(d))
	for _, k := range keys {
		key := sanitizeKey(k)
		if key == "" {
			continue
		}
		if _, dup := out[key]; dup {
			continue
		}
		if v := sanitizeValue(d[k]); v != "" {
			out[key] = v
		}
	}
	fit(out, budget)
	if len(out) == 0 {
		return nil
	}
	return out
}

// fit drops entries of d, the last keys first, until its encoding fits in
// budget bytes.
func fit(d job.StatusDetails, budget int) {
	size := 2 // {}
	for k, v := range d {
		size += entrySize(k, v)
	}
	if size <= budget {
		return
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range d {
			if !yield(k) {
				return
			}
		}
	})
	for i := len(keys) - 1; i >= 0 && size > budget; i-- {
		size -= entrySize(keys[i], d[keys[i]])
		delete(d, keys[i])
	}
}

// entrySize is the most bytes the entry k: v takes in a JSON object,
// separator included.
func entrySize(k, v string) int { return jsonSize(k) + jsonSize(v) + 2 }

// jsonSize is the length of s as encoding/json writes it, quotes included.
func jsonSize(s string) int {
	n := 2
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			n += 2
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029' || r == utf8.RuneError:
			n += 6
		default:
			n += utf8.RuneLen(r)
		}
	}
	return n
}

func keyChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == ':'
}

func validKey(k string) bool {
	if k == "" || len(k) > job.MaxStatusDetailKeyLength {
		return false
	}
	for _, r := range k {
		if !keyChar(r) {
			return false
		}
	}
	return true
}

// sanitizeKey replaces every character a key may not hold by '_' (one per
// character, or per byte of invalid UTF-8) and cuts the key to its
// maximum length.
func sanitizeKey(k string) string {
	if validKey(k) {
		return k
	}
	var b strings.Builder
	n := 0
	for _, r := range k {
		if n == job.MaxStatusDetailKeyLength {
			break
		}
		if !keyChar(r) {
			r = '_'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// sanitizeValue removes what a value may not hold and cuts it to its
// maximum length.
func sanitizeValue(v string) string {
	clean := true
	for i, r := range v {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(v[i:]); size == 1 {
				clean = false
				break
			}
		}
		if unicode.In(r, unicode.C) {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		for i, r := range v {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(v[i:]); size == 1 {
					continue
				}
			}
			switch {
			case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
				b.WriteByte(' ')
			case unicode.In(r, unicode.C):
			default:
				b.WriteRune(r)
			}
		}
		v = b.String()
	}
	if utf8.RuneCountInString(v) <= job.MaxStatusDetailValueLength {
		return v
	}
	n := 0
	for i := range v {
		if n == job.MaxStatusDetailValueLength-1 {
			return v[:i] + truncated
		}
		n++
	}
	return v // not reached: v has more characters than the limit
}

// reasonOf returns the text of the reason detail for err.
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	s := sanitizeValue(err.Error())
	if strings.TrimSpace(s) == "" {
		return "error"
	}
	return s
}
