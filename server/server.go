package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/presence"
	"github.com/latchws/latch/server/web"
	"github.com/latchws/latch/websocket"
	"github.com/latchws/latch/websocket/xconnect" // RFC 8441 for browsers on HTTP/2
)

// http2FrameSize is the largest HTTP/2 frame the server accepts.
const http2FrameSize = 16 << 10

const (
	readHeaderTimeout = 10 * time.Second
	handshakeTimeout  = 10 * time.Second
)

// Server is the latch application: the pub/sub protocol on /ws, an echo
// service on /echo, the demo page on /, Prometheus metrics on /metrics (or
// on the admin address) and health checks on /healthz and /readyz.
type Server struct {
	cfg     Config       // immutable after New
	logger  *slog.Logger // immutable after New
	hub     *hub.Hub
	broker  broker.Broker
	stop    context.CancelFunc // cancels pubsub.stopping
	echo    *hub.Hub           // /echo: its clients are echoed
	engine  *websocket.Engine  // nil: goroutines; shared by both hubs
	limiter *hub.Limiter       // admits every WebSocket, /ws and /echo alike
	metrics *metrics
	hosts   *hostPolicy // immutable after New
	pubsub  *pubsub
	// releaseStores is Config.Stores' release; nil without.
	releaseStores func()
	api           *http.Server // immutable after New; nil without Config.APIAddr
	apiMu         sync.Mutex
	apiLn         net.Listener // guarded by apiMu
	handler       http.Handler
	http          *http.Server
	admin         *http.Server // immutable after New; nil without Config.AdminAddr
	draining      atomic.Bool  // set by Shutdown; /readyz answers 503 from then on

	adminMu      sync.Mutex
	adminLn      net.Listener // guarded by adminMu; bound by ListenAdmin
	adminServing bool         // guarded by adminMu; set once admin.Serve runs
	adminClosed  bool         // guarded by adminMu; set by Shutdown
}

// New returns a server configured by cfg, with defaults for its zero
// fields. It loads the TLS key pair if one is configured; it does not
// listen until [Server.Serve] or [Server.ListenAndServe].
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	logger, err := NewLogger(cfg.LogOutput, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("server: loading TLS key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// Serve wraps the listener itself, so ALPN is set here, not by
		// http.Server.ServeTLS.
		tlsConfig.NextProtos = []string{"h2", "http/1.1"}
		if cfg.DisableHTTP2 {
			tlsConfig.NextProtos = []string{"http/1.1"}
		}
	}
	s := &Server{cfg: cfg, logger: logger, limiter: hub.NewLimiter(cfg.MaxConnections, cfg.MaxConnectionsPerIP)}
	rate := cfg.MaxMessageRate
	if rate < 0 {
		rate = 0 // off
	}
	// The hubs bound writes with the connections' write stall timeout.
	writeTimeout := cfg.WriteStallTimeout
	if writeTimeout == 0 {
		writeTimeout = websocket.DefaultWriteStallTimeout
	}

	nss, err := newNamespaces(cfg.Namespaces)
	if err == nil {
		err = cfg.checkStores(nss)
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	verifier, secret, err := newVerifier(&cfg.Auth, cfg.Demo)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	// A broker or stores of the application's (NATS) may block, so the
	// hooks then run on the engine's workers, not on its loops; so do
	// they when tokens may need a JWKS fetch.
	external := cfg.Broker != nil || cfg.History != nil || cfg.Presence != nil || cfg.Auth.JWKSURL != ""
	engine, err := newEngine(cfg.Engine, external)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.engine = engine

	ps := &pubsub{
		maxChannels: cfg.MaxChannels, pubTimeout: cfg.PublishTimeout, sendQueue: cfg.SendQueue, logger: logger,
		ns: nss, verifier: verifier, anonymous: verifier == nil || cfg.Auth.Anonymous, connectTimeout: cfg.Auth.ConnectTimeout, leeway: cfg.Auth.Leeway,
		history: cfg.History, presence: cfg.Presence, nodeID: cfg.NodeID, pubRate: cfg.MaxPublishRate,
		clustered: cfg.Broker != nil,
	}
	if cfg.MaxPublishRatePerIP > 0 {
		ps.ipRate = newKeyedLimiter(cfg.MaxPublishRatePerIP)
	}
	if needHist, needPres := nss.need(); cfg.Broker != nil && cfg.Stores != nil &&
		(needHist && ps.history == nil || needPres && ps.presence == nil) {
		h, pr, release, err := cfg.Stores()
		if err != nil {
			s.closeEngine()
			if verifier != nil {
				verifier.Close()
			}
			return nil, fmt.Errorf("server: stores: %w", err)
		}
		if ps.history == nil {
			ps.history = h
		} else if h != nil {
			_ = h.Close()
		}
		if ps.presence == nil {
			ps.presence = pr
		} else if pr != nil {
			_ = pr.Close()
		}
		s.releaseStores = release
	}
	if ps.history == nil {
		ps.history = history.NewMemory(history.MemoryConfig{MaxChannels: memoryHistoryChannels})
	}
	if ps.presence == nil {
		ps.presence = presence.NewMemory()
	}
	if ps.nodeID == "" && cfg.Broker != nil {
		ps.nodeID = randomNodeID()
	}
	ps.nodeName = ps.nodeID
	if ps.nodeName == "" {
		ps.nodeName = randomNodeID()
	}
	s.pubsub = ps
	ps.stopping, s.stop = context.WithCancel(context.Background())
	s.hub = hub.New(hub.Config{
		Upgrader:       s.upgrader([]string{Subprotocol}, cfg.MaxMessageSize),
		SendQueue:      cfg.SendQueue,
		SlowConsumer:   hub.Disconnect,
		Limiter:        s.limiter,
		MaxMessageRate: rate,
		ReadLimit:      cfg.MaxMessageSize,
		WriteTimeout:   writeTimeout,
		OnConnect:      ps.onConnect,
		OnMessage:      ps.onMessage,
		OnDisconnect:   ps.onDisconnect,
		Engine:         engine,
		Logger:         logger,
	})
	ps.hub = s.hub
	ps.draining = func() bool { return s.draining.Load() || s.hub.Draining() }
	// Last fallible step: nothing needs undoing if New fails before it.
	if cfg.Broker == nil {
		s.broker = broker.NewMemory(ps.deliver)
	} else {
		b, err := cfg.Broker(ps.deliver)
		if err != nil {
			s.stop()
			s.closeEngine()
			s.closeVerifier()
			s.closeBuiltStores()
			return nil, fmt.Errorf("server: broker: %w", err)
		}
		if b == nil {
			s.stop()
			s.closeEngine()
			s.closeVerifier()
			s.closeBuiltStores()
			return nil, errors.New("server: broker: BrokerFunc returned nil")
		}
		s.broker = b
	}
	ps.broker = s.broker
	ps.interest = broker.NewInterest(s.broker)
	started := time.Now()
	if cfg.Broker != nil {
		// Every node hears the server API's commands and the other
		// nodes' reports.
		if err := ps.interest.Add(controlChannel); err != nil {
			s.stop()
			s.closeEngine()
			s.closeVerifier()
			s.closeBuiltStores()
			_ = s.broker.Close()
			return nil, fmt.Errorf("server: broker: %w", err)
		}
		go ps.reportNodes(started)
	}
	if cfg.Broker != nil || cfg.History != nil {
		// A broker may lose a message, and a history of the
		// application's may fail a read that a gap fill needed.
		go ps.syncFeeds(feedSyncInterval)
	}
	s.echo = newEchoHub(hub.Config{
		Upgrader:     s.upgrader(nil, cfg.EchoMaxMessageSize),
		Limiter:      s.limiter,
		ReadLimit:    cfg.EchoMaxMessageSize,
		WriteTimeout: writeTimeout,
		OnConnect:    func(c *hub.Client) { s.metrics.connected(routeEcho, c.Conn(), c.Request()) },
		Engine:       engine,
		Logger:       logger,
	})
	s.metrics = newMetrics(s.hub, s.echo, s.broker, ps.interest)
	ps.metrics = s.metrics

	mux := http.NewServeMux()
	mux.Handle("/ws", ps.authenticate(s.hub))
	mux.Handle("GET /latch.js", jsClient())
	if cfg.Demo {
		mux.Handle("GET /demo/token", demoToken(secret))
	}
	if cfg.APIKey != "" {
		a := &api{p: ps, key: []byte(cfg.APIKey), startedAt: started}
		if cfg.APIOnMain {
			mux.Handle("/api/", a.handler())
		}
		if cfg.APIAddr != "" {
			s.api = s.newHTTPServer(cfg.APIAddr, hostCheck(newHostPolicy(nil, cfg.APIAddr), nil, a.handler()), cfg.HTTPWriteTimeout)
		}
	}
	mux.Handle("/echo", s.echo)
	if cfg.AdminAddr == "" {
		mux.Handle("GET /metrics", s.metrics.handler())
	} else {
		mux.Handle("/metrics", http.NotFoundHandler()) // served on the admin address only
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// The process runs and serves HTTP: that is all liveness means.
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			writeText(w, http.StatusServiceUnavailable, "draining\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	mux.Handle("/", http.FileServerFS(web.FS))
	// Probes may use any Host: an orchestrator's, an IP, a service name.
	s.hosts = newHostPolicy(cfg.AllowedHosts, cfg.Addr)
	s.handler = hostCheck(s.hosts, map[string]bool{"/healthz": true, "/readyz": true}, mux)

	s.http = s.newHTTPServer(cfg.Addr, s.handler, cfg.HTTPWriteTimeout)
	s.http.TLSConfig = tlsConfig
	// HTTP/2 streams are WebSockets too (RFC 8441): http.Server's
	// ReadTimeout and WriteTimeout apply per stream, and the Upgrader lifts
	// them from a WebSocket's stream as it does after a hijack.
	s.http.Protocols = new(http.Protocols)
	s.http.Protocols.SetHTTP1(true)
	s.http.Protocols.SetHTTP2(!cfg.DisableHTTP2)
	s.http.Protocols.SetUnencryptedHTTP2(cfg.H2C)
	// RFC 9113's default frame size rather than Go's 1 MiB: Go's HTTP/2
	// client keeps a request-body buffer of the server's frame size (up to
	// 512 KiB) for every stream, i.e. every WebSocket (docs/http2.md).
	s.http.HTTP2 = &http.HTTP2Config{MaxReadFrameSize: http2FrameSize}
	if cfg.AdminAddr != "" {
		admin := http.NewServeMux()
		admin.Handle("GET /metrics", s.metrics.handler())
		if cfg.AdminDebugHandler != nil {
			admin.Handle("/debug/", cfg.AdminDebugHandler)
		}
		// The admin port answers loopback names only when it is on
		// loopback; -allowed-hosts names the public port's hosts.
		h := hostCheck(newHostPolicy(nil, cfg.AdminAddr), nil, writeDeadline(cfg.HTTPWriteTimeout, admin))
		s.admin = s.newHTTPServer(cfg.AdminAddr, h, 0)
	}
	return s, nil
}

// newHTTPServer returns an http.Server with the configured bounds. Once a
// WebSocket is upgraded its deadlines are the websocket package's: the
// Upgrader clears net/http's after Hijack.
func (s *Server) newHTTPServer(addr string, h http.Handler, writeTimeout time.Duration) *http.Server {
	headerTimeout := readHeaderTimeout
	if r := s.cfg.HTTPReadTimeout; r > 0 && r < headerTimeout {
		headerTimeout = r // the head is part of the whole request
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

// writeDeadline bounds each response's write to d (0: no bound), plus
// the duration a ?seconds= parameter asks for: a 30 s CPU profile must not
// be cut by a 30 s write timeout (net/http/pprof refuses such a request
// outright when http.Server.WriteTimeout is set).
func writeDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		total := d
		if sec, err := strconv.Atoi(r.URL.Query().Get("seconds")); err == nil && sec > 0 && sec < 24*3600 {
			total += time.Duration(sec) * time.Second
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(total))
		next.ServeHTTP(w, r)
	})
}

// upgrader returns an Upgrader with the configured origins, heartbeat,
// progress bounds and compression, and readLimit.
func (s *Server) upgrader(subprotocols []string, readLimit int64) *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout:           handshakeTimeout,
		Subprotocols:               subprotocols,
		OriginPatterns:             s.cfg.AllowedOrigins,
		ReadLimit:                  readLimit,
		HeartbeatInterval:          s.cfg.HeartbeatInterval,
		MessageTimeout:             s.cfg.MessageTimeout,
		WriteStallTimeout:          s.cfg.WriteStallTimeout,
		EnableCompression:          !s.cfg.DisableCompression,
		CompressionContextTakeover: s.cfg.CompressionContextTakeover,
	}
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// Handler returns the server's routes, for tests or another http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Broker returns the server's broker, for its Stats.
func (s *Server) Broker() broker.Broker { return s.broker }

// Hub returns the hub behind /ws.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Logger returns the logger built from the configuration.
func (s *Server) Logger() *slog.Logger { return s.logger }

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.http.TLSConfig != nil }

// ListenAndServe listens on the configured address and serves; see
// [Server.Serve].
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// ListenAdmin binds Config.AdminAddr, if set and not yet bound, and
// returns the bound address (nil without an admin address). [Server.Serve]
// calls it; call it first to learn the address or fail early.
func (s *Server) ListenAdmin() (net.Addr, error) {
	if s.admin == nil {
		return nil, nil
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.adminClosed {
		return nil, http.ErrServerClosed
	}
	if s.adminLn == nil {
		ln, err := net.Listen("tcp", s.cfg.AdminAddr)
		if err != nil {
			return nil, fmt.Errorf("server: admin address: %w", err)
		}
		s.adminLn = ln
	}
	return s.adminLn.Addr(), nil
}

// Serve accepts connections on ln, over TLS if configured, until
// [Server.Shutdown]; then it returns http.ErrServerClosed, like
// http.Server.Serve. It also starts the admin server if one is configured.
//
// Accepted connections are kept below the descriptor limit (RLIMIT_NOFILE
// less the descriptors open now and a reserve of 64): beyond it, and when
// accept fails for want of descriptors, a new connection gets an immediate
// 503 instead of waiting in the backlog until it times out. Such refusals
// count in latch_upgrades_rejected_total{reason="descriptors"}.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.serveAdmin(); err != nil {
		ln.Close()
		return err
	}
	if _, err := s.ListenAPI(); err != nil { // serves it too
		ln.Close()
		return err
	}
	budget := connectionBudget()
	s.logger.Info("serving", "addr", ln.Addr().String(), "allowed_hosts", s.hosts.describe, "max_open_connections", budget)
	ln = newLimitListener(ln, budget, s.metrics.refusedForDescriptors)
	if s.http.TLSConfig != nil {
		ln = tls.NewListener(ln, s.http.TLSConfig)
	}
	if s.TLS() && !s.cfg.DisableHTTP2 || s.cfg.H2C {
		s.logger.Info("http2", "tls", s.TLS() && !s.cfg.DisableHTTP2, "h2c", s.cfg.H2C, "websockets_over_http2", xconnect.Enabled())
	}
	return s.http.Serve(ln)
}

// feedSyncInterval is how often, with an external broker, each history
// channel's feed is checked against the history.
const feedSyncInterval = time.Second

// closeStores closes the history and presence stores and the verifier.
func (s *Server) closeStores() error {
	p := s.pubsub
	err := errors.Join(p.history.Close(), p.presence.Close())
	if s.releaseStores != nil {
		s.releaseStores()
	}
	s.closeVerifier()
	return err
}

// memoryHistoryChannels bounds the channels one node keeps history for:
// beyond it the least recently published channel's history is dropped
// (its epoch changes). A namespace open to publishing would otherwise let
// a client grow the history with every channel name it makes up.
const memoryHistoryChannels = 100_000

// closeBuiltStores closes, when New fails, the stores Config.Stores made.
func (s *Server) closeBuiltStores() {
	if s.releaseStores == nil {
		return
	}
	p := s.pubsub
	_ = errors.Join(p.history.Close(), p.presence.Close())
	s.releaseStores()
}

// closeVerifier stops the verifier's JWKS refresh, if any.
func (s *Server) closeVerifier() {
	if s.pubsub.verifier != nil {
		s.pubsub.verifier.Close()
	}
}

// randomNodeID names a node of a cluster: 6 base32 characters.
func randomNodeID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:6]
}

// ListenAPI binds Config.APIAddr, if set and not yet bound, and returns the
// bound address (nil without one). [Server.Serve] calls it.
func (s *Server) ListenAPI() (net.Addr, error) {
	if s.api == nil {
		return nil, nil
	}
	s.apiMu.Lock()
	defer s.apiMu.Unlock()
	if s.apiLn == nil {
		ln, err := net.Listen("tcp", s.cfg.APIAddr)
		if err != nil {
			return nil, fmt.Errorf("server: API address: %w", err)
		}
		s.apiLn = ln
		s.logger.Info("serving API", "addr", ln.Addr().String())
		go func() {
			if err := s.api.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("API server failed", "err", err)
			}
		}()
	}
	return s.apiLn.Addr(), nil
}

// serveAdmin starts the admin server once, in its own goroutine.
func (s *Server) serveAdmin() error {
	if _, err := s.ListenAdmin(); err != nil || s.admin == nil {
		return err
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if s.adminServing {
		return nil
	}
	s.adminServing = true
	ln := s.adminLn
	s.logger.Info("serving admin", "addr", ln.Addr().String(), "routes", "/metrics /debug/")
	go func() {
		if err := s.admin.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("admin server failed", "err", err)
		}
	}()
	return nil
}

// Shutdown stops the server gracefully: /readyz answers 503, new upgrades
// are refused with 503, every WebSocket client gets close 1001 (Going
// Away) — on /ws after what is already queued for it — and the closing
// handshakes of /ws and /echo are awaited in parallel, then the HTTP
// server shuts down. Publishes still waiting for the broker fail with
// "unavailable"; once every client has ended, the broker is closed. A ctx
// without a deadline is bounded by Config.ShutdownTimeout. Clients still
// open when the bound expires are dropped and the context's error is
// returned. Shutdown must be called, even for a server that never served,
// to release the broker.
func (s *Server) Shutdown(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
	}
	s.draining.Store(true)
	s.stop()
	s.logger.Info("draining", "clients", s.hub.Len(), "echo_clients", s.echo.Len())
	// http.Server.Shutdown does not track hijacked connections: both hubs
	// close their clients here, at the same time.
	echoErr := make(chan error, 1)
	go func() { echoErr <- s.echo.Shutdown(ctx) }()
	herr := s.hub.Shutdown(ctx)
	eerr := <-echoErr
	serr := s.http.Shutdown(ctx)
	serr = errors.Join(serr, s.shutdownAdmin(ctx))
	// Every /ws client has gone through OnDisconnect: no Interest left to
	// release, and no publish running.
	if s.api != nil {
		serr = errors.Join(serr, s.api.Shutdown(ctx))
		s.apiMu.Lock()
		if s.apiLn != nil {
			_ = s.apiLn.Close()
		}
		s.apiMu.Unlock()
	}
	berr := s.broker.Close()
	s.closeEngine() // holds no client now, unless the deadline dropped some
	return errors.Join(herr, eerr, serr, berr, s.closeStores())
}

// newEngine returns the engine Config.Engine asks for, or nil for
// goroutines. A broker of the application's (NATS) may block in Publish
// and Subscribe, so its hooks run on workers, not on the loops.
func newEngine(mode string, externalBroker bool) (*websocket.Engine, error) {
	if mode == EngineGoroutines {
		return nil, nil
	}
	cfg := websocket.EngineConfig{}
	if externalBroker {
		cfg.Workers = brokerWorkers
	}
	e, err := websocket.NewEngine(cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if e.Driver() != EngineEpoll {
		e.Close()
		if mode == EngineEpoll {
			return nil, fmt.Errorf("engine %s: not available on this platform (driver %s)", EngineEpoll, e.Driver())
		}
		return nil, nil // auto: goroutines, without an engine between
	}
	return e, nil
}

// brokerWorkers is how many hooks may wait for an external broker at once.
const brokerWorkers = 64

func (s *Server) closeEngine() {
	if s.engine != nil {
		s.engine.Close()
	}
}

// Engine reports how WebSocket connections are served: "epoll" or
// "goroutines".
func (s *Server) Engine() string {
	if s.engine != nil {
		return s.engine.Driver()
	}
	return EngineGoroutines
}

// shutdownAdmin stops the admin server and closes its listener, bound
// even if it was never served.
func (s *Server) shutdownAdmin(ctx context.Context) error {
	if s.admin == nil {
		return nil
	}
	s.adminMu.Lock()
	s.adminClosed = true
	ln := s.adminLn
	s.adminMu.Unlock()
	err := s.admin.Shutdown(ctx)
	if ln != nil {
		_ = ln.Close() // already closed if it was served
	}
	return err
}
