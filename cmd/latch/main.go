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
	"github.com/latchws/latch/history"
	"github.com/latchws/latch/presence"
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
  latch config check FILE check a configuration file as serve would read it
  latch config example    print a documented configuration file
  latch token [flags]     mint an HS256 connection token (latch token -h)
  latch version           print the version
  latch help              print this help

Routes:
  /ws       the latch pub/sub protocol (docs/protocol.md)
  /echo     echoes every WebSocket message back
  /         the demo page
  /metrics  Prometheus metrics (on -admin-addr instead, if set)
  /debug/pprof/  on -admin-addr only: net/http/pprof's profiles
  /healthz  200 while the process runs
  /readyz   200 while serving, 503 while shutting down

Configuration: every flag of serve is also a key of the TOML file given
with -config (latch config example shows them all) and an environment
variable (shown in brackets). A flag wins over its variable, which wins over
the file, which wins over the default. Namespaces are set in the file only.
With no file and no auth key, latch serves in demo mode: open to anyone,
with tokens for any user name at /demo/token (-demo=false turns it off).

Flags of serve:
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
		case "config":
			return configCommand(args[1:], os.LookupEnv, stdout, stderr)
		case "token":
			return tokenCommand(args[1:], os.LookupEnv, stdout, stderr)
		case "version":
			if len(args) > 1 {
				fmt.Fprintf(stderr, "latch: version takes no arguments\n%s", seeHelp)
				return 2
			}
			fmt.Fprintln(stdout, versionLine())
			return 0
		case "help", "-h", "-help", "--help":
			printUsage(stdout)
			return 0
		default:
			if !strings.HasPrefix(args[0], "-") {
				fmt.Fprintf(stderr, "latch: unknown command %q: the commands are serve, connect, config, token, version and help\n%s", args[0], seeHelp)
				return 2
			}
		}
	}
	return serve(ctx, args, stdout, stderr)
}

type serveConfig struct {
	config            string // the TOML file
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

	authHMACSecret     string
	authPublicKeys     []string // PEM files
	authJWKSURL        string
	authIssuer         string
	authAudience       string
	authAnonymous      bool
	authConnectTimeout time.Duration
	authLeeway         time.Duration
	authJWKSRefresh    time.Duration
	apiKey             string
	apiAddr            string
	apiOnMain          bool
	demo               bool
	nodeID             string
	jsReplicas         int
	jsMemory           bool
	jsPresenceTTL      time.Duration
	maxPublishRate     float64
	maxPublishRateIP   float64

	// layer counts the configuration layers applied so far (file,
	// environment, command line), for the list flags: see listValue.
	layer int
}

func newFlagSet(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("latch serve", flag.ContinueOnError)
	fs.StringVar(&cfg.config, "config", "", "read the configuration from this TOML `file` (see latch config example); the environment and flags override it")
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

	fs.StringVar(&cfg.authHMACSecret, "auth-hmac-secret", "", "verify HS256 connection tokens with this `secret` (at least 32 bytes); prefer the variable or the file to the command line, which others may read")
	fs.Var(&listValue{p: &cfg.authPublicKeys, layer: &cfg.layer, at: -1}, "auth-public-key", "verify RS256, ES256 and EdDSA tokens with the public keys in these PEM `files` (repeat the flag, or separate with commas)")
	fs.StringVar(&cfg.authJWKSURL, "auth-jwks-url", "", "verify tokens with the keys of the JWK set at this `URL` (RFC 7517), refetched every 5 minutes")
	fs.StringVar(&cfg.authIssuer, "auth-issuer", "", "accept only tokens whose \"iss\" is this `issuer`")
	fs.StringVar(&cfg.authAudience, "auth-audience", "", "accept only tokens whose \"aud\" has this `audience`")
	fs.BoolVar(&cfg.authAnonymous, "auth-anonymous", false, "with an auth key, also admit connections without a token; the namespaces say what they may do (on in demo mode)")
	cliflag.DurationVar(fs, &cfg.authLeeway, "auth-leeway", cliflag.Off, "accept tokens up to `duration` past their exp and before their nbf and iat, for clock skew (off: none)")
	cliflag.PositiveDurationVar(fs, &cfg.authJWKSRefresh, "auth-jwks-refresh", server.DefaultJWKSRefresh, "refetch the -auth-jwks-url key set every `duration` (an unknown kid refetches sooner, at most every 10 s)")
	cliflag.PositiveDurationVar(fs, &cfg.authConnectTimeout, "auth-connect-timeout", server.DefaultConnectTimeout, "without -auth-anonymous, a connection without a token must send its connect op within `duration`, else close 4001 (cannot be off)")
	fs.StringVar(&cfg.apiKey, "api-key", "", "enable the server API for requests with this `key` (at least 16 bytes); prefer the variable or the file to the command line")
	fs.StringVar(&cfg.apiAddr, "api-addr", "", "serve the server API on this `address`")
	fs.BoolVar(&cfg.apiOnMain, "api-on-main", false, "serve the server API on -addr too")
	fs.BoolVar(&cfg.demo, "demo", false, "demo mode: anonymous access and GET /demo/token, which mints a token for any user name; never in production (default: on without -config and without an auth key)")
	fs.IntVar(&cfg.jsReplicas, "jetstream-replicas", 1, "with -broker: `replicas` of the JetStream streams and bucket that keep history and presence (1-5; 3 to survive the loss of a NATS server)")
	fs.BoolVar(&cfg.jsMemory, "jetstream-memory", false, "with -broker: keep history and presence in NATS's memory instead of files (faster; lost when the NATS servers restart)")
	cliflag.PositiveDurationVar(fs, &cfg.jsPresenceTTL, "jetstream-presence-ttl", 60*time.Second, "with -broker: a node's presence entries expire this `duration` after it stopped refreshing them (it died)")
	fs.StringVar(&cfg.nodeID, "node-id", "", "`name` of this node in client ids and the server API (empty: random with -broker, none alone)")
	fs.Float64Var(&cfg.maxPublishRate, "max-publish-rate", 0, "most `publishes` per second one connection may make, burst as many; beyond, a publish gets rate_limited (0: unlimited)")
	fs.Float64Var(&cfg.maxPublishRateIP, "max-publish-rate-per-ip", 0, "most `publishes` per second of all connections of one client IP (IPv6: one /64) together (0: unlimited)")
	return fs
}

// envName is the environment variable of a flag: -max-connections is
// LATCH_MAX_CONNECTIONS.
func envName(flagName string) string {
	return "LATCH_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag whose variable is set in the environment, after
// the configuration file and before the command line, and records in src
// where each value came from.
func applyEnv(fs *flag.FlagSet, getenv func(string) (string, bool), src map[string]string) error {
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
			src[f.Name] = name
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

// parseServe reads the configuration in its layers — defaults, the file
// of -config (or LATCH_CONFIG), the environment, args — into a
// server.Config. It returns the exit status to use when the command must
// stop here, and -1 otherwise.
func parseServe(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) (server.Config, int) {
	// A first pass over args finds -config and the flags given there;
	// they are applied again, last, so that they win.
	var argCfg serveConfig
	argSet := newFlagSet(&argCfg)
	argSet.SetOutput(io.Discard) // errors are reported below, with the full usage
	if err := argSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return server.Config{}, 0
		}
		// The error names the flag and what to write; the full usage
		// would bury it.
		fmt.Fprintf(stderr, "latch: %v\n%s", err, seeHelp)
		return server.Config{}, 2
	}
	if argSet.NArg() > 0 {
		fmt.Fprintf(stderr, "latch: unexpected argument %q\n%s", argSet.Arg(0), seeHelp)
		return server.Config{}, 2
	}
	fail := func(err error) (server.Config, int) {
		printError(stderr, err)
		return server.Config{}, 2
	}

	var cfg serveConfig
	fs := newFlagSet(&cfg)
	fs.SetOutput(io.Discard)
	src := make(map[string]string) // flag → where its value came from, for messages
	configPath := argCfg.config
	if configPath == "" {
		configPath, _ = getenv(envName("config"))
	}
	var file *configFile
	if configPath != "" {
		var err error
		if file, err = loadConfigFile(configPath); err != nil {
			return fail(err)
		}
		if err := file.apply(fs, src); err != nil {
			return fail(err)
		}
	}
	cfg.layer++
	if err := applyEnv(fs, getenv, src); err != nil {
		return fail(err)
	}
	cfg.layer++
	if err := fs.Parse(args); err != nil {
		return fail(err) // not reached: argSet parsed the same args
	}
	argSet.Visit(func(f *flag.Flag) { src[f.Name] = "-" + f.Name })
	// name says where a value came from: -flag, LATCH_VAR or FILE:LINE: key.
	name := func(flag string) string {
		if s, ok := src[flag]; ok {
			return s
		}
		return "-" + flag
	}
	bad := func(format string, a ...any) (server.Config, int) {
		fmt.Fprintf(stderr, "latch: "+format+"\n", a...)
		return server.Config{}, 2
	}
	badRate := func(r float64) bool { return r < 0 || math.IsNaN(r) || math.IsInf(r, 0) }
	switch {
	case cfg.maxMsg <= 0:
		return bad("%s must be positive, got %d", name("max-message-size"), cfg.maxMsg)
	case cfg.echoMaxMsg <= 0:
		return bad("%s must be positive, got %d", name("echo-max-message-size"), cfg.echoMaxMsg)
	case cfg.maxHeaderBytes <= 0:
		return bad("%s must be positive, got %d", name("max-header-bytes"), cfg.maxHeaderBytes)
	case cfg.maxConns < 0:
		return bad("%s must not be negative, got %d", name("max-connections"), cfg.maxConns)
	case cfg.maxConnsPerIP < 0:
		return bad("%s must not be negative, got %d", name("max-connections-per-ip"), cfg.maxConnsPerIP)
	case badRate(cfg.maxMsgRate):
		return bad("%s must be a number >= 0, got %v", name("max-message-rate"), cfg.maxMsgRate)
	case badRate(cfg.maxPublishRate):
		return bad("%s must be a number >= 0, got %v", name("max-publish-rate"), cfg.maxPublishRate)
	case badRate(cfg.maxPublishRateIP):
		return bad("%s must be a number >= 0, got %v", name("max-publish-rate-per-ip"), cfg.maxPublishRateIP)
	case cfg.jsReplicas < 1 || cfg.jsReplicas > 5:
		return bad("%s must be 1 to 5, got %d", name("jetstream-replicas"), cfg.jsReplicas)
	case cfg.maxChannels <= 0:
		return bad("%s must be positive, got %d", name("max-channels"), cfg.maxChannels)
	case cfg.sendQueue <= 0:
		return bad("%s must be positive, got %d", name("send-queue"), cfg.sendQueue)
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return bad("%s and %s go together", name("tls-cert"), name("tls-key"))
	case cfg.h2c && !cfg.http2:
		return bad("%s is HTTP/2: it cannot go with %s=false", name("h2c"), name("http2"))
	case cfg.engine != server.EngineAuto && cfg.engine != server.EngineEpoll && cfg.engine != server.EngineGoroutines:
		return bad("%s must be auto, epoll or goroutines, got %q", name("engine"), cfg.engine)
	case cfg.authHMACSecret != "" && len(cfg.authHMACSecret) < 32:
		// RFC 7518 §3.2: an HS256 key as long as the hash at least.
		return bad("%s must be at least 32 bytes, got %d", name("auth-hmac-secret"), len(cfg.authHMACSecret))
	}
	for _, pat := range splitList(cfg.allowedHosts) {
		if _, err := path.Match(strings.ToLower(pat), ""); err != nil {
			return bad("%s: %q is not a valid pattern", name("allowed-hosts"), pat)
		}
	}
	if u := cfg.authJWKSURL; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return bad("%s: %q is not an https:// URL", name("auth-jwks-url"), u)
		}
	}
	logger, err := server.NewLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return bad("%v", err)
	}
	var brokerFunc server.BrokerFunc
	var stores server.StoresFunc
	if urls := splitList(cfg.broker); len(urls) > 0 {
		for _, u := range urls {
			if err := checkNATSURL(u); err != nil {
				return bad("%s: %v", name("broker"), err)
			}
		}
		brokerFunc = natsBroker(urls, logger.With("component", "broker"))
		stores = natsStores(urls, bnats.HistoryConfig{Replicas: cfg.jsReplicas, Memory: cfg.jsMemory},
			bnats.PresenceConfig{TTL: cfg.jsPresenceTTL, Replicas: cfg.jsReplicas, Memory: cfg.jsMemory}, logger.With("component", "stores"))
	} else if strings.TrimSpace(cfg.broker) != "" {
		return bad("%s: no URL in %q", name("broker"), cfg.broker)
	}
	var namespaces []server.Namespace
	if file != nil {
		if namespaces, err = file.namespaces(); err != nil {
			return fail(err)
		}
	}
	var debug http.Handler
	if cfg.adminAddr != "" {
		debug = pprofHandler()
	}
	msgRate := cfg.maxMsgRate
	if msgRate == 0 {
		msgRate = -1 // flag 0 means off; server.Config 0 means default
	}
	auth := server.AuthConfig{
		HMACSecret:     cfg.authHMACSecret,
		PublicKeyFiles: cfg.authPublicKeys,
		JWKSURL:        cfg.authJWKSURL,
		Issuer:         cfg.authIssuer,
		Audience:       cfg.authAudience,
		Anonymous:      cfg.authAnonymous,
		ConnectTimeout: cfg.authConnectTimeout,
		Leeway:         max(0, cfg.authLeeway), // off (< 0): none
		JWKSRefresh:    cfg.authJWKSRefresh,
	}
	// Zero configuration stays a working demo; a configured server is
	// closed unless it says otherwise.
	demo := cfg.demo
	if _, explicit := src["demo"]; !explicit {
		demo = file == nil && !auth.Enabled()
	}
	switch {
	case demo:
		if _, explicit := src["auth-anonymous"]; !explicit {
			auth.Anonymous = true
		}
		if namespaces == nil {
			namespaces = demoNamespaces()
		}
	case namespaces == nil && auth.Enabled():
		namespaces = []server.Namespace{{Name: "", Subscribe: server.AccessUser, Publish: server.AccessUser}}
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
		Stores:                     stores,
		DisableCompression:         !cfg.compression,
		CompressionContextTakeover: cfg.contextTakeover,
		LogLevel:                   cfg.logLevel,
		LogFormat:                  cfg.logFormat,
		Namespaces:                 namespaces,
		Auth:                       auth,
		APIKey:                     cfg.apiKey,
		APIAddr:                    cfg.apiAddr,
		APIOnMain:                  cfg.apiOnMain,
		Demo:                       demo,
		NodeID:                     cfg.nodeID,
		MaxPublishRate:             cfg.maxPublishRate,
		MaxPublishRatePerIP:        cfg.maxPublishRateIP,
	}, -1
}

// printError writes err to w, each line prefixed "latch: ". The server
// package's errors start with "server: ", which would stutter after it.
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "latch: %s\n", strings.TrimPrefix(line, "server: "))
	}
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

// natsStores connects the history and presence stores to JetStream, on a
// connection of their own, when the server needs them.
func natsStores(urls []string, hc bnats.HistoryConfig, pc bnats.PresenceConfig, logger *slog.Logger) server.StoresFunc {
	return func() (history.Store, presence.Store, func(), error) {
		nc, err := bnats.Dial(urls, bnats.WithName("latch stores"))
		if err != nil {
			return nil, nil, nil, err
		}
		h, err := bnats.NewHistory(nc, hc)
		if err != nil {
			nc.Close()
			return nil, nil, nil, fmt.Errorf("JetStream history (is JetStream enabled on the NATS servers?): %w", err)
		}
		p, err := bnats.NewPresence(nc, pc)
		if err != nil {
			_ = h.Close()
			nc.Close()
			return nil, nil, nil, fmt.Errorf("JetStream presence: %w", err)
		}
		logger.Info("history and presence in JetStream", "replicas", max(1, hc.Replicas), "memory", hc.Memory)
		return h, p, nc.Close, nil
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
		printError(stderr, err)
		return 1
	}
	logger := srv.Logger()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		// net.OpError reads "listen tcp ADDR: ...": it names the address.
		printError(stderr, err)
		_ = srv.Shutdown(context.Background())
		return 1
	}
	scheme := "http"
	if srv.TLS() {
		scheme = "https"
	}
	adminAddr, err := srv.ListenAdmin()
	if err != nil {
		ln.Close()
		printError(stderr, err)
		_ = srv.Shutdown(context.Background())
		return 1
	}
	apiAddr, err := srv.ListenAPI()
	if err != nil {
		ln.Close()
		printError(stderr, err)
		_ = srv.Shutdown(context.Background())
		return 1
	}
	if cfg.Demo {
		logger.Warn("demo mode: the server is open, anyone may connect, and /demo/token mints a token for any user name; " +
			"to configure it, start from `latch config example` and run latch serve -config FILE")
	}
	logger.Info("serving WebSockets", "engine", srv.Engine())
	// Tests and scripts read the address from the first line (and the
	// admin address from the second): keep their form.
	fmt.Fprintf(stdout, "latch: listening on %s://%s\n", scheme, openableAddr(cfg.Addr, ln.Addr()))
	if adminAddr != nil {
		fmt.Fprintf(stdout, "latch: admin on http://%s\n", openableAddr(cfg.AdminAddr, adminAddr))
	}
	if apiAddr != nil {
		fmt.Fprintf(stdout, "latch: api on http://%s\n", openableAddr(cfg.APIAddr, apiAddr))
	}
	if adminAddr != nil {
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
