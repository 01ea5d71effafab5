package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/latchws/latch/server"
)

const (
	defaultAddr       = ":8080"
	shutdownTimeout   = 5 * time.Second
	readHeaderTimeout = 10 * time.Second
)

const usage = `Usage:
  latch [serve] [flags]   run the server (the default command)
  latch help              print this help

Routes:
  /echo   echoes every WebSocket message back

Flags of serve:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status; ctx is
// cancelled by SIGINT or SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "help", "-h", "-help", "--help":
			printUsage(stdout)
			return 0
		default:
			if !strings.HasPrefix(args[0], "-") {
				fmt.Fprintf(stderr, "latch: unknown command %q\n\n", args[0])
				printUsage(stderr)
				return 2
			}
		}
	}
	return serve(ctx, args, stdout, stderr)
}

type serveConfig struct {
	addr      string
	maxMsg    int64
	logLevel  string
	logFormat string
}

func newFlagSet(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("latch serve", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", defaultAddr, "listen `address`; port 0 picks a free port")
	fs.Int64Var(&cfg.maxMsg, "max-message-size", server.DefaultMaxMessageSize, "largest message accepted, in `bytes`; larger ones close with 1009")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	fs := newFlagSet(&serveConfig{})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := newFlagSet(&cfg)
	fs.SetOutput(io.Discard) // errors are reported below, with the full usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "latch: %v\n\n", err)
		printUsage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "latch: unexpected argument %q\n\n", fs.Arg(0))
		printUsage(stderr)
		return 2
	}
	if cfg.maxMsg <= 0 {
		fmt.Fprintf(stderr, "latch: -max-message-size must be positive, got %d\n", cfg.maxMsg)
		return 2
	}
	logger, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "latch: %v\n", err)
		return 2
	}

	mux := http.NewServeMux()
	mux.Handle("/echo", server.NewEchoHandler(nil, cfg.maxMsg, logger))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		logger.Error("listen failed", "addr", cfg.addr, "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "latch: listening on http://%s\n", ln.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		logger.Error("server failed", "err", err)
		return 1
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Shutdown does not wait for hijacked (WebSocket) connections; they end
	// when the process exits.
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
	}
	<-serveErr // http.ErrServerClosed once Shutdown has begun
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil || !validLevel(level) {
		return nil, fmt.Errorf("-log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json, got %q", format)
}

// validLevel rejects the offsets ("info+2") slog would also accept.
func validLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}
