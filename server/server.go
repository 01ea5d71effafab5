package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/server/web"
	"github.com/latchws/latch/websocket"
)

const (
	readHeaderTimeout = 10 * time.Second
	handshakeTimeout  = 10 * time.Second
)

// Server is the latch application: the pub/sub protocol on /ws, an echo
// service on /echo, the demo page on /, Prometheus metrics on /metrics and
// health checks on /healthz and /readyz.
type Server struct {
	cfg      Config       // immutable after New
	logger   *slog.Logger // immutable after New
	hub      *hub.Hub
	broker   broker.Broker
	stop     context.CancelFunc // cancels pubsub.stopping
	echo     connSet            // the /echo connections, outside the hub
	limiter  *hub.Limiter       // admits every WebSocket, /ws and /echo alike
	rejects  rejectCounts       // /echo upgrades the limiter refused; the hub counts /ws's
	metrics  *metrics
	handler  http.Handler
	http     *http.Server
	draining atomic.Bool // set by Shutdown; /readyz answers 503 from then on
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
	}
	s := &Server{cfg: cfg, logger: logger, limiter: hub.NewLimiter(cfg.MaxConnections, cfg.MaxConnectionsPerIP)}
	rate := cfg.MaxMessageRate
	if rate < 0 {
		rate = 0 // off
	}

	ps := &pubsub{maxChannels: cfg.MaxChannels, pubTimeout: cfg.PublishTimeout, logger: logger}
	ps.stopping, s.stop = context.WithCancel(context.Background())
	s.hub = hub.New(hub.Config{
		Upgrader:       s.upgrader([]string{Subprotocol}),
		SendQueue:      cfg.SendQueue,
		SlowConsumer:   hub.Disconnect,
		Limiter:        s.limiter,
		MaxMessageRate: rate,
		ReadLimit:      cfg.MaxMessageSize,
		OnConnect:      ps.onConnect,
		OnMessage:      ps.onMessage,
		OnDisconnect:   ps.onDisconnect,
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
			return nil, fmt.Errorf("server: broker: %w", err)
		}
		if b == nil {
			s.stop()
			return nil, errors.New("server: broker: BrokerFunc returned nil")
		}
		s.broker = b
	}
	ps.broker = s.broker
	ps.interest = broker.NewInterest(s.broker)
	s.metrics = newMetrics(s.hub, &s.rejects, s.broker, ps.interest)
	ps.metrics = s.metrics

	mux := http.NewServeMux()
	mux.Handle("/ws", s.hub)
	echo := &echoHandler{
		upgrader:  s.upgrader(nil),
		readLimit: cfg.MaxMessageSize,
		logger:    logger,
		conns:     &s.echo,
		limiter:   s.limiter,
		rejects:   &s.rejects,
		onOpen:    func(conn *websocket.Conn) { s.metrics.connected(routeEcho, conn) },
	}
	mux.Handle("/echo", s.refuseWhileDraining(echo))
	mux.Handle("GET /metrics", s.metrics.handler())
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
	s.handler = mux

	s.http = &http.Server{
		Addr:              cfg.Addr,
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	s.http.TLSConfig = tlsConfig
	return s, nil
}

// upgrader returns an Upgrader with the configured origins, heartbeat and
// compression.
func (s *Server) upgrader(subprotocols []string) *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout:           handshakeTimeout,
		Subprotocols:               subprotocols,
		OriginPatterns:             s.cfg.AllowedOrigins,
		ReadLimit:                  s.cfg.MaxMessageSize,
		HeartbeatInterval:          s.cfg.HeartbeatInterval,
		EnableCompression:          !s.cfg.DisableCompression,
		CompressionContextTakeover: s.cfg.CompressionContextTakeover,
	}
}

func (s *Server) refuseWhileDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			writeText(w, http.StatusServiceUnavailable, "server is shutting down\n")
			return
		}
		h.ServeHTTP(w, r)
	})
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

// Serve accepts connections on ln, over TLS if configured, until
// [Server.Shutdown]; then it returns http.ErrServerClosed, like
// http.Server.Serve.
func (s *Server) Serve(ln net.Listener) error {
	if s.http.TLSConfig != nil {
		ln = tls.NewListener(ln, s.http.TLSConfig)
	}
	return s.http.Serve(ln)
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
	s.logger.Info("draining", "clients", s.hub.Len(), "echo_clients", len(s.echo.snapshot()))
	// http.Server.Shutdown does not track hijacked connections: both kinds
	// of WebSocket clients are closed here, at the same time.
	echoErr := make(chan error, 1)
	go func() { echoErr <- s.echo.shutdown(ctx) }()
	herr := s.hub.Shutdown(ctx)
	eerr := <-echoErr
	serr := s.http.Shutdown(ctx)
	// Every /ws client has gone through OnDisconnect: no Interest left to
	// release, and no publish running.
	berr := s.broker.Close()
	return errors.Join(herr, eerr, serr, berr)
}
