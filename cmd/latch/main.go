package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/latchws/latch/broker"
	bnats "github.com/latchws/latch/broker/nats"
	"github.com/latchws/latch/cmd/latch/internal/cliflag"
	"github.com/latchws/latch/cmd/latch/internal/connect"
	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

const defaultAddr = server.DefaultAddr

// seeHelp ends a usage error.
const seeHelp = "Run 'latch help' for the commands and flags.\n"

const usage = `Usage:
  latch [serve] [flags]   run the server (the default command)
  latch connect [flags] URL
                          open a WebSocket connection from the terminal
                          (latch connect -h lists its flags)
  latch help              print this help

Routes:
  /ws       the latch pub/sub protocol (docs/protocol.md)
  /echo     echoes every WebSocket message back
  /         the demo page
  /metrics  Prometheus metrics (on -admin-addr instead, if set)
  /debug/pprof/  on -admin-addr only: net/http/pprof's profiles
  /healthz  200 while the process runs
  /readyz   200 while serving, 503 while shutting down

Flags of serve (each also read from the environment variable shown; a flag
wins over the variable):
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status; ctx is
// cancelled by SIGINT or SIGTERM.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "connect":
			return connect.Run(ctx, args[1:], stdin, stdout, stderr)
		case "help", "-h", "-help", "--help":
			printUsage(stdout)
			return 0
		default:
			if !strings.HasPrefix(args[0], "-") {
				fmt.Fprintf(stderr, "latch: unknown command %q: the commands are serve, connect and help\n%s", args[0], seeHelp)
				return 2
			}
		}
	}
	return serve(ctx, args, stdout, stderr)
}

type serveConfig struct {
	addr              string
	tlsCert, tlsKey   string
	http2, h2c        bool
	engine            string
	allowedOrigins    string // comma-separated
	allowedHosts      string // comma-separated
	adminAddr         string
	maxConns          int
	maxConnsPerIP     int
	maxMsgRate        float64
	maxMsg            int64
	echoMaxMsg        int64
	httpIdleTimeout   time.Duration
	httpReadTimeout   time.Duration
	httpWriteTimeout  time.Duration
	maxHeaderBytes    int
	maxChannels       int
	sendQueue         int
	heartbeatInterval time.Duration
	messageTimeout    time.Duration
	writeStallTimeout time.Duration
	shutdownTimeout   time.Duration
	publishTimeout    time.Duration
	broker            string // comma-separated NATS URLs
	compression       bool
	contextTakeover   bool
	logLevel          string
	logFormat         string
}

func newFlagSet(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("latch serve", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", defaultAddr, "listen `address`; port 0 picks a free port")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM); with -tls-key, serve HTTPS and wss://")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.BoolVar(&cfg.http2, "http2", true, "with TLS, offer HTTP/2 and WebSockets over it (RFC 8441) on /ws and /echo; false: HTTP/1.1 only")
	fs.BoolVar(&cfg.h2c, "h2c", false, "also accept cleartext HTTP/2 with prior knowledge, WebSockets included, for a proxy in front that speaks h2c")
	fs.StringVar(&cfg.engine, "engine", server.EngineAuto, "how WebSockets are served: `auto` (epoll event loops where the platform has them, else goroutines), epoll (or refuse to start) or goroutines (a read goroutine per connection); TLS and HTTP/2 connections use goroutines either way")
	fs.StringVar(&cfg.allowedOrigins, "allowed-origins", "", "comma-separated browser `origins` accepted besides the server's own, e.g. \"example.com,*.example.com,localhost:*\"")
	fs.StringVar(&cfg.allowedHosts, "allowed-hosts", "", "comma-separated `hosts` the Host header may name, e.g. \"example.com,*.example.com\"; others get 421 (IP literals always pass; empty: only localhost names on a loopback -addr, else any)")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "", "serve /metrics and /debug/pprof/ on this `address` only (empty: /metrics on -addr, no pprof)")
	fs.IntVar(&cfg.maxConns, "max-connections", 0, "most open WebSocket `connections`, /ws and /echo together; more get HTTP 503 (0: unlimited)")
	fs.IntVar(&cfg.maxConnsPerIP, "max-connections-per-ip", 0, "most open WebSocket `connections` from one client IP (IPv6: one /64), /ws and /echo together; more get HTTP 429 (0: unlimited; keep 0 behind a reverse proxy, where every client has the proxy's IP)")
	fs.Float64Var(&cfg.maxMsgRate, "max-message-rate", server.DefaultMaxMessageRate, "most `messages` per second one /ws connection may send, with a burst of one second's worth; a faster client is throttled, not closed (0: unlimited)")
	fs.Int64Var(&cfg.maxMsg, "max-message-size", server.DefaultMaxMessageSize, "largest message accepted on /ws, in `bytes`; larger ones close with 1009")
	fs.Int64Var(&cfg.echoMaxMsg, "echo-max-message-size", server.DefaultEchoMaxMessageSize, "largest message accepted on /echo, in `bytes`; larger ones close with 1009")
	cliflag.DurationVar(fs, &cfg.httpIdleTimeout, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "close a keep-alive HTTP connection idle for `duration` (off: never)")
	cliflag.DurationVar(fs, &cfg.httpReadTimeout, "http-read-timeout", server.DefaultHTTPReadTimeout, "read a whole HTTP request, head and body, within `duration`; not applied to WebSockets once upgraded (off: no bound)")
	cliflag.DurationVar(fs, &cfg.httpWriteTimeout, "http-write-timeout", server.DefaultHTTPWriteTimeout, "write an HTTP response within `duration`; not applied to WebSockets once upgraded (off: no bound)")
	fs.IntVar(&cfg.maxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "largest HTTP request head, in `bytes`; larger ones get 431")
	fs.IntVar(&cfg.maxChannels, "max-channels", server.DefaultMaxChannels, "most `channels` one connection may subscribe to")
	fs.IntVar(&cfg.sendQueue, "send-queue", server.DefaultSendQueue, "publication `messages` queued per client; a client with a full queue is closed with 1008 (answers to its own requests are not counted: they slow its reading instead)")
	cliflag.DurationVar(fs, &cfg.heartbeatInterval, "heartbeat-interval", websocket.DefaultHeartbeatInterval, "ping a client silent for `duration`, drop it if it does not answer (off: no heartbeat)")
	cliflag.DurationVar(fs, &cfg.messageTimeout, "message-timeout", websocket.DefaultMessageTimeout, "a message a client has begun must arrive within `duration`, plus 1 s per KiB received; else close 1008 (off: no bound)")
	cliflag.DurationVar(fs, &cfg.writeStallTimeout, "write-stall-timeout", websocket.DefaultWriteStallTimeout, "drop a client that takes no byte of a write for `duration` (off: never)")
	fs.BoolVar(&cfg.compression, "compression", true, "accept permessage-deflate (RFC 7692) on /ws and /echo when a client offers it")
	fs.BoolVar(&cfg.contextTakeover, "compression-context-takeover", false, "keep the deflate context between messages: better ratios, ~1.2 MiB more per compressed connection")
	cliflag.PositiveDurationVar(fs, &cfg.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "on SIGINT or SIGTERM, wait up to `duration` for clients to close (cannot be off)")
	fs.StringVar(&cfg.broker, "broker", "", "comma-separated NATS server `URLs` (nats://HOST:PORT,...) to share channels with other latch nodes; empty: this node alone (docs/scaling.md)")
	cliflag.PositiveDurationVar(fs, &cfg.publishTimeout, "publish-timeout", server.DefaultPublishTimeout, "a publish waits up to `duration` for the broker to accept it, then the client gets \"unavailable\" (cannot be off)")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	return fs
}

// envName is the environment variable of a flag: -max-connections is
// LATCH_MAX_CONNECTIONS.
func envName(flagName string) string {
	return "LATCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag whose variable is set in the environment, before
// the command line is parsed so that flags win.
func applyEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := getenv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, name, e)
			}
		}
	})
	return err
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	fs := newFlagSet(&serveConfig{})
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// parseServe parses the environment and args into cfg. It returns the exit
// status to use when the command must stop here, and -1 otherwise.
func parseServe(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) (server.Config, int) {
	var cfg serveConfig
	fs := newFlagSet(&cfg)
	fs.SetOutput(io.Discard) // errors are reported below, with the full usage
	if err := applyEnv(fs, getenv); err != nil {
		fmt.Fprintf(stderr, "latch: %v\n", err)
		return server.Config{}, 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return server.Config{}, 0
		}
		// The error names the flag and what to write; the full usage
		// would bury it.
		fmt.Fprintf(stderr, "latch: %v\n%s", err, seeHelp)
		return server.Config{}, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "latch: unexpected argument %q\n%s", fs.Arg(0), seeHelp)
		return server.Config{}, 2
	}
	bad := func(format string, a ...any) (server.Config, int) {
		fmt.Fprintf(stderr, "latch: "+format+"\n", a...)
		return server.Config{}, 2
	}
	switch {
	case cfg.maxMsg <= 0:
		return bad("-max-message-size must be positive, got %d", cfg.maxMsg)
	case cfg.echoMaxMsg <= 0:
		return bad("-echo-max-message-size must be positive, got %d", cfg.echoMaxMsg)
	case cfg.maxHeaderBytes <= 0:
		return bad("-max-header-bytes must be positive, got %d", cfg.maxHeaderBytes)
	case cfg.maxConns < 0:
		return bad("-max-connections must not be negative, got %d", cfg.maxConns)
	case cfg.maxConnsPerIP < 0:
		return bad("-max-connections-per-ip must not be negative, got %d", cfg.maxConnsPerIP)
	case cfg.maxMsgRate < 0 || math.IsNaN(cfg.maxMsgRate) || math.IsInf(cfg.maxMsgRate, 0):
		return bad("-max-message-rate must be a number >= 0, got %v", cfg.maxMsgRate)
	case cfg.maxChannels <= 0:
		return bad("-max-channels must be positive, got %d", cfg.maxChannels)
	case cfg.sendQueue <= 0:
		return bad("-send-queue must be positive, got %d", cfg.sendQueue)
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return bad("-tls-cert and -tls-key go together")
	case cfg.h2c && !cfg.http2:
		return bad("-h2c is HTTP/2: it cannot go with -http2=false")
	case cfg.engine != server.EngineAuto && cfg.engine != server.EngineEpoll && cfg.engine != server.EngineGoroutines:
		return bad("-engine must be auto, epoll or goroutines, got %q", cfg.engine)
	}
	for _, pat := range splitList(cfg.allowedHosts) {
		if _, err := path.Match(strings.ToLower(pat), ""); err != nil {
			return bad("-allowed-hosts: %q is not a valid pattern", pat)
		}
	}
	logger, err := server.NewLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return bad("%v", err)
	}
	var brokerFunc server.BrokerFunc
	if urls := splitList(cfg.broker); len(urls) > 0 {
		for _, u := range urls {
			if err := checkNATSURL(u); err != nil {
				return bad("-broker: %v", err)
			}
		}
		brokerFunc = natsBroker(urls, logger.With("component", "broker"))
	} else if strings.TrimSpace(cfg.broker) != "" {
		return bad("-broker: no URL in %q", cfg.broker)
	}
	var debug http.Handler
	if cfg.adminAddr != "" {
		debug = pprofHandler()
	}
	msgRate := cfg.maxMsgRate
	if msgRate == 0 {
		msgRate = -1 // flag 0 means off; server.Config 0 means default
	}
	return server.Config{
		Addr:                       cfg.addr,
		TLSCertFile:                cfg.tlsCert,
		TLSKeyFile:                 cfg.tlsKey,
		DisableHTTP2:               !cfg.http2,
		H2C:                        cfg.h2c,
		Engine:                     cfg.engine,
		AllowedOrigins:             splitList(cfg.allowedOrigins),
		AllowedHosts:               splitList(cfg.allowedHosts),
		AdminAddr:                  cfg.adminAddr,
		AdminDebugHandler:          debug,
		MaxConnections:             cfg.maxConns,
		MaxConnectionsPerIP:        cfg.maxConnsPerIP,
		MaxMessageRate:             msgRate,
		MaxMessageSize:             cfg.maxMsg,
		EchoMaxMessageSize:         cfg.echoMaxMsg,
		HTTPIdleTimeout:            cfg.httpIdleTimeout, // cliflag.Off is < 0: no bound in server.Config too
		HTTPReadTimeout:            cfg.httpReadTimeout,
		HTTPWriteTimeout:           cfg.httpWriteTimeout,
		MaxHeaderBytes:             cfg.maxHeaderBytes,
		MaxChannels:                cfg.maxChannels,
		SendQueue:                  cfg.sendQueue,
		HeartbeatInterval:          cfg.heartbeatInterval,
		MessageTimeout:             cfg.messageTimeout,
		WriteStallTimeout:          cfg.writeStallTimeout,
		ShutdownTimeout:            cfg.shutdownTimeout,
		PublishTimeout:             cfg.publishTimeout,
		Broker:                     brokerFunc,
		DisableCompression:         !cfg.compression,
		CompressionContextTakeover: cfg.contextTakeover,
		LogLevel:                   cfg.logLevel,
		LogFormat:                  cfg.logFormat,
	}, -1
}

// openableAddr is the host:port to print for a listener bound to addr (as
// given) that got bound: one a browser can open and a client can dial.
// An unspecified address ("[::]", "0.0.0.0") is not one: it becomes
// localhost. A host name given in addr is kept (it may be what the TLS
// certificate names); otherwise the bound IP is printed.
func openableAddr(addr string, bound net.Addr) string {
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return bound.String()
	}
	ip := net.ParseIP(host)
	switch given, _, _ := net.SplitHostPort(addr); {
	case ip != nil && ip.IsUnspecified():
		host = "localhost"
	case given != "" && net.ParseIP(given) == nil:
		host = given
	}
	return net.JoinHostPort(host, port)
}

// pprofHandler serves net/http/pprof's handlers under /debug/pprof/, for
// the admin address; nothing in latch serves http.DefaultServeMux, where
// importing the package registers them too.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// checkNATSURL accepts what nats.go dials: nats:// (or tls://, ws://,
// wss://) with a host.
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("bad URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("URL %q: scheme must be nats, tls, ws or wss", u.Redacted())
	}
	if u.Hostname() == "" {
		return fmt.Errorf("URL %q has no host", u.Redacted())
	}
	return nil
}

// natsBroker connects to NATS when the server is built; server.New fails
// if no server in urls answers.
func natsBroker(urls []string, logger *slog.Logger) server.BrokerFunc {
	return func(h broker.Handler) (broker.Broker, error) {
		name := "latch"
		if host, err := os.Hostname(); err == nil {
			name += " " + host
		}
		b, err := bnats.New(urls, h, bnats.WithName(name), bnats.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		redacted := make([]string, len(urls))
		for i, u := range urls {
			if p, err := url.Parse(u); err == nil {
				redacted[i] = p.Redacted()
			}
		}
		logger.Info("connected to NATS", "servers", strings.Join(redacted, ","))
		return b, nil
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, status := parseServe(args, os.LookupEnv, stdout, stderr)
	if status >= 0 {
		return status
	}
	cfg.LogOutput = stderr
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "latch: %v\n", err)
		return 1
	}
	logger := srv.Logger()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		logger.Error("listen failed", "addr", cfg.Addr, "err", err)
		return 1
	}
	scheme := "http"
	if srv.TLS() {
		scheme = "https"
	}
	adminAddr, err := srv.ListenAdmin()
	if err != nil {
		ln.Close()
		logger.Error("listen failed", "addr", cfg.AdminAddr, "err", err)
		_ = srv.Shutdown(context.Background())
		return 1
	}
	logger.Info("serving WebSockets", "engine", srv.Engine())
	// Tests and scripts read the address from the first line (and the
	// admin address from the second): keep their form.
	fmt.Fprintf(stdout, "latch: listening on %s://%s\n", scheme, openableAddr(cfg.Addr, ln.Addr()))
	if adminAddr != nil {
		fmt.Fprintf(stdout, "latch: admin on http://%s\n", openableAddr(cfg.AdminAddr, adminAddr))
		fmt.Fprintln(stdout, "latch: routes: / (demo page), /ws (pub/sub), /echo, /healthz, /readyz; admin: /metrics, /debug/pprof/")
	} else {
		fmt.Fprintln(stdout, "latch: routes: / (demo page), /ws (pub/sub), /echo, /metrics, /healthz, /readyz")
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		logger.Error("server failed", "err", err)
		return 1
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Clients that did not finish the closing handshake in time were
		// dropped; the shutdown itself is complete.
		logger.Warn("shutdown incomplete", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		logger.Error("server failed", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}
