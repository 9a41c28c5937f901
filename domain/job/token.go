package job

// ScanClientToken finds the clientToken of payload, which must be valid JSON,
// without encoding/json's reflection: it scans the top-level members of an
// object. It reports ok only when the answer is certainly the one
// json.Unmarshal into a struct with a string clientToken field would give:
// no member name that could match clientToken other than one exact
// "clientToken" (no escaped, non-ASCII or differently cased names, no
// duplicates) and, when found, a plain ASCII string value without escapes.
// Anything else is left to the caller's exact (slow) path.
func ScanClientToken(payload []byte) (token string, ok bool) {
	const name = "clientToken"
	i := skipSpace(payload, 0)
	if i >= len(payload) || payload[i] != '{' {
		return "", false
	}
	i++
	found := false
	for {
		i = skipSpace(payload, i)
		if i >= len(payload) {
			return "", false
		}
		switch payload[i] {
		case '}':
			return token, true
		case ',':
			i++
			continue
		case '"':
		default:
			return "", false
		}
		// A member name.
		start := i + 1
		end := start
		for end < len(payload) && payload[end] != '"' {
			if c := payload[end]; c == '\\' || c >= 0x80 {
				return "", false // might decode or fold to clientToken
			}
			end++
		}
		if end >= len(payload) {
			return "", false
		}
		key := payload[start:end]
		match := false
		if len(key) == len(name) {
			if string(key) == name {
				if found {
					return "", false // a duplicate: the last one wins
				}
				match, found = true, true
			} else if foldASCII(key, name) {
				return "", false
			}
		}
		i = skipSpace(payload, end+1)
		if i >= len(payload) || payload[i] != ':' {
			return "", false
		}
		i = skipSpace(payload, i+1)
		if match {
			if i >= len(payload) || payload[i] != '"' {
				return "", false // null, a number...: left to the slow path
			}
			j := i + 1
			for j < len(payload) && payload[j] != '"' {
				if c := payload[j]; c == '\\' || c >= 0x80 {
					// Escapes, and non-ASCII bytes (json.Unmarshal
					// replaces invalid UTF-8 with U+FFFD): slow path.
					return "", false
				}
				j++
			}
			if j >= len(payload) {
				return "", false
			}
			token = string(payload[i+1 : j])
			i = j + 1
			continue
		}
		if i = skipValue(payload, i); i < 0 {
			return "", false
		}
	}
}

// foldASCII reports whether the ASCII bytes b equal s ignoring case.
func foldASCII(b []byte, s string) bool {
	for k := range b {
		x, y := b[k], s[k]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at p[i]
// (p being valid JSON), or -1.
func skipValue(p []byte, i int) int {
	depth := 0
	for i < len(p) {
		switch c := p[i]; c {
		case '"':
			i++
			for i < len(p) && p[i] != '"' {
				if p[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(p) {
				return -1
			}
			i++
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			depth--
			i++
		case ',':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && i < len(p) {
			// A scalar or a closed container: done once a delimiter follows.
			if j := skipSpace(p, i); j < len(p) && (p[j] == ',' || p[j] == '}' || p[j] == ']') {
				return j
			}
		}
	}
	return -1
}
