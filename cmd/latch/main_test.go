package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/latchws/latch/internal/testutil"
	"github.com/latchws/latch/server"
)

// buildLatch compiles this command into a temporary directory.
func buildLatch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running latch process.
type proc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	exited chan struct{} // closed after cmd.Wait returns
	err    error         // cmd.Wait's result; read after exited is closed
}

// startLatch runs bin with args and returns once it printed its listening
// line, with the address it bound.
func startLatch(t *testing.T, bin string, args ...string) (*proc, string) {
	t.Helper()
	return startLatchEnv(t, bin, nil, args...)
}

// startLatchEnv is startLatch with extra environment variables.
func startLatchEnv(t *testing.T, bin string, env []string, args ...string) (*proc, string) {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stderr: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // only the first line matters; drain the rest
			}
		}
		p.err = p.cmd.Wait() // after stdout hits EOF, as StdoutPipe requires
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})

	select {
	case line := <-lines:
		const prefix = "latch: listening on http://"
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("first line = %q, want %q + address", line, prefix)
		}
		return p, strings.TrimPrefix(line, prefix)
	case <-p.exited:
		t.Fatalf("latch exited before listening: %v\nstderr:\n%s", p.err, p.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("latch printed no listening line within 10s\nstderr:\n%s", p.stderr)
	}
	return nil, ""
}

// waitExit fails unless p exits within d, and returns its exit code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("latch did not exit within %v\nstderr:\n%s", d, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func TestLatchBinary(t *testing.T) {
	bin := buildLatch(t)

	t.Run("serve", func(t *testing.T) {
		const limit = 1024
		p, addr := startLatch(t, bin, "serve", "-addr", "127.0.0.1:0",
			"-echo-max-message-size", "1024", "-log-level", "debug", "-log-format", "json")
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("listening address %q, want 127.0.0.1 with the real port", addr)
		}
		url := "ws://" + addr + "/echo"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		// Echo, up to exactly the limit.
		c, _, err := cws.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		for _, msg := range []string{"hello, latch", strings.Repeat("z", limit)} {
			if err := c.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
				t.Fatalf("write: %v", err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil || typ != cws.MessageText || string(got) != msg {
				t.Fatalf("echo of %d bytes = (%v, %d bytes, %v)", len(msg), typ, len(got), err)
			}
		}
		if err := c.Close(4002, "done"); err != nil {
			t.Fatalf("close: %v", err)
		}

		// -echo-max-message-size: one byte over fails the connection with 1009.
		// RFC 6455 §7.4.1
		c2, _, err := cws.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c2.CloseNow()
		if err := c2.Write(ctx, cws.MessageBinary, make([]byte, limit+1)); err != nil {
			t.Fatalf("write: %v", err)
		}
		_, _, err = c2.Read(ctx)
		if code := cws.CloseStatus(err); code != cws.StatusMessageTooBig {
			t.Fatalf("close code %d (%v), want 1009", code, err)
		}

		// Paths that are neither routes nor files of the demo page.
		status, err := httpGet(ctx, "http://"+addr+"/nope")
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusNotFound {
			t.Errorf("GET /nope = %d, want 404", status)
		}

		// -log-level debug and -log-format json reach the echo handler's
		// logger: the close code 4002 is logged as a JSON record. The log
		// line is written after the close handshake, so poll briefly.
		deadline := time.Now().Add(3 * time.Second)
		for !hasCloseRecord(p.stderr.String(), 4002) {
			if time.Now().After(deadline) {
				t.Fatalf("no JSON debug record with code 4002 in stderr:\n%s", p.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}

		// An open /echo connection gets 1001 with a closing handshake and
		// does not hold up shutdown. Its reader answers the close frame.
		c3, _, err := cws.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c3.CloseNow()
		readErr := make(chan error, 1)
		go func() {
			_, _, err := c3.Read(ctx)
			readErr <- err
		}()

		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.waitExit(t, 7*time.Second); code != 0 {
			t.Fatalf("exit code after SIGTERM = %d, want 0\nstderr:\n%s", code, p.stderr)
		}
		// A clean handshake ends well before the 5 s shutdown timeout.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("exit took %v after SIGTERM, want a prompt closing handshake", d)
		}
		if err := <-readErr; cws.CloseStatus(err) != cws.StatusGoingAway {
			t.Errorf("/echo client read %v after SIGTERM, want close 1001", err)
		}
		if strings.Contains(p.stderr.String(), "shutdown incomplete") {
			t.Errorf("shutdown was incomplete:\n%s", p.stderr)
		}
	})

	t.Run("sigint", func(t *testing.T) {
		// The address comes from the environment alone.
		p, addr := startLatchEnv(t, bin, []string{"LATCH_ADDR=127.0.0.1:0"})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if status, err := httpGet(ctx, "http://"+addr+"/readyz"); err != nil || status != http.StatusOK {
			t.Fatalf("GET /readyz = %d, %v; want 200", status, err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.waitExit(t, 7*time.Second); code != 0 {
			t.Fatalf("exit code after SIGINT = %d, want 0\nstderr:\n%s", code, p.stderr)
		}
	})

	t.Run("compression", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// coder/websocket is an independent peer here; it offers
		// permessage-deflate without context takeover (RFC 7692 §7.1.1).
		offer := &cws.DialOptions{CompressionMode: cws.CompressionNoContextTakeover}
		big := strings.Repeat("compress me please ", 100)
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want bool
		}{
			{"default", nil, nil, true},
			{"flag off", nil, []string{"-compression=false"}, false},
			{"env off", []string{"LATCH_COMPRESSION=false"}, nil, false},
			{"flag wins", []string{"LATCH_COMPRESSION=false"}, []string{"-compression=true", "-compression-context-takeover"}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, addr := startLatchEnv(t, bin, tc.env, append([]string{"serve", "-addr", "127.0.0.1:0"}, tc.args...)...)
				for _, path := range []string{"/echo", "/ws"} {
					c, resp, err := cws.Dial(ctx, "ws://"+addr+path, offer)
					if err != nil {
						t.Fatalf("dial %s: %v", path, err)
					}
					ext := resp.Header.Get("Sec-WebSocket-Extensions")
					if got := strings.HasPrefix(ext, "permessage-deflate"); got != tc.want {
						t.Errorf("%s: Sec-WebSocket-Extensions %q, want compression %v", path, ext, tc.want)
					}
					if path == "/echo" {
						if err := c.Write(ctx, cws.MessageText, []byte(big)); err != nil {
							t.Fatalf("write: %v", err)
						}
						if typ, got, err := c.Read(ctx); err != nil || typ != cws.MessageText || string(got) != big {
							t.Fatalf("echo: (%v, %d bytes, %v), want the %d bytes sent", typ, len(got), err, len(big))
						}
					} else if _, got, err := c.Read(ctx); err != nil || !strings.Contains(string(got), `"welcome"`) {
						t.Fatalf("/ws first message %q, %v; want a welcome", got, err)
					}
					c.Close(cws.StatusNormalClosure, "")
				}
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				if code := p.waitExit(t, 7*time.Second); code != 0 {
					t.Fatalf("exit code %d\nstderr:\n%s", code, p.stderr)
				}
			})
		}
	})

	for _, args := range [][]string{{"help"}, {"-h"}, {"serve", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := exec.Command(bin, args...).Output()
			if err != nil {
				t.Fatalf("latch %v: %v", args, err)
			}
			for _, want := range []string{"Usage:", "-addr", "-max-message-size", "-echo-max-message-size",
				"-allowed-hosts", "-admin-addr", "-http-idle-timeout", "-http-read-timeout", "-http-write-timeout",
				"-max-header-bytes", "LATCH_ALLOWED_HOSTS", "-log-level", "-log-format", "/echo",
				"/ws", "/metrics", "/readyz", "-allowed-origins", "$LATCH_ALLOWED_ORIGINS", "-shutdown-timeout", "connect",
				"-compression", "$LATCH_COMPRESSION_CONTEXT_TAKEOVER", "-max-connections-per-ip", "$LATCH_MAX_MESSAGE_RATE"} {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("usage lacks %q:\n%s", want, out)
				}
			}
		})
	}

	bad := [][]string{
		{"bogus"},
		{"serve", "-no-such-flag"},
		{"serve", "-log-level", "loud"},
		{"serve", "-log-format", "xml"},
		{"serve", "-max-message-size", "0"},
		{"serve", "-echo-max-message-size", "0"},
		{"serve", "-max-header-bytes", "0"},
		{"serve", "-http-read-timeout", "-1s"},
		{"serve", "-allowed-hosts", "[bad"},
		{"serve", "extra"},
		{"serve", "-max-connections", "-1"},
		{"serve", "-max-connections-per-ip", "-1"},
		{"serve", "-max-message-rate", "-5"},
		{"serve", "-max-message-rate", "NaN"},
		{"serve", "-send-queue", "0"},
		{"serve", "-tls-cert", "c.pem"},
		{"serve", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"},
	}
	for _, args := range bad {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			want := 2 // usage errors
			if slices.Contains(args, "/nonexistent/c.pem") {
				want = 1 // a run-time failure: the files cannot be read
			}
			if !errors.As(err, &ee) || ee.ExitCode() != want {
				t.Fatalf("latch %v: %v, want exit status %d", args, err, want)
			}
			if !strings.HasPrefix(stderr.String(), "latch: ") {
				t.Errorf("stderr = %q, want a \"latch: \" error", stderr.String())
			}
		})
	}
}

// hasCloseRecord reports whether logs hold a JSON debug record of a
// connection closed with code.
func hasCloseRecord(logs string, code int) bool {
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			Level string
			Msg   string
			Code  *int
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if rec.Level == "DEBUG" && rec.Code != nil && *rec.Code == code {
			return true
		}
	}
	return false
}

func TestDefaults(t *testing.T) {
	var cfg serveConfig
	if err := newFlagSet(&cfg).Parse(nil); err != nil {
		t.Fatal(err)
	}
	// `latch` alone must serve on :8080 with 64 KiB on /ws and the
	// library's 16 MiB on /echo, and bound plain HTTP.
	if cfg.addr != ":8080" || cfg.maxMsg != 64<<10 || cfg.echoMaxMsg != 16<<20 || cfg.logLevel != "info" ||
		cfg.logFormat != "text" || cfg.httpIdleTimeout != 60*time.Second || cfg.httpReadTimeout != 30*time.Second ||
		cfg.httpWriteTimeout != 30*time.Second || cfg.maxHeaderBytes != 32<<10 || cfg.allowedHosts != "" ||
		cfg.adminAddr != "" {
		t.Errorf("defaults = %+v", cfg)
	}
	noEnv := func(string) (string, bool) { return "", false }
	sc, status := parseServe(nil, noEnv, io.Discard, io.Discard)
	if status != -1 || sc.Addr != ":8080" || sc.MaxConnections != 0 || sc.MaxChannels != 100 ||
		sc.SendQueue != 256 || sc.HeartbeatInterval != 30*time.Second || sc.ShutdownTimeout != 5*time.Second ||
		sc.AllowedOrigins != nil || sc.TLSCertFile != "" || sc.DisableCompression || sc.CompressionContextTakeover ||
		sc.MaxConnectionsPerIP != 0 || sc.MaxMessageRate != 1000 ||
		sc.MessageTimeout != 10*time.Second || sc.WriteStallTimeout != 10*time.Second ||
		sc.MaxMessageSize != 64<<10 || sc.EchoMaxMessageSize != 16<<20 || sc.HTTPIdleTimeout != 60*time.Second ||
		sc.HTTPReadTimeout != 30*time.Second || sc.HTTPWriteTimeout != 30*time.Second || sc.MaxHeaderBytes != 32<<10 ||
		sc.AllowedHosts != nil || sc.AdminAddr != "" || sc.AdminDebugHandler != nil {
		t.Errorf("server config by default = %+v", sc)
	}
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestEnvironment(t *testing.T) {
	env := map[string]string{
		"LATCH_ADDR":                         "127.0.0.1:9999",
		"LATCH_ALLOWED_ORIGINS":              " a.example, *.b.example ,,",
		"LATCH_MAX_CONNECTIONS":              "7",
		"LATCH_MAX_CONNECTIONS_PER_IP":       "5",
		"LATCH_MAX_MESSAGE_RATE":             "0",
		"LATCH_MAX_MESSAGE_SIZE":             "4096",
		"LATCH_MAX_CHANNELS":                 "3",
		"LATCH_SEND_QUEUE":                   "9",
		"LATCH_HEARTBEAT_INTERVAL":           "off",
		"LATCH_SHUTDOWN_TIMEOUT":             "2s",
		"LATCH_LOG_LEVEL":                    "debug",
		"LATCH_LOG_FORMAT":                   "json",
		"LATCH_TLS_CERT":                     "c.pem",
		"LATCH_TLS_KEY":                      "k.pem",
		"LATCH_COMPRESSION":                  "false",
		"LATCH_COMPRESSION_CONTEXT_TAKEOVER": "true",
		"LATCH_ECHO_MAX_MESSAGE_SIZE":        "8192",
		"LATCH_HTTP_IDLE_TIMEOUT":            "off",
		"LATCH_HTTP_READ_TIMEOUT":            "7s",
		"LATCH_HTTP_WRITE_TIMEOUT":           "8s",
		"LATCH_MAX_HEADER_BYTES":             "16384",
		"LATCH_ALLOWED_HOSTS":                "latch.example, *.latch.example",
		"LATCH_ADMIN_ADDR":                   "127.0.0.1:9091",
		"LATCH_MESSAGE_TIMEOUT":              "off",
		"LATCH_WRITE_STALL_TIMEOUT":          "3s",
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var stdout, stderr bytes.Buffer

	cfg, status := parseServe(nil, getenv, &stdout, &stderr)
	if status != -1 {
		t.Fatalf("status %d, stderr %q", status, stderr.String())
	}
	if cfg.Addr != "127.0.0.1:9999" || !slices.Equal(cfg.AllowedOrigins, []string{"a.example", "*.b.example"}) ||
		cfg.MaxConnections != 7 || cfg.MaxMessageSize != 4096 || cfg.MaxChannels != 3 || cfg.SendQueue != 9 ||
		cfg.HeartbeatInterval >= 0 || cfg.ShutdownTimeout != 2*time.Second || cfg.LogLevel != "debug" ||
		cfg.LogFormat != "json" || cfg.TLSCertFile != "c.pem" || cfg.TLSKeyFile != "k.pem" ||
		!cfg.DisableCompression || !cfg.CompressionContextTakeover || cfg.MaxConnectionsPerIP != 5 || cfg.MaxMessageRate >= 0 ||
		cfg.EchoMaxMessageSize != 8192 ||
		cfg.HTTPIdleTimeout >= 0 || cfg.HTTPReadTimeout != 7*time.Second || cfg.HTTPWriteTimeout != 8*time.Second ||
		cfg.MaxHeaderBytes != 16384 || !slices.Equal(cfg.AllowedHosts, []string{"latch.example", "*.latch.example"}) ||
		cfg.AdminAddr != "127.0.0.1:9091" || cfg.AdminDebugHandler == nil ||
		cfg.MessageTimeout >= 0 || cfg.WriteStallTimeout != 3*time.Second {
		t.Errorf("config from the environment = %+v", cfg)
	}

	// A flag wins over its variable.
	cfg, status = parseServe([]string{"-addr", "127.0.0.1:1", "-max-connections", "0", "-heartbeat-interval", "5s", "-compression"}, getenv, &stdout, &stderr)
	if status != -1 || cfg.Addr != "127.0.0.1:1" || cfg.MaxConnections != 0 || cfg.HeartbeatInterval != 5*time.Second ||
		cfg.DisableCompression {
		t.Errorf("flags over environment: status %d, config %+v", status, cfg)
	}

	// A bad variable is a usage error naming it.
	env["LATCH_MAX_CONNECTIONS"] = "many"
	stderr.Reset()
	if _, status := parseServe(nil, getenv, &stdout, &stderr); status != 2 || !strings.Contains(stderr.String(), "LATCH_MAX_CONNECTIONS") {
		t.Errorf("bad variable: status %d, stderr %q", status, stderr.String())
	}
	env["LATCH_MAX_CONNECTIONS"] = "7"

	// A zero duration in a variable gets the same answer as on the command line.
	env["LATCH_HEARTBEAT_INTERVAL"] = "0"
	stderr.Reset()
	want := `latch: invalid value "0" for LATCH_HEARTBEAT_INTERVAL: 0 is not accepted: write "off" to turn it off, or a positive duration such as 30s` + "\n"
	if _, status := parseServe(nil, getenv, &stdout, &stderr); status != 2 || stderr.String() != want {
		t.Errorf("LATCH_HEARTBEAT_INTERVAL=0: status %d, stderr %q; want 2 and %q", status, stderr.String(), want)
	}
}

func TestBrokerFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	noEnv := func(string) (string, bool) { return "", false }
	cfg, status := parseServe(nil, noEnv, &stdout, &stderr)
	if status != -1 || cfg.Broker != nil || cfg.PublishTimeout != 5*time.Second {
		t.Fatalf("default: status %d, Broker set %v, PublishTimeout %v", status, cfg.Broker != nil, cfg.PublishTimeout)
	}
	env := map[string]string{"LATCH_BROKER": "nats://127.0.0.1:4222, nats://127.0.0.1:4223", "LATCH_PUBLISH_TIMEOUT": "750ms"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, status = parseServe(nil, getenv, &stdout, &stderr)
	if status != -1 || cfg.Broker == nil || cfg.PublishTimeout != 750*time.Millisecond {
		t.Fatalf("LATCH_BROKER: status %d, Broker set %v, PublishTimeout %v, stderr %q", status, cfg.Broker != nil, cfg.PublishTimeout, stderr.String())
	}
	for _, bad := range [][]string{
		{"-broker", "http://127.0.0.1:4222"},
		{"-broker", "nats://"},
		{"-broker", " , "},
		{"-broker", "nats://127.0.0.1:4222,127.0.0.1:4223"},
		{"-publish-timeout", "0s"},
		{"-publish-timeout", "off"},
	} {
		stderr.Reset()
		if _, status := parseServe(bad, noEnv, &stdout, &stderr); status != 2 || stderr.Len() == 0 {
			t.Errorf("%q: status %d, stderr %q; want 2 and a message", bad, status, stderr.String())
		}
	}
}

// A NATS server that cannot be reached at start is a failed start, not a
// node that silently serves alone.
func TestBrokerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	status := run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-broker", "nats://" + addr}, strings.NewReader(""), &stdout, &stderr)
	if status != 1 || !strings.Contains(stderr.String(), "broker") || strings.Contains(stdout.String(), "listening") {
		t.Fatalf("status %d, stdout %q, stderr %q; want 1 and a broker error before listening", status, stdout.String(), stderr.String())
	}
}

// Every duration flag spells "no bound" off, refuses 0 with a message that
// says so, and passes off to server.Config as a negative duration; the
// bounds that cannot be off say that.
func TestDurationFlags(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	offable := map[string]func(server.Config) time.Duration{
		"heartbeat-interval":  func(c server.Config) time.Duration { return c.HeartbeatInterval },
		"http-idle-timeout":   func(c server.Config) time.Duration { return c.HTTPIdleTimeout },
		"http-read-timeout":   func(c server.Config) time.Duration { return c.HTTPReadTimeout },
		"http-write-timeout":  func(c server.Config) time.Duration { return c.HTTPWriteTimeout },
		"message-timeout":     func(c server.Config) time.Duration { return c.MessageTimeout },
		"write-stall-timeout": func(c server.Config) time.Duration { return c.WriteStallTimeout },
	}
	for name, field := range offable {
		var stdout, stderr bytes.Buffer
		cfg, status := parseServe([]string{"-" + name, "off"}, noEnv, &stdout, &stderr)
		if status != -1 || field(cfg) >= 0 {
			t.Errorf("-%s off: status %d, config value %v, stderr %q; want < 0 (off)", name, status, field(cfg), stderr.String())
		}
		cfg, status = parseServe([]string{"-" + name, "1500ms"}, noEnv, &stdout, &stderr)
		if status != -1 || field(cfg) != 1500*time.Millisecond {
			t.Errorf("-%s 1500ms: status %d, config value %v", name, status, field(cfg))
		}
		stderr.Reset()
		_, status = parseServe([]string{"-" + name, "0"}, noEnv, &stdout, &stderr)
		want := `latch: invalid value "0" for flag -` + name + `: 0 is not accepted: write "off" to turn it off, or a positive duration such as 30s` + "\n" +
			"Run 'latch help' for the commands and flags.\n"
		if status != 2 || stderr.String() != want {
			t.Errorf("-%s 0: status %d, stderr\n%s\nwant\n%s", name, status, stderr.String(), want)
		}
	}
	for _, name := range []string{"shutdown-timeout", "publish-timeout"} {
		var stdout, stderr bytes.Buffer
		_, status := parseServe([]string{"-" + name, "off"}, noEnv, &stdout, &stderr)
		want := `latch: invalid value "off" for flag -` + name + `: cannot be off: give a positive duration such as 5s` + "\n"
		if status != 2 || !strings.HasPrefix(stderr.String(), want) {
			t.Errorf("-%s off: status %d, stderr %q; want 2 and %q", name, status, stderr.String(), want)
		}
		stderr.Reset()
		_, status = parseServe([]string{"-" + name, "0"}, noEnv, &stdout, &stderr)
		want = `latch: invalid value "0" for flag -` + name + `: must be a positive duration such as 5s` + "\n"
		if status != 2 || !strings.HasPrefix(stderr.String(), want) {
			t.Errorf("-%s 0: status %d, stderr %q; want 2 and %q", name, status, stderr.String(), want)
		}
	}
}

// latch help names every placeholder after the back-quoted word of its
// usage: durations read "duration", never "long" or "time".
func TestHelpPlaceholders(t *testing.T) {
	var out bytes.Buffer
	if status := run(context.Background(), []string{"help"}, strings.NewReader(""), &out, io.Discard); status != 0 {
		t.Fatalf("latch help: status %d", status)
	}
	help := out.String()
	for _, want := range []string{
		"-addr address\n", "-heartbeat-interval duration\n", "-shutdown-timeout duration\n", "-publish-timeout duration\n",
		"-http-idle-timeout duration\n", "-http-read-timeout duration\n", "-http-write-timeout duration\n",
		"-message-timeout duration\n", "-write-stall-timeout duration\n", "-max-channels channels\n",
		"-max-message-size bytes\n", "-tls-cert file\n", "(off: no heartbeat) [$LATCH_HEARTBEAT_INTERVAL] (default 30s)",
		"(cannot be off) [$LATCH_SHUTDOWN_TIMEOUT] (default 5s)", "latch connect -h lists its flags",
		"-config file\n", "-auth-connect-timeout duration\n", "-max-publish-rate publishes\n", "-max-publish-rate-per-ip publishes\n",
		"-node-id name\n", "-auth-public-key files\n", "[$LATCH_AUTH_HMAC_SECRET]", "[$LATCH_API_KEY]", "[$LATCH_DEMO]",
		"latch config check FILE", "latch config example", "latch token", "latch version",
		"A flag wins over its variable, which wins over\nthe file, which wins over the default.",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, bad := range []string{" long\n", " time\n", " value\n", " int\n", "(0: off)", "(0: never)", "(0: no bound)"} {
		if strings.Contains(help, bad) {
			t.Errorf("help has %q:\n%s", bad, help)
		}
	}
}

func TestOpenableAddr(t *testing.T) {
	for _, tc := range []struct{ addr, bound, want string }{
		{":8080", "[::]:8080", "localhost:8080"},
		{"0.0.0.0:0", "0.0.0.0:41234", "localhost:41234"},
		{"127.0.0.1:0", "127.0.0.1:41234", "127.0.0.1:41234"},
		{"[::1]:9000", "[::1]:9000", "[::1]:9000"},
		{"localhost:9000", "127.0.0.1:9000", "localhost:9000"},
		{"latch.example:443", "192.0.2.7:443", "latch.example:443"},
	} {
		bound, err := net.ResolveTCPAddr("tcp", tc.bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := openableAddr(tc.addr, bound); got != tc.want {
			t.Errorf("openableAddr(%q, %s) = %q, want %q", tc.addr, tc.bound, got, tc.want)
		}
	}
}

// startServe runs "latch serve args" in this process until the test ends,
// and returns its stdout once the routes line is out.
func startServe(t *testing.T, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout testutil.SyncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"serve", "-log-level", "error"}, args...), strings.NewReader(""), &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("latch serve did not stop within 10s")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "latch: routes: ") {
		if time.Now().After(deadline) {
			t.Fatalf("no routes line within 10s; stdout %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
}

// On all interfaces, latch prints a URL one can open (localhost, not [::])
// and its routes; the address is the one clients dial.
func TestStartupLines(t *testing.T) {
	lines := startServe(t, "-addr", ":0")
	addr, ok := strings.CutPrefix(lines[0], "latch: listening on http://")
	if !ok || !strings.HasPrefix(addr, "localhost:") || len(lines) != 2 {
		t.Fatalf("stdout %q, want the listening line with localhost:PORT, then the routes", lines)
	}
	if want := "latch: routes: / (demo page), /ws (pub/sub), /echo, /metrics, /healthz, /readyz"; lines[1] != want {
		t.Errorf("routes line %q, want %q", lines[1], want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if status, err := httpGet(ctx, "http://"+addr+"/healthz"); err != nil || status != http.StatusOK {
		t.Errorf("GET http://%s/healthz = %d, %v; want 200", addr, status, err)
	}

	// With -admin-addr: its line second, as e2e expects, then the routes.
	lines = startServe(t, "-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "latch: listening on http://127.0.0.1:") ||
		!strings.HasPrefix(lines[1], "latch: admin on http://127.0.0.1:") ||
		lines[2] != "latch: routes: / (demo page), /ws (pub/sub), /echo, /healthz, /readyz; admin: /metrics, /debug/pprof/" {
		t.Errorf("stdout with -admin-addr %q", lines)
	}
}

// What a newcomer meets with latch connect against latch serve: each wrong
// URL and a refused origin gets what happened and what to change.
func TestConnectMessagesAgainstServe(t *testing.T) {
	lines := startServe(t, "-addr", "127.0.0.1:0")
	addr := strings.TrimPrefix(lines[0], "latch: listening on http://")
	connect := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		status := run(ctx, append([]string{"connect"}, args...), strings.NewReader("hi\n"), &stdout, &stderr)
		return status, stderr.String()
	}
	base := "ws://" + addr
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		want   string // all of stderr
	}{
		{"demo page", []string{base + "/"}, 1,
			"latch connect: " + base + "/ is not a WebSocket endpoint: the server answered HTTP 200 OK, a plain web page, instead of upgrading\n" +
				"latch connect: hint: connect to the path that takes WebSockets; on latch serve, " + base + "/ws or " + base + "/echo\n"},
		{"no such path", []string{base + "/chat"}, 1,
			"latch connect: the server has no /chat (HTTP 404 Not Found)\n" +
				"latch connect: hint: check the path; on latch serve, WebSockets are on " + base + "/ws and " + base + "/echo\n"},
		{"origin", []string{"-origin", "https://evil.test", base + "/echo"}, 1,
			`latch connect: the server refused Origin "https://evil.test" (HTTP 403 Forbidden): browsers on that page may not connect` + "\n" +
				"latch connect: hint: pass -origin with an origin the server accepts (its own, http://" + addr + "), or let the server accept this one: latch serve -allowed-origins evil.test\n"},
		{"ftp", []string{"ftp://" + addr + "/"}, 2,
			`latch connect: invalid URL "ftp://` + addr + `/": scheme ftp:// is not supported; use ws://, wss://, http:// or https://` + "\n" +
				"Run 'latch connect -h' for the flags.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, stderr := connect(tc.args...)
			if status != tc.status || stderr != tc.want {
				t.Errorf("status %d, stderr\n%s\nwant %d and\n%s", status, stderr, tc.status, tc.want)
			}
		})
	}
	// The hints work: the own origin and an http:// URL of /echo connect.
	if status, stderr := connect("-origin", "http://"+addr, "-wait", "off", "http://"+addr+"/echo"); status != 0 {
		t.Errorf("own origin: status %d, stderr %q", status, stderr)
	}

	// -allowed-origins, as the hint says, lets the origin in.
	lines = startServe(t, "-addr", "127.0.0.1:0", "-allowed-origins", "evil.test")
	addr = strings.TrimPrefix(lines[0], "latch: listening on http://")
	if status, stderr := connect("-origin", "https://evil.test", "-wait", "off", "ws://"+addr+"/echo"); status != 0 {
		t.Errorf("-allowed-origins evil.test: status %d, stderr %q", status, stderr)
	}
}
