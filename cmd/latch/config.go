package main

import (
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/latchws/latch/server"
	"github.com/pelletier/go-toml/v2"
)

// exampleConfig is what `latch config example` prints; `latch config
// check` accepts it (a test says so).
//
//go:embed latch.example.toml
var exampleConfig []byte

// fileConfig is the TOML configuration file. Every serve flag has a key,
// by one rule: the flag's name with '-' written '_', and the flags named
// tls-*, http-*, log-*, auth-* and api-* in a table of that name
// (-http-idle-timeout is idle_timeout in [http]). Only the file has
// [[namespace]] and the *_file keys, which name a file holding the secret
// of the key without _file. Pointers tell a key that is absent (the layer
// below shows through) from one set to the zero value.
//
// Tags: toml is the key; latch:"path" marks a file name, which is read
// relative to the configuration file's directory.
type fileConfig struct {
	Addr      *string `toml:"addr"`
	AdminAddr *string `toml:"admin_addr"`
	TLS       struct {
		Cert *string `toml:"cert" latch:"path"`
		Key  *string `toml:"key" latch:"path"`
	} `toml:"tls"`
	HTTP2          *bool     `toml:"http2"`
	H2C            *bool     `toml:"h2c"`
	Engine         *string   `toml:"engine"`
	AllowedOrigins *[]string `toml:"allowed_origins"`
	AllowedHosts   *[]string `toml:"allowed_hosts"`

	MaxConnections      *int64   `toml:"max_connections"`
	MaxConnectionsPerIP *int64   `toml:"max_connections_per_ip"`
	MaxMessageRate      *float64 `toml:"max_message_rate"`
	MaxMessageSize      *int64   `toml:"max_message_size"`
	EchoMaxMessageSize  *int64   `toml:"echo_max_message_size"`
	MaxHeaderBytes      *int64   `toml:"max_header_bytes"`
	MaxChannels         *int64   `toml:"max_channels"`
	SendQueue           *int64   `toml:"send_queue"`
	MaxPublishRate      *float64 `toml:"max_publish_rate"`
	MaxPublishRatePerIP *float64 `toml:"max_publish_rate_per_ip"`

	HTTP struct {
		IdleTimeout  *string `toml:"idle_timeout"`
		ReadTimeout  *string `toml:"read_timeout"`
		WriteTimeout *string `toml:"write_timeout"`
	} `toml:"http"`
	HeartbeatInterval *string `toml:"heartbeat_interval"`
	MessageTimeout    *string `toml:"message_timeout"`
	WriteStallTimeout *string `toml:"write_stall_timeout"`
	ShutdownTimeout   *string `toml:"shutdown_timeout"`

	Compression                *bool `toml:"compression"`
	CompressionContextTakeover *bool `toml:"compression_context_takeover"`

	Broker         *[]string `toml:"broker"`
	PublishTimeout *string   `toml:"publish_timeout"`
	NodeID         *string   `toml:"node_id"`

	JetStream struct {
		Replicas    *int64  `toml:"replicas"`
		Memory      *bool   `toml:"memory"`
		PresenceTTL *string `toml:"presence_ttl"`
	} `toml:"jetstream"`

	Log struct {
		Level  *string `toml:"level"`
		Format *string `toml:"format"`
	} `toml:"log"`

	Auth struct {
		HMACSecret     *string   `toml:"hmac_secret"`
		HMACSecretFile *string   `toml:"hmac_secret_file" latch:"path"`
		PublicKey      *[]string `toml:"public_key" latch:"path"`
		JWKSURL        *string   `toml:"jwks_url"`
		Issuer         *string   `toml:"issuer"`
		Audience       *string   `toml:"audience"`
		Anonymous      *bool     `toml:"anonymous"`
		ConnectTimeout *string   `toml:"connect_timeout"`
		Leeway         *string   `toml:"leeway"`
		JWKSRefresh    *string   `toml:"jwks_refresh"`
	} `toml:"auth"`

	API struct {
		Key     *string `toml:"key"`
		KeyFile *string `toml:"key_file" latch:"path"`
		Addr    *string `toml:"addr"`
		OnMain  *bool   `toml:"on_main"`
	} `toml:"api"`

	Demo *bool `toml:"demo"`

	Namespace []namespaceFile `toml:"namespace"`
}

// namespaceFile is one [[namespace]] table: server.Namespace.
type namespaceFile struct {
	Name        *string `toml:"name"` // required: "" is the default namespace, not a forgotten key
	Subscribe   string  `toml:"subscribe"`
	Publish     string  `toml:"publish"`
	HistorySize int     `toml:"history_size"`
	HistoryTTL  string  `toml:"history_ttl"`
	Presence    bool    `toml:"presence"`
	JoinLeave   bool    `toml:"join_leave"`
	Personal    bool    `toml:"personal"`
}

// configFile is a decoded configuration file.
type configFile struct {
	path  string
	cfg   fileConfig
	lines map[string]int // key ("http.idle_timeout", "namespace[0].name") → line, for messages
}

// loadConfigFile reads and strictly decodes the file at path: an unknown
// key or a value of the wrong type is an error naming the line.
func loadConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &configFile{path: path, lines: keyLines(data)}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f.cfg); err != nil {
		return nil, f.decodeError(err)
	}
	return f, nil
}

// decodeError rewrites go-toml's errors as FILE:LINE: messages, one line
// per unknown key.
func (f *configFile) decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, len(strict.Errors))
		for i, e := range strict.Errors {
			row, _ := e.Position()
			msgs[i] = fmt.Sprintf("%s:%d: unknown key %s", f.path, row, strings.Join(e.Key(), "."))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		// "cannot decode TOML string into struct field main.fileConfig.X of
		// type int64" speaks Go; say it in the file's terms.
		if m := typeMismatch.FindStringSubmatch(msg); m != nil && len(de.Key()) > 0 {
			msg = fmt.Sprintf("%s must be %s, not a TOML %s", strings.Join(de.Key(), "."), typeWord(m[2]), m[1])
		}
		return fmt.Errorf("%s:%d:%d: %s", f.path, row, col, msg)
	}
	return fmt.Errorf("%s: %w", f.path, err)
}

var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\w+) into struct field .* of type (\S+)$`)

// typeWord describes a Go type of fileConfig in TOML's words.
func typeWord(goType string) string {
	switch strings.TrimLeft(goType, "*") {
	case "int", "int64":
		return "an integer"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string (durations too, in quotes: \"30s\")"
	case "[]string":
		return "an array of strings"
	}
	return "a " + goType
}

// pos is "FILE:LINE" of key, or "FILE" when the line is not known.
func (f *configFile) pos(key string) string {
	if line, ok := f.lines[key]; ok {
		return fmt.Sprintf("%s:%d", f.path, line)
	}
	return f.path
}

// at names key in a message: "FILE:LINE: key", or "FILE: key" when the
// line is not known.
func (f *configFile) at(key string) string {
	return f.pos(key) + ": " + key
}

// keyLines maps each key of a TOML document to the line it is on. It reads
// the document as written by hand — a key per line, under [table] and
// [[namespace]] headers — and is only used to point at a line in messages;
// the decoder has read the document properly by then.
func keyLines(data []byte) map[string]int {
	m := make(map[string]int)
	table := ""
	arrays := make(map[string]int) // [[name]] headers seen so far
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#':
		case strings.HasPrefix(s, "[["):
			name, _, _ := strings.Cut(s[2:], "]]")
			name = strings.TrimSpace(name)
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
			m[table] = i + 1
		case s[0] == '[':
			name, _, _ := strings.Cut(s[1:], "]")
			table = strings.TrimSpace(name)
			m[table] = i + 1
		default:
			k, _, ok := strings.Cut(s, "=")
			if !ok {
				continue // inside a multi-line value
			}
			k = strings.Trim(strings.TrimSpace(k), `"'`)
			if table != "" {
				k = table + "." + k
			}
			if _, seen := m[k]; !seen {
				m[k] = i + 1
			}
		}
	}
	return m
}

// fileSetting is one key of fileConfig that maps to a serve flag.
type fileSetting struct {
	key   string        // "http.idle_timeout"
	flag  string        // "http-idle-timeout"
	value reflect.Value // the field: a pointer, nil when the key is absent
	path  bool          // a file name
}

// fileSettings lists the flag keys of fileConfig in declaration order;
// tests check that it covers every flag.
func fileSettings(c *fileConfig) []fileSetting {
	var out []fileSetting
	var walk func(v reflect.Value, table string)
	walk = func(v reflect.Value, table string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			key, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
			if table != "" {
				key = table + "." + key
			}
			switch sf.Type.Kind() {
			case reflect.Struct:
				walk(v.Field(i), key)
			case reflect.Pointer:
				out = append(out, fileSetting{
					key:   key,
					flag:  strings.NewReplacer(".", "-", "_", "-").Replace(key),
					value: v.Field(i),
					path:  sf.Tag.Get("latch") == "path",
				})
			}
			// Slices of tables ([[namespace]]) are not flags.
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// apply sets the flags of the keys present in the file, the lowest layer
// above the defaults, and records in src where each value came from.
func (f *configFile) apply(fs *flag.FlagSet, src map[string]string) error {
	dir := filepath.Dir(f.path)
	resolve := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for _, s := range fileSettings(&f.cfg) {
		if s.value.IsNil() {
			continue
		}
		name := s.flag
		var values []string
		switch v := s.value.Interface().(type) {
		case *string:
			values = []string{*v}
		case *bool:
			values = []string{strconv.FormatBool(*v)}
		case *int64:
			values = []string{strconv.FormatInt(*v, 10)}
		case *float64:
			values = []string{strconv.FormatFloat(*v, 'g', -1, 64)}
		case *[]string:
			values = *v
		default:
			return fmt.Errorf("%s: key of unexpected type %T", f.at(s.key), v) // a bug in fileConfig
		}
		if s.path {
			for i := range values {
				values[i] = resolve(values[i])
			}
		}
		if secretFor, ok := strings.CutSuffix(name, "-file"); ok {
			// hmac_secret_file, key_file: the secret itself is in the file.
			if src[secretFor] != "" {
				return fmt.Errorf("%s: give the secret or a file holding it, not both", f.at(s.key))
			}
			secret, err := readSecret(values[0])
			if err != nil {
				return fmt.Errorf("%s: %v", f.at(s.key), err)
			}
			name, values = secretFor, []string{secret}
		}
		fl := fs.Lookup(name)
		if fl == nil {
			return fmt.Errorf("%s: no flag -%s", f.at(s.key), name) // a bug in fileConfig
		}
		if _, isList := fl.Value.(*listValue); !isList && len(values) != 1 {
			values = []string{strings.Join(values, ",")} // a comma-separated flag
		}
		if len(values) == 0 {
			values = []string{""} // an empty list clears what a lower layer had
		}
		for _, v := range values {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("%s: invalid value %q: %v", f.at(s.key), v, err)
			}
		}
		src[name] = f.at(s.key)
	}
	return nil
}

// readSecret returns the contents of a secret file, without the trailing
// newline an editor or `echo` leaves.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// namespaces converts the [[namespace]] tables, checking what can be
// checked here so that the message points at the line. nil when the file
// has none.
func (f *configFile) namespaces() ([]server.Namespace, error) {
	if len(f.cfg.Namespace) == 0 {
		return nil, nil
	}
	out := make([]server.Namespace, 0, len(f.cfg.Namespace))
	seen := make(map[string]bool)
	for i, nf := range f.cfg.Namespace {
		table := fmt.Sprintf("namespace[%d]", i)
		key := func(k string) string { return table + "." + k }
		if nf.Name == nil {
			return nil, fmt.Errorf("%s: [[namespace]] without a name (name = \"\" is the default namespace, of channels without ':')", f.pos(table))
		}
		ns := server.Namespace{
			Name:        *nf.Name,
			Subscribe:   server.Access(nf.Subscribe),
			Publish:     server.Access(nf.Publish),
			HistorySize: nf.HistorySize,
			Presence:    nf.Presence,
			JoinLeave:   nf.JoinLeave,
			Personal:    nf.Personal,
		}
		label := fmt.Sprintf("namespace %q", ns.Name)
		bad := func(k, format string, a ...any) error {
			return fmt.Errorf("%s: %s: %s", f.pos(key(k)), label, fmt.Sprintf(format, a...))
		}
		if seen[ns.Name] {
			return nil, bad("name", "configured twice")
		}
		seen[ns.Name] = true
		if nf.HistoryTTL != "" {
			d, err := time.ParseDuration(nf.HistoryTTL)
			switch {
			case err != nil:
				return nil, bad("history_ttl", "history_ttl %q is not a duration: write one with a unit, like 10m or 1h", nf.HistoryTTL)
			case d <= 0:
				return nil, bad("history_ttl", "history_ttl must be positive, got %q", nf.HistoryTTL)
			case ns.HistorySize == 0:
				return nil, bad("history_ttl", "history_ttl needs a history_size")
			}
			ns.HistoryTTL = d
		}
		// The server's rules, with this table's line.
		if err := ns.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %v", f.pos(table), err)
		}
		out = append(out, ns)
	}
	return out, nil
}

// demoNamespaces are the namespaces of demo mode: the default namespace
// open to anyone, as the demo page has used it so far, and two that show
// what tokens are for.
func demoNamespaces() []server.Namespace {
	return []server.Namespace{
		{Name: "", Subscribe: server.AccessAnonymous, Publish: server.AccessAnonymous},
		{Name: "chat", Subscribe: server.AccessUser, Publish: server.AccessUser,
			HistorySize: 100, HistoryTTL: 10 * time.Minute, Presence: true, JoinLeave: true},
		{Name: "inbox", Subscribe: server.AccessUser, Publish: server.AccessAPI, Personal: true},
	}
}

// listValue is a repeatable flag of comma-separated items. Each layer
// (file, environment, command line) replaces what the layers below set;
// within one layer the items add up.
type listValue struct {
	p     *[]string
	layer *int // the layer being applied, advanced by parseServe
	at    int  // the layer that set *p; -1: the default
}

func (l *listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(s string) error {
	if l.at != *l.layer {
		*l.p, l.at = nil, *l.layer
	}
	*l.p = append(*l.p, splitList(s)...)
	return nil
}
