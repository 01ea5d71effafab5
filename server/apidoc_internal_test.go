package server

import (
	"os"
	"strings"
	"testing"
)

// Every server API method is described in docs/api.md and
// docs/openapi.yaml, and nothing else is.
func TestAPIDocumented(t *testing.T) {
	md, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := &api{}
	_ = a.handler() // panics if apiMethods and the handlers differ
	for _, m := range apiMethods {
		if !strings.Contains(string(md), "POST /api/"+m+"\n") {
			t.Errorf("docs/api.md has no example of POST /api/%s", m)
		}
		if !strings.Contains(string(spec), "\n  /api/"+m+":\n") {
			t.Errorf("docs/openapi.yaml has no path /api/%s", m)
		}
	}
	if n := strings.Count(string(spec), "\n  /api/"); n != len(apiMethods) {
		t.Errorf("docs/openapi.yaml has %d paths, the API %d methods", n, len(apiMethods))
	}
}
