// Package connect implements "latch connect URL", a command-line WebSocket
// client in the spirit of wscat, meant for scripts as much as for people.
//
// Each line read from stdin is sent as one message; every message received is
// printed on stdout, one per line (binary messages as hex after a marker).
// Status and errors go to stderr, so stdout carries only what the server sent.
// It never prompts.
package connect

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchws/latch/cmd/latch/internal/cliflag"
	"github.com/latchws/latch/websocket"
)

// Exit codes returned by [Run].
const (
	ExitOK          = 0   // stdin ended and the connection closed cleanly, or the server closed with 1000/1001
	ExitFailure     = 1   // handshake failed, the connection broke, or the server closed with another code
	ExitUsage       = 2   // bad flags or URL
	ExitInterrupted = 130 // ctx was cancelled (SIGINT in the latch program)
)

// BinaryMarker starts the stdout line of a received binary message; the
// payload follows in lowercase hex.
const BinaryMarker = "[binary] "

// seeHelp ends a usage error.
const seeHelp = "Run 'latch connect -h' for the flags.\n"

var errMissingURL = errors.New("missing URL")

const (
	defaultTimeout = 10 * time.Second
	defaultWait    = time.Second
)

const usageHead = `Usage: latch connect [flags] URL

Sends each line of stdin as a WebSocket message and prints every message
received on stdout (binary ones as "[binary] " followed by hex). At the end of
stdin it keeps printing for -wait, then closes with code 1000 and exits 0.
When the server closes, its code and reason go to stderr; the exit code is 0
for 1000 and 1001, 1 otherwise. URL is ws:// or wss:// (http:// and https://
are taken as ws:// and wss://); a latch server takes WebSockets on /ws and
/echo. When the handshake fails it says why and what to change; -v adds the
server's response.

Flags:
`

type config struct {
	url          *url.URL
	subprotocols []string
	header       http.Header
	origin       string
	compression  bool
	binary       bool
	timeout      time.Duration // cliflag.Off: no bound
	wait         time.Duration // cliflag.Off: none
	insecure     bool
	caFile       string
	verbose      bool
}

func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("latch connect", flag.ContinueOnError)
	fs.Func("subprotocol", "offer subprotocol `name` (repeatable)", func(s string) error {
		if s == "" || strings.ContainsAny(s, " ,\t") {
			return fmt.Errorf("invalid subprotocol %q", s)
		}
		cfg.subprotocols = append(cfg.subprotocols, s)
		return nil
	})
	fs.Func("H", "add request header `'Name: value'` (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		name = strings.TrimSpace(name)
		if !ok || !validHeaderName(name) {
			return fmt.Errorf("header %q is not of the form 'Name: value'", s)
		}
		cfg.header.Add(name, strings.TrimSpace(value))
		return nil
	})
	fs.StringVar(&cfg.origin, "origin", "", "send `URL` as the Origin header, as a browser on that page would (e.g. https://example.com)")
	fs.BoolVar(&cfg.compression, "compression", false, "offer permessage-deflate (RFC 7692)")
	fs.BoolVar(&cfg.binary, "binary", false, "send lines as binary messages instead of text")
	cliflag.DurationVar(fs, &cfg.timeout, "timeout", defaultTimeout, "give up on the opening handshake after `duration` (off: wait as long as it takes)")
	cliflag.DurationVar(fs, &cfg.wait, "wait", defaultWait, "after the end of stdin, keep printing for `duration` before closing (off: close at once)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "skip TLS certificate verification (wss://; for testing only)")
	fs.StringVar(&cfg.caFile, "cacert", "", "trust the CA certificates in `file` (PEM) for wss://, besides the system's")
	fs.BoolVar(&cfg.verbose, "v", false, "verbose: on a failed handshake, print the server's response (headers, start of the body) and the raw error")
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs := newFlagSet(&config{header: http.Header{}})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.1).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseArgs accepts flags before and after the URL.
func parseArgs(args []string) (*config, error) {
	cfg := &config{header: http.Header{}}
	fs := newFlagSet(cfg)
	fs.SetOutput(io.Discard) // errors are reported by Run, with the usage
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() == 0 {
		return nil, errMissingURL
	}
	raw := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	cfg.url = u
	if cfg.origin != "" {
		cfg.header.Set("Origin", cfg.origin)
	}
	return cfg, nil
}

func parseURL(raw string) (*url.URL, error) {
	if !strings.Contains(raw, "://") {
		return nil, fmt.Errorf("invalid URL %q: no scheme; write ws://HOST:PORT/PATH (or wss://, http://, https://)", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL %q: %v", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("invalid URL %q: scheme %s:// is not supported; use ws://, wss://, http:// or https://", raw, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q: no host; write %s://HOST:PORT/PATH", raw, u.Scheme)
	}
	// RFC 6455 §3: fragment identifiers are not allowed in WebSocket URIs.
	u.Fragment = ""
	return u, nil
}

// Run runs the connect command with args (flags and URL) and returns the
// process exit code (see [ExitOK] and the others). Cancelling ctx closes the
// connection with 1001 and returns [ExitInterrupted].
//
// stdin is read by a goroutine of its own; a read that never returns (an
// open terminal) outlives Run, but that goroutine touches nothing else after
// Run has returned. stdout and stderr are not written to after Run returns.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return ExitOK
		}
		if errors.Is(err, errMissingURL) {
			fmt.Fprintf(stderr, "latch connect: %v\n\n", err)
			printUsage(stderr)
			return ExitUsage
		}
		// One line that names the mistake; the full usage would bury it.
		fmt.Fprintf(stderr, "latch connect: %v\n%s", err, seeHelp)
		return ExitUsage
	}

	d := websocket.Dialer{
		Proxy:             http.ProxyFromEnvironment,
		HandshakeTimeout:  max(cfg.timeout, 0), // cliflag.Off: no bound
		Subprotocols:      cfg.subprotocols,
		EnableCompression: cfg.compression,
	}
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		fmt.Fprintf(stderr, "latch connect: %v\n", err)
		return ExitUsage
	}
	d.TLSClientConfig = tlsConfig
	conn, resp, err := d.DialContext(ctx, cfg.url.String(), cfg.header)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			fmt.Fprintln(stderr, "latch connect: interrupted during the handshake")
			return ExitInterrupted
		}
		explainDialError(stderr, cfg, resp, err)
		return ExitFailure
	}
	if isTerminal(stdin) {
		msg := "connected to " + cfg.url.Redacted()
		if p := conn.Subprotocol(); p != "" {
			msg += " (subprotocol " + p + ")"
		}
		fmt.Fprintln(stderr, msg+"; end input with Ctrl-D")
	}
	return session(ctx, cfg, conn, stdin, stdout, stderr)
}

// session pumps stdin to the connection and the connection to stdout until
// one of them ends, and returns the exit code.
func session(ctx context.Context, cfg *config, conn *websocket.Conn, stdin io.Reader, stdout, stderr io.Writer) int {
	done := make(chan struct{}) // closed when session returns
	defer close(done)

	// Reader: the only goroutine that writes to stdout.
	readErr := make(chan error, 1)
	go func() {
		readErr <- copyMessages(conn, stdout)
	}()

	lines := make(chan string)
	stdinErr := make(chan error, 1)
	go readLines(stdin, lines, stdinErr, done)

	// finish closes our side with code and waits for the reader to see the
	// end, so that nothing writes to stdout after Run returns.
	finish := func(code int, reason string) error {
		cerr := conn.CloseWithCode(code, reason)
		<-readErr
		return cerr
	}

	mt := websocket.TextMessage
	if cfg.binary {
		mt = websocket.BinaryMessage
	}
	lineNo := 0
	for {
		select {
		case line := <-lines:
			lineNo++
			if mt == websocket.TextMessage && !utf8.ValidString(line) {
				// RFC 6455 §5.6: text messages must be UTF-8; say so instead of failing.
				fmt.Fprintf(stderr, "latch connect: line %d is not valid UTF-8, not sent (use -binary)\n", lineNo)
				continue
			}
			if err := conn.WriteMessage(mt, []byte(line)); err != nil {
				fmt.Fprintf(stderr, "latch connect: send: %v\n", err)
				conn.CloseNow()
				return reportRead(<-readErr, stderr)
			}
		case err := <-stdinErr:
			if err != nil {
				fmt.Fprintf(stderr, "latch connect: read stdin: %v\n", err)
				finish(websocket.CloseNormalClosure, "")
				return ExitFailure
			}
			return drainAndClose(ctx, max(cfg.wait, 0), conn, readErr, finish, stderr)
		case err := <-readErr:
			conn.Close() // the close was answered already; this releases the connection
			return reportRead(err, stderr)
		case <-ctx.Done():
			finish(websocket.CloseGoingAway, "")
			return ExitInterrupted
		}
	}
}

// drainAndClose runs after the end of stdin: it keeps printing for wait,
// then performs the closing handshake (RFC 6455 §7.1.2).
func drainAndClose(ctx context.Context, wait time.Duration, conn *websocket.Conn, readErr chan error, finish func(int, string) error, stderr io.Writer) int {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case err := <-readErr:
		conn.Close()
		return reportRead(err, stderr)
	case <-ctx.Done():
		finish(websocket.CloseGoingAway, "")
		return ExitInterrupted
	case <-timer.C:
	}
	if err := finish(websocket.CloseNormalClosure, ""); err != nil {
		fmt.Fprintf(stderr, "latch connect: close: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}

// reportRead explains why the connection ended when the server ended it.
func reportRead(err error, stderr io.Writer) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		if ce.Text != "" {
			fmt.Fprintf(stderr, "latch connect: server closed the connection: code %d, reason %q\n", ce.Code, ce.Text)
		} else {
			fmt.Fprintf(stderr, "latch connect: server closed the connection: code %d\n", ce.Code)
		}
		if ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway {
			return ExitOK
		}
		return ExitFailure
	}
	fmt.Fprintf(stderr, "latch connect: connection lost: %v\n", err)
	return ExitFailure
}

// copyMessages prints every received message on its own line until a read
// fails, and returns that error.
func copyMessages(conn *websocket.Conn, stdout io.Writer) error {
	w := bufio.NewWriter(stdout)
	for {
		mt, p, err := conn.ReadMessage()
		if err != nil {
			w.Flush()
			return err
		}
		if mt == websocket.BinaryMessage {
			w.WriteString(BinaryMarker)
			w.WriteString(hex.EncodeToString(p))
		} else {
			w.Write(p)
		}
		w.WriteByte('\n')
		// Flush per message so that a script reading stdout sees it now.
		if err := w.Flush(); err != nil {
			conn.CloseNow()
			return fmt.Errorf("write stdout: %w", err)
		}
	}
}

// readLines sends each line of r, without its line ending, on lines; then
// nil (end of input) or the read error on errc. It gives up when done closes.
func readLines(r io.Reader, lines chan<- string, errc chan<- error, done <-chan struct{}) {
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			s = strings.TrimSuffix(s, "\n")
			s = strings.TrimSuffix(s, "\r")
			select {
			case lines <- s:
			case <-done:
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			errc <- err
			return
		}
	}
}

// tlsConfig returns the TLS settings of -insecure and -cacert, nil for the
// defaults.
func (cfg *config) tlsConfig() (*tls.Config, error) {
	if cfg.caFile == "" {
		if cfg.insecure {
			return &tls.Config{InsecureSkipVerify: true}, nil
		}
		return nil, nil
	}
	pem, err := os.ReadFile(cfg.caFile)
	if err != nil {
		return nil, fmt.Errorf("-cacert: %v", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-cacert: no PEM certificate in %s", cfg.caFile)
	}
	return &tls.Config{RootCAs: pool, InsecureSkipVerify: cfg.insecure}, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
