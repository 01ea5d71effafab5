package server_test

import (
	"strings"
	"testing"

	"github.com/latchws/latch/server"
)

// Validate finds what New would refuse in the configuration itself,
// namespaces included, without building a server.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg  server.Config
		want string // "" → valid
	}{
		{server.Config{}, ""},
		{server.Config{Namespaces: []server.Namespace{{Name: "chat", HistorySize: 10}}}, ""},
		{server.Config{MaxConnections: -1}, "max connections"},
		{server.Config{Namespaces: []server.Namespace{{Name: "a"}, {Name: "a"}}}, `namespace "a" is configured twice`},
		{server.Config{Namespaces: []server.Namespace{{Name: "x", Subscribe: "everyone"}}}, `namespace "x": subscribe must be`},
		{server.Config{APIKey: "short", APIOnMain: true}, "at least 16 bytes"},
		{server.Config{APIAddr: "127.0.0.1:0"}, "needs an API key"},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tc.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want an error containing %q", err, tc.want)
		}
	}
}
