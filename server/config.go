package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	"github.com/latchws/latch/presence"
	"github.com/latchws/latch/websocket"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultAddr            = ":8080"
	DefaultMaxChannels     = 100
	DefaultSendQueue       = 256
	DefaultShutdownTimeout = 5 * time.Second
	DefaultPublishTimeout  = 5 * time.Second
	// DefaultMaxMessageRate is far above what an interactive client sends
	// and what the e2e workloads send on one connection, and still stops
	// a flood: 1,000 messages a second, with a burst of as many.
	DefaultMaxMessageRate = 1000

	// DefaultMaxMessageSize bounds a /ws message: the protocol's requests
	// are small JSON documents (Centrifugo allows 64 KiB too).
	DefaultMaxMessageSize int64 = 64 << 10
	// DefaultEchoMaxMessageSize bounds an /echo message: the websocket
	// package's default read limit (16 MiB).
	DefaultEchoMaxMessageSize int64 = websocket.DefaultReadLimit

	// DefaultHTTPIdleTimeout closes a keep-alive connection that sends no
	// next request.
	DefaultHTTPIdleTimeout = 60 * time.Second
	// DefaultHTTPReadTimeout bounds reading a whole request, head and body.
	DefaultHTTPReadTimeout = 30 * time.Second
	// DefaultHTTPWriteTimeout bounds writing a response.
	DefaultHTTPWriteTimeout = 30 * time.Second
	// DefaultMaxHeaderBytes bounds a request head, as nginx does (32 KiB;
	// Node allows 16 KiB, net/http 1 MiB): room for a WebSocket handshake
	// with large cookies, not for a megabyte per pending handshake.
	DefaultMaxHeaderBytes = 32 << 10
)

// BrokerFunc builds the broker of a server. [New] calls it once with the
// handler that fans a message out to this node's clients; the server owns
// the broker from then on and closes it in [Server.Shutdown].
type BrokerFunc func(h broker.Handler) (broker.Broker, error)

// Config configures a latch [Server]. The zero value serves on :8080 with
// the defaults below.
//
// Every duration field follows one rule, Go's zero-value convention: 0 means
// the field's default, and a negative value turns the bound off where the
// field says it can be off (elsewhere New refuses it). cmd/latch spells
// that "off" on its command line and refuses 0 there, so that a flag cannot
// mean the opposite of the field.
// The values of Config.Engine.
const (
	EngineAuto       = "auto"
	EngineEpoll      = "epoll"
	EngineGoroutines = "goroutines"
)

type Config struct {
	// Addr is the TCP listen address; port 0 picks a free port.
	Addr string

	// TLSCertFile and TLSKeyFile, both set, serve HTTPS (and wss://).
	TLSCertFile, TLSKeyFile string

	// DisableHTTP2 serves HTTP/1.1 only. By default a TLS server offers
	// HTTP/2 (ALPN h2) and WebSockets over it (RFC 8441 extended CONNECT,
	// which the server package turns on: see websocket/xconnect).
	DisableHTTP2 bool

	// H2C also accepts cleartext HTTP/2 with prior knowledge (RFC 9113
	// §3.3) on a server without TLS, for a proxy in front that speaks h2c.
	H2C bool

	// Engine says how WebSocket connections on /ws and /echo are served:
	// EngineAuto (the default: epoll event loops where the platform has
	// them, else goroutines), EngineEpoll (event loops, or New fails) or
	// EngineGoroutines (a read goroutine per connection). On the event
	// loops an idle client holds no goroutine; connections over TLS or
	// HTTP/2 are served on goroutines either way.
	Engine string

	// AllowedOrigins lists browser origins accepted besides the server's
	// own, as websocket.Upgrader.OriginPatterns: "example.com",
	// "*.example.com", "https://app.example.com", "localhost:*".
	AllowedOrigins []string

	// MaxConnections bounds open WebSocket connections, /ws and /echo
	// together (pending handshakes included); further upgrades get HTTP
	// 503. 0 means unlimited.
	MaxConnections int

	// MaxConnectionsPerIP bounds the WebSocket connections open from one
	// client IP address (IPv6: one /64), /ws and /echo together; further
	// upgrades from it get HTTP 429. 0 means unlimited, the default: behind
	// a reverse proxy every client has the proxy's address.
	MaxConnectionsPerIP int

	// MaxMessageRate bounds the messages one /ws connection may send per
	// second, with a burst of one second's worth; a faster client is
	// throttled (the server reads its next message later), not closed.
	// 0 means DefaultMaxMessageRate, < 0 turns the bound off.
	MaxMessageRate float64

	// MaxMessageSize is the largest message accepted on /ws, in bytes; a
	// larger one closes the connection with 1009. 0 means
	// DefaultMaxMessageSize.
	MaxMessageSize int64

	// EchoMaxMessageSize is the same bound for /echo; 0 means
	// DefaultEchoMaxMessageSize.
	EchoMaxMessageSize int64

	// AllowedHosts lists the names the Host header may carry, against DNS
	// rebinding: "example.com", "*.example.com", "example.com:8443" (a
	// pattern without a port matches any port), matched with path.Match,
	// case-insensitively. Other requests get 421 Misdirected Request. IP
	// literals are always accepted, and /healthz and /readyz are exempt.
	// Empty means: only "localhost" and "*.localhost" when Addr is a
	// loopback address (localhost, 127.0.0.1, [::1]), any Host otherwise.
	AllowedHosts []string

	// AdminAddr, if set, is a second listen address serving /metrics and
	// net/http/pprof's /debug/pprof/; /metrics is then no longer served on
	// Addr. Empty: /metrics on Addr, pprof nowhere.
	AdminAddr string

	// AdminDebugHandler, if set, serves /debug/ on AdminAddr; cmd/latch
	// sets net/http/pprof's handlers. This package does not import
	// net/http/pprof: its init would also register them on
	// http.DefaultServeMux of every program that links the server.
	AdminDebugHandler http.Handler

	// HTTPIdleTimeout closes a keep-alive connection idle this long
	// between requests; HTTPReadTimeout bounds reading a whole request
	// (head and body) and HTTPWriteTimeout writing its response. None of
	// them applies to a WebSocket once upgraded. For each, 0 means its
	// default (DefaultHTTPIdleTimeout, DefaultHTTPReadTimeout,
	// DefaultHTTPWriteTimeout) and < 0 no bound.
	HTTPIdleTimeout, HTTPReadTimeout, HTTPWriteTimeout time.Duration

	// MaxHeaderBytes bounds the request head (request line and headers);
	// a larger one gets 431 Request Header Fields Too Large. 0 means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int

	// MaxChannels bounds subscriptions per connection; 0 means
	// DefaultMaxChannels.
	MaxChannels int

	// SendQueue is the number of publications queued per client before the
	// client counts as a slow consumer and is closed with 1008; answers to
	// the client's own requests are not counted (with as many of them
	// unread, its requests are no longer read). 0 means DefaultSendQueue.
	SendQueue int

	// HeartbeatInterval is how long a connection may stay silent before it
	// is pinged (and dropped if the ping goes unanswered); 0 means
	// websocket.DefaultHeartbeatInterval, < 0 turns heartbeats off.
	HeartbeatInterval time.Duration

	// MessageTimeout bounds how long a message a client has begun may take
	// to arrive, extended by a second per websocket.DefaultMinMessageRate
	// bytes received; past it the client is closed with 1008. It counts
	// only while a message is in progress, never on an idle connection.
	// WriteStallTimeout fails a write the client takes no byte of for this
	// long, and closes the connection. 0 means the websocket package's
	// defaults (DefaultMessageTimeout, DefaultWriteStallTimeout), < 0
	// turns the bound off.
	MessageTimeout, WriteStallTimeout time.Duration

	// DisableCompression turns permessage-deflate (RFC 7692) off on /ws and
	// /echo; by default it is accepted whenever a client offers it.
	DisableCompression bool

	// CompressionContextTakeover keeps the deflate context between
	// messages: better ratios for similar messages, at about 1.2 MiB per
	// compressed connection (docs/compression.md). Off by default.
	CompressionContextTakeover bool

	// Broker carries publications between nodes (package broker/nats for
	// a NATS cluster). nil means broker.NewMemory: a single node.
	Broker BrokerFunc

	// PublishTimeout bounds how long a publish waits for the broker to
	// accept the message before the client gets an error; 0 means
	// DefaultPublishTimeout.
	PublishTimeout time.Duration

	// Namespaces are the channel namespaces and their rules
	// (docs/auth.md). nil: one default namespace in which anyone may
	// subscribe and publish, without history or presence. When set, a
	// channel whose namespace is not listed is refused (unknown_namespace).
	Namespaces []Namespace

	// Auth configures connection tokens (JWT). Without a key, every
	// connection is anonymous.
	Auth AuthConfig

	// APIKey enables the server API (docs/api.md) for requests carrying it
	// ("Authorization: apikey KEY" or "X-API-Key: KEY"). It is served on
	// APIAddr, and on Addr too with APIOnMain. Empty: no server API.
	APIKey    string
	APIAddr   string
	APIOnMain bool

	// Demo serves GET /demo/token?user=NAME, which mints a token for any
	// user name with the HMAC secret (a random one if none is set): the demo
	// page's sign-in. Never turn it on in production.
	Demo bool

	// History keeps the publications of history namespaces; Presence the
	// subscribers of presence namespaces. nil: in this process (one node);
	// with several nodes use package broker/nats's JetStream stores (New
	// refuses a Broker without them where a namespace needs them). The
	// server closes them in Shutdown; if New fails, they stay the
	// caller's.
	History  history.Store
	Presence presence.Store

	// Stores builds the shared stores of a cluster, as Broker builds the
	// broker: New calls it once, when Broker is set and a namespace needs
	// a History or Presence the fields above do not give. release, if not
	// nil, runs in Shutdown after the stores are closed (their NATS
	// connection, say).
	Stores StoresFunc

	// NodeID names this node in client ids and in the server API's info;
	// "" means a random id when Broker is set, none on a single node.
	NodeID string

	// MaxPublishRate bounds the publishes of one connection per second
	// (burst: one second's worth); beyond it a publish gets rate_limited.
	// MaxPublishRatePerIP does the same for all the connections of one
	// client IP address (IPv6: one /64). 0: no bound.
	MaxPublishRate, MaxPublishRatePerIP float64

	// ShutdownTimeout bounds Shutdown when its context has no deadline,
	// and is what cmd/latch gives it; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// LogLevel is debug, info, warn or error ("" means info); LogFormat is
	// text or json ("" means text). Logs go to LogOutput, os.Stderr if nil.
	LogLevel, LogFormat string
	LogOutput           io.Writer
}

// DefaultJWKSRefresh is how often a JWK set is refetched (AuthConfig's 0).
const DefaultJWKSRefresh = 5 * time.Minute

// DefaultConnectTimeout is how long a connection without a token may wait
// before sending its connect op, when anonymous access is off.
const DefaultConnectTimeout = 10 * time.Second

// AuthConfig configures connection tokens: JWTs signed with HS256 (the
// HMAC secret), RS256, ES256 or EdDSA (public keys in PEM files, or a JWKS
// URL). docs/auth.md has the claims.
type AuthConfig struct {
	HMACSecret     string        // HS256; at least 32 bytes
	PublicKeyFiles []string      // PEM files: RSA, ECDSA or Ed25519 public keys, or certificates
	JWKSURL        string        // keys from a JWK set, refetched every JWKSRefresh (0: DefaultJWKSRefresh)
	JWKSRefresh    time.Duration //
	Issuer         string        // when set, tokens must carry this "iss"
	Audience       string        // when set, tokens must carry this "aud"
	Leeway         time.Duration // clock skew allowed on exp and nbf

	// Anonymous admits connections without a token even though keys are
	// configured; the namespaces decide what they may do.
	Anonymous bool

	// ConnectTimeout is how long a connection without a token may take to
	// send its connect op when Anonymous is off; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Enabled reports whether tokens are verified: some key is configured.
func (a *AuthConfig) Enabled() bool {
	return a.HMACSecret != "" || len(a.PublicKeyFiles) > 0 || a.JWKSURL != ""
}

// StoresFunc builds the shared history and presence stores of a cluster;
// see Config.Stores.
type StoresFunc func() (h history.Store, p presence.Store, release func(), err error)

// Validate reports the first invalid field of c (namespaces included),
// nil if it has none; [New] also loads the files c names and may fail
// there.
func (c Config) Validate() error {
	if _, err := c.withDefaults(); err != nil {
		return err
	}
	nss, err := newNamespaces(c.Namespaces)
	if err != nil {
		return err
	}
	return c.checkStores(nss)
}

// checkStores refuses a cluster whose history or presence would be each
// node's own: offsets would disagree between nodes, and presence would
// list one node's clients only.
func (c *Config) checkStores(nss *namespaces) error {
	if c.Broker == nil {
		return nil
	}
	if c.Stores != nil {
		return nil
	}
	for _, ns := range nss.list {
		if _, hist := ns.retention(); hist && c.History == nil {
			return fmt.Errorf("namespace %q keeps history: with a broker, the history must be shared by the nodes (Config.History or Stores, e.g. broker/nats.NewHistory)", ns.Name)
		}
		if ns.Presence && c.Presence == nil {
			return fmt.Errorf("namespace %q keeps presence: with a broker, presence must be shared by the nodes (Config.Presence or Stores, e.g. broker/nats.NewPresence)", ns.Name)
		}
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults, or an
// error naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return c, errors.New("TLS needs both a certificate and a key file")
	}
	if c.H2C && c.DisableHTTP2 {
		return c, errors.New("h2c is HTTP/2: it cannot go with HTTP/2 disabled")
	}
	switch c.Engine {
	case "":
		c.Engine = EngineAuto
	case EngineAuto, EngineEpoll, EngineGoroutines:
	default:
		return c, fmt.Errorf("engine must be %s, %s or %s, got %q", EngineAuto, EngineEpoll, EngineGoroutines, c.Engine)
	}
	switch {
	case c.MaxConnections < 0:
		return c, fmt.Errorf("max connections must not be negative, got %d", c.MaxConnections)
	case c.MaxConnectionsPerIP < 0:
		return c, fmt.Errorf("max connections per IP must not be negative, got %d", c.MaxConnectionsPerIP)
	case c.MaxMessageSize < 0:
		return c, fmt.Errorf("max message size must not be negative, got %d", c.MaxMessageSize)
	case c.EchoMaxMessageSize < 0:
		return c, fmt.Errorf("echo max message size must not be negative, got %d", c.EchoMaxMessageSize)
	case c.MaxHeaderBytes < 0:
		return c, fmt.Errorf("max header bytes must not be negative, got %d", c.MaxHeaderBytes)
	case c.MaxChannels < 0:
		return c, fmt.Errorf("max channels must not be negative, got %d", c.MaxChannels)
	case c.SendQueue < 0:
		return c, fmt.Errorf("send queue must not be negative, got %d", c.SendQueue)
	case c.PublishTimeout < 0:
		return c, fmt.Errorf("publish timeout must not be negative, got %v", c.PublishTimeout)
	case c.ShutdownTimeout < 0:
		return c, fmt.Errorf("shutdown timeout must not be negative, got %v", c.ShutdownTimeout)
	case c.Auth.ConnectTimeout < 0:
		return c, fmt.Errorf("auth connect timeout must not be negative, got %v", c.Auth.ConnectTimeout)
	case c.Auth.Leeway < 0:
		return c, fmt.Errorf("auth leeway must not be negative, got %v", c.Auth.Leeway)
	case c.Auth.JWKSRefresh < 0:
		return c, fmt.Errorf("auth JWKS refresh must not be negative, got %v", c.Auth.JWKSRefresh)
	case c.MaxPublishRate < 0 || c.MaxPublishRatePerIP < 0:
		return c, errors.New("publish rates must not be negative")
	case c.APIAddr != "" && c.APIKey == "", c.APIOnMain && c.APIKey == "":
		return c, errors.New("the server API needs an API key")
	case c.APIKey != "" && len(c.APIKey) < 16:
		return c, errors.New("the API key must be at least 16 bytes")
	case c.APIKey != "" && c.APIAddr == "" && !c.APIOnMain:
		return c, errors.New("an API key needs an API address, or the API on the main address")
	}
	if c.Auth.ConnectTimeout == 0 {
		c.Auth.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	for _, pat := range c.AllowedHosts {
		if _, err := path.Match(strings.ToLower(pat), ""); err != nil || pat == "" {
			return c, fmt.Errorf("allowed host %q is not a valid pattern", pat)
		}
	}
	if c.EchoMaxMessageSize == 0 {
		c.EchoMaxMessageSize = DefaultEchoMaxMessageSize
	}
	c.HTTPIdleTimeout = durationOrDefault(c.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	c.HTTPReadTimeout = durationOrDefault(c.HTTPReadTimeout, DefaultHTTPReadTimeout)
	c.HTTPWriteTimeout = durationOrDefault(c.HTTPWriteTimeout, DefaultHTTPWriteTimeout)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.SendQueue == 0 {
		c.SendQueue = DefaultSendQueue
	}
	if c.MaxMessageRate == 0 {
		c.MaxMessageRate = DefaultMaxMessageRate
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.LogOutput == nil {
		c.LogOutput = os.Stderr
	}
	return c, nil
}

// durationOrDefault replaces 0 by the default. A negative bound stays
// negative: http.Server reads it as none (where 0 would make IdleTimeout
// fall back to ReadTimeout).
func durationOrDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// NewLogger returns a slog logger writing to w at level (debug, info, warn
// or error) in format (text or json).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	// slog also accepts offsets such as "info+2"; the documented names only.
	switch strings.ToLower(level) {
	case "debug", "info", "warn", "error":
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("log level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		// Durations in milliseconds, as log pipelines expect numbers of
		// (slog's default is integer nanoseconds).
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				return slog.Float64(a.Key, float64(a.Value.Duration())/float64(time.Millisecond))
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format must be text or json, got %q", format)
}
