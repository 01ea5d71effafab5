package browsertest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how Require ended the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.fatal = args[0].(string)
	runtime.Goexit()
}

func (r *recorder) Skip(args ...any) {
	r.skip = args[0].(string)
	runtime.Goexit()
}

// require runs Require as a test would, in a goroutine of its own so that
// Fatal and Skip can end it.
func require(t *testing.T) (*recorder, string) {
	r := &recorder{TB: t}
	var path string
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = Require(r)
	}()
	<-done
	return r, path
}

func TestPathFallsBackToPATH(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "chromium")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := defaultPath
	defaultPath = filepath.Join(dir, "missing")
	t.Cleanup(func() { defaultPath = old })
	t.Setenv("PATH", dir)
	if p, err := Path(); err != nil || p != fake {
		t.Fatalf("Path() = %q, %v; want %q from PATH", p, err, fake)
	}
}

func TestRequireMissing(t *testing.T) {
	old := defaultPath
	defaultPath = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { defaultPath = old })
	t.Setenv("PATH", t.TempDir())

	t.Setenv("CI", "true")
	r, path := require(t)
	if r.fatal == "" || r.skip != "" || path != "" {
		t.Fatalf("with CI=true: fatal %q, skip %q, path %q; want a failure", r.fatal, r.skip, path)
	}
	if !strings.Contains(r.fatal, "Chromium") || !strings.Contains(r.fatal, "install-peers.sh") {
		t.Errorf("failure message %q does not say what is missing and how to install it", r.fatal)
	}

	t.Setenv("CI", "")
	r, path = require(t)
	if r.skip == "" || r.fatal != "" || path != "" {
		t.Fatalf("without CI: fatal %q, skip %q, path %q; want a skip", r.fatal, r.skip, path)
	}
}

func TestRequireFound(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := defaultPath
	defaultPath = fake
	t.Cleanup(func() { defaultPath = old })
	t.Setenv("CI", "true")
	r, path := require(t)
	if r.fatal != "" || r.skip != "" || path != fake {
		t.Fatalf("fatal %q, skip %q, path %q; want %q", r.fatal, r.skip, path, fake)
	}
}
