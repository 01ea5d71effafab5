package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/cmd/latch/internal/cliflag"
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
	// Validate names the field; New then loads the files the
	// configuration names (TLS, keys) without listening or dialling.
	if err := cfg.Validate(); err != nil {
		printError(stderr, err)
		return 1
	}
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
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(bi)
}

// formatVersion is versionLine's line for bi (nil: no build information).
func formatVersion(bi *debug.BuildInfo) string {
	version, vcs := "(devel)", ""
	if bi != nil {
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

// tokenCommand runs `latch token`: it mints an HS256 token, for operators
// and tests (production tokens come from the application's backend).
func tokenCommand(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("latch token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		secret, secretFile, sub string
		ttl                     time.Duration
		subscribe, publish      string
	)
	fs.StringVar(&secret, "secret", "", "the HMAC `secret` of the server (default: $LATCH_AUTH_HMAC_SECRET)")
	fs.StringVar(&secretFile, "secret-file", "", "read the secret from this `file` (trailing newline trimmed)")
	fs.StringVar(&sub, "sub", "", "the `user` the token is for (claim \"sub\"; required)")
	cliflag.DurationVar(fs, &ttl, "ttl", time.Hour, "the token expires after `duration` (off: never)")
	fs.StringVar(&subscribe, "subscribe", "", "comma-separated channel `patterns` it may subscribe to, e.g. \"chat:*,news\"")
	fs.StringVar(&publish, "publish", "", "comma-separated channel `patterns` it may publish on")
	usage := func(w io.Writer) {
		fmt.Fprint(w, "Usage:\n  latch token -sub USER [-secret S | -secret-file F] [-ttl 1h] [-subscribe LIST] [-publish LIST]\n\n"+
			"Prints an HS256 connection token signed with the server's HMAC secret.\n\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	const seeTokenHelp = "Run 'latch token -h' for the flags.\n"
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "latch: token: %v\n%s", err, seeTokenHelp)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "latch: token: unexpected argument %q\n%s", fs.Arg(0), seeTokenHelp)
		return 2
	case sub == "":
		fmt.Fprintf(stderr, "latch: token: -sub is required: the user the token is for\n%s", seeTokenHelp)
		return 2
	case secret != "" && secretFile != "":
		fmt.Fprintf(stderr, "latch: token: give -secret or -secret-file, not both\n%s", seeTokenHelp)
		return 2
	}
	if secretFile != "" {
		var err error
		if secret, err = readSecret(secretFile); err != nil {
			fmt.Fprintf(stderr, "latch: token: %v\n", err)
			return 1
		}
	}
	if secret == "" {
		secret, _ = getenv(envName("auth-hmac-secret"))
	}
	if secret == "" {
		fmt.Fprintf(stderr, "latch: token: no secret: give -secret, -secret-file or LATCH_AUTH_HMAC_SECRET\n%s", seeTokenHelp)
		return 2
	}
	now := time.Now()
	id := auth.Identity{User: sub, Subscribe: splitList(subscribe), Publish: splitList(publish)}
	if ttl > 0 {
		id.ExpiresAt = now.Add(ttl)
	}
	token, err := auth.SignHS256([]byte(secret), id, now)
	if err != nil {
		fmt.Fprintf(stderr, "latch: token: %s\n", strings.TrimPrefix(err.Error(), "auth: "))
		return 1
	}
	fmt.Fprintln(stdout, token)
	return 0
}
