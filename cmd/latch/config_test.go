package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/internal/testutil"
	"github.com/latchws/latch/server"
)

const testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// envFunc is a getenv over m.
func envFunc(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// parseFile runs parseServe on a configuration file holding toml, then
// args, with env; it returns the config, the status and stderr.
func parseFile(t *testing.T, toml string, env map[string]string, args ...string) (server.Config, int, string) {
	t.Helper()
	file := writeFile(t, t.TempDir(), "latch.toml", toml)
	var stderr bytes.Buffer
	cfg, status := parseServe(append([]string{"-config", file}, args...), envFunc(env), io.Discard, &stderr)
	return cfg, status, strings.ReplaceAll(stderr.String(), file, "FILE")
}

// Every key of the file sets its server.Config field, to a value other
// than the default; and every flag of serve has a key.
func TestConfigKeys(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "hmac", testSecret+"x\n")
	keyFile := writeFile(t, dir, "apikey", "api-key-0123456789\r\n")
	for _, tc := range []struct {
		key  string // as fileSettings names it
		toml string
		ok   func(c server.Config) bool
	}{
		{"addr", `addr = "127.0.0.1:9000"`, func(c server.Config) bool { return c.Addr == "127.0.0.1:9000" }},
		{"admin_addr", `admin_addr = "127.0.0.1:9001"`, func(c server.Config) bool { return c.AdminAddr == "127.0.0.1:9001" && c.AdminDebugHandler != nil }},
		{"tls.cert", "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"", func(c server.Config) bool { return c.TLSCertFile == "/c.pem" && c.TLSKeyFile == "/k.pem" }},
		{"tls.key", "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"", func(c server.Config) bool {
			return filepath.IsAbs(c.TLSKeyFile) && filepath.Base(c.TLSKeyFile) == "k.pem" && filepath.Base(c.TLSCertFile) == "c.pem"
		}},
		{"http2", "http2 = false", func(c server.Config) bool { return c.DisableHTTP2 }},
		{"h2c", "h2c = true", func(c server.Config) bool { return c.H2C }},
		{"engine", `engine = "goroutines"`, func(c server.Config) bool { return c.Engine == server.EngineGoroutines }},
		{"allowed_origins", `allowed_origins = ["a.example", "*.b.example"]`, func(c server.Config) bool {
			return slices.Equal(c.AllowedOrigins, []string{"a.example", "*.b.example"})
		}},
		{"allowed_hosts", `allowed_hosts = ["latch.example"]`, func(c server.Config) bool { return slices.Equal(c.AllowedHosts, []string{"latch.example"}) }},
		{"max_connections", "max_connections = 7", func(c server.Config) bool { return c.MaxConnections == 7 }},
		{"max_connections_per_ip", "max_connections_per_ip = 3", func(c server.Config) bool { return c.MaxConnectionsPerIP == 3 }},
		{"max_message_rate", "max_message_rate = 0", func(c server.Config) bool { return c.MaxMessageRate < 0 }}, // 0: off
		{"max_message_size", "max_message_size = 4096", func(c server.Config) bool { return c.MaxMessageSize == 4096 }},
		{"echo_max_message_size", "echo_max_message_size = 8192", func(c server.Config) bool { return c.EchoMaxMessageSize == 8192 }},
		{"max_header_bytes", "max_header_bytes = 16384", func(c server.Config) bool { return c.MaxHeaderBytes == 16384 }},
		{"max_channels", "max_channels = 5", func(c server.Config) bool { return c.MaxChannels == 5 }},
		{"send_queue", "send_queue = 9", func(c server.Config) bool { return c.SendQueue == 9 }},
		{"max_publish_rate", "max_publish_rate = 2.5", func(c server.Config) bool { return c.MaxPublishRate == 2.5 }},
		{"max_publish_rate_per_ip", "max_publish_rate_per_ip = 20", func(c server.Config) bool { return c.MaxPublishRatePerIP == 20 }},
		{"http.idle_timeout", "[http]\nidle_timeout = \"off\"", func(c server.Config) bool { return c.HTTPIdleTimeout < 0 }},
		{"http.read_timeout", "[http]\nread_timeout = \"7s\"", func(c server.Config) bool { return c.HTTPReadTimeout == 7*time.Second }},
		{"http.write_timeout", "[http]\nwrite_timeout = \"8s\"", func(c server.Config) bool { return c.HTTPWriteTimeout == 8*time.Second }},
		{"heartbeat_interval", `heartbeat_interval = "off"`, func(c server.Config) bool { return c.HeartbeatInterval < 0 }},
		{"message_timeout", `message_timeout = "2m"`, func(c server.Config) bool { return c.MessageTimeout == 2*time.Minute }},
		{"write_stall_timeout", `write_stall_timeout = "3s"`, func(c server.Config) bool { return c.WriteStallTimeout == 3*time.Second }},
		{"shutdown_timeout", `shutdown_timeout = "20s"`, func(c server.Config) bool { return c.ShutdownTimeout == 20*time.Second }},
		{"compression", "compression = false", func(c server.Config) bool { return c.DisableCompression }},
		{"compression_context_takeover", "compression_context_takeover = true", func(c server.Config) bool { return c.CompressionContextTakeover }},
		// With a broker, history and presence are JetStream's (Stores).
		{"broker", `broker = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]`, func(c server.Config) bool { return c.Broker != nil && c.Stores != nil }},
		{"publish_timeout", `publish_timeout = "750ms"`, func(c server.Config) bool { return c.PublishTimeout == 750*time.Millisecond }},
		{"node_id", `node_id = "n1"`, func(c server.Config) bool { return c.NodeID == "n1" }},
		{"log.level", "[log]\nlevel = \"debug\"", func(c server.Config) bool { return c.LogLevel == "debug" }},
		{"log.format", "[log]\nformat = \"json\"", func(c server.Config) bool { return c.LogFormat == "json" }},
		{"auth.hmac_secret", "[auth]\nhmac_secret = \"" + testSecret + "\"", func(c server.Config) bool { return c.Auth.HMACSecret == testSecret }},
		{"auth.hmac_secret_file", "[auth]\nhmac_secret_file = '" + secretFile + "'", func(c server.Config) bool { return c.Auth.HMACSecret == testSecret+"x" }},
		{"auth.public_key", "[auth]\npublic_key = [\"/a.pem\", \"b.pem\"]", func(c server.Config) bool {
			return len(c.Auth.PublicKeyFiles) == 2 && c.Auth.PublicKeyFiles[0] == "/a.pem" && filepath.IsAbs(c.Auth.PublicKeyFiles[1])
		}},
		{"auth.jwks_url", "[auth]\njwks_url = \"https://id.example/jwks.json\"", func(c server.Config) bool { return c.Auth.JWKSURL == "https://id.example/jwks.json" }},
		{"auth.issuer", "[auth]\nissuer = \"https://id.example\"", func(c server.Config) bool { return c.Auth.Issuer == "https://id.example" }},
		{"auth.audience", "[auth]\naudience = \"latch\"", func(c server.Config) bool { return c.Auth.Audience == "latch" }},
		{"auth.anonymous", "[auth]\nanonymous = true", func(c server.Config) bool { return c.Auth.Anonymous }},
		{"auth.connect_timeout", "[auth]\nconnect_timeout = \"3s\"", func(c server.Config) bool { return c.Auth.ConnectTimeout == 3*time.Second }},
		{"auth.leeway", "[auth]\nleeway = \"30s\"", func(c server.Config) bool { return c.Auth.Leeway == 30*time.Second }},
		{"auth.jwks_refresh", "[auth]\njwks_refresh = \"1m\"", func(c server.Config) bool { return c.Auth.JWKSRefresh == time.Minute }},
		{"api.key", "[api]\nkey = \"api-key-0123456789\"\non_main = true", func(c server.Config) bool { return c.APIKey == "api-key-0123456789" }},
		{"api.key_file", "[api]\nkey_file = '" + keyFile + "'\non_main = true", func(c server.Config) bool { return c.APIKey == "api-key-0123456789" }},
		{"api.addr", "[api]\nkey = \"api-key-0123456789\"\naddr = \"127.0.0.1:9002\"", func(c server.Config) bool { return c.APIAddr == "127.0.0.1:9002" }},
		{"api.on_main", "[api]\nkey = \"api-key-0123456789\"\non_main = true", func(c server.Config) bool { return c.APIOnMain }},
		{"demo", "demo = true", func(c server.Config) bool { return c.Demo }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			cfg, status, stderr := parseFile(t, tc.toml, nil)
			if status != -1 || !tc.ok(cfg) {
				t.Errorf("%s: status %d, stderr %q, config %+v", tc.toml, status, stderr, cfg)
			}
			// Not the default of a file without the key: the key made the
			// difference.
			if def, _, _ := parseFile(t, "", nil); tc.ok(def) {
				t.Errorf("the default config passes the check of %s too", tc.key)
			}
		})
	}

	// The rule: a flag -a-b is key a_b, or b in [a] for the tables; every
	// flag but -config has its key.
	keys := make(map[string]bool)
	for _, s := range fileSettings(&fileConfig{}) {
		keys[s.key] = true
		if _, isFile := strings.CutSuffix(s.flag, "-file"); !isFile && newFlagSet(&serveConfig{}).Lookup(s.flag) == nil {
			t.Errorf("key %s: no flag -%s", s.key, s.flag)
		}
	}
	newFlagSet(&serveConfig{}).VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		key := strings.ReplaceAll(f.Name, "-", "_")
		for _, table := range []string{"tls", "http", "log", "auth", "api", "jetstream"} {
			if rest, ok := strings.CutPrefix(key, table+"_"); ok {
				key = table + "." + rest
			}
		}
		if !keys[key] {
			t.Errorf("flag -%s has no key %s", f.Name, key)
		}
	})
}

// Namespaces come from [[namespace]] tables, in order.
func TestConfigNamespaces(t *testing.T) {
	cfg, status, stderr := parseFile(t, `
[auth]
hmac_secret = "`+testSecret+`"

[[namespace]]
name = ""
subscribe = "anonymous"
publish = "grant"

[[namespace]]
name = "chat"
history_size = 50
history_ttl = "90s"
presence = true
join_leave = true

[[namespace]]
name = "inbox"
subscribe = "user"
publish = "api"
personal = true
`, nil)
	want := []server.Namespace{
		{Name: "", Subscribe: server.AccessAnonymous, Publish: server.AccessGrant},
		{Name: "chat", HistorySize: 50, HistoryTTL: 90 * time.Second, Presence: true, JoinLeave: true},
		{Name: "inbox", Subscribe: server.AccessUser, Publish: server.AccessAPI, Personal: true},
	}
	if status != -1 || !reflect.DeepEqual(cfg.Namespaces, want) {
		t.Errorf("status %d, stderr %q, namespaces %+v; want %+v", status, stderr, cfg.Namespaces, want)
	}
}

// The example has every key (some in comments, as they name files or
// secrets of one's own) and reads as the server.Config it documents.
func TestConfigExample(t *testing.T) {
	uncommented := regexp.MustCompile(`(?m)^# ([a-z_]+ = )`).ReplaceAll(exampleConfig, []byte("$1"))
	lines := keyLines(uncommented)
	for _, s := range fileSettings(&fileConfig{}) {
		if _, ok := lines[s.key]; !ok {
			t.Errorf("the example lacks key %s", s.key)
		}
	}
	for _, k := range []string{"name", "subscribe", "publish", "history_size", "history_ttl", "presence", "join_leave", "personal"} {
		if _, ok := lines["namespace[1]."+k]; !ok {
			t.Errorf("the example's second namespace lacks key %s", k)
		}
	}

	cfg, status, stderr := parseFile(t, string(exampleConfig), nil)
	if status != -1 {
		t.Fatalf("status %d, stderr %q", status, stderr)
	}
	want := server.Config{
		Addr: ":8080", Engine: "auto", MaxMessageRate: 1000, MaxMessageSize: 64 << 10, EchoMaxMessageSize: 16 << 20,
		HTTPIdleTimeout: 60 * time.Second, HTTPReadTimeout: 30 * time.Second, HTTPWriteTimeout: 30 * time.Second,
		MaxHeaderBytes: 32 << 10, MaxChannels: 100, SendQueue: 256, HeartbeatInterval: 30 * time.Second,
		MessageTimeout: 10 * time.Second, WriteStallTimeout: 10 * time.Second, ShutdownTimeout: 5 * time.Second,
		PublishTimeout: 5 * time.Second, LogLevel: "info", LogFormat: "text",
		Auth: server.AuthConfig{ConnectTimeout: 10 * time.Second, JWKSRefresh: 5 * time.Minute},
		Namespaces: []server.Namespace{
			{Name: "", Subscribe: server.AccessUser, Publish: server.AccessUser},
			{Name: "chat", Subscribe: server.AccessUser, Publish: server.AccessUser, HistorySize: 100, HistoryTTL: 10 * time.Minute,
				Presence: true, JoinLeave: true},
			{Name: "inbox", Subscribe: server.AccessUser, Publish: server.AccessAPI, Personal: true},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("the example reads as\n%+v\nwant\n%+v", cfg, want)
	}

	// latch config example prints it, and latch config check accepts it.
	var out bytes.Buffer
	if status := run(context.Background(), []string{"config", "example"}, strings.NewReader(""), &out, io.Discard); status != 0 ||
		!bytes.Equal(out.Bytes(), exampleConfig) {
		t.Fatalf("latch config example: status %d, %d bytes", status, out.Len())
	}
	file := writeFile(t, t.TempDir(), "latch.toml", out.String())
	var stdout, errOut bytes.Buffer
	if status := checkConfig(file, envFunc(nil), &stdout, &errOut); status != 0 || stdout.String() != "latch: "+file+": ok\n" {
		t.Errorf("latch config check of the example: status %d, stdout %q, stderr %q", status, stdout.String(), errOut.String())
	}
}

// Unknown keys and wrong types are errors naming the line.
func TestConfigUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"addr = \":0\"\nmax_conections = 5\n", "latch: FILE:2: unknown key max_conections\n"},
		{"[http]\nidle_timout = \"5s\"\n", "latch: FILE:2: unknown key http.idle_timout\n"},
		{"[htp]\nidle_timeout = \"5s\"\n", "latch: FILE:1: unknown key htp\n"},
		{"[[namespace]]\nname = \"a\"\nhistory = 5\n", "latch: FILE:3: unknown key namespace.history\n"},
		{"a = 1\n\nb = 2\n", "latch: FILE:1: unknown key a\nlatch: FILE:3: unknown key b\n"},
		{"max_message_size = \"64KiB\"\n", "latch: FILE:1:20: max_message_size must be an integer, not a TOML string\n"},
		{"[http]\nidle_timeout = 60\n", "latch: FILE:2:16: http.idle_timeout must be a string (durations too, in quotes: \"30s\"), not a TOML integer\n"},
		{"addr = \n", "latch: FILE:1:"},
	} {
		_, status, stderr := parseFile(t, tc.toml, nil)
		if status != 2 || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%q: status %d, stderr\n%s\nwant 2 and\n%s", tc.toml, status, stderr, tc.want)
		}
	}
}

// Bad values are refused with the key's line.
func TestConfigBadValues(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", "\n")
	for _, tc := range []struct{ toml, want string }{
		{"max_connections = -1", "latch: FILE:1: max_connections must not be negative, got -1\n"},
		{"max_channels = 0", "latch: FILE:1: max_channels must be positive, got 0\n"},
		{"max_publish_rate = -2", "latch: FILE:1: max_publish_rate must be a number >= 0, got -2\n"},
		{"[jetstream]\nreplicas = 7", "latch: FILE:2: jetstream.replicas must be 1 to 5, got 7\n"},
		{"[jetstream]\npresence_ttl = \"0s\"", "latch: FILE:2: jetstream.presence_ttl"},
		{"max_publish_rate_per_ip = nan", "latch: FILE:1: max_publish_rate_per_ip must be a number >= 0, got NaN\n"},
		{"\n[http]\nread_timeout = \"0\"", `latch: FILE:3: http.read_timeout: invalid value "0": 0 is not accepted: write "off"`},
		{`heartbeat_interval = "soon"`, `latch: FILE:1: heartbeat_interval: invalid value "soon": not a duration`},
		{`shutdown_timeout = "off"`, `latch: FILE:1: shutdown_timeout: invalid value "off": cannot be off`},
		{"[auth]\nconnect_timeout = \"-1s\"", `latch: FILE:2: auth.connect_timeout: invalid value "-1s": must be a positive duration`},
		{`engine = "fast"`, `latch: FILE:1: engine must be auto, epoll or goroutines, got "fast"`},
		{`broker = ["http://x"]`, `latch: FILE:1: broker: URL "http://x": scheme must be`},
		{"[auth]\nhmac_secret = \"short\"", "latch: FILE:2: auth.hmac_secret must be at least 32 bytes, got 5\n"},
		{"[auth]\njwks_url = \"ftp://x\"", `latch: FILE:2: auth.jwks_url: "ftp://x" is not an https:// URL`},
		{"[auth]\nhmac_secret = \"" + testSecret + "\"\nhmac_secret_file = \"x\"", "latch: FILE:3: auth.hmac_secret_file: give the secret or a file holding it, not both\n"},
		{"[auth]\nhmac_secret_file = \"" + empty + "\"", "latch: FILE:2: auth.hmac_secret_file: " + empty + " is empty\n"},
		{"[api]\nkey_file = \"missing\"", "latch: FILE:2: api.key_file: open "},
		{"[tls]\ncert = \"c.pem\"", "latch: FILE:2: tls.cert and -tls-key go together\n"},
		{"[[namespace]]\nname = \"a\"\npublish = \"everyone\"", `latch: FILE:1: namespace "a": publish must be anonymous, user, grant or api, got "everyone"`},
		{"[[namespace]]\nname = \"a\"\n[[namespace]]\nname = \"b\"\nhistory_size = 10001", `latch: FILE:3: namespace "b": history size must be 0 to 10000, got 10001`},
		{"[[namespace]]\nname = \"a\"\nhistory_size = -1", `latch: FILE:1: namespace "a": history size must be 0 to 10000, got -1`},
		{"[[namespace]]\nname = \"a\"\nhistory_ttl = \"1m\"", `latch: FILE:3: namespace "a": history_ttl needs a history_size`},
		{"[[namespace]]\nname = \"a\"\nhistory_size = 5\nhistory_ttl = \"10\"", `latch: FILE:4: namespace "a": history_ttl "10" is not a duration`},
		{"[[namespace]]\nname = \"a\"\nhistory_size = 5\nhistory_ttl = \"-1m\"", `latch: FILE:4: namespace "a": history_ttl must be positive`},
		{"[[namespace]]\nname = \"a:b\"", `latch: FILE:1: namespace "a:b": names are`},
		{"[[namespace]]\nname = \"a\"\n[[namespace]]\nname = \"a\"", `latch: FILE:4: namespace "a": configured twice`},
		{"[[namespace]]\nsubscribe = \"user\"", "latch: FILE:1: [[namespace]] without a name"},
	} {
		_, status, stderr := parseFile(t, tc.toml, nil)
		if status != 2 || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%q: status %d, stderr\n%s\nwant 2 and\n%s", tc.toml, status, stderr, tc.want)
		}
	}
	var stderr bytes.Buffer
	if _, status := parseServe([]string{"-config", filepath.Join(dir, "none.toml")}, envFunc(nil), io.Discard, &stderr); status != 2 ||
		!strings.HasPrefix(stderr.String(), "latch: open "+filepath.Join(dir, "none.toml")+": no such file") {
		t.Errorf("missing file: status %d, stderr %q", status, stderr.String())
	}
}

// Defaults < file < environment < flags, for every kind of value.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "latch.toml", `
addr = "127.0.0.1:1"
max_channels = 5
send_queue = 6
heartbeat_interval = "off"
allowed_origins = ["file.example"]
[auth]
public_key = ["keys/a.pem", "/b.pem"]
[log]
level = "warn"
`)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		ok   func(c server.Config) bool
	}{
		{"file", nil, nil, func(c server.Config) bool {
			return c.Addr == "127.0.0.1:1" && c.MaxChannels == 5 && c.SendQueue == 6 && c.HeartbeatInterval < 0 &&
				slices.Equal(c.AllowedOrigins, []string{"file.example"}) && c.LogLevel == "warn" && c.MaxHeaderBytes == 32<<10 &&
				slices.Equal(c.Auth.PublicKeyFiles, []string{filepath.Join(dir, "keys/a.pem"), "/b.pem"})
		}},
		{"env over file", map[string]string{"LATCH_MAX_CHANNELS": "7", "LATCH_HEARTBEAT_INTERVAL": "9s", "LATCH_AUTH_PUBLIC_KEY": "c.pem,d.pem",
			"LATCH_ALLOWED_ORIGINS": "env.example"}, nil, func(c server.Config) bool {
			return c.Addr == "127.0.0.1:1" && c.MaxChannels == 7 && c.HeartbeatInterval == 9*time.Second &&
				slices.Equal(c.Auth.PublicKeyFiles, []string{"c.pem", "d.pem"}) && slices.Equal(c.AllowedOrigins, []string{"env.example"})
		}},
		{"flag over env", map[string]string{"LATCH_MAX_CHANNELS": "7", "LATCH_AUTH_PUBLIC_KEY": "c.pem", "LATCH_SEND_QUEUE": "8"},
			[]string{"-max-channels", "9", "-auth-public-key", "e.pem", "-auth-public-key", "f.pem,g.pem", "-log-level", "error"},
			func(c server.Config) bool {
				return c.MaxChannels == 9 && c.SendQueue == 8 && c.LogLevel == "error" &&
					slices.Equal(c.Auth.PublicKeyFiles, []string{"e.pem", "f.pem", "g.pem"})
			}},
		{"LATCH_CONFIG", map[string]string{"LATCH_CONFIG": file}, nil, func(c server.Config) bool { return c.Addr == "127.0.0.1:1" }},
		{"-config over LATCH_CONFIG", map[string]string{"LATCH_CONFIG": "/nonexistent.toml"}, []string{"-config", file},
			func(c server.Config) bool { return c.MaxChannels == 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.env["LATCH_CONFIG"] == "" {
				args = append([]string{"-config", file}, args...)
			}
			var stderr bytes.Buffer
			cfg, status := parseServe(args, envFunc(tc.env), io.Discard, &stderr)
			if status != -1 || !tc.ok(cfg) {
				t.Errorf("status %d, stderr %q, config %+v", status, stderr.String(), cfg)
			}
		})
	}

	// A message names the layer the bad value came from.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"-max-channels", "0"}, "latch: -max-channels must be positive, got 0\n"},
		{map[string]string{"LATCH_MAX_CHANNELS": "0"}, nil, "latch: LATCH_MAX_CHANNELS must be positive, got 0\n"},
		{map[string]string{"LATCH_MAX_CHANNELS": "0"}, []string{"-max-channels", "3", "-send-queue", "0"}, "latch: -send-queue must be positive, got 0\n"},
	} {
		var stderr bytes.Buffer
		if _, status := parseServe(append([]string{"-config", file}, tc.args...), envFunc(tc.env), io.Discard, &stderr); status != 2 ||
			stderr.String() != tc.want {
			t.Errorf("env %v args %q: status %d, stderr %q; want %q", tc.env, tc.args, status, stderr.String(), tc.want)
		}
	}
}

// Secrets come from the file, a file it names, or the environment, which
// wins.
func TestConfigSecrets(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hmac_secret", testSecret+"\n")
	writeFile(t, dir, "api_key", "k-0123456789abcdef\n")
	toml := "[auth]\nhmac_secret_file = \"hmac_secret\"\n[api]\nkey_file = \"api_key\"\non_main = true\n"
	file := writeFile(t, dir, "latch.toml", toml) // relative names: beside the file
	cfg, status := parseServe([]string{"-config", file}, envFunc(nil), io.Discard, io.Discard)
	if status != -1 || cfg.Auth.HMACSecret != testSecret || cfg.APIKey != "k-0123456789abcdef" || !cfg.APIOnMain {
		t.Errorf("secret files: status %d, HMAC secret %q, API key %q", status, cfg.Auth.HMACSecret, cfg.APIKey)
	}
	env := map[string]string{"LATCH_AUTH_HMAC_SECRET": testSecret + "env", "LATCH_API_KEY": "from-the-environment"}
	cfg, status = parseServe([]string{"-config", file}, envFunc(env), io.Discard, io.Discard)
	if status != -1 || cfg.Auth.HMACSecret != testSecret+"env" || cfg.APIKey != "from-the-environment" {
		t.Errorf("environment over the files: status %d, HMAC secret %q, API key %q", status, cfg.Auth.HMACSecret, cfg.APIKey)
	}
}

// Zero configuration is a demo; any configuration is not, unless it says
// so.
func TestDemoMode(t *testing.T) {
	dir := t.TempDir()
	plain := writeFile(t, dir, "plain.toml", "addr = \":0\"\n")
	demoFile := writeFile(t, dir, "demo.toml", "demo = true\n[[namespace]]\nname = \"\"\n")
	userDefault := []server.Namespace{{Name: "", Subscribe: server.AccessUser, Publish: server.AccessUser}}
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		demo, anon bool
		namespaces []server.Namespace
	}{
		{"nothing", nil, nil, true, true, demoNamespaces()},
		{"-demo=false", nil, []string{"-demo=false"}, false, false, nil},
		{"LATCH_DEMO=false", map[string]string{"LATCH_DEMO": "false"}, nil, false, false, nil},
		{"HMAC secret", map[string]string{"LATCH_AUTH_HMAC_SECRET": testSecret}, nil, false, false, userDefault},
		{"public key", nil, []string{"-auth-public-key", "k.pem"}, false, false, userDefault},
		{"JWKS and anonymous", nil, []string{"-auth-jwks-url", "https://id.example/jwks", "-auth-anonymous"}, false, true, userDefault},
		{"a file", nil, []string{"-config", plain}, false, false, nil},
		{"a file saying demo", nil, []string{"-config", demoFile}, true, true, []server.Namespace{{Name: ""}}},
		{"-demo with a key", map[string]string{"LATCH_AUTH_HMAC_SECRET": testSecret}, []string{"-demo"}, true, true, demoNamespaces()},
		{"demo without anonymous", nil, []string{"-auth-anonymous=false"}, true, false, demoNamespaces()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, status := parseServe(tc.args, envFunc(tc.env), io.Discard, &stderr)
			if status != -1 || cfg.Demo != tc.demo || cfg.Auth.Anonymous != tc.anon || !reflect.DeepEqual(cfg.Namespaces, tc.namespaces) {
				t.Errorf("status %d, stderr %q: Demo %v, Anonymous %v, namespaces %+v; want %v, %v, %+v",
					status, stderr.String(), cfg.Demo, cfg.Auth.Anonymous, cfg.Namespaces, tc.demo, tc.anon, tc.namespaces)
			}
		})
	}
	if d := demoNamespaces(); d[0] != (server.Namespace{Subscribe: server.AccessAnonymous, Publish: server.AccessAnonymous}) ||
		d[1].Name != "chat" || d[1].HistorySize != 100 || d[1].HistoryTTL != 10*time.Minute || !d[1].Presence || !d[1].JoinLeave ||
		d[2] != (server.Namespace{Name: "inbox", Subscribe: server.AccessUser, Publish: server.AccessAPI, Personal: true}) {
		t.Errorf("demo namespaces %+v", d)
	}
}

// latch serve says at start, once, that a demo is open to anyone.
func TestDemoWarning(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{nil, true},
		{[]string{"-demo=false"}, false},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr testutil.SyncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0", "-log-level", "warn"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stdout.String(), "latch: routes: ") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-exited
		logs := stderr.String()
		if n := strings.Count(logs, "demo mode: the server is open"); (n == 1) != tc.warn || n > 1 {
			t.Errorf("%q: %d demo warnings in\n%s", tc.args, n, logs)
		}
		if tc.warn && (!strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "latch config example") || !strings.Contains(logs, "/demo/token")) {
			t.Errorf("demo warning %q lacks its level, /demo/token or how to configure", logs)
		}
	}
}

// latch config check: ok, or the error and status 1.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, toml string
		status     int
		stdout     string // FILE stands for the file's path
		stderr     string // a prefix
	}{
		{"ok", "addr = \"127.0.0.1:0\"\n", 0, "latch: FILE: ok\n", ""},
		{"unknown key", "adr = \":0\"\n", 1, "", "latch: FILE:1: unknown key adr\n"},
		{"flag-level check", "send_queue = 0\n", 1, "", "latch: FILE:1: send_queue must be positive, got 0\n"},
		// What only server.New refuses, without "server: " after "latch: ".
		{"server check", "[api]\non_main = true\n", 1, "", "latch: the server API needs an API key\n"},
		{"short API key", "[api]\nkey = \"short\"\naddr = \"127.0.0.1:0\"\n", 1, "", "latch: the API key must be at least 16 bytes\n"},
		{"TLS files", "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n", 1, "", "latch: loading TLS key pair: open /nonexistent/c.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, dir, tc.name+".toml", tc.toml)
			var stdout, stderr bytes.Buffer
			status := run(context.Background(), []string{"config", "check", file}, strings.NewReader(""), &stdout, &stderr)
			gotOut := strings.ReplaceAll(stdout.String(), file, "FILE")
			gotErr := strings.ReplaceAll(stderr.String(), file, "FILE")
			if status != tc.status || gotOut != tc.stdout || !strings.HasPrefix(gotErr, tc.stderr) || strings.Contains(gotErr, "server:") ||
				(tc.stderr == "" && gotErr != "") {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q, %q", status, gotOut, gotErr, tc.status, tc.stdout, tc.stderr)
			}
		})
	}
	for _, args := range [][]string{{"config"}, {"config", "check"}, {"config", "lint", "x"}, {"config", "check", "a", "b"}} {
		var stderr bytes.Buffer
		if status := run(context.Background(), args, strings.NewReader(""), io.Discard, &stderr); status != 2 ||
			!strings.HasPrefix(stderr.String(), "latch: config takes check FILE or example\n") {
			t.Errorf("%q: status %d, stderr %q", args, status, stderr.String())
		}
	}
}

// Start-up errors read "latch: ..." once.
func TestStartupErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-api-on-main"}, "latch: the server API needs an API key\n"},
		{[]string{"-api-key", "0123456789abcdef"}, "latch: an API key needs an API address, or the API on the main address\n"},
		{[]string{"-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, "latch: loading TLS key pair: open /nonexistent/c.pem: no such file or directory\n"},
		{[]string{"-addr", busy}, "latch: listen tcp " + busy + ": bind: address already in use\n"},
		{[]string{"-admin-addr", busy}, "latch: admin address: listen tcp " + busy + ": bind: address already in use\n"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"serve", "-addr", "127.0.0.1:0", "-log-level", "error"}, tc.args...)
		status := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if status != 1 || stderr.String() != tc.want {
			t.Errorf("%q: status %d, stderr %q; want 1 and %q", tc.args, status, stderr.String(), tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if status := run(context.Background(), []string{"version"}, strings.NewReader(""), &stdout, io.Discard); status != 0 {
		t.Fatalf("status %d", status)
	}
	out := stdout.String()
	if !regexp.MustCompile(`^latch \S+( \(rev [0-9a-f]+(, [^,)]+)?(, modified)?\))? go\S+ \S+/\S+\n$`).MatchString(out) ||
		!strings.Contains(out, runtime.Version()) {
		t.Errorf("latch version printed %q", out)
	}
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "latch (devel) "},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"}}}, "latch v1.4.0 (rev 0123456789ab, 2026-01-02T03:04:05Z, modified) "},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, "latch (devel) (rev abc) "},
	} {
		want := tc.want + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
		if got := formatVersion(tc.bi); got != want {
			t.Errorf("formatVersion = %q, want %q", got, want)
		}
	}
	if status := run(context.Background(), []string{"version", "x"}, strings.NewReader(""), io.Discard, io.Discard); status != 2 {
		t.Errorf("latch version x: status %d, want 2", status)
	}
}

// latch token mints what the auth package's verifier accepts.
func TestToken(t *testing.T) {
	secretFile := writeFile(t, t.TempDir(), "secret", testSecret+"\n")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want auth.Identity
		ttl  time.Duration
	}{
		{"grants", []string{"-secret", testSecret, "-sub", "ann", "-subscribe", "chat:*, news", "-publish", "chat:lobby"}, nil,
			auth.Identity{User: "ann", Subscribe: []string{"chat:*", "news"}, Publish: []string{"chat:lobby"}}, time.Hour},
		{"secret file, ttl", []string{"-secret-file", secretFile, "-sub", "bob", "-ttl", "5m"}, nil, auth.Identity{User: "bob"}, 5 * time.Minute},
		{"environment, no expiry", []string{"-sub", "cy", "-ttl", "off"}, map[string]string{"LATCH_AUTH_HMAC_SECRET": testSecret},
			auth.Identity{User: "cy"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			start := time.Now()
			if status := tokenCommand(tc.args, envFunc(tc.env), &stdout, &stderr); status != 0 {
				t.Fatalf("status %d, stderr %q", status, stderr.String())
			}
			id, err := v.Verify(context.Background(), strings.TrimSuffix(stdout.String(), "\n"))
			if err != nil {
				t.Fatalf("verify %q: %v", stdout.String(), err)
			}
			exp := id.ExpiresAt
			id.ExpiresAt = time.Time{}
			if !reflect.DeepEqual(id, tc.want) {
				t.Errorf("identity %+v, want %+v", id, tc.want)
			}
			if tc.ttl == 0 && !exp.IsZero() ||
				tc.ttl > 0 && (exp.Before(start.Add(tc.ttl).Truncate(time.Second)) || exp.After(time.Now().Add(tc.ttl))) {
				t.Errorf("expires %v, want about now + %v", exp, tc.ttl)
			}
		})
	}
	// A token signed with another secret is refused.
	var stdout bytes.Buffer
	tokenCommand([]string{"-secret", testSecret + "!", "-sub", "ann"}, envFunc(nil), &stdout, io.Discard)
	if _, err := v.Verify(context.Background(), strings.TrimSpace(stdout.String())); err == nil {
		t.Error("a token of another secret verified")
	}

	for _, tc := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"-secret", testSecret}, 2, "latch: token: -sub is required"},
		{[]string{"-sub", "ann"}, 2, "latch: token: no secret"},
		{[]string{"-sub", "ann", "-secret", "x", "-secret-file", secretFile}, 2, "latch: token: give -secret or -secret-file, not both"},
		{[]string{"-sub", "ann", "-secret", "short"}, 1, "latch: token: HMAC secret of 5 bytes, at least 32 required"},
		{[]string{"-sub", "ann", "-secret-file", "/nonexistent"}, 1, "latch: token: open /nonexistent"},
		{[]string{"-sub", "ann", "-secret", testSecret, "-ttl", "0"}, 2, `latch: token: invalid value "0" for flag -ttl`},
		{[]string{"-sub", "ann", "-secret", testSecret, "extra"}, 2, `latch: token: unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		if status := run(context.Background(), append([]string{"token"}, tc.args...), strings.NewReader(""), io.Discard, &stderr); status != tc.status ||
			!strings.HasPrefix(stderr.String(), tc.want) {
			t.Errorf("latch token %q: status %d, stderr %q; want %d and %q", tc.args, status, stderr.String(), tc.status, tc.want)
		}
	}
}
