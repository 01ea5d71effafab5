package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/latchws/latch/server"
)

// configCommand runs `latch config check FILE` and `latch config example`.
func configCommand(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	const help = "Usage:\n  latch config check FILE   check FILE as latch serve -config FILE would read it, environment included\n" +
		"  latch config example      print a documented configuration file\n"
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprint(stdout, help)
		return 0
	case len(args) == 1 && args[0] == "example":
		_, _ = stdout.Write(exampleConfig)
		return 0
	case len(args) == 2 && args[0] == "check":
		return checkConfig(args[1], getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "latch: config takes check FILE or example\n%s", help)
	return 2
}

// checkConfig reads file as serve would and builds the server from it, as
// serve does before it listens: what the server package refuses is found
// too. Nothing listens, and the broker is not dialled.
func checkConfig(file string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, status := parseServe([]string{"-config", file}, getenv, io.Discard, stderr)
	if status >= 0 {
		return 1 // parseServe said why
	}
	cfg.Broker = nil // checked by parseServe; dialling it is a run-time matter
	cfg.LogOutput = io.Discard
	// TODO(lead): server.Config.Validate() error would check without
	// building the server (epoll instance, hubs, TLS files).
	srv, err := server.New(cfg)
	if err != nil {
		printError(stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // nothing was served: nothing to drain
	fmt.Fprintf(stdout, "latch: %s: ok\n", file)
	return 0
}

// versionLine is what `latch version` prints: the module version, the
// VCS revision the binary was built from and the toolchain, on one line:
//
//	latch v1.4.0 (rev 0123456789ab, 2026-01-02T03:04:05Z, modified) go1.26.8 linux/amd64
func versionLine() string {
	version, vcs := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" {
			version = v
		}
		var rev, at, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if rev != "" {
			vcs = " (rev " + rev
			if at != "" {
				vcs += ", " + at
			}
			vcs += modified + ")"
		}
	}
	return fmt.Sprintf("latch %s%s %s %s/%s", version, vcs, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// tokenCommand runs `latch token`.
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "latch: token: not yet")
	return 1
}
