// Package iotjobs_test holds repository-wide checks: the import rules of the
// hexagonal layout (docs/architecture.md).
package iotjobs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/iotjobs/iotjobs"

// pkg is the part of `go list -json` output the rules need.
type pkg struct {
	ImportPath string
	Imports    []string
}

// layer returns the top-level folder of a package of the module, or "" for
// a package outside it.
func layer(path string) string {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rest, "/")
	return top
}

func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations returns one line per import that breaks the rules:
//   - domain and ports import the standard library only;
//   - app imports domain, ports and the standard library only;
//   - adapters never import app;
//   - only testkit and cmd import testkit.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		from := layer(p.ImportPath)
		for _, imp := range p.Imports {
			to := layer(imp)
			var bad bool
			switch from {
			case "domain", "ports":
				bad = !standard(imp) && to != from && !(from == "domain" && to == "domain")
			case "app":
				bad = !standard(imp) && to != "domain" && to != "ports" && to != "app"
			case "adapters":
				bad = to == "app"
			}
			if to == "testkit" && from != "testkit" && from != "cmd" {
				bad = true
			}
			if bad {
				out = append(out, p.ImportPath+" imports "+imp)
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	for _, want := range []string{"domain", "ports", "app", "adapters", "testkit"} {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return layer(p.ImportPath) == want }) {
			t.Errorf("no package found under %s/: is the layout intact?", want)
		}
	}
	for _, v := range violations(pkgs) {
		t.Errorf("import rule broken: %s", v)
	}
}

// TestViolations checks the rule checker itself on made-up packages, so
// TestImportRules cannot pass by checking nothing.
func TestViolations(t *testing.T) {
	m := module + "/"
	pkgs := []pkg{
		{m + "domain/job", []string{"fmt", m + "domain/reply", "github.com/x/y"}},
		{m + "ports", []string{"context", m + "domain/job"}},
		{m + "app/jobs", []string{m + "domain/job", m + "ports", m + "app/x", m + "adapters/membroker"}},
		{m + "app/agent", []string{m + "testkit/jobstest"}},
		{m + "adapters/membroker", []string{m + "ports", m + "app/jobs"}},
		{m + "testkit/jobstest", []string{m + "testkit/x", m + "adapters/membroker"}},
		{m + "cmd/iotjobs", []string{m + "testkit/jobstest", m + "app/jobs"}},
	}
	want := []string{
		m + "domain/job imports github.com/x/y",
		m + "ports imports " + m + "domain/job",
		m + "app/jobs imports " + m + "adapters/membroker",
		m + "app/agent imports " + m + "testkit/jobstest",
		m + "adapters/membroker imports " + m + "app/jobs",
	}
	if got := violations(pkgs); !slices.Equal(got, want) {
		t.Errorf("violations:\ngot  %q\nwant %q", got, want)
	}
}
