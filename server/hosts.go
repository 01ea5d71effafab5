package server

import (
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
)

// hostPolicy decides which Host headers a listener answers, against DNS
// rebinding: a page on evil.example whose name is made to resolve to
// 127.0.0.1 reaches a server on loopback, but its requests still carry
// Host: evil.example. IP literals are always accepted, since a rebinding
// attack needs a DNS name. Immutable after newHostPolicy.
type hostPolicy struct {
	patterns []string // lower case; nil accepts every Host
	describe string   // for the start-up log
}

// loopbackHosts are the names accepted by default on a loopback address
// (RFC 6761 §6.3: localhost names resolve to loopback only).
var loopbackHosts = []string{"localhost", "*.localhost"}

// newHostPolicy returns the policy for a server listening on addr:
// patterns if any, else the localhost names when addr is loopback only,
// else any Host.
func newHostPolicy(patterns []string, addr string) *hostPolicy {
	switch {
	case len(patterns) > 0:
		p := &hostPolicy{describe: "only " + strings.Join(patterns, ",") + " and IP literals (-allowed-hosts)"}
		for _, pat := range patterns {
			p.patterns = append(p.patterns, strings.ToLower(pat))
		}
		return p
	case isLoopbackAddr(addr):
		return &hostPolicy{patterns: loopbackHosts, describe: "only localhost names and IP literals (loopback address; set -allowed-hosts to change)"}
	}
	return &hostPolicy{describe: "any (set -allowed-hosts to restrict)"}
}

// isLoopbackAddr reports whether a listen address binds loopback only.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// allows reports whether a request with this Host header is for us. A
// pattern with a port is matched against host:port, one without against
// the name alone.
func (p *hostPolicy) allows(hostport string) bool {
	if p.patterns == nil {
		return true
	}
	hostport = strings.ToLower(hostport)
	host, port := hostport, ""
	if h, pt, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, pt
	}
	host = strings.TrimSuffix(host, ".") // "example.com." names example.com
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	if host == "" {
		return false
	}
	for _, pat := range p.patterns {
		target := host
		if strings.Contains(pat, ":") {
			if port == "" {
				continue
			}
			target = net.JoinHostPort(host, port)
		}
		if ok, err := path.Match(pat, target); err == nil && ok {
			return true
		}
	}
	return false
}

// hostCheck answers 421 Misdirected Request (RFC 9110 §15.5.20) to a
// request whose Host p does not allow, except on the paths in exempt.
func hostCheck(p *hostPolicy, exempt map[string]bool, next http.Handler) http.Handler {
	if p.patterns == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !exempt[r.URL.Path] && !p.allows(r.Host) {
			w.Header().Set("Connection", "close")
			writeText(w, http.StatusMisdirectedRequest,
				"latch: this server does not answer for host "+quoteHost(r.Host)+"; list it in -allowed-hosts (LATCH_ALLOWED_HOSTS)\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quoteHost quotes a client-supplied Host for a plain-text answer.
func quoteHost(h string) string {
	if len(h) > 255 {
		h = h[:255] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, h) + `"`
}
